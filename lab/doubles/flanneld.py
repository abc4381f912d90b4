"""flanneld (`--ip-masq --kube-subnet-mgr`, vxlan backend) as the kube-flannel container leaves a node:
/run/flannel/subnet.env from the node's podCIDR, the `flannel.1` VXLAN device (VNI 1, port 8472, MTU of the
node's interface less 50) holding the subnet's network address, the FLANNEL-POSTRTG (nat) and FLANNEL-FWD
(filter) chains jumped to from POSTROUTING and FORWARD, and the Node's flannel annotations (not its
NetworkUnavailable condition: the kubelet double owns the conditions list). These are what `kubeadm reset`
does not clean and kubefab's reset must.

The interface and the address flanneld advertises (the Node's `public-ip` annotation, the VXLAN device's local
address and underlying link, the MTU) are chosen as flanneld chooses them: each `--iface` (a name, or an address
the interface holds) in turn, then each `--iface-regex` (matched against the interface's addresses, then its
name), then `--iface-can-reach` (the route to that address: on the host that holds it, `lo`), and with none of
them the interface of the default route; `--public-ip` replaces the advertised address. The FLANNELD_* variables
stand in for flags not given. Under a test root (KUBEFAB_DOUBLE_ROOT) only subnet.env is written, and the node
IP the kubelet double reports is advertised: links, routes and iptables would be the machine's.
Sources: flannel `pkg/subnet/kube` (pod cidr lease, annotations), `pkg/backend/vxlan` (device, MTU),
`pkg/trafficmngr/iptables` (MasqRules, ForwardRules), `main.go` (subnet.env, the order of the interface
options), `pkg/ipmatch/match.go` (LookupExtIface), `pkg/ip/iface.go` (default route, addresses, route get).
"""

import ipaddress
import json
import re
import subprocess

from . import hostnet
from .hostfs import root

VNI, PORT, DEVICE = 1, 8472, "flannel.1"
VXLAN_OVERHEAD = 50
NO_MATCH = "Failed to find interface to use that matches the interfaces and/or regexes provided"


class FlannelError(Exception):
    pass


def run(container, args, client, node_name, ip):
    """Play flanneld (`args` after the command) once on this node; FlannelError with flanneld's words when it
    cannot start."""
    found = container.read("/etc/kube-flannel/net-conf.json")
    if found is None:
        raise FlannelError("failed to read net conf: open /etc/kube-flannel/net-conf.json: no such file or directory")
    conf = json.loads(found[0])
    network = ipaddress.ip_network(conf["Network"])
    # main.go works out the interface before it asks for a lease
    chosen = external_interface(options(args, container.env)) if root() is None else None
    node = client.get(f"/api/v1/nodes/{node_name}")
    cidr = (node.get("spec") or {}).get("podCIDR")
    if not cidr:
        raise FlannelError(f'Error registering network: failed to acquire lease: node "{node_name}" pod cidr not '
                           "assigned")
    subnet = ipaddress.ip_network(cidr)
    mtu, mac, public = 1500 - VXLAN_OVERHEAD, "", ip
    if chosen:
        iface, address, public = chosen
        mtu = iface.mtu - VXLAN_OVERHEAD
        mac = vxlan_device(subnet, iface.name, address, mtu)
        iptables(network, subnet)
    env = (f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={subnet.network_address + 1}/{subnet.prefixlen}\n"
           f"FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ=true\n")
    container.write("/run/flannel/subnet.env", env.encode(), 0o644, "flanneld")
    annotate(client, node_name, public, mac)


LISTS, SINGLE = ("iface", "iface-regex"), ("iface-can-reach", "public-ip")


def options(args, env):
    """{flag: [values]} of flanneld's interface flags from `args` (Go's -f=v, --f=v, --f v), then FLANNELD_*."""
    found, pending = {}, None
    for arg in args:
        if pending:
            found.setdefault(pending, []).append(arg)
            pending = None
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name in LISTS + SINGLE:
            if eq:
                found.setdefault(name, []).append(value)
            else:
                pending = name
    for name in LISTS + SINGLE:
        variable = "FLANNELD_" + name.upper().replace("-", "_")
        if name not in found and env.get(variable):
            found[name] = [env[variable]]
    return found


def interface_addresses(iface):
    """pkg/ip GetInterfaceIP4Addrs: global unicast addresses first, then link-local ones."""
    ips = [a.ip for a in iface.addresses]
    return [str(a) for a in ips if hostnet.global_unicast(a)] + [str(a) for a in ips if a.is_link_local]


def lookup(public, iface="", regex="", can_reach=""):
    """(interface, its address, the address to advertise) as ipmatch.LookupExtIface finds them; FlannelError
    with its words."""
    found, address = _interface(iface, regex, can_reach)
    address = address or next(iter(interface_addresses(found)), None)
    if address is None:
        raise FlannelError(f"failed to find IPv4 address for interface {found.name}")
    return found, address, public or address


def _interface(iface, regex, can_reach):
    if iface:
        try:
            ipaddress.IPv4Address(iface)
        except ValueError:
            found = hostnet.by_name(iface)
            if found is None:
                raise FlannelError(f"error looking up interface {iface}: route ip+net: no such network interface")
            return found, None
        found = next((i for i in hostnet.interfaces() if iface in {str(a.ip) for a in i.addresses}), None)
        if found is None:
            raise FlannelError(f"error looking up interface {iface}: No interface with given IP found")
        return found, iface
    if regex:
        every = hostnet.interfaces()
        for i in every:
            matched = next((a for a in interface_addresses(i) if re.search(regex, a)), None)
            if matched:
                return i, matched
        named = next((i for i in every if re.search(regex, i.name)), None)
        if named is None:
            listed = ", ".join(f"{i.name}:{interface_addresses(i)}" for i in every)
            raise FlannelError(f"Could not match pattern {regex} to any of the available network interfaces "
                               f"({listed})")
        return named, None
    if can_reach:
        return hostnet.route_get(can_reach)
    found = hostnet.default_route_interface()
    if found is None:
        raise FlannelError("failed to get default interface: Unable to find default route")
    return found, None


def external_interface(opts):
    """(interface, its address, the address to advertise) as flanneld's main.go picks them from `opts`: with no
    interface option, the default route's (or --public-ip's) interface; else the first option that matches."""
    public = (opts.get("public-ip") or [""])[0]
    attempts = [{"iface": i} for i in opts.get("iface", ())] + [{"regex": r} for r in opts.get("iface-regex", ())]
    attempts += [{"can_reach": c} for c in opts.get("iface-can-reach", ())]
    if not attempts:
        try:
            return lookup(public, iface=public)
        except FlannelError as e:
            raise FlannelError(f"Failed to find any valid interface to use: {e}") from None
    for attempt in attempts:
        try:
            return lookup(public, **attempt)
        except FlannelError:
            continue
    raise FlannelError(NO_MATCH)


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def vxlan_device(subnet, link, address, mtu):
    """flannel.1 as the vxlan backend creates (or keeps) it over `link`; returns its MAC (the VtepMAC)."""
    if _ip("link", "show", DEVICE, check=False).returncode:
        _ip("link", "add", DEVICE, "mtu", str(mtu), "type", "vxlan", "id", str(VNI), "local", address, "dev", link,
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
