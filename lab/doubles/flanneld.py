"""flanneld (`--ip-masq --kube-subnet-mgr`, vxlan backend) as the kube-flannel container leaves a node:
/run/flannel/subnet.env from the node's podCIDR, the `flannel.1` VXLAN device (VNI 1, port 8472, MTU of the
node's interface less 50) holding the subnet's network address, the FLANNEL-POSTRTG (nat) and FLANNEL-FWD
(filter) chains jumped to from POSTROUTING and FORWARD, and the Node's flannel annotations (not its
NetworkUnavailable condition: the kubelet double owns the conditions list). These are what `kubeadm reset`
does not clean and kubefab's reset must.

Under a test root (KUBEFAB_DOUBLE_ROOT) only subnet.env is written: links and iptables would be the machine's.
Sources: flannel `pkg/subnet/kube` (pod cidr lease, annotations), `pkg/backend/vxlan` (device, MTU),
`pkg/trafficmngr/iptables` (MasqRules, ForwardRules), `main.go` (subnet.env).
"""

import ipaddress
import json
import subprocess

from .hostfs import root

VNI, PORT, DEVICE = 1, 8472, "flannel.1"


class FlannelError(Exception):
    pass


def run(container, client, node_name, ip):
    """Play flanneld once on this node; FlannelError with flanneld's words when it cannot start."""
    found = container.read("/etc/kube-flannel/net-conf.json")
    if found is None:
        raise FlannelError("failed to read net conf: open /etc/kube-flannel/net-conf.json: no such file or directory")
    conf = json.loads(found[0])
    network = ipaddress.ip_network(conf["Network"])
    node = client.get(f"/api/v1/nodes/{node_name}")
    cidr = (node.get("spec") or {}).get("podCIDR")
    if not cidr:
        raise FlannelError(f'Error registering network: failed to acquire lease: node "{node_name}" pod cidr not '
                           "assigned")
    subnet = ipaddress.ip_network(cidr)
    mtu = 1450
    mac = ""
    if root() is None:
        mtu = interface_mtu(ip) - 50
        mac = vxlan_device(subnet, ip, mtu)
        iptables(network, subnet)
    env = (f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={subnet.network_address + 1}/{subnet.prefixlen}\n"
           f"FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ=true\n")
    container.write("/run/flannel/subnet.env", env.encode(), 0o644, "flanneld")
    annotate(client, node_name, ip, mac)


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def interface_mtu(address):
    for line in _ip("-o", "addr", "show").stdout.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split("/")[0] == address:
            link = _ip("-o", "link", "show", fields[1].rstrip(":")).stdout.split()
            return int(link[link.index("mtu") + 1])
    return 1500


def vxlan_device(subnet, address, mtu):
    """flannel.1 as the vxlan backend creates (or keeps) it; returns its MAC (the VtepMAC)."""
    if _ip("link", "show", DEVICE, check=False).returncode:
        _ip("link", "add", DEVICE, "mtu", str(mtu), "type", "vxlan", "id", str(VNI), "local", address,
            "dstport", str(PORT), "nolearning")
    _ip("addr", "replace", f"{subnet.network_address}/32", "dev", DEVICE)
    _ip("link", "set", DEVICE, "up")
    link = _ip("-o", "link", "show", DEVICE).stdout.split()
    return link[link.index("link/ether") + 1]


def _rule(table, chain, *spec):
    if subprocess.run(["iptables", "-w", "-t", table, "-C", chain, *spec], capture_output=True).returncode:
        subprocess.run(["iptables", "-w", "-t", table, "-A", chain, *spec], capture_output=True, check=True)


def iptables(network, subnet):
    masq = ("-m", "comment", "--comment", "flanneld masq")
    fwd = ("-m", "comment", "--comment", "flanneld forward")
    for table, chain in (("nat", "FLANNEL-POSTRTG"), ("filter", "FLANNEL-FWD")):
        subprocess.run(["iptables", "-w", "-t", table, "-N", chain], capture_output=True)
    _rule("nat", "POSTROUTING", *masq, "-j", "FLANNEL-POSTRTG")
    _rule("nat", "FLANNEL-POSTRTG", "-m", "mark", "--mark", "0x4000/0x4000", *masq, "-j", "RETURN")
    _rule("nat", "FLANNEL-POSTRTG", "-s", str(subnet), "-d", str(network), *masq, "-j", "RETURN")
    _rule("nat", "FLANNEL-POSTRTG", "-s", str(network), "-d", str(subnet), *masq, "-j", "RETURN")
    _rule("nat", "FLANNEL-POSTRTG", "!", "-s", str(network), "-d", str(subnet), *masq, "-j", "RETURN")
    _rule("nat", "FLANNEL-POSTRTG", "-s", str(network), "!", "-d", "224.0.0.0/4", *masq, "-j", "MASQUERADE",
          "--random-fully")
    _rule("nat", "FLANNEL-POSTRTG", "!", "-s", str(network), "-d", str(network), *masq, "-j", "MASQUERADE",
          "--random-fully")
    _rule("filter", "FORWARD", *fwd, "-j", "FLANNEL-FWD")
    _rule("filter", "FLANNEL-FWD", "-s", str(network), *fwd, "-j", "ACCEPT")
    _rule("filter", "FLANNEL-FWD", "-d", str(network), *fwd, "-j", "ACCEPT")


def annotate(client, node_name, ip, mac):
    prefix = "flannel.alpha.coreos.com/"
    client.request("PATCH", f"/api/v1/nodes/{node_name}", {"metadata": {"annotations": {
        f"{prefix}backend-type": "vxlan", f"{prefix}backend-data": json.dumps({"VNI": VNI, "VtepMAC": mac}),
        f"{prefix}kube-subnet-manager": "true", f"{prefix}public-ip": ip}}}, "application/merge-patch+json")
