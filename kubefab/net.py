"""Addresses, networks and endpoints as kubeadm reads them: one parser for each, IPv6 in brackets."""

import ipaddress
import re

API_PORT = 6443


def as_ip(value):
    """The IP address written in the string `value`, or None (a number is not an address)."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
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


def endpoint_parts(value):
    """(host, port) of 'host:port', '[v6]:port', 'host' or a bare IPv6 address; port None when not a number."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or str(API_PORT)
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, str(API_PORT)
    return host, int(port) if re.fullmatch(r"[0-9]+", port) else None


def join_endpoint(host, port=API_PORT):
    """'host:port', with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
