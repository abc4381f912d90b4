"""Every task that changes hosts, as a titled, literal list of phases over one session (kubefab.run.execute runs it).

A workflow names its stages (facts, then preflight's gate) and its phases in order; --only and --skip take
those names, `--dry-run` and `cluster.plan` print the plan the list gives, and the run executes exactly that
plan. A new task (a renewal, an upgrade) is a new list here, not a new method of a runner.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kubefab.errors import KubefabError
from kubefab.plan import balancers, phases, renewal, reset as resetting, snapshots, upgrade as upgrading
from kubefab.plan.phases import BATCHES, PARALLEL, SERIAL, Phase
from kubefab.state import tree
from kubefab.steps import DeleteNode, DrainNode, Push, RemoveMember, RemoveNode, WaitRenewed, WaitRestored, push

STAGES = tuple(phases.STAGES)       # facts, preflight


def _hosts(p):
    """The hosts the run is about: those of its phases that do not run beside them."""
    return list(dict.fromkeys(hs.host.name for pp in p.phases if not pp.phase.beside for b in pp.batches for hs in b))


def _plural(n, word):
    return f"{n} {word}{'s' * (n != 1)}"


def _up_intro(p):
    parts = [f"{pp.phase.name} on {_plural(sum(len(b) for b in pp.batches), 'host')}" for pp in p.phases
             if pp.batches]
    return f"plan for cluster {p.inventory.cluster.name!r}: {', '.join(parts)} (`invoke cluster.plan` shows every step)"


def _join_intro(p):
    members = [hs.host.name for pp in p.phases if pp.phase.name == "join" for b in pp.batches for hs in b
               if hs.steps[0].done]
    beside = [hs.host.name for pp in p.phases if pp.phase.beside for b in pp.batches for hs in b]
    return (f"node.join of {', '.join(_hosts(p))}"
            + (f" ({', '.join(members)}: already a node, not joined again)" if members else "")
            + (f"; haproxy and keepalived on {', '.join(beside)} take the joining control planes in first"
               if beside else ""))


def _reset_intro(p):
    hosts, drained = _hosts(p), any(isinstance(hs.steps[0], RemoveNode) for pp in p.phases for b in pp.batches
                                    for hs in b)
    return (f"cluster.reset of {_plural(len(hosts), 'host')} of cluster {p.inventory.cluster.name!r}, in this order: "
            f"{', '.join(hosts)}" + ("; each node is drained and deleted through the API first" if drained else ""))


@dataclass(frozen=True)
class Workflow:
    """A task's phases, in order, after its stages, and what the run says before and after them."""

    name: str               # the task, as the user types it
    stages: tuple
    phases: tuple           # phases.Phase, run one after another
    prepared: bool = False  # preflight knows the runtime phase comes first (what it repairs does not stop the run)
    intro: Callable = _up_intro             # plan -> what the run is about to do
    loud: bool = False                      # the intro is shown under --quiet too
    question: str = "Change {n} hosts now?"
    done: str = ""                          # the last word of a run that passed ({n} hosts, {state_dir})
    token: Callable = None                  # a fresh bootstrap token -> the workflow using it (node.join)
    prepares: bool = True   # the local bundle is ensured first; a reset needs none: an expired CA or a lost PKI
                            # must not stop one, nor may a reset make a new CA
    bundle: Callable = None                 # inv -> that bundle, under the lock (default: plan.prepare)
    surveyed: Callable = None   # (api, facts by host) -> the workflow to run, from what the cluster runs (read after
                                # the facts)

    @property
    def names(self):
        return (*self.stages, *(p.name for p in self.phases))

    def select(self, only=(), skip=()):
        """(stage names, phases) to run, in order; unknown names are rejected with the valid ones listed."""
        for name in (*only, *skip):
            if name not in self.names:
                raise KubefabError(f"unknown phase {name!r} — phases are: {', '.join(self.names)}")

        def chosen(name):
            return (not only or name in only) and name not in skip
        return tuple(s for s in self.stages if chosen(s)), tuple(p for p in self.phases if chosen(p.name))


UP = Workflow("cluster.up", STAGES, phases.PHASES)
PREFLIGHT = Workflow("cluster.preflight", STAGES, (), prepared=True, done="preflight passed")
# The hosts' facts and nothing else, the state dir only read (`pki.show --nodes`: each kubelet's client certificate).
SURVEY = Workflow("pki.show", ("facts",), (), prepares=False)


def join(hosts=(), fresh=None):
    """node.join of `hosts` (names): behind `[cluster.ha]` keepalived, the other control planes' haproxy and
    keepalived reloaded with the joining control planes first (so that a joining keepalived hears the VIP holder
    before it starts), then runtime and push on them, kubeadm join with the fresh bootstrap token `fresh` (None until
    the run makes it, and in a dry run: the join config is not made), then each node Ready."""
    def balanced(inv, host, bundle, facts):
        joining = tuple(h.name for h in inv.select(hosts) if balancers.applies(inv, h))
        return balancers.follow(inv, host, joining=joining) if joining and balancers.stays(inv, host) else ()

    return Workflow("node.join", STAGES, (
        Phase("load-balancers", "On the other control planes, reload haproxy and keepalived with the joining ones "
              "([cluster.ha] keepalived)", "control-planes", SERIAL, balanced, beside=True),
        phases.RUNTIME,
        phases.PUSH,
        Phase("join", "Join with a fresh bootstrap token", "all", SERIAL,
              lambda inv, host, bundle, facts: phases.fresh_join(inv, host, facts, fresh)),
        phases.VERIFY,
    ), prepared=True, intro=_join_intro, question="Join {n} hosts now?",
        token=None if fresh else (lambda token: join(hosts, token)))


def reset(drain=False):
    """cluster.reset: the workers, then the other control planes (the last joined first), the first one last
    (k0sctl's ResetWorkers, ResetControllers, ResetLeader); `drain`: each node is drained and deleted through
    the API first, as when some hosts stay in the cluster. Behind `[cluster.ha]` a control plane gives up the VIP:
    keepalived and haproxy stopped first and their configs removed, or kube-vip's address taken off after
    kubeadm reset (resetting.host_steps)."""
    def steps(inv, host, bundle, facts):
        return (RemoveNode("drain and delete the node"),) * drain + resetting.host_steps(inv, host)
    return Workflow("cluster.reset", (), (
        Phase("reset-workers", "Reset the workers", "non-control-planes", PARALLEL, steps),
        Phase("reset-control-planes", "Reset the other control-plane nodes, the last joined first",
              "other-control-planes", SERIAL, steps, last_first=True),
        Phase("reset-leader", "Reset the first control-plane node", "first-control-plane", SERIAL, steps),
    ), intro=_reset_intro, loud=True, question="Reset {n} hosts now (kubeadm reset -f, then what it leaves behind)?",
        done="reset {n} hosts; the state dir {state_dir} is kept (the CA and keys)", prepares=False)


def remove(name, unreachable=False, drain_timeout=0):
    """node.remove of host `name`: its node cordoned and drained through the Eviction API, `kubeadm reset -f` and
    cluster.reset's cleanup on it (behind `[cluster.ha]` keepalived and haproxy stopped first, as cluster.reset
    does), its Node deleted,
    then a control plane's etcd member removed through another control plane if kubeadm reset left it, and the
    other control planes' haproxy and keepalived reloaded without it. `unreachable`: no SSH, so no drain and no
    reset on it."""
    def drain(inv, host, bundle, facts):
        return () if unreachable else (DrainNode(
            f"cordon {host.name}, then evict its pods through the Eviction API (PodDisruptionBudgets respected, "
            f"DaemonSet and static pods left) within {drain_timeout} s"),)

    def reset(inv, host, bundle, facts):
        return () if unreachable else resetting.host_steps(inv, host)

    def balanced(inv, host, bundle, facts):
        return (balancers.follow(inv, host, gone=(name,))
                if balancers.applies(inv, inv.host(name)) and balancers.stays(inv, host) else ())

    def intro(p):
        return (f"node.remove of {name} from cluster {p.inventory.cluster.name!r}: "
                + ", ".join(pp.phase.name for pp in p.phases if pp.batches)
                + (f" ({name} is not reached: nothing runs on it)" if unreachable else ""))

    return Workflow("node.remove", (), (
        Phase("drain", "Cordon the node and evict its pods", "all", SERIAL, drain),
        Phase("reset", "kubeadm reset -f on the host, then what it leaves behind (as cluster.reset)", "all",
              SERIAL, reset),
        Phase("delete-node", "Delete the Node", "all", SERIAL,
              lambda inv, host, bundle, facts: (DeleteNode(f"delete Node {host.name}"),)),
        Phase("etcd-member", "Remove the control plane's etcd member through another control plane", "control-planes",
              SERIAL, lambda inv, host, bundle, facts: (RemoveMember(
                  f"remove {host.name}'s etcd member through another control plane, if it is still listed"),)),
        Phase("load-balancers", "On the other control planes, reload haproxy and keepalived without it "
              "([cluster.ha] keepalived)", "control-planes", SERIAL, balanced, beside=True),
    ), intro=intro, loud=True, question=f"Take {name} out of the cluster now?", prepares=False)


def renew(what, prepare=None):
    """pki.renew of `what` (a renewal.Due, reissued by `prepare` under the lock; None in a dry run): the renewed
    files pushed to every control plane, then one control plane at a time the static pods whose files are newer
    than their manifests restarted, and its API server, serving certificate and etcd member checked before the next."""
    renewing = what.paths_on_host()

    def files(inv, host, bundle, facts):
        pushed = tuple(f for f in bundle.files[host.name] if f.phase == "push"
                       and f.source.startswith(("pki/", "kubeconfigs/")))
        return (push("push certificates and kubeconfigs", pushed, facts),) if pushed else ()

    def restart(inv, host, bundle, facts):
        return (*(renewal.restart(c, renewing) for c in renewal.COMPONENTS),
                WaitRenewed(f"wait for {host.name}'s API server (/readyz, its renewed serving certificate), its etcd "
                            "member and its components"))

    def intro(p):
        listed = ", ".join((*what.certs, *what.kubeconfigs))
        return (f"pki.renew on {_plural(len(_hosts(p)), 'control plane')}, one at a time: "
                + (f"reissued {listed}" if listed else "nothing reissued; a restart an interrupted run left is done"))

    return Workflow("pki.renew", ("facts",), (
        Phase("push-certs", "Push the renewed certificates and kubeconfigs to every control plane", "control-planes",
              PARALLEL, files),
        Phase("restart", "Restart the static pods whose files changed, one control plane at a time, each healthy "
              "before the next", "control-planes", SERIAL, restart),
    ), intro=intro, loud=True, question="Restart the control-plane components on {n} hosts now?", bundle=prepare)


def _upgrade_intro(p):
    target = p.inventory.cluster.kubernetes_version
    order = [(pp.phase.name, [[hs.host.name for hs in b] for b in pp.batches]) for pp in p.phases
             if pp.phase.name != "verify-upgrade" and pp.batches]
    if not order:
        return f"cluster.upgrade to {target}: every node already runs {target}, nothing to upgrade; checking it"
    control = [b[0] for name, groups in order if name not in ("workers", "etcd-backup") for b in groups]
    workers = next((groups for name, groups in order if name == "workers"), [])
    parts = (["an etcd backup"] if any(name == "etcd-backup" for name, _ in order) else []) + (
        [f"control planes one at a time: {', '.join(control)}"] if control else []) + (
        [f"workers in {len(workers)} batch{'es' * (len(workers) != 1)}: {' | '.join(', '.join(b) for b in workers)}"]
        if workers else [])
    return f"cluster.upgrade to {target}: " + "; then ".join(parts)


def upgrade(survey, batch, surveyed=None, backup=True, containerd=False):
    """cluster.upgrade from what `survey` (upgrade.Survey) shows: an etcd backup into the state dir (unless not
    `backup`, or no control plane is left to upgrade), the first control plane (kubeadm upgrade apply, once), the
    other control planes one at a time, each healthy before the next, then the workers in batches of `batch` (each
    batch cordoned whole before any of it is drained; `containerd`: each node's containerd upgraded in its turn),
    then every kubelet and manifest checked. Without a survey yet, `surveyed` ((api, facts by host) -> this
    workflow built from what the cluster runs) comes first."""
    def etcd_backup(inv, host, bundle, facts):
        return upgrading.backup_steps(inv, host, survey) if backup else ()

    def control_plane(inv, host, bundle, facts):
        return upgrading.control_plane_steps(inv, host, bundle, facts, survey, containerd)

    def worker(inv, host, bundle, facts):
        target = inv.cluster.kubernetes_version
        group = next(g for g in upgrading.batches(inv.non_control_planes, batch) if host in g)
        pending = tuple(h.name for h in group if not survey.upgraded(h, target))
        return upgrading.worker_steps(inv, host, bundle, facts, survey, pending, containerd)

    return Workflow("cluster.upgrade", ("facts",), (
        Phase("etcd-backup", "An etcd snapshot into the state dir before the first control-plane change",
              "first-control-plane", SERIAL, etcd_backup),
        Phase("control-plane-first", "kubeadm upgrade apply on the first control plane, then its kubelet",
              "first-control-plane", SERIAL, control_plane),
        Phase("control-planes", "kubeadm upgrade node on the other control planes, one at a time, each healthy "
              "before the next", "other-control-planes", SERIAL, control_plane),
        Phase("workers", "The workers in batches: the batch cordoned, each node drained, upgraded and uncordoned "
              "once Ready at the new version", "non-control-planes", BATCHES, worker),
        Phase("verify-upgrade", "Every kubelet and control-plane manifest at the new version", "control-planes",
              PARALLEL, upgrading.verify_steps),
    ), intro=_upgrade_intro, loud=True, question="Upgrade {n} hosts now?", surveyed=surveyed)


def restore(data, source, token):
    """etcd.restore of the snapshot `source` (its Metadata `data`) with cluster token `token`: the restore tool found
    on every control plane before anything stops, every API server stopped, then every etcd member; each member
    restored from the same snapshot with the inventory's initial cluster; etcd started and every member healthy;
    the API servers started, each ready; controller-manager and scheduler restarted; every node Ready."""
    def member(inv, host, bundle, facts):
        pushed = tree.RenderedFile(host.name, snapshots.ON_HOST, 0o600, data.size, True, Path(source),
                                   "etcd snapshot", "restore", data.sha256)
        return Push("push the snapshot", (pushed,)), snapshots.restore_member(inv, host, data, token)

    def api_server(inv, host, bundle, facts):
        return (snapshots.start("kube-apiserver"),
                WaitRestored(f"wait for {host.name}'s API server (/readyz, /readyz/etcd)"))

    def intro(p):
        hosts = ", ".join(h.name for h in p.inventory.control_planes)
        return (f"etcd.restore from {source} (revision {data.revision}, {data.keys} keys, taken {data.taken_at} from "
                f"{data.taken_from}) on {hosts}: stops kube-apiserver, then etcd, on each; replaces each member's "
                f"{snapshots.ETCD_DATA} (the old one kept as {snapshots.BEFORE}); every object written since the "
                "snapshot is lost")

    return Workflow("etcd.restore", (), (
        Phase("check", "Find the restore tool on every control plane before anything stops", "control-planes",
              PARALLEL, lambda inv, host, bundle, facts: (snapshots.check(),)),
        Phase("stop-api-servers", "Stop every API server (its manifest moved aside)", "control-planes", PARALLEL,
              lambda inv, host, bundle, facts: (snapshots.stop("kube-apiserver"),)),
        Phase("stop-etcd", "Stop etcd on every member", "control-planes", PARALLEL,
              lambda inv, host, bundle, facts: (snapshots.stop("etcd"),)),
        Phase("restore", "Restore each member from the snapshot with a fresh initial cluster from the inventory",
              "control-planes", PARALLEL, member),
        Phase("start-etcd", "Start etcd on every member", "control-planes", PARALLEL,
              lambda inv, host, bundle, facts: (snapshots.start("etcd"),)),
        Phase("etcd-healthy", "Wait until every etcd member is healthy", "control-planes", PARALLEL,
              lambda inv, host, bundle, facts: (snapshots.wait_healthy(inv),)),
        Phase("start-api-servers", "Start the API servers, each ready before the run goes on", "control-planes",
              PARALLEL, api_server),
        Phase("restart-components", "Restart controller-manager and scheduler", "control-planes", PARALLEL,
              lambda inv, host, bundle, facts: (snapshots.stop("kube-controller-manager", "kube-scheduler"),
                                                snapshots.start("kube-controller-manager", "kube-scheduler"))),
        phases.VERIFY,
    ), intro=intro, loud=True, question="Stop the cluster on {n} hosts and restore etcd from the snapshot now?",
        prepares=False)
