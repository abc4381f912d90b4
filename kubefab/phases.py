"""The stages and phases of `cluster.up`, in order: one table drives help, --skip/--only, the plan and the run.

`facts` and `preflight` are stages: they feed the plan (facts) or gate it (preflight) and are not
steps inside it. Every phase after them is a row of PHASES: which hosts, in what order (all at once,
one at a time, or in batches) and which steps each host runs, or which API steps run once from here.
"""

from dataclasses import dataclass
from typing import Callable

from kubefab import inventory, paths, runtime
from kubefab.errors import KubefabError
from kubefab.steps import Api, Command, Push

PARALLEL, SERIAL, BATCHES = "parallel", "serial", "batches"
STAGES = {"facts": "Gather facts from every host (one probe per host)",
          "preflight": "Check every host against kubeadm's preflight and kubefab's own checks"}


def _none(inv, bundle):
    return ()


@dataclass(frozen=True)
class Phase:
    """One titled step of the workflow: which hosts, in what order, doing what on each."""

    name: str
    title: str
    hosts: str               # a key of inventory.HOST_SETS
    order: str               # PARALLEL | SERIAL | BATCHES
    steps: Callable          # (inventory, host, bundle, facts of that host or None) -> host steps
    api: Callable = _none    # (inventory, bundle) -> Api steps run once from this machine
    implemented: bool = True

    def host_list(self, inv):
        return inventory.HOST_SETS[self.hosts](inv)


def _push(inv, host, bundle, facts):
    return (Push("push files", tuple(f for f in bundle.files[host.name] if f.phase == "push")),)


def _already(facts, path, what):
    """Why the facts say a kubeadm step is done: the file it leaves behind is there."""
    return what if facts and path in facts.kube_files else ""


def _init(inv, host, bundle, facts):
    manifest = paths.manifest("kube-apiserver")
    return (Command("kubeadm init", f"kubeadm init --config {paths.INIT_CONFIG}", timeout=900,
                    guard=f"[ -f {manifest} ]", done=_already(facts, manifest, "already a control-plane node")),)


def _join(inv, host, bundle, facts):
    kubelet_conf = paths.kubeconfig("kubelet.conf")
    return (Command("kubeadm join", f"kubeadm join --config {paths.JOIN_CONFIG}", timeout=900,
                    guard=f"[ -f {kubelet_conf} ]", done=_already(facts, kubelet_conf, "already a node")),)


def _no_steps(inv, host, bundle, facts):
    return ()


def _cni(inv, bundle):
    c = inv.cluster
    return () if c.cni == "none" else (Api("cni", f"apply the {c.cni} manifest for pods in {c.pod_subnet}"),)


def _verify(inv, bundle):
    return (Api("verify", f"wait until all {len(inv.hosts)} nodes are Ready, apply labels and taints "
                          "from the inventory"),)


PHASES = (
    Phase("runtime", "Set up the hostname, swap, modules, sysctls, containerd and the kubelet", "all", PARALLEL,
          runtime.steps),
    Phase("push", "Push the PKI bundle, kubeconfigs and kubeadm configs", "all", PARALLEL, _push),
    Phase("init", "kubeadm init on the first control-plane node", "first-control-plane", SERIAL, _init,
          implemented=False),
    Phase("join-control-plane", "Join the other control-plane nodes, one at a time", "other-control-planes",
          SERIAL, _join, implemented=False),
    Phase("join-workers", "Join the workers", "non-control-planes", BATCHES, _join, implemented=False),
    Phase("cni", "Install the pod network", "first-control-plane", SERIAL, _no_steps, api=_cni,
          implemented=False),
    Phase("verify", "Check the cluster", "first-control-plane", SERIAL, _no_steps, api=_verify,
          implemented=False),
)
NAMES = (*STAGES, *(p.name for p in PHASES))


def select(only=(), skip=()):
    """(stage names, phases) to run, in order; unknown names are rejected with the valid ones listed."""
    for name in (*only, *skip):
        if name not in NAMES:
            raise KubefabError(f"unknown phase {name!r} — phases are: {', '.join(NAMES)}")

    def chosen(name):
        return (not only or name in only) and name not in skip
    return tuple(s for s in STAGES if chosen(s)), tuple(p for p in PHASES if chosen(p.name))


def batches(phase, inv):
    """The host groups of `phase`, run one group after another."""
    hosts = phase.host_list(inv)
    if not hosts:
        return ()
    if phase.order == PARALLEL:
        return (hosts,)
    size = inv.cluster.worker_batch_size if phase.order == BATCHES else 1
    return tuple(hosts[i:i + size] for i in range(0, len(hosts), size))
