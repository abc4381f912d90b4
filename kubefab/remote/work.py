"""What a session does on one host: gather its facts (one probe), or run one phase's steps on it.

A phase's steps run in their order: each run of consecutive host steps as one script over SSH (not even a
connection when the facts show every one done), each Api step from this machine; a failure ends the host's
phase. A failed kubeadm step comes back with the host's kubelet and containerd journals and a hint.
"""

import time
from dataclasses import dataclass, replace
from itertools import groupby

from kubefab import facts, plan
from kubefab.remote import diagnose, script, ssh
from kubefab.steps import FAILED, OK, UNCHANGED, Api, HostResult, StepResult, worst

MIN_TRANSFER_RATE = 256 * 1024   # bytes/s a push may fall to (a slow link to a far data centre) before it times out
PROBE_TIMEOUT = facts.TIMEOUT + 40      # the probe bounds itself; the rest is connecting as the host lets us


@dataclass(frozen=True)
class FactsResult(HostResult):
    facts: object = None        # facts.Facts, when the probe's answer parsed


def probe(session, host):
    """The facts stage on `host`: a FactsResult (ok, with its facts) or a failed HostResult with the cause."""
    text = plan.probe(session.inv, session.bundle, host).encode()
    sent = time.time()
    out = session.ssh.run(host, text, PROBE_TIMEOUT)
    received = time.time()
    session.log.debug("facts %s: exit %s in %.2f s", host.name, out.code, out.seconds)
    if out.code:
        return HostResult(host.name, "facts", FAILED, out.seconds,
                          detail=f"the probe exited {out.code}: {tail(out.stderr or out.stdout)}")
    try:
        parsed = facts.parse(host.name, out.stdout, window=(sent, received))
    except facts.FactsError as e:
        return HostResult(host.name, "facts", FAILED, out.seconds, detail=str(e))
    return FactsResult(host.name, "facts", OK, out.seconds, facts=parsed)


def host_phase(session, phase_name, host, steps):
    """Phase `phase_name`'s `steps` on `host`, in order; its HostResult."""
    done, seconds, broken = (), 0.0, ""
    for remote, group in groupby(steps, lambda s: isinstance(s, Api)):
        results, spent, broken = (_api(session, tuple(group), host) if remote
                                  else _on_host(session, phase_name, host, tuple(group)))
        done, seconds = done + results, seconds + spent
        if worst(r.status for r in results) == FAILED:
            break
    for r in done:
        detail = r.detail if r.status == FAILED else r.detail.partition("\n")[0]
        session.log.debug("%s %s %s: %s, exit %s, %.2f s%s", phase_name, host.name, r.name, r.status, r.code,
                          r.seconds, f": {detail}" if detail else "")
    detail = broken or "; ".join(f"{r.name}: {r.detail}" for r in done if r.status == FAILED)
    return HostResult(host.name, phase_name, worst(r.status for r in done), seconds, detail, done)


def _api(session, steps, host):
    results = ()
    for step in steps:      # a gate the facts show needless (what it waits for did not change) is not waited on
        results += (StepResult(step.name, UNCHANGED, step.done) if step.done else session.api.run(step, host),)
        if results[-1].status == FAILED:
            break
    return results, sum(r.seconds for r in results), ""


def _on_host(session, phase_name, host, steps):
    """(step results, seconds, why the script broke off or '') of `steps` run on `host` as one script."""
    if all(s.done for s in steps):      # the facts show every one satisfied: no need to connect
        return tuple(StepResult(s.name, UNCHANGED, s.done) for s in steps), 0.0, ""
    built = script.build(steps)
    timeout = sum(getattr(s, "timeout", 120) for s in steps) + 60 + built.payload.size // MIN_TRANSFER_RATE
    out = session.ssh.run(host, built.text, timeout, built.payload)
    done = script.parse(steps, out.stdout, built.nonce)
    failed = [r for r in done if r.status == FAILED]
    if failed and all(r.detail.startswith("no report") for r in failed):
        return done, out.seconds, (f"the {phase_name} script did not run to its end (exit {out.code}): "
                                   f"{tail(out.stderr)}")
    return tuple(_explained(session, host, r) for r in done), out.seconds, ""


def _explained(session, host, result):
    """A failed kubeadm step with the host's kubelet and containerd journals and a hint added."""
    if result.status != FAILED or not result.name.startswith("kubeadm"):
        return result
    try:
        journals = session.ssh.run(host, diagnose.JOURNALS.encode(), 60).stdout
    except ssh.Unreachable as e:
        journals = f"(the journals could not be read: {e})"
    return replace(result, detail=f"{result.detail}\n{diagnose.explain(result.detail, journals)}")


def tail(text, lines=5):
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"
