"""The host's interfaces and routes as flanneld and calico-node read them through netlink (`ip -j` here).

Interfaces come in ifindex order, as Go's net.Interfaces() lists them; an address is kept with its prefix
(calico advertises the CIDR, flannel the address).
"""

import ipaddress
import json
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    mtu: int
    addresses: tuple     # ipaddress.IPv4Interface, in the order the kernel lists them


def _ip_json(*args):
    done = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    if done.returncode:
        raise OSError(done.stderr.strip() or f"ip {' '.join(args)} exited {done.returncode}")
    return json.loads(done.stdout or "[]")


def interfaces():
    """Every interface with its IPv4 addresses, by ifindex."""
    found = [Interface(link["ifname"], link["ifindex"], link.get("mtu", 0),
                       tuple(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                             for a in link.get("addr_info") or () if a.get("family") == "inet"))
             for link in _ip_json("addr", "show")]
    return sorted(found, key=lambda i: i.index)


def by_name(name):
    return next((i for i in interfaces() if i.name == name), None)


def global_unicast(address):
    """Go's net.IP.IsGlobalUnicast for IPv4: not loopback, link-local, multicast, unspecified or broadcast."""
    ip = ipaddress.IPv4Address(address)
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified
                or ip == ipaddress.IPv4Address("255.255.255.255"))


def default_route_interface():
    """The interface of the first IPv4 default route of the main table, or None."""
    for route in _ip_json("-4", "route", "show", "table", "main"):
        if route.get("dst") in ("default", "0.0.0.0/0"):
            return by_name(route.get("dev"))
    return None


def route_get(address):
    """(interface, source address) the kernel would send to `address` from (`ip route get`)."""
    route = _ip_json("route", "get", str(address))[0]
    return by_name(route.get("dev")), route.get("prefsrc")
