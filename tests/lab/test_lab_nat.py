"""cluster.up on lab hosts that look like VirtualBox VMs (`Lab.up(nat=True)`, `invoke lab.up --nat`): a NAT adapter
first, eth0 with the same 10.0.2.15 on every host and the default route, the lab network second on eth1.

flanneld takes the default route's interface unless told otherwise, so without kubefab's `--iface=$(NODE_IP)`
every node advertises 10.0.2.15 and pods on different nodes cannot reach each other; verify must then fail naming
the nodes. calico-node's default, first-found, scans the interfaces from the last one (calico's GetInterfaces
loops in reverse), so on this layout it finds the private network even without kubefab's kubernetes-internal-ip;
a method that picks the NAT adapter shows verify catching it there too."""

import re
import shutil

import pytest
import toml
import yaml

from kubefab import inventory
from kubefab.api import kube
from kubefab.components import cni
from lab import spec
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
ANNOTATION = {name: a.annotation for name, a in cni.ADVERTISED.items()}


def nat_lab(new_lab, cni_name, manifest_edit=None, tmp_path=None):
    """A 1 control plane + 1 worker lab with NAT adapters for `cni_name`; with `manifest_edit`, the inventory's
    cni_manifest is kubefab's own manifest passed through it."""
    lab = new_lab(hosts=2, control_planes=1, flavour="node", nat=True)
    raw = toml.loads(lab.inventory.read_text())
    raw["cluster"]["cni"] = cni_name
    lab.inventory.write_text(toml.dumps(raw))
    if manifest_edit:
        docs = list(yaml.safe_load_all(cni.manifest(inventory.load(lab.inventory, state_dir=tmp_path / "plain"))))
        path = tmp_path / f"{cni_name}.yaml"
        path.write_text(yaml.safe_dump_all([manifest_edit(d) for d in docs]))
        raw["cluster"]["cni_manifest"] = str(path)
    lab.inventory.write_text(toml.dumps(raw))
    return lab


def advertised(lab, tmp_path, cni_name):
    api = kube.connect(tmp_path / "state" / "kubeconfigs" / "admin.conf")
    return {n["metadata"]["name"]: n["metadata"].get("annotations", {}).get(ANNOTATION[cni_name], "").split("/")[0]
            for n in api.get("/api/v1/nodes")["items"]}


def without_flannel_iface(doc):
    for c in (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or ():
        c["args"] = [a for a in c.get("args") or () if not a.startswith("--iface")]
    return doc


def calico_method(method):
    def edit(doc):
        for c in (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or ():
            env = [e for e in c.get("env") or () if e["name"] != "IP_AUTODETECTION_METHOD"]
            c["env"] = env + ([{"name": "IP_AUTODETECTION_METHOD", "value": method}] if method else [])
        return doc
    return edit


def test_the_nat_adapter_comes_first_holds_the_default_route_and_leads_nowhere(new_lab):
    lab = new_lab(hosts=2, control_planes=1, flavour="plain", nat=True)
    for h in lab.hosts:
        links = lab.run(h.name, "ip -o -4 addr show").stdout
        assert re.search(rf"^2: eth0 +inet {spec.NAT_ADDRESS}/24 ", links, re.M), links
        assert re.search(rf"^3: eth1 +inet {re.escape(h.address)}/22 ", links, re.M), links
        assert lab.run(h.name, "ip route show default").stdout.split()[:5] == \
            ["default", "via", spec.NAT_GATEWAY, "dev", "eth0"]
    other = lab.hosts[1].address
    assert lab.run("kf-cp1", f"timeout 3 bash -c 'echo > /dev/tcp/{other}/22'", check=False).returncode == 0
    out = lab.run("kf-cp1", "timeout 5 bash -c 'echo > /dev/tcp/192.0.2.1/80'", check=False)
    assert out.returncode != 0 and "No route to host" in out.stderr, out


@pytest.mark.parametrize("cni_name", ["flannel", "calico"])
def test_every_node_advertises_its_internal_address_not_the_shared_nat_one(new_lab, tmp_path, cni_name):
    lab = nat_lab(new_lab, cni_name)
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert advertised(lab, tmp_path, cni_name) == {h.name: h.address for h in lab.hosts}
    verify = {x.host: " ".join(s.detail for s in x.steps) for x in r.results if x.phase == "verify"}
    assert all(f"advertises {h.address} to the pod network" in verify[h.name] for h in lab.hosts), verify
    if cni_name == "flannel":       # flanneld's VXLAN device runs over the private network, with its MTU
        for h in lab.hosts:
            device = lab.run(h.name, "ip -d -o link show flannel.1; cat /run/flannel/subnet.env").stdout
            assert f"local {h.address} dev eth1 " in device and "FLANNEL_MTU=1450" in device, device


def test_flannel_without_kubefabs_iface_advertises_the_nat_address_and_verify_names_each_node(new_lab, tmp_path):
    lab = nat_lab(new_lab, "flannel", without_flannel_iface, tmp_path)
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 1, text
    assert advertised(lab, tmp_path, "flannel") == {h.name: spec.NAT_ADDRESS for h in lab.hosts}
    verify = {x.host: x for x in r.results if x.phase == "verify"}
    for h in lab.hosts:
        assert verify[h.name].status == "failed", text
        assert f"{h.name} advertises {spec.NAT_ADDRESS} to the pod network (flannel.alpha.coreos.com/public-ip), " \
               f"not its internal_address {h.address}" in text, text


def test_calico_first_found_takes_the_last_interface_and_a_method_picking_the_nat_adapter_fails_verify(
        new_lab, tmp_path):
    found, nat = tmp_path / "first-found", tmp_path / "nat"
    found.mkdir(), nat.mkdir()
    lab = nat_lab(new_lab, "calico", calico_method(None), found)
    code, text, _ = run_of(lab, found, yes=True)
    assert code == 0, text
    assert advertised(lab, found, "calico") == {h.name: h.address for h in lab.hosts}

    lab = nat_lab(new_lab, "calico", calico_method("interface=eth0"), nat)
    code, text, r = run_of(lab, nat, yes=True)
    assert code == 1, text
    assert advertised(lab, nat, "calico") == {h.name: spec.NAT_ADDRESS for h in lab.hosts}
    for h in lab.hosts:
        assert f"{h.name} advertises {spec.NAT_ADDRESS} to the pod network (projectcalico.org/IPv4Address), " \
               f"not its internal_address {h.address}" in text, text
