"""`[cluster.ha]`: one virtual IP in front of the control planes, checked with the inventory's lines.

keepalived: keepalived holds the VIP by VRRP among the control planes and haproxy on each balances `port` over
every API server's 6443; external: the user's load balancer already answers at vip:port. kube-vip is named so that
asking for it gets a reason rather than a typo hint: its static pod needs super-admin.conf during `kubeadm init` and
admin.conf afterwards (kube-vip #684), which kubefab does not stage yet.
"""

from kubefab import net
from kubefab.components import requirements

MODES = ("keepalived", "external")
NOT_YET = {"kube-vip": "kube-vip's static pod needs super-admin.conf during kubeadm init and admin.conf "
                       "afterwards, which kubefab does not stage yet — use 'keepalived' (the same VIP, with haproxy) "
                       "or 'external'"}
DEFAULT_PORTS = {"keepalived": 8443, "external": net.API_PORT}


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
    if ha.mode in NOT_YET:
        p.add("cluster.ha", "mode", f"{ha.mode!r} is not supported: {NOT_YET[ha.mode]}")
    elif ha.mode not in MODES:
        p.add("cluster.ha", "mode", f"is {ha.mode!r} — choose one of {', '.join(repr(m) for m in MODES)}")
    elif not 0 < port(ha) <= 65535:
        p.add("cluster.ha", "port", f"is {ha.port} — give a TCP port from 1 to 65535")
    else:
        _check_port(p, ha)
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
