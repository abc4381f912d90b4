"""What a phase does, as values that run as they stand: host commands, file pushes, API calls.

A `Command` runs on a host as root (through sudo when the login is not root). Its `guard` is a shell
condition that is true when the step is already satisfied: the step then reports `unchanged` and its
body does not run. `after` names files pushed earlier in the same phase: when one of them changed in
this run the body runs even if the guard holds (a containerd restart only when its config changed).
A body may exit with UNCHANGED to say it found nothing to do.

A `Push` delivers rendered files (staged, then renamed into place): with facts, only those the host
does not hold as they would land. An `Api` step runs once from this machine against the API server, not
on a host: each kind is its own type (kubefab.api.apisteps runs it). A step whose `done` says why the facts show
it satisfied is not run at all.

What a step did is a `StepResult`; what a phase did on one host, a `HostResult`; both carry a `Status`.
"""

import shlex
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar

from kubefab.secret import Secret


class Status(StrEnum):
    """What a step, or a phase on a host, did; prints as its value ("changed")."""

    OK = "ok"                   # a check or probe that passed
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"


OK, CHANGED, UNCHANGED, FAILED, SKIPPED = Status
_RANK = {FAILED: 4, CHANGED: 3, OK: 2, UNCHANGED: 1, SKIPPED: 0}
UNCHANGED_EXIT = 100           # a body's "nothing to do"


def worst(statuses, default=UNCHANGED):
    """The status a host shows for a phase: failed over changed over ok over unchanged over skipped."""
    statuses = tuple(statuses)
    return max(statuses, key=_RANK.__getitem__) if statuses else default


@dataclass(frozen=True)
class StepResult:
    """What one step did on one host: its status, output or cause, seconds and the body's exit code."""

    name: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    code: int = 0


@dataclass(frozen=True)
class HostResult:
    """What one phase did on one host: its status, the cause or summary, seconds, and each step's result."""

    host: str
    phase: str
    status: Status
    seconds: float = 0.0
    detail: str = ""
    steps: tuple = ()

    @property
    def failed(self):
        return self.status == FAILED
DEFAULT_TIMEOUT = 300


@dataclass(frozen=True)
class Command:
    """A shell step on a host: `script` (POSIX sh; argv items quoted by `command()`), fed `stdin`."""

    name: str
    script: str
    guard: str = ""                 # true when already satisfied
    after: tuple = ()               # on-host paths whose change in this phase re-runs the body
    stdin: object = None            # str or Secret, given on the body's standard input
    timeout: int = DEFAULT_TIMEOUT
    ok_codes: tuple = (0,)
    label: str = ""                 # what the plan shows instead of a long script
    done: str = ""                  # why the facts say this step is already satisfied
    compares: tuple = ()            # (on-host path, the path holding what it should hold) pairs the body makes
                                    # equal: `cluster.plan --live` shows their diff
    check: bool = False             # it only checks (exit UNCHANGED or fail): `cluster.plan --live` does not count it

    def display(self):
        """The step as plans and logs show it: its label, or the script with secrets masked."""
        return self.label or self.script


@dataclass(frozen=True)
class Push:
    """Rendered files staged on the host, then renamed into place with their modes, owned by root."""

    name: str
    files: tuple                    # tree.RenderedFile
    done: str = ""
    in_place: int = 0               # files left out: the facts show them on the host as they would land


def push(name, files, facts):
    """The Push of those of `files` the host lacks (all of them without facts); done when it holds every one."""
    if facts is None:
        return Push(name, tuple(files))
    pending = tuple(f for f in files if not facts.in_place(f))
    kept = len(files) - len(pending)
    return Push(name, pending, done="" if pending else f"all {kept} files in place", in_place=kept)


def unless(step, why):
    """`step`, marked done for reason `why` when there is one."""
    return replace(step, done=why) if why else step


@dataclass(frozen=True)
class Api:
    """A step done once from this machine through the API server with admin.conf; `what` is the plan's line."""

    what: str
    done: str = ""
    name: ClassVar[str]


class WaitApiServer(Api):
    """After kubeadm init: the API server answers, then the host's control-plane components are Ready."""

    name = "api-server"


class WaitControlPlane(Api):
    """A joined control plane's etcd, API server, controller-manager and scheduler are Ready."""

    name = "control-plane"


class ApplyCni(Api):
    """The pod network's manifest applied."""

    name = "cni"


class ApplyAddons(Api):
    """The inventory's add-ons applied server-side, what was applied recorded in the state dir."""

    name = "addons"


class ApplyKubeProxy(Api):
    """kube-proxy's ConfigMap brought to the inventory's KubeProxyConfiguration, its pods recreated when it changed."""

    name = "kube-proxy"


class AddonsAvailable(Api):
    """Every Deployment of the inventory's add-ons available."""

    name = "addons available"


class NodeReady(Api):
    """The host's node is Ready (registered with cni = none), then its labels and taints as the inventory says."""

    name = "node"


class RemoveNode(Api):
    """The host's node drained and deleted (cluster.reset of some hosts)."""

    name = "remove node"


class WaitReconfigured(Api):
    """After cluster.up applied a changed configuration to a control plane: its own API server answers /readyz, its
    etcd member is healthy and its components Ready."""

    name = "healthy"


class KubeletReady(Api):
    """After cluster.up restarted a node's kubelet on a new configuration: its Node Ready."""

    name = "kubelet ready"


class DrainNode(Api):
    """The host's node cordoned and its pods evicted through the Eviction API (node.remove)."""

    name = "drain"


class DeleteNode(Api):
    """The host's Node deleted (node.remove); the state dir records the host as removed."""

    name = "delete node"


class RemoveMember(Api):
    """A control plane's etcd member removed through a healthy peer when it is still listed (node.remove)."""

    name = "etcd member"


class EndpointKubeconfigs(Api):
    """HA: the state dir's admin.conf and kube-proxy's kubeconfig (its ConfigMap) name the endpoint."""

    name = "endpoint kubeconfigs"


class WaitRenewed(Api):
    """After pki.renew restarted a control plane: its own API server answers /readyz with the renewed admin.conf,
    presents the renewed serving certificate, its etcd member is healthy and its components Ready."""

    name = "renewed"


@dataclass(frozen=True)
class CordonBatch(Api):
    """cluster.upgrade: every node of the host's worker batch cordoned, so none is drained before all are."""

    nodes: tuple = ()
    name = "cordon batch"


@dataclass(frozen=True)
class DrainInBatch(Api):
    """cluster.upgrade: the host's node drained through the Eviction API; when that fails, its batch uncordoned."""

    nodes: tuple = ()       # the batch
    name = "drain"


@dataclass(frozen=True)
class WaitUpgraded(Api):
    """cluster.upgrade: a control plane's own API server /readyz, its etcd member, its components, its node Ready
    with the kubelet at `version`."""

    version: str = ""
    name = "upgraded"


@dataclass(frozen=True)
class UncordonUpgraded(Api):
    """cluster.upgrade: a worker's node Ready with the kubelet at `version`, then uncordoned."""

    version: str = ""
    name = "uncordon"


class BackupEtcd(Api):
    """cluster.upgrade, before the first control-plane change: an etcd snapshot streamed into <state>/backups from
    the first control plane whose member is healthy, with its metadata (as etcd.backup takes one)."""

    name = "etcd backup"


@dataclass(frozen=True)
class VerifyKubelets(Api):
    """cluster.upgrade's end: every node of the inventory reports kubelet `version`, else the ones that do not."""

    version: str = ""
    name = "kubelets"


class WaitRestored(Api):
    """After etcd.restore started a control plane's API server: it answers /readyz and /readyz/etcd."""

    name = "restored"



def q(value):
    """`value` as one shell word: the one quoting function for every value that enters a host script."""
    return shlex.quote(str(value))


def command(name, *argv, guard="", after=(), timeout=DEFAULT_TIMEOUT, ok_codes=(0,)):
    """A Command running `argv`, each item quoted. Secrets never go on a command line: use `stdin`."""
    if any(isinstance(a, Secret) for a in argv):
        raise TypeError(f"step {name}: a secret may not be a command-line argument; give it on stdin")
    return Command(name, " ".join(q(a) for a in argv), guard=guard, after=after, timeout=timeout,
                   ok_codes=ok_codes)
