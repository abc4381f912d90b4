"""The address the flanneld and calico-node doubles advertise, chosen from a host's interfaces and routes as the
real ones choose it (flannel pkg/ipmatch, calico node/pkg/lifecycle/startup/autodetection), on a VirtualBox VM's
layout: the NAT adapter eth0 (10.0.2.15, the default route) first, the private network eth1 second."""

import ipaddress

import pytest

from lab.doubles import caliconode, flanneld, hostnet, podrun

NAT = hostnet.Interface("eth0", 2, 1500, (ipaddress.IPv4Interface("10.0.2.15/24"),))
PRIVATE = hostnet.Interface("eth1", 3, 1500, (ipaddress.IPv4Interface("192.168.56.11/24"),))
LO = hostnet.Interface("lo", 1, 65536, (ipaddress.IPv4Interface("127.0.0.1/8"),))


@pytest.fixture
def vm(monkeypatch):
    routes = {"192.168.56.10": (PRIVATE, "192.168.56.11"), "192.168.56.11": (LO, "192.168.56.11"),
              "10.0.2.2": (NAT, "10.0.2.15")}
    monkeypatch.setattr(hostnet, "interfaces", lambda: [LO, NAT, PRIVATE])
    monkeypatch.setattr(hostnet, "default_route_interface", lambda: NAT)
    monkeypatch.setattr(hostnet, "route_get", lambda address: routes[address])


@pytest.mark.parametrize("args, env, chosen", [
    ([], {}, ("eth0", "10.0.2.15", "10.0.2.15")),                              # the default route's interface
    (["--iface=192.168.56.11"], {}, ("eth1", "192.168.56.11", "192.168.56.11")),
    (["--iface", "eth1"], {}, ("eth1", "192.168.56.11", "192.168.56.11")),
    (["--iface=eth9", "--iface=eth1"], {}, ("eth1", "192.168.56.11", "192.168.56.11")),   # the first that exists
    (["--iface-regex=^192\\.168\\."], {}, ("eth1", "192.168.56.11", "192.168.56.11")),
    (["--iface-can-reach=192.168.56.10"], {}, ("eth1", "192.168.56.11", "192.168.56.11")),
    # on the host that holds the address it is asked to reach, the route is via lo (MTU 65536)
    (["--iface-can-reach=192.168.56.11"], {}, ("lo", "192.168.56.11", "192.168.56.11")),
    (["--public-ip=192.168.56.11"], {}, ("eth1", "192.168.56.11", "192.168.56.11")),
    ([], {"FLANNELD_IFACE": "eth1"}, ("eth1", "192.168.56.11", "192.168.56.11")),
])
def test_flanneld_chooses_its_interface_as_flanneld_does(vm, args, env, chosen):
    iface, address, public = flanneld.external_interface(flanneld.options(args, env))
    assert (iface.name, address, public) == chosen


def test_flanneld_ends_with_its_words_when_no_interface_matches(vm):
    with pytest.raises(flanneld.FlannelError, match="^Failed to find interface to use that matches the interfaces"):
        flanneld.external_interface(flanneld.options(["--iface=10.9.9.9", "--iface-regex=^wlan"], {}))


@pytest.mark.parametrize("method, address", [
    ("", "192.168.56.11/24"),                     # first-found scans from the last interface: the private network
    ("first-found", "192.168.56.11/24"),
    ("interface=eth0", "10.0.2.15/24"),
    ("skip-interface=eth1", "10.0.2.15/24"),
    ("cidr=10.0.0.0/8", "10.0.2.15/24"),
    ("can-reach=10.0.2.2", "10.0.2.15/24"),
    ("can-reach=192.168.56.11", "192.168.56.11/24"),
    ("kubernetes-internal-ip", "192.168.56.11/24"),
    ("interface=wlan.*", None),
])
def test_calico_node_autodetects_as_calico_does(vm, method, address):
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "192.168.56.11"},
                                     {"type": "Hostname", "address": "k8s-s2"}]}}
    assert caliconode.autodetect(method, node) == address


def test_calico_node_refuses_an_unknown_method(vm):
    with pytest.raises(caliconode.CalicoError, match="^Invalid IP autodetection method: reach=1.2.3.4$"):
        caliconode.autodetect("reach=1.2.3.4", {})


def test_the_kubelet_expands_variables_in_a_containers_args():
    env = {"NODE_IP": "192.168.56.11"}
    assert [podrun.expand(a, env) for a in ("--iface=$(NODE_IP)", "$(MISSING)", "$$(NODE_IP)", "a$$b")] == \
        ["--iface=192.168.56.11", "$(MISSING)", "$(NODE_IP)", "a$b"]
