"""cluster.up and cluster.preflight: facts, preflight, then the plan's phases on the hosts.

Order of a run: lock the state dir, prepare the local bundle, gather facts (one probe per host),
evaluate preflight (errors stop the run before any host changes), build the plan from inventory,
bundle and facts, ask (or --yes), then run each phase as the plan orders it. A phase with a failed
host stops the run before the next phase. The run ends with a hosts x phases table.
"""

import logging
import sys
import time
from dataclasses import dataclass

import shlex

from kubefab import facts as facts_mod, lock, log as logs, phases, plan, preflight, report, script, ssh, token
from kubefab.errors import KubefabError
from kubefab.runner import DEFAULT_WORKERS, HostResult, Interrupted, Runner, worst
from kubefab.steps import FAILED, OK, SKIPPED

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
PROBE_TIMEOUT = facts_mod.TIMEOUT + 40      # the probe bounds itself; the rest is connecting as the host lets us


@dataclass(frozen=True)
class Options:
    only: tuple = ()
    skip: tuple = ()
    hosts: tuple = ()
    ignore: tuple = ()
    workers: int = DEFAULT_WORKERS
    yes: bool = False
    verbose: bool = False
    quiet: bool = False


class Run:
    """One run against one inventory: its log, lock, connections, pool and results so far."""

    def __init__(self, inv, options, console=None, ask=None):
        if options.workers < 1:
            raise KubefabError(f"--workers {options.workers}: at least one host must be worked on at a time")
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
        later = [p.name for p in selected if not p.implemented]
        if later:
            raise KubefabError(f"phases {', '.join(later)} are not implemented yet (the sequence issue adds them) — "
                               "run `cluster.up --only facts,preflight,runtime,push`, or --skip them")
        return self._locked(lambda: self._up(stages, selected))

    def preflight(self):
        """Facts and checks only; the exit code (1 when a host failed or a check errs)."""
        return self._locked(self._preflight)

    def _preflight(self):
        code, _ = self._gate(("facts", "preflight"), prepared=True)
        if not code:
            self._finish("preflight passed")
        return code

    def _locked(self, body):
        hosts = self.inv.select(self.o.hosts)
        logs.mask(*(ssh.sudo_password(h) for h in hosts))
        if any(h.ssh.known_hosts == "off" for h in hosts):
            self.log.warning("warning: host keys are not checked (known_hosts = 'off'): anyone on the path can "
                             "pose as these hosts")
        with lock.held(self.inv.state_dir, self.log):
            self.bundle = plan.prepare(self.inv)
            logs.mask(token.bootstrap_token(self.inv))
            self.ssh = ssh.Hosts()
            self.runner = Runner(self.o.workers, self._progress)
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
        p = plan.build(self.inv, self.bundle, facts, self.o.only, self.o.skip, self.o.hosts)
        if not p.phases:
            self._finish("done")
            return 0
        self._say(_summary(p))
        if not self.o.yes:
            self.ask(f"Change {len({hs.host.name for pp in p.phases for b in pp.batches for hs in b})} hosts now?")
        for pp in p.phases:
            steps = {hs.host.name: hs.steps for b in pp.batches for hs in b}
            results = self.runner.phase(pp.phase.name, tuple(tuple(hs.host for hs in b) for b in pp.batches),
                                        lambda host, name=pp.phase.name: self._host_phase(name, host, steps[host.name]))
            self.results += results
            if any(r.failed for r in results):
                self._finish(f"{pp.phase.name} failed on some hosts: the run stops before the next phase")
                return EXIT_FAILED
        self._finish("done")
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
                ca_sha256=preflight.local_ca_fingerprint(self.inv), prepared=prepared)
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
        text = f"set -- {shlex.quote(self.inv.endpoint)}\n{facts_mod.PROBE}".encode()   # as `sh -s -- ENDPOINT`
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
        built = script.build(steps)
        timeout = sum(getattr(s, "timeout", 120) for s in steps) + 60 + len(built.payload) // 2 ** 20
        out = self.ssh.run(host, built.text, timeout, built.payload)
        steps_done = script.parse(steps, out.stdout, built.nonce)
        for r in steps_done:
            detail = r.detail if r.status == FAILED else r.detail.partition("\n")[0]
            self.log.debug("%s %s %s: %s, exit %s, %.2f s%s", phase_name, host.name, r.name, r.status, r.code,
                           r.seconds, f": {detail}" if detail else "")
        status = worst(r.status for r in steps_done)
        detail = "; ".join(f"{r.name}: {r.detail}" for r in steps_done if r.status == FAILED)
        if steps_done and all(r.detail.startswith("no report") for r in steps_done if r.status == FAILED) \
                and status == FAILED:
            detail = f"the {phase_name} script did not run to its end (exit {out.code}): {_tail(out.stderr)}"
        return HostResult(host.name, phase_name, status, out.seconds, detail, steps_done)

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
    parts = [f"{pp.phase.name} on {plan.host_count(pp)} host{'s' * (plan.host_count(pp) != 1)}" for pp in p.phases]
    return f"plan for cluster {p.inventory.cluster.name!r}: {', '.join(parts)} (`invoke cluster.plan` shows every step)"


def _ask(question):
    """Ask on a terminal; without one, refuse rather than wait for an answer that cannot come."""
    if not sys.stdin.isatty():
        raise KubefabError("cluster.up changes hosts and asks first, but there is no terminal to ask on — "
                           "pass --yes to go ahead")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise KubefabError("stopped: nothing was changed")
