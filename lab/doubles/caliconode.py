"""calico-node's start-up as far as the Node's address goes: with `IP` unset or `autodetect` it detects the
node's IPv4 address by `IP_AUTODETECTION_METHOD` and records it, with its prefix, in the Node's
`projectcalico.org/IPv4Address` annotation (the Kubernetes datastore keeps Calico's node BGP spec there); a
given `IP` is recorded as it is. No BGP, IPIP tunnel, felix or routes are played.

Methods, from calico `node/pkg/lifecycle/startup/autodetection`: `first-found` (the default) takes the first
global unicast address of the interfaces listed in *reverse* ifindex order (`GetInterfaces` loops backwards "to
maintain behavior with older versions"), skipping DEFAULT_INTERFACES_TO_EXCLUDE; `interface=` and
`skip-interface=` take comma-separated regexes; `cidr=` comma-separated networks; `can-reach=` the source address
of the route to the destination; `kubernetes-internal-ip` the Node's InternalIP with the prefix of the host
interface holding it. An unknown method, or none found, ends calico-node with its words.
Under a test root (KUBEFAB_DOUBLE_ROOT) the node IP the kubelet double reports is recorded, with no prefix.
"""

import ipaddress
import re

from . import hostnet
from .hostfs import root

ANNOTATION = "projectcalico.org/IPv4Address"
EXCLUDED = ("^docker.*", "^cbr.*", "^dummy.*", "^podman.*", "^virbr.*", "^lxcbr.*", "^veth.*", "^lo",
            "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*", r"^vxlan\.calico.*", r"^vxlan-v6\.calico.*",
            r"^wireguard\.cali.*", r"^wg-v6\.cali.*")
NONE_FOUND = ("Couldn't autodetect an IPv4 address. If auto-detecting, choose a different autodetection method. "
              "Otherwise provide an explicit address.")


class CalicoError(Exception):
    pass


def run(container, args, client, node_name, ip):
    """Play calico-node's address detection once on this node; CalicoError with its words when it ends."""
    env = container.env
    given = env.get("IP", "")
    if given not in ("", "autodetect"):
        address = given
    elif root() is not None:
        address = ip
    else:
        node = client.get(f"/api/v1/nodes/{node_name}")
        address = autodetect(env.get("IP_AUTODETECTION_METHOD", ""), node)
        if address is None:
            raise CalicoError(NONE_FOUND)
    client.request("PATCH", f"/api/v1/nodes/{node_name}", {"metadata": {"annotations": {ANNOTATION: address}}},
                   "application/merge-patch+json")


def _split(text):
    return re.split(r"\s*,\s*", text)


def _enumerate(include=(), exclude=(), cidrs=()):
    """FilteredEnumeration: the first global unicast address (as a CIDR) of the filtered interfaces, or None."""
    for iface in reversed(hostnet.interfaces()):
        if include and not any(re.search(r, iface.name) for r in include):
            continue
        if any(re.search(r, iface.name) for r in exclude):
            continue
        for address in iface.addresses:
            if hostnet.global_unicast(address.ip) and (not cidrs or any(address.ip in c for c in cidrs)):
                return str(address)
    return None


def _held(address):
    """`address` with the prefix of the host interface holding it, or None (calico's GetLocalCIDR leaves a bare
    address, which its ParseCIDR then refuses; ReachDestination fails the same way)."""
    return next((str(a) for iface in hostnet.interfaces() for a in iface.addresses if str(a.ip) == address), None)


def autodetect(method, node):
    """AutoDetectCIDR for IPv4: the address as a CIDR, or None; CalicoError for an unknown method."""
    if method in ("", "first-found"):
        return _enumerate(exclude=EXCLUDED)
    if method.startswith("interface="):
        return _enumerate(include=_split(method.removeprefix("interface=")))
    if method.startswith("skip-interface="):
        return _enumerate(exclude=EXCLUDED + tuple(_split(method.removeprefix("skip-interface="))))
    if method.startswith("cidr="):
        try:
            cidrs = [ipaddress.ip_network(c, strict=False) for c in _split(method.removeprefix("cidr="))]
        except ValueError:
            return None
        return _enumerate(cidrs=cidrs)
    if method.startswith("can-reach="):
        try:
            _, source = hostnet.route_get(method.removeprefix("can-reach="))
        except OSError:
            return None
        return _held(source)
    if method.startswith("kubernetes-internal-ip"):
        internal = next((a["address"] for a in (node.get("status") or {}).get("addresses") or ()
                         if a.get("type") == "InternalIP" and ":" not in a["address"]), None)
        return _held(internal)
    raise CalicoError(f"Invalid IP autodetection method: {method}")
