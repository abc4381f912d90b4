"""What a lab is made of, declared once: address plan, kernel object names, flavours, users, hosts."""

import ipaddress
from dataclasses import dataclass

from .errors import LabError

# RFC 2544 benchmarking range: never routed off this machine. Each lab takes one /22 of the lower
# half, so labs side by side never share a subnet; 198.19.0.0/16 is left to the doubles' own tests.
LAB_RANGE = ipaddress.ip_network("198.18.0.0/16")
LAB_PREFIX = 22
MAX_LABS = 2 ** (LAB_PREFIX - LAB_RANGE.prefixlen)
MAX_HOSTS = 2 ** (32 - LAB_PREFIX) - 5  # less network, bridge, VIP, package repository and broadcast addresses
PREFIX = "kfl"  # every netns, link, mount and cgroup a lab makes starts with this
LINK = "eth0"  # a host's link to the lab bridge

# `nat`: every host also gets the first interface a VirtualBox VM has, its NAT adapter: the same address on every
# host, holding the default route (VirtualBox's eth0; the private network, the lab's, is then eth1). Its peer sits
# in the lab's NAT namespace, which has no address and no route: whatever a host sends there goes nowhere.
NAT_LINK, NAT_ADDRESS, NAT_PREFIX, NAT_GATEWAY = "eth0", "10.0.2.15", 24, "10.0.2.2"
NAT_LAB_LINK = "eth1"


def lab_link(nat):
    """The name of a host's link to the lab bridge: second after the NAT adapter, as in a VirtualBox VM."""
    return NAT_LAB_LINK if nat else LINK


def subnet(lab_id):
    return list(LAB_RANGE.subnets(new_prefix=LAB_PREFIX))[lab_id]


def repo_address(lab_id):
    """The lab's package repository server: the subnet's last address, in a network namespace of its own."""
    return str(subnet(lab_id)[-2])


def vip_address(lab_id):
    """The address a lab reserves for an HA cluster's virtual IP: in the hosts' subnet, no host's own."""
    return str(subnet(lab_id)[-3])


def bridge_name(lab_id):
    return f"{PREFIX}br{lab_id}"


def netns_name(lab_id, index):
    return f"{PREFIX}{lab_id}-{index}"


def nat_netns_name(lab_id):
    return f"{PREFIX}{lab_id}-nat"  # holds the peers of the hosts' NAT adapters, and nothing else


def veth_name(lab_id, index):
    return f"{PREFIX}{lab_id}v{index}"  # at most 'kfl63v1021': within the kernel's 15 characters


def cgroup_name(lab_id, index):
    return netns_name(lab_id, index)


@dataclass(frozen=True)
class Flavour:
    """How a kind of lab host boots: what runs as its PID 1 and what private filesystems it has."""

    name: str
    pid1: tuple  # argv exec'd as PID 1 inside the host's root
    disk: str  # size of the tmpfs holding the host's writable upper dir
    tmpfs: tuple = ()  # further private tmpfs mounts (overlayfs cannot be stacked on the overlay root)
    systemd: bool = False  # gets a cgroup namespace and its own cgroups; services run as units
    env: tuple = ()  # (name, value) pairs for PID 1


FLAVOURS = {f.name: f for f in (
    Flavour("plain", pid1=("/usr/sbin/sshd", "-D", "-e"), disk="256m"),
    # container= tells systemd it is in a container, so it leaves the machine's clock, consoles and
    # devices alone (units with ConditionVirtualization=!container are skipped).
    Flavour("node", pid1=("/lib/systemd/systemd",), disk="4g", tmpfs=("/var/lib/containerd",), systemd=True,
            env=(("container", "kubefab-lab"),)),
)}


@dataclass(frozen=True)
class User:
    """A login on every lab host; all take the lab's key, and only key logins are allowed."""

    name: str
    uid: int
    home: str
    sudoers: str = ""  # the rule in /etc/sudoers.d, empty for root
    password: bool = False  # has the lab's password, which sudo asks for


ROOT = User("root", 0, "/root")
SUDO_USER = User("kfadmin", 2001, "/home/kfadmin", sudoers="ALL=(ALL:ALL) NOPASSWD: ALL")
PASSWORD_SUDO_USER = User("kfpasswd", 2002, "/home/kfpasswd", sudoers="ALL=(ALL:ALL) ALL", password=True)
USERS = (ROOT, SUDO_USER, PASSWORD_SUDO_USER)


@dataclass(frozen=True)
class Host:
    """One lab host as the tests and the inventory see it."""

    name: str
    address: str
    roles: tuple
    index: int  # 1-based position in the lab; names its kernel objects
    netns: str
    veth: str  # the machine's end of the host's link; down means the network is cut
    quirks: tuple = ()


def host_names(count, control_planes, quirks):
    """Names of a lab's hosts: `control_planes` kf-cp<i>, then workers kf-w<i>; checks `quirks` names hosts."""
    if not 1 <= count <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {count}")
    if not 0 <= control_planes <= count:
        raise LabError(f"control_planes must be between 0 and the number of hosts ({count}), not {control_planes}")
    names = [f"kf-cp{i}" for i in range(1, control_planes + 1)]
    names += [f"kf-w{i}" for i in range(1, count - control_planes + 1)]
    unknown = sorted(set(quirks) - set(names))
    if unknown:
        raise LabError(f"quirks name hosts that are not in the lab: {', '.join(unknown)} — "
                       f"hosts are {', '.join(names)}")
    return names


def repo_host(lab_id):
    """The package repository server as a Host of no roles (its netns and link are torn down with the lab's)."""
    return Host("repo", repo_address(lab_id), (), 0, netns_name(lab_id, "repo"), veth_name(lab_id, "r"))


def hosts(lab_id, names, quirks):
    """The lab's hosts, with addresses in order from its subnet."""
    net = subnet(lab_id)
    return tuple(
        Host(name, str(net[1 + i]), ("control-plane",) if name.startswith("kf-cp") else ("worker",), i,
             netns_name(lab_id, i), veth_name(lab_id, i), tuple(quirks.get(name, ())))
        for i, name in enumerate(names, start=1))


def flavour(name):
    if name not in FLAVOURS:
        raise LabError(f"unknown lab flavour {name!r} — choose one of: {', '.join(FLAVOURS)}")
    return FLAVOURS[name]


def user(name):
    for u in USERS:
        if u.name == name:
            return u
    raise LabError(f"unknown lab user {name!r} — choose one of: {', '.join(u.name for u in USERS)}")
