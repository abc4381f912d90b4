"""Addresses, networks and endpoints as kubeadm reads them: one parser for each, IPv6 in brackets."""

import ipaddress

from kubefab.digits import whole

API_PORT = 6443
SSH_PORT = 22
LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")

# What a node address or an endpoint must not be: (test, what it is, why). kubelet refuses an unspecified,
# loopback, multicast or link-local --node-ip (ValidateNodeIP), the API server the same as an Endpoints address
# but for global multicast (ValidateEndpointIP), and apimachinery's IP validation an IPv4-mapped IPv6 address
# and a zone; no host owns the limited broadcast address.
NOT_A_NODE_ADDRESS = (
    (lambda ip: ip.version == 6 and ip.ipv4_mapped is not None, "an IPv4-mapped IPv6 address",
     "kubelet and the API server take it for the IPv4 address it wraps"),
    (lambda ip: ip.version == 6 and bool(ip.scope_id), "an IPv6 address with a zone",
     "the zone names an interface of one machine only"),
    (lambda ip: ip.is_unspecified, "the unspecified address", "it means any local address, so SSH to it "
     "reaches the machine kubefab runs on"),
    (lambda ip: ip.is_loopback, "a loopback address", "it reaches whichever machine dials it, not the node"),
    (lambda ip: ip == LIMITED_BROADCAST, "the broadcast address", "it reaches every host of the local network"),
    (lambda ip: ip.is_multicast, "a multicast address", "it names a group of hosts, not one"),
    (lambda ip: ip.is_link_local, "a link-local address (169.254.0.0/16, fe80::/10)",
     "it is valid on one network segment only"),
)


def as_ip(value):
    """The IP address written in the string `value`, or None (a number is not an address)."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def not_a_node_address(ip):
    """Why the address `ip` cannot name a node or the control-plane endpoint ('is ... (...)'), or None."""
    for test, what, why in NOT_A_NODE_ADDRESS:
        if test(ip):
            return f"is {what} ({why})"
    return None


def networks(value):
    """The networks of a 'cidr' or dual-stack 'cidr,cidr' string (host bits zero, no spaces), or None."""
    if not isinstance(value, str):
        return None
    try:
        return tuple(ipaddress.ip_network(part, strict=True) for part in value.split(","))
    except ValueError:
        return None


def service_ip(service_subnet):
    """The first address of the first service subnet: the `kubernetes` Service's cluster IP."""
    return str(networks(service_subnet)[0].network_address + 1)


def endpoint_parts(value, default_port=API_PORT):
    """(host, port) of 'host:port', '[v6]:port', 'host' or a bare IPv6 address; port None when not 1-5 ASCII digits."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port = rest.removeprefix(":") if rest or not bracket else str(default_port)
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, str(default_port)
    return host, whole(port, most=5)


def gateway_parts(value):
    """(user, host, port) of an SSH gateway '[user@]host[:port]' (IPv6 in brackets); user None when not given."""
    user, at, rest = value.rpartition("@")
    return (user if at else None, *endpoint_parts(rest, SSH_PORT))


def join_endpoint(host, port=API_PORT):
    """'host:port', with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
