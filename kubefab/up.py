"""cluster.up and cluster.preflight: facts, preflight, then the plan's phases on the hosts.

Order of a run: lock the state dir, prepare the local bundle, gather facts (one probe per host),
evaluate preflight (errors stop the run before any host changes), build the plan from inventory,
bundle and facts, ask (or --yes), then run each phase as the plan orders it: on each host its steps as
one script, then its Api steps from this machine (kubefab.apisteps). A phase with a failed host stops
the run before the next phase, except join-workers: up to `max_failed` workers may fail there, their
later phases are skipped and the rest of the cluster is finished. A failed kubeadm step comes back
with the host's kubelet and containerd journals and a hint (kubefab.diagnose). The run ends with a
hosts x phases table.
"""

import logging
import sys
import time
from dataclasses import dataclass, replace

from kubefab import apisteps, bootstrap, diagnose, facts as facts_mod, lock, log as logs, phases, plan, preflight, report, \
    reset as reset_mod, script, ssh, state, token
from kubefab.errors import KubefabError
from kubefab.runner import DEFAULT_WORKERS, HostResult, Interrupted, Runner, worst
from kubefab.steps import CHANGED, FAILED, OK, SKIPPED, UNCHANGED, Api

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
MIN_TRANSFER_RATE = 256 * 1024   # bytes/s a push may fall to (a slow link to a far data centre) before it times out
PROBE_TIMEOUT = facts_mod.TIMEOUT + 40      # the probe bounds itself; the rest is connecting as the host lets us


@dataclass(frozen=True)
class Options:
    only: tuple = ()
    skip: tuple = ()
    hosts: tuple = ()
    ignore: tuple = ()
    workers: int = DEFAULT_WORKERS
    batch: int = 0              # workers joined at once; 0: the inventory's worker_batch_size
    max_failed: int = 0         # workers that may fail to join before the run stops
    yes: bool = False
    verbose: bool = False
    quiet: bool = False


class Run:
    """One run against one inventory: its log, lock, connections, pool and results so far."""

    def __init__(self, inv, options, console=None, ask=None):
        if options.workers < 1:
            raise KubefabError(f"--workers {options.workers}: at least one host must be worked on at a time")
        if options.max_failed < 0:
            raise KubefabError(f"--max-failed {options.max_failed}: give how many workers may fail, 0 or more")
        state.check(inv)      # before the log and the lock are opened in it
        self.inv, self.o = inv, options
        self.console = console or sys.stdout
        self.ask = ask or _ask
        self.log = logs.setup(inv.state_dir, options.verbose, options.quiet, self.console)
        self.results = []
        self.findings = ()          # preflight's, once it ran
        self._last_progress = None
        self.start = time.monotonic()

    def up(self):
        """Run the selected stages and phases; the exit code (0, 1 on a failed host, 130 on Ctrl-C)."""
        stages, selected = phases.select(self.o.only, self.o.skip)
        return self._locked(lambda: self._up(stages, selected))

    def reset(self):
        """Reset the hosts (workers first, control planes last) to as they were before cluster.up; the exit code."""
        return self._locked(self._reset, prepare=False)

    def _reset(self):
        hosts = self.inv.select(self.o.hosts)
        subset = len(hosts) < len(self.inv.hosts)
        self._say(f"cluster.reset of {len(hosts)} host{'s' * (len(hosts) != 1)} of cluster {self.inv.cluster.name!r}"
                  f", in this order: {', '.join(h.name for b in reset_mod.order(self.inv, hosts) for h in b)}"
                  + ("; each node is drained and deleted through the API first" if subset else ""), shown=True)
        if not self.o.yes:
            self.ask(f"Reset {len(hosts)} hosts now (kubeadm reset -f, then what it leaves behind)?")
        first = (Api(apisteps.REMOVE, "drain and delete the node"),) if subset else ()
        results = []
        for batch in reset_mod.order(self.inv, hosts):
            results += self.runner.phase("reset", (batch,), lambda host: self._reset_host(host, first))
            if any(r.failed for r in results):
                break
        self.results += results
        if any(r.failed for r in results) or len(results) < len(hosts):
            self._finish("reset failed on some hosts: the control planes after them were left as they are")
            return EXIT_FAILED
        self._finish(f"reset {len(hosts)} hosts; the state dir {self.inv.state_dir} is kept (the CA and keys)")
        return 0

    def _reset_host(self, host, first):
        """The API steps from here first (drain, delete), then the host's reset script."""
        drained = tuple(self.api_steps.run(step, host) for step in first)
        if any(r.status == FAILED for r in drained):
            return HostResult(host.name, "reset", FAILED, sum(r.seconds for r in drained),
                              "; ".join(f"{r.name}: {r.detail}" for r in drained if r.status == FAILED), drained)
        result = self._host_phase("reset", host, reset_mod.steps())
        steps = drained + result.steps
        return replace(result, status=worst(r.status for r in steps), steps=steps)

    def join(self):
        """node.join: facts, preflight, runtime and push on the named hosts, then kubeadm join with a fresh token."""
        first = self.inv.first_control_plane.name
        if not self.o.hosts:
            raise KubefabError("node.join needs the hosts to join: --host NAME (repeatable)")
        if first in self.o.hosts:
            raise KubefabError(f"{first} is the first control-plane node: `invoke cluster.up` makes the cluster on it")
        return self._locked(self._join)

    def _join(self):
        code, facts = self._gate(("facts", "preflight"), prepared=True)
        if code:
            return code
        hosts = self.inv.select(self.o.hosts)
        base = plan.build(self.inv, self.bundle, facts, ("runtime", "push"), hosts=self.o.hosts)
        verify = plan.build(self.inv, self.bundle, facts, ("verify",), hosts=self.o.hosts).phases
        members = [h.name for h in hosts if phases.join_step(self.inv, h, None, facts[h.name]).done]
        self._say(f"node.join of {', '.join(h.name for h in hosts)}"
                  + (f" ({', '.join(members)}: already a node, not joined again)" if members else ""))
        if len(members) == len(hosts):
            self.results += [HostResult(h, "join", UNCHANGED, detail="already a node") for h in members]
            return self._phases(replace(base, phases=base.phases + verify))
        if not self.o.yes:
            self.ask(f"Join {len(hosts) - len(members)} hosts now?")
        with bootstrap.temporary(self.api_steps.api()) as fresh:
            logs.mask(fresh)
            join = phases.Phase("join", "Join with a fresh bootstrap token", "all", phases.SERIAL,
                                lambda inv, host, bundle, f: phases.fresh_join(inv, host, f, fresh))
            batches = tuple((plan.HostSteps(h, join.steps(self.inv, h, self.bundle, facts[h.name])),) for h in hosts)
            return self._phases(replace(base, phases=base.phases + (plan.PhasePlan(join, batches),) + verify))

    def preflight(self):
        """Facts and checks only; the exit code (1 when a host failed or a check errs)."""
        return self._locked(self._preflight)

    def _preflight(self):
        code, _ = self._gate(("facts", "preflight"), prepared=True)
        if not code:
            self._finish("preflight passed")
        return code

    def _locked(self, body, prepare=True):
        """Run `body` holding the state dir's lock, with the local bundle prepared first unless `prepare` is False
        (a reset needs none: an expired CA or a lost PKI must not stop one, nor may a reset make a new CA)."""
        hosts = self.inv.select(self.o.hosts)
        logs.mask(*(ssh.sudo_password(h) for h in hosts))
        if any(h.ssh.known_hosts == "off" for h in hosts):
            self.log.warning("warning: host keys are not checked (known_hosts = 'off'): anyone on the path can "
                             "pose as these hosts")
        with lock.held(self.inv.state_dir, self.log):
            if prepare:
                self.bundle = plan.prepare(self.inv)
                logs.mask(token.bootstrap_token(self.inv))
            self.ssh = ssh.Hosts()
            self.runner = Runner(self.o.workers, self._progress)
            self.api_steps = apisteps.ApiSteps(self.inv, self.ssh, self.log, stop=self.runner.stopping)
            try:
                return body()
            except Interrupted as e:
                self.results += e.results
                self._finish("interrupted: the hosts that were working finished their step; run again to resume")
                return EXIT_INTERRUPTED
            finally:
                self.runner.close()
                self.ssh.close()

    def _up(self, stages, selected):
        code, facts = self._gate(stages, prepared=any(p.name == "runtime" for p in selected))
        if code:
            return code
        p = plan.build(self.inv, self.bundle, facts, self.o.only, self.o.skip, self.o.hosts, self.o.batch)
        if not p.phases:
            self._finish("done")
            return 0
        self._say(_summary(p))
        if not self.o.yes:
            self.ask(f"Change {len({hs.host.name for pp in p.phases for b in pp.batches for hs in b})} hosts now?")
        return self._phases(p)

    def _phases(self, p):
        failed = {}                 # host name -> the phase it failed in: its later phases are skipped
        for pp in (pp for pp in p.phases if pp.batches):
            steps = {hs.host.name: hs.steps for b in pp.batches for hs in b}
            self.results += [HostResult(h, pp.phase.name, SKIPPED, detail=f"failed in {failed[h]}")
                             for h in steps if h in failed]
            batches = tuple(b for b in (tuple(hs.host for hs in b if hs.host.name not in failed) for b in pp.batches)
                            if b)
            budget = self.o.max_failed - len(failed) if pp.phase.order == phases.BATCHES else 0
            results = self.runner.phase(pp.phase.name, batches, budget=budget,
                                        work=lambda host, n=pp.phase.name: self._host_phase(n, host, steps[host.name]))
            self.results += results
            failed.update((r.host, pp.phase.name) for r in results if r.failed)
            if sum(r.failed for r in results) > budget:
                self._finish(f"{pp.phase.name} failed on some hosts: the run stops before the next phase")
                return EXIT_FAILED
        if failed:
            self._finish(f"done, except on {', '.join(failed)}: fix the cause shown and run again to finish them")
            return EXIT_FAILED
        changed = any(r.status == CHANGED for r in self.results)
        self._finish("done" if changed else "done: nothing changed, every host and phase was already as planned")
        return 0

    def _gate(self, stages, prepared):
        """Facts and preflight as selected: (exit code so far, facts by host or None). `prepared`: the runtime
        phase runs before kubeadm, so what it repairs does not stop the run."""
        if "preflight" in stages and "facts" not in stages:
            raise KubefabError("preflight needs the facts stage: drop --skip facts, or skip preflight too")
        if "facts" not in stages:
            return 0, None
        hosts = self.inv.select(self.o.hosts)
        results = self.runner.phase("facts", (hosts,), self._facts)
        self.results += results
        gathered = {r.host: r.facts for r in results if isinstance(r, _FactsResult)}
        failed = any(r.failed for r in results)
        if "preflight" in stages:
            unreached = {r.host: r.detail for r in results if r.failed}
            findings = self.findings = preflight.evaluate(
                self.inv, gathered, failures=unreached, ignore=self.o.ignore,
                ca_sha256=state.ca_fingerprint(self.inv), prepared=prepared)
            self._say(preflight.table(findings), shown=any(f.status != preflight.OK for f in findings))
            blocking = preflight.errors(findings)
            self.results += [HostResult(h.name, "preflight", _preflight_status(h.name, findings, gathered),
                                        detail="; ".join(f"{f.check}: {f.reason}" for f in blocking
                                                         if f.host == h.name)) for h in hosts]
            failed = failed or bool(blocking)
        if failed:
            self._finish("the run stops before any host changes")
            return EXIT_FAILED, gathered
        return 0, gathered

    def _facts(self, host):
        text = plan.probe(self.inv, self.bundle, host).encode()
        sent = time.time()
        out = self.ssh.run(host, text, PROBE_TIMEOUT)
        received = time.time()
        self.log.debug("facts %s: exit %s in %.2f s", host.name, out.code, out.seconds)
        if out.code:
            return HostResult(host.name, "facts", FAILED, out.seconds,
                              detail=f"the probe exited {out.code}: {_tail(out.stderr or out.stdout)}")
        try:
            return _FactsResult(host.name, "facts", OK, out.seconds, facts=facts_mod.parse(host.name, out.stdout, window=(sent, received)))
        except facts_mod.FactsError as e:
            return HostResult(host.name, "facts", FAILED, out.seconds, detail=str(e))

    def _host_phase(self, phase_name, host, steps):
        """The host's script steps over SSH, then (when they passed) its Api steps from here."""
        on_host = tuple(s for s in steps if not isinstance(s, Api))
        if all(s.done for s in on_host):      # the facts show every one satisfied: no need to connect
            done, seconds, broken = tuple(script.StepResult(s.name, UNCHANGED, s.done) for s in on_host), 0.0, ""
        else:
            done, seconds, broken = self._script(phase_name, host, on_host)
        if worst(r.status for r in done) != FAILED:
            for step in (s for s in steps if isinstance(s, Api)):
                done += (self.api_steps.run(step, host),)
                seconds += done[-1].seconds
                if done[-1].status == FAILED:
                    break
        for r in done:
            detail = r.detail if r.status == FAILED else r.detail.partition("\n")[0]
            self.log.debug("%s %s %s: %s, exit %s, %.2f s%s", phase_name, host.name, r.name, r.status, r.code,
                           r.seconds, f": {detail}" if detail else "")
        status = worst(r.status for r in done)
        detail = broken or "; ".join(f"{r.name}: {r.detail}" for r in done if r.status == FAILED)
        return HostResult(host.name, phase_name, status, seconds, detail, done)

    def _script(self, phase_name, host, steps):
        """(step results, seconds, why the script broke off or '') of `steps` run on `host` as one script."""
        built = script.build(steps)
        timeout = sum(getattr(s, "timeout", 120) for s in steps) + 60 + built.payload.size // MIN_TRANSFER_RATE
        out = self.ssh.run(host, built.text, timeout, built.payload)
        done = script.parse(steps, out.stdout, built.nonce)
        failed = [r for r in done if r.status == FAILED]
        if failed and all(r.detail.startswith("no report") for r in failed):
            return done, out.seconds, (f"the {phase_name} script did not run to its end (exit {out.code}): "
                                       f"{_tail(out.stderr)}")
        return tuple(self._explained(host, r) for r in done), out.seconds, ""

    def _explained(self, host, result):
        """A failed kubeadm step with the host's kubelet and containerd journals and a hint added."""
        if result.status != FAILED or not result.name.startswith("kubeadm"):
            return result
        try:
            journals = self.ssh.run(host, diagnose.JOURNALS.encode(), 60).stdout
        except ssh.Unreachable as e:
            journals = f"(the journals could not be read: {e})"
        return replace(result, detail=f"{result.detail}\n{diagnose.explain(result.detail, journals)}")

    def _progress(self, phase, done, failed, total, seconds):
        if self.o.quiet:
            return
        line = f"{phase}: {done}/{total} hosts done, {failed} failed, {seconds:.1f} s"
        finished = done == total
        if finished and self._last_progress == (phase, done):
            return
        self._last_progress = (phase, done)
        if getattr(self.console, "isatty", lambda: False)():
            self.console.write(f"\r{line}{chr(10) if finished else ''}")
            self.console.flush()
        elif finished:
            self.log.info(line)

    def _say(self, text, shown=False):
        """Tell the user; `shown` text appears even under --quiet (summaries, problems)."""
        self.log.log(logging.WARNING if shown else logging.INFO, text)

    def _finish(self, outcome):
        if self.results:
            self._say(report.summary(self.results, time.monotonic() - self.start), shown=True)
        self._say(outcome, shown=True)


@dataclass(frozen=True)
class _FactsResult(HostResult):
    facts: object = None


def _preflight_status(name, findings, gathered):
    if name not in gathered:
        return SKIPPED
    mine = [f for f in findings if f.host == name]
    return FAILED if preflight.errors(mine) else OK


def _tail(text, lines=5):
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _summary(p):
    parts = [f"{pp.phase.name} on {plan.host_count(pp)} host{'s' * (plan.host_count(pp) != 1)}" for pp in p.phases
             if pp.batches]
    return f"plan for cluster {p.inventory.cluster.name!r}: {', '.join(parts)} (`invoke cluster.plan` shows every step)"


def _ask(question):
    """Ask on a terminal; without one, refuse rather than wait for an answer that cannot come."""
    if not sys.stdin.isatty():
        raise KubefabError("this changes hosts and asks first, but there is no terminal to ask on — "
                           "pass --yes to go ahead")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise KubefabError("stopped: nothing was changed")
