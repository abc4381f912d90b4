"""What a node needs before kubeadm, as one table: each requirement declared once.

A row says what the fact probe reads, which preflight check judges it (kubeadm's name where kubeadm has the
check, and its severity), which runtime step makes it so, and which file keeps it so across reboots. The
probe's lists (facts.COMMANDS, MODULES, SYSCTLS, KUBE_FILES), the preflight checks of these rows
(checks.CHECKS) and whether the runtime phase has the step (runtime.steps) are derived from REQUIREMENTS.
"""

from dataclasses import dataclass
from typing import Callable

from kubefab import net, paths

ERROR, WARNING = "error", "warning"
SWAP, COMMAND, MODULE, SYSCTL, PORT, FILE, DIR = "swap", "command", "module", "sysctl", "port", "file", "dir"
REQUIRED_COMMANDS = ("ip", "iptables", "mount", "nsenter")           # kubeadm's FileExisting-* errors
WANTED_COMMANDS = ("ebtables", "ethtool", "socat", "tc", "touch")     # and its warnings
SWAP_OFF, KERNEL_MODULES, SYSCTLS = "swap off", "kernel modules", "sysctls"     # the runtime steps named here
MODULES = ("overlay", "br_netfilter", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
MODULES_LOAD = ("/etc/modules-load.d/k8s.conf", "/etc/modules-load.d/k8s-ipvs.conf")
SYSCTL_FILE, SYSCTL_IPV6_FILE = "/etc/sysctl.d/99-kubernetes.conf", "/etc/sysctl.d/99-kubernetes-ipv6.conf"
# memorySwap.swapBehavior values with which a kubelet of failSwapOn = false runs beside swap ("": NoSwap)
SWAP_BEHAVIOURS = ("", "NoSwap", "LimitedSwap")


def _always(inv):
    return True


def swap_allowed(inv):
    """The inventory's kubelet runs with swap on: `[cluster.kubelet] config` sets failSwapOn = false and leaves
    memorySwap.swapBehavior unset, NoSwap or LimitedSwap. Then kubefab leaves swap as it is."""
    config = inv.cluster.kubelet.config
    memory_swap = config.get("memorySwap", {})
    behaviour = memory_swap.get("swapBehavior", "") if isinstance(memory_swap, dict) else None
    return config.get("failSwapOn") is False and behaviour in SWAP_BEHAVIOURS


def ipv6(inv):
    """A pod or service subnet is IPv6."""
    return any(n.version == 6 for s in (inv.cluster.pod_subnet, inv.cluster.service_subnet) for n in net.networks(s))


def before_132(inv):
    return inv.cluster.minor < 32


@dataclass(frozen=True)
class Requirement:
    check: str                     # the preflight check that judges it, as kubeadm spells it where kubeadm has it
    kind: str                      # SWAP | COMMAND | MODULE | SYSCTL | PORT | FILE | DIR: how the check judges it
    subject: object                # the command, sysctl key, port number or path it is about ("" for swap, modules)
    probe: tuple                   # the probe's keys the check reads
    severity: str                  # ERROR or WARNING: what a failure is
    roles: str = "all"             # a key of checks.ROLES
    step: str = ""                 # the runtime step that makes it so ("": none, the user does)
    fix: str = ""                  # what that step does, as preflight's finding says it
    persist: tuple = ()            # the files that keep it so across reboots
    tools: tuple = ()              # the commands that step runs: the probe looks for them too
    kubeadm: bool = True           # kubeadm has a check of this name (for --ignore-preflight-errors)
    node_fails: bool = False       # a node of this cluster fails it by being one
    when: Callable = _always       # inventory -> the requirement applies
    fixed: Callable = _always      # inventory -> the runtime phase makes it so (where it applies)

    def fixes(self, inv):
        """The runtime phase has this requirement's step for `inv`."""
        return bool(self.step) and self.when(inv) and self.fixed(inv)

    @property
    def reads(self):
        """Every probe key of the row: the check's and the step's tools."""
        return (*self.probe, *(f"command.{t}" for t in self.tools))


def _command(name, severity, when=_always):
    return Requirement(f"FileExisting-{name}", COMMAND, name, (f"command.{name}",), severity, when=when)


def _sysctl(key, file, when=_always, also=(), fix=""):
    return Requirement(f"FileContent--proc-sys-{key.replace('.', '-')}", SYSCTL, key,
                       (*(f"sysctl.{k}" for k in also), f"sysctl.{key}"), ERROR, step=SYSCTLS,
                       fix=f"{fix}writes {file} and applies it", persist=(file,), tools=("sysctl",),
                       kubeadm=not key.startswith("net.bridge."), when=when)


def _port(port, roles):
    return Requirement(f"Port-{port}", PORT, port, ("tcp.listen",), ERROR, roles, node_fails=True)


def _file(path, roles):
    return Requirement("FileAvailable-" + path.replace("/", "-"), FILE, path, ("kube.file",), ERROR, roles,
                       node_fails=True)


REQUIREMENTS = (
    Requirement("Swap", SWAP, "", ("swap", "fstab.swap"), ERROR, step=SWAP_OFF,
                fix="turns swap off and comments it out of /etc/fstab", persist=("/etc/fstab",), tools=("swapoff",),
                fixed=lambda inv: not swap_allowed(inv)),
    _command("conntrack", ERROR, when=before_132),
    *(_command(c, ERROR) for c in REQUIRED_COMMANDS),
    *(_command(c, WARNING) for c in WANTED_COMMANDS),
    Requirement("KernelModules", MODULE, "", tuple(f"module.{m}" for m in MODULES), ERROR, step=KERNEL_MODULES,
                fix="loads them and lists them in /etc/modules-load.d/", persist=MODULES_LOAD, tools=("modprobe",),
                kubeadm=False),
    _sysctl("net.ipv4.ip_forward", SYSCTL_FILE),
    _sysctl("net.ipv6.conf.default.forwarding", SYSCTL_IPV6_FILE, when=ipv6, also=("net.ipv6.conf.all.forwarding",)),
    *(_sysctl(f"net.bridge.bridge-nf-call-{t}", SYSCTL_FILE, fix="loads br_netfilter, ") for t in ("iptables",
                                                                                                    "ip6tables")),
    *(_port(p, "control-plane") for p in (net.API_PORT, 10259, 10257, 2379, 2380)),
    _port(10250, "all"),
    *(_file(path, "control-plane") for path in paths.MANIFESTS),
    *(_file(path, "joining") for path in paths.JOIN_WRITES),
    _file(paths.in_pki("ca.crt"), "worker"),
    Requirement("DirAvailable--var-lib-etcd", DIR, "/var/lib/etcd", ("kube.etcd",), ERROR, "control-plane",
                node_fails=True),
)


def probed(family):
    """The names the probe reports as `family.NAME` for some row ("command", "module", "sysctl"), in table order."""
    keys = (k for r in REQUIREMENTS for k in r.reads if k.startswith(f"{family}."))
    return tuple(dict.fromkeys(k[len(family) + 1:] for k in keys))


def subjects(kind):
    """The subjects of every row of `kind`, in table order."""
    return tuple(r.subject for r in REQUIREMENTS if r.kind == kind)


def persisted(step):
    """The files that keep what runtime step `step` makes so across reboots."""
    return frozenset(path for r in REQUIREMENTS if r.step == step for path in r.persist)


def fixing(inv):
    """The runtime steps the table asks for on `inv`'s hosts."""
    return frozenset(r.step for r in REQUIREMENTS if r.fixes(inv))
