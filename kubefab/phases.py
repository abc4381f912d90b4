"""The phases of `cluster.up`, in order: one table drives help, --skip/--only and the plan."""

from dataclasses import dataclass
from typing import Callable

from kubefab import paths, render
from kubefab.command import Run, run
from kubefab.errors import KubefabError

KUBEADM_DIR = "/etc/kubernetes"


@dataclass(frozen=True)
class Push:
    """Files staged on the host, then moved into place."""

    files: tuple


@dataclass(frozen=True)
class Api:
    """A step done from this machine through the API server with admin.conf."""

    what: str


@dataclass(frozen=True)
class Phase:
    """One titled step of the workflow: which hosts, in what order, doing what on each."""

    name: str
    title: str
    hosts: Callable          # inventory -> hosts the phase acts on
    order: str               # "parallel" | "serial" | "batches"
    steps: Callable          # (inventory, host, files of that host) -> tuple of Run | Push | Api


def _all(inv):
    return inv.hosts


def _first_cp(inv):
    return (inv.first_control_plane,)


def _other_cps(inv):
    return inv.control_planes[1:]


def _workers(inv):
    return inv.non_control_planes


def _runtime_file(f):
    return not f.path.startswith(KUBEADM_DIR + "/")


def _facts(inv, host, files):
    return (Run(("sh", "-s"), label="one probe script: os, kernel, cpus, memory, swap, ports, files, "
                                    "binaries, clock, machine-id"),)


def _preflight(inv, host, files):
    return ()


def _runtime(inv, host, files):
    return (
        Push(tuple(f for f in files if _runtime_file(f))),
        run("modprobe", "-a", *render.kernel_modules(inv)),
        # only kubefab's own files: `sysctl --system` would re-apply every file on the host and
        # fails where an unrelated key is read-only (containers, hardened hosts)
        *(run("sysctl", "-p", f.path) for f in files if f.path.startswith("/etc/sysctl.d/")),
        run("swapoff", "-a"),
        run("systemctl", "restart", "containerd"),
        run("systemctl", "enable", "kubelet"),
    )


def _push(inv, host, files):
    return (Push(tuple(f for f in files if not _runtime_file(f))),)


def _init(inv, host, files):
    return (run("kubeadm", "init", "--config", paths.INIT_CONFIG),)


def _join(inv, host, files):
    return (run("kubeadm", "join", "--config", paths.JOIN_CONFIG),)


def _cni(inv, host, files):
    return () if inv.cluster.cni == "none" else (Api(f"apply the {inv.cluster.cni} manifest for pods in "
                                                     f"{inv.cluster.pod_subnet}"),)


def _verify(inv, host, files):
    return (Api(f"wait until all {len(inv.hosts)} nodes are Ready, apply labels and taints from the inventory"),)


PHASES = (
    Phase("facts", "Gather facts from every host", _all, "parallel", _facts),
    Phase("preflight", "Check every host against kubeadm's preflight and kubefab's own checks", _all,
          "parallel", _preflight),
    Phase("runtime", "Set up modules, sysctls, containerd and the kubelet", _all, "parallel", _runtime),
    Phase("push", "Push the PKI bundle, kubeconfigs and kubeadm configs", _all, "parallel", _push),
    Phase("init", "kubeadm init on the first control-plane node", _first_cp, "serial", _init),
    Phase("join-control-plane", "Join the other control-plane nodes, one at a time", _other_cps, "serial", _join),
    Phase("join-workers", "Join the workers", _workers, "batches", _join),
    Phase("cni", "Install the pod network", _first_cp, "serial", _cni),
    Phase("verify", "Check the cluster", _first_cp, "serial", _verify),
)
NAMES = tuple(p.name for p in PHASES)


def select(only=(), skip=()):
    """The phases to run, in order; unknown names are rejected with the valid ones listed."""
    for name in (*only, *skip):
        if name not in NAMES:
            raise KubefabError(f"unknown phase {name!r} — phases are: {', '.join(NAMES)}")
    return tuple(p for p in PHASES if (not only or p.name in only) and p.name not in skip)


def batches(phase, inv):
    """The host groups of `phase`, run one group after another."""
    hosts = phase.hosts(inv)
    if not hosts:
        return ()
    if phase.order == "parallel":
        return (hosts,)
    size = inv.cluster.worker_batch_size if phase.order == "batches" else 1
    return tuple(hosts[i:i + size] for i in range(0, len(hosts), size))
