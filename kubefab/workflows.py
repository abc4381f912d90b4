"""Every task that changes hosts, as a titled, literal list of phases over one session (kubefab.execute runs it).

A workflow names its stages (facts, then preflight's gate) and its phases in order; --only and --skip take
those names, `--dry-run` and `cluster.plan` print the plan the list gives, and the run executes exactly that
plan. A new task (a renewal, an upgrade) is a new list here, not a new method of a runner.
"""

from dataclasses import dataclass

from kubefab import phases, reset as resetting
from kubefab.errors import KubefabError
from kubefab.phases import PARALLEL, SERIAL, Phase
from kubefab.steps import RemoveNode

STAGES = tuple(phases.STAGES)       # facts, preflight


@dataclass(frozen=True)
class Workflow:
    """A task's phases, in order, after its stages; `prepared`: preflight runs knowing the runtime phase comes
    first (so what it repairs does not stop the run)."""

    name: str               # the task, as the user types it
    stages: tuple
    phases: tuple           # phases.Phase, run one after another
    prepared: bool = False

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
PREFLIGHT = Workflow("cluster.preflight", STAGES, (), prepared=True)


def join(fresh=None):
    """node.join of some hosts: runtime and push on them, kubeadm join with the fresh bootstrap token `fresh`
    (None in a dry run: the join config is not made), then each node Ready."""
    return Workflow("node.join", STAGES, (
        phases.RUNTIME,
        phases.PUSH,
        Phase("join", "Join with a fresh bootstrap token", "all", SERIAL,
              lambda inv, host, bundle, facts: phases.fresh_join(inv, host, facts, fresh)),
        phases.VERIFY,
    ), prepared=True)


def reset(drain=False):
    """cluster.reset: the workers, then the other control planes (the last joined first), the first one last
    (k0sctl's ResetWorkers, ResetControllers, ResetLeader); `drain`: each node is drained and deleted through
    the API first, as when some hosts stay in the cluster."""
    def steps(inv, host, bundle, facts):
        return (RemoveNode("drain and delete the node"),) * drain + resetting.steps()
    return Workflow("cluster.reset", (), (
        Phase("reset-workers", "Reset the workers", "non-control-planes", PARALLEL, steps),
        Phase("reset-control-planes", "Reset the other control-plane nodes, the last joined first",
              "other-control-planes", SERIAL, steps, last_first=True),
        Phase("reset-leader", "Reset the first control-plane node", "first-control-plane", SERIAL, steps),
    ))
