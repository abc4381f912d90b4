"""Plan first, then act: PKI, rendered files, phases, hosts and batches decided before any host changes."""

from dataclasses import dataclass

from kubefab import kubeconfig, phases, pki, render, token


@dataclass(frozen=True)
class HostSteps:
    host: object
    steps: tuple


@dataclass(frozen=True)
class PhasePlan:
    phase: phases.Phase
    batches: tuple          # tuple of tuples of HostSteps, run one batch after another


@dataclass(frozen=True)
class Plan:
    inventory: object
    actions: tuple          # what happened to each cert and kubeconfig (created, kept, reissued)
    token_id: str           # the public half of the bootstrap token
    ca_hash: str
    files: dict             # host name -> rendered files, as they will land on that host
    phases: tuple


def build(inv, only=(), skip=(), hosts=()):
    """Ensure the PKI and the rendered tree for `inv`, then lay out the phases to run (on `hosts`, or all)."""
    selected = phases.select(only, skip)
    chosen = {h.name for h in inv.select(hosts)}
    actions = pki.ensure(inv) + kubeconfig.ensure(inv)
    token_id = token.bootstrap_token(inv).reveal().split(".")[0]
    rendered = render.render(inv)
    files = {h.name: tuple(f for f in rendered if f.host == h.name) for h in inv.hosts}
    return Plan(inventory=inv, actions=actions, token_id=token_id, ca_hash=token.ca_cert_hash(inv),
                files=files, phases=tuple(_phase_plan(p, inv, files, chosen) for p in selected))


def _phase_plan(phase, inv, files, chosen):
    batches = (tuple(HostSteps(h, phase.steps(inv, h, files[h.name])) for h in batch if h.name in chosen)
               for batch in phases.batches(phase, inv))
    return PhasePlan(phase, tuple(b for b in batches if b))
