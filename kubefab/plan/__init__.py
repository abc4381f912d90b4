"""Plan first, then act: the local bundle is prepared, then the plan is built from it without side effects.

`prepare(inv)` makes or keeps the PKI, kubeconfigs, bootstrap token and every host's rendered files.
`build(inv, bundle, facts)` is a pure function of the inventory, that bundle and the facts (None when
offline): `cluster.plan` and `cluster.up` build the same plan, and `up` executes exactly it; node.join and
cluster.reset build theirs from their workflows the same way.
"""

from dataclasses import dataclass

from kubefab import facts, paths, pki, state
from kubefab.errors import KubefabError
from kubefab.pki import addons as addon_pki
from kubefab.pki import kubeconfig, token
from kubefab.plan import offline, phases, render, runtime, workflows
from kubefab.state import removal


@dataclass(frozen=True)
class Bundle:
    """What this machine made for the cluster: keys, token, rendered files, offline install files."""

    actions: tuple          # what happened to each cert and kubeconfig (created, kept, reissued)
    token_id: str           # the public half of the bootstrap token
    ca_hash: str
    files: dict             # host name -> rendered files (and offline install files), as they land there
    hosts_block: tuple      # (text, sha256) of kubefab's /etc/hosts block: one for every host
    removed: tuple = ()     # (host name, when) of the inventory's hosts node.remove took out (state.removal)


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
    bundle: Bundle
    facts: object           # {host name: Facts}, or None when built offline
    stages: tuple           # "facts", "preflight": what runs before the plan's phases
    phases: tuple
    workflow: workflows.Workflow = workflows.UP


def prepare(inv):
    """Ensure the PKI, kubeconfigs, token and rendered tree for `inv` in its state dir (checked first)."""
    state.check(inv)
    actions = pki.ensure(inv) + addon_pki.ensure(inv)
    state.adopt(inv)
    actions += kubeconfig.ensure(inv)
    token_id = token.bootstrap_token(inv).reveal().split(".")[0]
    rendered = render.render(inv)
    extra = offline.files(inv)
    own = {h.name: [] for h in inv.hosts}
    for f in rendered:
        own[f.host].append(f)
    files = {h.name: (*own[h.name], *offline.for_host(extra, h)) for h in inv.hosts}
    recorded = removal.read(inv)
    removed = tuple((h.name, recorded[h.name]) for h in inv.hosts if h.name in recorded)
    return Bundle(actions=actions, token_id=token_id, ca_hash=token.ca_cert_hash(inv), files=files, removed=removed,
                  hosts_block=runtime.hosts_block(inv))


def probe(inv, bundle, host):
    """The fact probe for `host`: it also reports every file kubefab pushes there and every link it makes, and on a
    control plane kubeadm's static pod manifests, kubefab's copies of them and the control-plane config they were last
    made from, and the kubelet's flags with kubefab's record of those last applied, so that `build` can leave out
    what is already in place."""
    files = bundle.files[host.name] if bundle else ()       # no bundle (a read-only survey): no file compared
    repository = runtime.repo_url(inv) if inv.install.source == "packages" else ""
    manifests = ((*(p for pair in phases.manifest_pairs() for p in pair), paths.APPLIED_CONFIG)
                 if host.is_control_plane else ())
    kubelet = (paths.KUBELET_FLAGS, paths.KUBELET_FLAGS_APPLIED)
    return facts.script(inv.endpoint, files, runtime.links(files), repository, (*manifests, *kubelet))


def build(inv, bundle, facts=None, only=(), skip=(), hosts=(), batch=0, workflow=workflows.UP):
    """The phases of `workflow` (cluster.up's by default) to run on `hosts` (or all), each host's steps decided
    from the bundle and its facts; workers join in batches of `batch` (default: the inventory's
    worker_batch_size)."""
    if batch < 0:
        raise KubefabError(f"--batch {batch}: give a number of workers to join at once, at least 1")
    stages, selected = workflow.select(only, skip)
    chosen = {h.name for h in inv.select(hosts)}
    return Plan(inventory=inv, bundle=bundle, facts=facts, stages=stages, workflow=workflow,
                phases=tuple(_phase_plan(p, inv, bundle, facts, chosen, batch) for p in selected))


def _phase_plan(phase, inv, bundle, facts, chosen, batch):
    batches = (tuple(HostSteps(h, steps) for h in group if (h.name in chosen) != phase.beside
                     for steps in [phase.steps(inv, h, bundle, facts and facts.get(h.name))] if steps)
               for group in phases.batches(phase, inv, batch))
    return PhasePlan(phase, tuple(b for b in batches if b))


def host_count(pp):
    return sum(len(b) for b in pp.batches)
