"""A workflow run over a session: facts, preflight's gate, the plan built from them, then its phases on the hosts.

`run(inv, workflow, options)` opens the session, and returns an `Outcome`: every host's result per phase,
preflight's findings, the last word and the exit code (0, 1 when a host failed or preflight erred, 130 on
Ctrl-C). Preflight errors stop the run before any host changes. A phase with a failed host stops the run
before the next phase, except in one run in batches (join-workers): up to `max_failed` hosts may fail
there, their later phases are skipped and the rest is finished. With `dry_run` the plan is printed as
`cluster.plan` prints it (built from the facts) and nothing changes; with `live`, what that plan would change
is printed instead (kubefab.run.live), and the code is 2 when it would change something.
"""

import dataclasses
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import kubefab.preflight   # as a module: preflight() below is the task's run
from kubefab import net, plan, state, versions
from kubefab.api import bootstrap, members, upgrade as upgrade_api
from kubefab.errors import KubefabError
from kubefab.plan import balancers, phases, renewal, reset as resetting, upgrade as upgrading, workflows
from kubefab.remote import ssh
from kubefab.remote.runner import Interrupted
from kubefab.remote.work import FactsResult, host_phase, probe
from kubefab.run import live as drifts, logs, report, session as sessions
from kubefab.state import removal
from kubefab.steps import CHANGED, FAILED, OK, SKIPPED, HostResult

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130


@dataclass(frozen=True)
class Outcome:
    """What a run did: results by host and phase (in the order they came), preflight's findings, the last word."""

    workflow: str
    results: tuple
    findings: tuple
    outcome: str
    code: int
    plan: object = None         # plan.Plan that ran (or was shown), once built
    seconds: dict = field(default_factory=dict)     # wall seconds of each stage and phase, by name


def run(inv, workflow, options, console=None, ask=None):
    """Run `workflow` (a kubefab.plan.workflows list) on `inv` as `options` say; its Outcome."""
    workflow.select(options.only, options.skip)     # an unknown phase is refused before anything is touched
    with sessions.opened(inv, options, console, ask, prepare=workflow.prepares, bundle=workflow.bundle) as s:
        record = _Record(s, workflow)
        try:
            return _run(s, workflow, record)
        except Interrupted as e:
            record.results += e.results
            return record.finish("interrupted: the hosts that were working finished their step; run again to resume",
                                 EXIT_INTERRUPTED)


def up(inv, options, console=None, ask=None):
    """cluster.up: facts, preflight, then cluster.up's phases as selected; refused while the first control plane
    is one node.remove took out (kubeadm init would make a second cluster on it)."""
    first = inv.first_control_plane.name
    if not options.dry_run and first in removal.read(inv):
        raise KubefabError(f"{first} was taken out by node.remove, and as the inventory's first control plane "
                           f"cluster.up would run kubeadm init on it: a second cluster — remove its [hosts.{first}] "
                           "table first (the next control plane becomes the first)")
    return run(inv, workflows.UP, options, console, ask)


def live(inv, options, console=None):
    """cluster.plan --live: facts (no preflight), the plan cluster.up would run from them, and what it would change
    on the hosts and through the API, read only; exit 0 with "no changes", 2 with changes, 1 when a host failed."""
    if "facts" in options.skip:
        raise KubefabError("--live compares the hosts' facts with the plan: drop --skip facts")
    only = (*options.only, "facts") if options.only else ()
    options = dataclasses.replace(options, only=only, skip=(*options.skip, "preflight"), live=True)
    return run(inv, workflows.UP, options, console)


def preflight(inv, options, console=None, ask=None):
    """cluster.preflight: facts and checks only (exit 1 when a host failed or a check errs)."""
    return run(inv, workflows.PREFLIGHT, options, console, ask)


def survey(inv, options, console=None):
    """The facts of `options.hosts` (all by default), read only: the Outcome's plan holds them by host."""
    return run(inv, workflows.SURVEY, options, console)


def join(inv, options, console=None, ask=None):
    """node.join of `options.hosts`: facts, preflight, runtime and push on them, kubeadm join with a fresh token."""
    first = inv.first_control_plane.name
    if not options.hosts:
        raise KubefabError("node.join needs the hosts to join: --host NAME (repeatable)")
    if first in options.hosts:
        raise KubefabError(f"{first} is the first control-plane node: `invoke cluster.up` makes the cluster on it")
    if any(balancers.applies(inv, h) for h in inv.select(options.hosts)):     # the other control planes follow
        logs.mask(*(ssh.sudo_password(h) for h in inv.control_planes))
    return run(inv, workflows.join(options.hosts), options, console, ask)


def reset(inv, options, console=None, ask=None):
    """cluster.reset: workers first, control planes last, each as before cluster.up; a subset is drained first."""
    subset = len(inv.select(options.hosts)) < len(inv.hosts)
    return run(inv, workflows.reset(drain=subset), options, console, ask)


def remove(inv, options, unreachable=False, console=None, ask=None):
    """node.remove of the one host `options.hosts` names. A control plane is refused when it is the last one, holds
    the endpoint's address, or its etcd member cannot go without losing quorum (an even count left is a warning).
    `unreachable`, or no SSH answer from the host: only its Node and etcd member go, and the run says what stays on
    it. Afterwards it says which inventory table to remove (kubefab does not edit the inventory)."""
    if len(options.hosts) != 1:
        raise KubefabError("node.remove takes exactly one host: --host NAME")
    host = inv.host(options.hosts[0])
    say = (console or sys.stdout).write
    why = "" if unreachable else _unreached(host)
    if why:
        say(f"{host.name} cannot be reached ({why}): it is removed as with --unreachable\n")
    dead = unreachable or bool(why)
    if balancers.applies(inv, host):        # the control planes that stay are worked on too
        logs.mask(*(ssh.sudo_password(h) for h in inv.control_planes))
    if host.is_control_plane:
        for warning in _may_leave(inv, host, dead):
            say(f"warning: {warning}\n")
    outcome = run(inv, workflows.remove(host.name, dead, options.drain_timeout), options, console, ask)
    if outcome.code == 0 and not options.dry_run:
        if dead:
            say(f"not cleaned on {host.name}, which was not reached: {', '.join(resetting.LEFT)} — once it is "
                f"back, `invoke cluster.reset --host {host.name}` cleans it\n")
        again = ("cluster.up refuses to run until it is gone: it would kubeadm init a second cluster there"
                 if host == inv.first_control_plane else "a cluster.up would join it again")
        say(f"{inv.path.name} still lists {host.name}: remove its [hosts.{host.name}] table (kubefab does not edit "
            f"the inventory, and {again})\n")
    return outcome


def _unreached(host):
    """Why `host` does not answer over SSH, or "" when it does."""
    hosts = ssh.Hosts()
    try:
        hosts.connection(host)
        return ""
    except ssh.Unreachable as e:
        return str(e)
    finally:
        hosts.close()


def _may_leave(inv, host, dead):
    """The warnings about taking control plane `host` out; KubefabError when it must stay."""
    others = [h.name for h in inv.control_planes if h != host]
    if not others:
        raise KubefabError(f"{host.name} is the cluster's only control plane: removing it ends the cluster — "
                           "`invoke cluster.reset` takes a whole cluster down")
    if net.endpoint_parts(inv.endpoint)[0] in (host.internal_address, host.address):
        raise KubefabError(f"the control-plane endpoint {inv.endpoint} is {host.name}'s own address: every node "
                           f"and kubeconfig reaches the API server there — set control_plane_endpoint to a load "
                           f"balancer or another control plane ({', '.join(others)}) first")
    hosts = ssh.Hosts()
    try:
        verdict = members.judge(members.Etcd(inv, hosts).members(skip=(host.name,) if dead else ()), host)
    finally:
        hosts.close()
    if verdict.refusal:
        raise KubefabError(verdict.refusal)
    return verdict.warnings


def renew(inv, options, days=0, add_san=(), console=None, ask=None):
    """pki.renew: reissue what expires within `days` days (all with 0) from the same CAs, `add_san` added to the
    apiserver certificate; push it to the control planes and restart what reads it, one control plane at a time."""
    workers = [h.name for h in inv.select(options.hosts) if not h.is_control_plane]
    if options.hosts and workers:
        raise KubefabError(f"--host {workers[0]}: not a control plane — pki.renew works on control planes only "
                           "(each kubelet renews its own client certificate)")
    options = dataclasses.replace(options, hosts=options.hosts or tuple(h.name for h in inv.control_planes))
    asked, inv = inv, renewal.with_sans(inv, add_san) if add_san else inv
    what = renewal.due(inv, days, add_san)
    say = (console or sys.stdout).write
    if not what:
        say(f"nothing is due: every certificate and kubeconfig is valid for {days} days or more\n")
    elif options.dry_run:
        say(f"would reissue from the same CAs: {', '.join((*what.certs, *what.kubeconfigs))}\n")
    if add_san:
        say(renewal.san_hint(inv) + "\n")

    def prepare(inv):
        for a in renewal.reissue(inv, what):
            say(f"{a.name}{f' ({a.node})' if a.node else ''}: {a.what}, {a.reason}\n")
        return plan.prepare(inv)
    if options.dry_run:         # the plan of the hosts as they are: the state dir, --add-san's SAN included, untouched
        return run(asked, workflows.renew(what), options, console, ask)
    outcome = run(inv, workflows.renew(what, prepare if what else None), options, console, ask)
    if outcome.code == 0:
        say("each kubelet renews its own client certificate (rotateCertificates: true): kubefab leaves "
            "/var/lib/kubelet/pki to it\n")
    return outcome


def upgrade(inv, options, max_unavailable=upgrading.DEFAULT_MAX_UNAVAILABLE, backup=True, containerd=False,
            console=None, ask=None):
    """cluster.upgrade to the inventory's kubernetes_version (--to replaces it): what the cluster runs is read
    through the API after the facts and the upgrade refused or planned from it, then run phase by phase, an etcd
    backup first unless not `backup` (refused when a control plane has no etcdctl); the backup's file is named.
    `containerd` (--runtime): each node's containerd upgraded too, in the same order and batches."""
    if upgrading.unknown(inv.cluster.kubernetes_version):    # before the bundle is rendered for it
        raise KubefabError(upgrading.unknown(inv.cluster.kubernetes_version))
    size = upgrading.batch_size(len(inv.non_control_planes), options.batch, max_unavailable)
    backup = backs_up(backup, options)
    provided = _offline_kubeadm(inv)

    def surveyed(api, facts):
        survey = upgrade_api.survey(api, inv)
        backing = backup and upgrading.backup_steps(inv, inv.first_control_plane, survey)
        upgrading.check(inv.cluster.kubernetes_version, survey, provided,
                        upgrading.without_etcdctl(inv, facts or {}) if backing else "")
        return workflows.upgrade(survey, size, backup=backup, containerd=containerd)
    outcome = run(inv, workflows.upgrade(None, size, surveyed, backup, containerd),
                  dataclasses.replace(options, batch=size), console, ask)
    for r in outcome.results:
        if r.phase == "etcd-backup" and r.steps and r.steps[0].status == CHANGED:
            (console or sys.stdout).write(f"etcd backup: {r.steps[0].detail}\n")
    return outcome


def backs_up(backup, options):
    """Whether cluster.upgrade takes its etcd backup (and so needs etcdctl): not with --no-backup, nor when --only or
    --skip leave the etcd-backup phase out."""
    _, phases = workflows.upgrade(None, 1).select(options.only, options.skip)
    return backup and any(p.name == "etcd-backup" for p in phases)


def _offline_kubeadm(inv):
    """The version the offline directory's kubeadm reports when it runs here, else None (checked on the hosts)."""
    if inv.install.source != "offline":
        return None
    try:
        done = subprocess.run([str(Path(inv.install.directory) / "kubeadm"), "version", "-o", "short"],
                              capture_output=True, text=True, timeout=10)
        return versions.bare(done.stdout.strip()) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


class _Record:
    """The results of one run so far, and how it ends: the summary table, then the last word."""

    def __init__(self, session, workflow):
        self.s, self.workflow, self.results, self.findings, self.plan = session, workflow, [], (), None

    def finish(self, outcome, code, summary=True):
        if self.results and summary:
            self.s.say(report.summary(self.results, time.monotonic() - self.s.start), shown=True)
        self.s.say(outcome, shown=True)
        return Outcome(self.workflow.name, tuple(self.results), self.findings, outcome, code, self.plan,
                       dict(self.s.runner.seconds))


def _run(s, workflow, record):
    o = s.options
    stages, selected = workflow.select(o.only, o.skip)
    reads = drifts.start(s) if o.live else None     # --live's API reads overlap the facts round trip
    code, facts = _gate(s, stages, workflow.prepared or any(p.name == "runtime" for p in selected), record)
    if code:
        return record.finish("the run stops before any host changes", code)
    if workflow.surveyed:       # what the cluster runs decides the phases' steps (cluster.upgrade)
        workflow = record.workflow = workflow.surveyed(s.api.api(), facts)
    if o.live:
        _relied(s, facts)
    p = record.plan = plan.build(s.inv, s.bundle, facts, o.only, o.skip, o.hosts, o.batch, workflow)
    if o.live:
        changes = drifts.report(s, p, reads)
        return record.finish(drifts.verdict(changes), drifts.EXIT_CHANGES if changes else 0, summary=False)
    if o.dry_run:
        s.console.write(report.plan_text(p) + "\n")
        return record.finish("dry run: nothing was changed", 0)
    if not p.phases:
        return record.finish(workflow.done.format(n=0, state_dir=s.inv.state_dir) or "done", 0)
    s.say(workflow.intro(p), shown=workflow.loud)
    if not o.yes:
        s.ask(workflow.question.format(n=len({hs.host.name for pp in p.phases if not pp.phase.beside
                                              for b in pp.batches for hs in b})))
    with _fresh_token(s, p) as fresh:
        if fresh:
            logs.mask(fresh)
            p = record.plan = plan.build(s.inv, s.bundle, facts, o.only, o.skip, o.hosts, o.batch,
                                         workflow.token(fresh))
        return _phases(s, p, record)


def _relied(s, facts):
    """--live skips preflight, but what the plan relies on must hold (a kubernetes_version the running nodes do not
    have is no change cluster.up would make; kube-vip's interface is on every control plane): the errors of those
    checks, raised, each check's fix said once."""
    relied = {c.name for c in kubefab.preflight.CHECKS if c.relied}
    found = kubefab.preflight.evaluate(s.inv, facts, ca_sha256=state.ca_fingerprint(s.inv))
    wrong = [f for f in found if f.check in relied and f.status == kubefab.preflight.ERROR]
    if wrong:
        by_check = {}
        for f in wrong:
            by_check.setdefault(f.check, []).append(f)
        raise KubefabError("; ".join("; ".join(f"{f.host}: {f.reason}" for f in alike) + f" — {alike[0].fix}"
                                     for alike in by_check.values()))


def _fresh_token(s, p):
    """A fresh bootstrap token while the hosts join, when the workflow takes one and some host is not a node yet."""
    joining = [hs for pp in p.phases if pp.phase.name == "join" for b in pp.batches for hs in b if not hs.steps[0].done]
    return bootstrap.temporary(s.api.api()) if p.workflow.token and joining else nullcontext()


def _gate(s, stages, prepared, record):
    """Facts and preflight as selected: (exit code so far, facts by host or None)."""
    if "preflight" in stages and "facts" not in stages:
        raise KubefabError("preflight needs the facts stage: drop --skip facts, or skip preflight too")
    if "facts" not in stages:
        return 0, None
    hosts = s.inv.select(s.options.hosts)
    results = s.runner.phase("facts", (hosts,), lambda host: probe(s, host))
    record.results += results
    gathered = {r.host: r.facts for r in results if isinstance(r, FactsResult)}
    failed = any(r.failed for r in results)
    if "preflight" in stages:
        unreached = {r.host: r.detail for r in results if r.failed}
        checks = kubefab.preflight
        findings = record.findings = checks.evaluate(s.inv, gathered, failures=unreached, ignore=s.options.ignore,
                                                     ca_sha256=state.ca_fingerprint(s.inv), prepared=prepared)
        s.say(checks.table(findings), shown=any(f.status != checks.OK for f in findings))
        blocking = checks.errors(findings)
        record.results += [HostResult(h.name, "preflight", _preflight_status(h.name, findings, gathered),
                                      detail="; ".join(f"{f.check}: {f.reason}" for f in blocking
                                                       if f.host == h.name)) for h in hosts]
        failed = failed or bool(blocking)
    return (EXIT_FAILED if failed else 0), gathered


def _phases(s, p, record):
    failed = {}                 # host name -> the phase it failed in: its later phases are skipped
    for pp in (pp for pp in p.phases if pp.batches):
        steps = {hs.host.name: hs.steps for b in pp.batches for hs in b}
        record.results += [HostResult(h, pp.phase.name, SKIPPED, detail=f"failed in {failed[h]}")
                           for h in steps if h in failed]
        batches = tuple(b for b in (tuple(hs.host for hs in b if hs.host.name not in failed) for b in pp.batches)
                        if b)
        budget = s.options.max_failed - len(failed) if pp.phase.order == phases.BATCHES else 0
        results = s.runner.phase(pp.phase.name, batches, budget=budget,
                                 work=lambda host, n=pp.phase.name: host_phase(s, n, host, steps[host.name]))
        record.results += results
        failed.update((r.host, pp.phase.name) for r in results if r.failed)
        if sum(r.failed for r in results) > budget:
            return record.finish(f"{pp.phase.name} failed on some hosts: the run stops before the next phase",
                                 EXIT_FAILED)
    if failed:
        return record.finish(f"done, except on {', '.join(failed)}: fix the cause shown and run again to finish them",
                             EXIT_FAILED)
    if p.workflow.done:
        return record.finish(p.workflow.done.format(n=len(record.results), state_dir=s.inv.state_dir), 0)
    changed = any(r.status == CHANGED for r in record.results)
    return record.finish("done" if changed else "done: nothing changed, every host and phase was already as planned",
                         0)


def _preflight_status(name, findings, gathered):
    if name not in gathered:
        return SKIPPED
    mine = [f for f in findings if f.host == name]
    return FAILED if kubefab.preflight.errors(mine) else OK

