"""`[cluster.ha]`: one virtual IP in front of the control planes, checked with the inventory's lines.

keepalived: keepalived holds the VIP by VRRP among the control planes and haproxy on each balances `port` over
every API server's 6443; kube-vip: a static pod on each control plane holds the VIP by ARP on `interface`, its leader
elected by a Lease, and the VIP reaches that node's own API server on 6443 (no balancer); external: the user's load
balancer already answers at vip:port.
"""

import re

from kubefab import net
from kubefab.components import requirements

MODES = ("keepalived", "kube-vip", "external")
PACKAGES = ("keepalived", "haproxy", "socat")     # keepalived mode's, on each control plane (socat: haproxy's socket)
DEFAULT_PORTS = {"keepalived": 8443, "kube-vip": net.API_PORT, "external": net.API_PORT}
INTERFACE = re.compile(r"[A-Za-z0-9_.@-]{1,15}", re.ASCII)     # a Linux interface name (IFNAMSIZ - 1)


def port(ha):
    """The port of the endpoint `ha` makes: the one given, else the mode's."""
    return ha.port or DEFAULT_PORTS.get(ha.mode, net.API_PORT)


def check(p, cluster, hosts, given):
    """Problems of `[cluster.ha]` (when `given`): the vip, the mode, the port, and what they collide with."""
    ha = cluster.ha
    if not given:
        return
    ip = net.as_ip(ha.vip)
    if not ha.vip:
        p.add("cluster.ha", "vip", "is missing — give an unused address in the control planes' subnet, "
                                   "e.g. vip = \"192.168.56.100\"")
    elif ip is None or net.not_a_node_address(ip):
        why = "is not an IP address" if ip is None else net.not_a_node_address(ip)
        p.add("cluster.ha", "vip", f"{ha.vip!r} {why} — give an unused address in the control planes' subnet")
    if ha.mode not in MODES:
        p.add("cluster.ha", "mode", f"is {ha.mode!r} — choose one of {', '.join(repr(m) for m in MODES)}")
    elif not 0 < port(ha) <= 65535:
        p.add("cluster.ha", "port", f"is {ha.port} — give a TCP port from 1 to 65535")
    else:
        _check_port(p, ha)
    _check_interface(p, ha)
    if cluster.control_plane_endpoint:
        p.add("cluster", "control_plane_endpoint", "is set beside [cluster.ha], whose vip:port is the endpoint — "
                                                   "remove one of them")
    for h in hosts:
        if ip is not None and ip in (net.as_ip(h.address), net.as_ip(h.internal_address)):
            p.add("cluster.ha", "vip", f"{ha.vip} is the address of [hosts.{h.name}] — a virtual IP must be an "
                                       "address no host has")
        elif ip is not None and h.is_control_plane and ip.version != (net.as_ip(h.internal_address) or ip).version:
            p.add("cluster.ha", "vip", f"{ha.vip} is IPv{ip.version} but [hosts.{h.name}] talks IPv"
                                       f"{net.as_ip(h.internal_address).version} — give the VIP in its family")


def _check_port(p, ha):
    if ha.mode == "keepalived" and port(ha) in requirements.subjects(requirements.PORT):
        p.add("cluster.ha", "port", f"is {port(ha)}, which a control plane's own components listen on — haproxy "
                                    f"runs beside them: keep the default {DEFAULT_PORTS['keepalived']}")
    elif ha.mode == "kube-vip" and port(ha) != net.API_PORT:
        p.add("cluster.ha", "port", f"is {port(ha)}, but kube-vip puts the VIP on one control plane without a "
                                    f"balancer, so clients reach its API server's own {net.API_PORT} — remove port")


def _check_interface(p, ha):
    if ha.mode == "kube-vip" and not ha.interface:
        p.add("cluster.ha", "interface", "is missing — kube-vip needs the control planes' interface that carries "
                                         "the VIP's subnet, e.g. interface = \"eth1\" (without it kube-vip takes "
                                         "the default route's, the NAT interface on VirtualBox)")
    elif ha.interface and ha.mode != "kube-vip":
        p.add("cluster.ha", "interface", f"is set for mode {ha.mode!r}, which does not use it (keepalived finds the "
                                         "interface carrying each control plane's address) — remove it")
    elif ha.interface and not INTERFACE.fullmatch(ha.interface):
        p.add("cluster.ha", "interface", f"{ha.interface!r} is not a network interface name (up to 15 letters, "
                                         "digits and . _ @ -) — give the name `ip -o addr` shows")
