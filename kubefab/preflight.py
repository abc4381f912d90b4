"""Preflight: checks as data, each a pure function of (inventory, host, facts of all hosts).

Minimal stand-in for the preflight module of issue 8 (helper h8b writes the full one) with the
interface the workflow uses: `evaluate(...) -> tuple of Finding`, `blocking(findings)`, `table(...)`.
"""

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from kubefab.errors import KubefabError

OK, WARNING, ERROR = "ok", "warning", "error"
ALL = "all"


@dataclass(frozen=True)
class Check:
    name: str
    severity: str
    roles: tuple            # roles it applies to; () = every host
    test: Callable          # (inv, host, facts of the host, facts of all hosts, now) -> reason it fails, or ""
    fix: str


@dataclass(frozen=True)
class Finding:
    host: str
    check: str
    level: str              # ok | warning | error
    reason: str = ""
    fix: str = ""
    ignored: bool = False


def _unique(field):
    def test(inv, host, f, all_facts, now):
        value = getattr(f, field)
        others = sorted(h for h, o in all_facts.items() if h != host.name and getattr(o, field) == value)
        return f"{field.replace('_', '-')} {value!r} is also on {', '.join(others)}" if others else ""
    return test


def _port(port):
    def test(inv, host, f, all_facts, now):
        return f"port {port} is in use" if port in f.ports else ""
    return test


def _foreign_kubernetes_files(inv, host, f, all_facts, now):
    # a control plane's ca.crt is kubefab's own push: only a worker must not have one before it joins
    found = [p for p in f.kubernetes_files if not host.is_control_plane or not p.endswith("/pki/ca.crt")]
    return "already holds " + ", ".join(found) if found else ""


CHECKS = (
    Check("Hostname", ERROR, (), _unique("hostname"), "give every host its own hostname"),
    Check("MachineID", ERROR, (), _unique("machine_id"), "regenerate /etc/machine-id on cloned hosts"),
    Check("ClockSkew", ERROR, (), lambda inv, h, f, a, now: f"clock is {f.clock - now:+.0f} s off this machine"
          if abs(f.clock - now) > 10 else "", "run chrony or another NTP client"),
    Check("Swap", WARNING, (), lambda inv, h, f, a, now: f"{f.swaps} swap device(s) on" if f.swaps else "",
          "the runtime phase turns swap off"),
    Check("NumCPU", ERROR, ("control-plane",), lambda inv, h, f, a, now: f"{f.cpus} CPU(s), 2 needed"
          if f.cpus < 2 else "", "give the control plane 2 CPUs"),
    Check("Mem", ERROR, ("control-plane",), lambda inv, h, f, a, now: f"{f.mem_mb} MB memory, 1700 needed"
          if f.mem_mb < 1700 else "", "give the control plane 1700 MB"),
    Check("Port-6443", ERROR, ("control-plane",), _port(6443), "stop what listens there"),
    Check("Port-10250", ERROR, (), _port(10250), "stop what listens there"),
    Check("DirAvailable--etc-kubernetes", ERROR, (), _foreign_kubernetes_files, "run kubeadm reset on it first"),
)
NAMES = tuple(c.name for c in CHECKS)


def evaluate(inv, facts_by_host, ignore=(), now=None):
    """Every check on every host that has facts; `ignore` names checks (or 'all') whose errors do not stop the run."""
    unknown = [n for n in ignore if n != ALL and n not in NAMES]
    if unknown:
        raise KubefabError(f"--ignore {', '.join(unknown)}: no such check — checks are: {', '.join(NAMES)}")
    now = time.time() if now is None else now
    out = []
    for host in inv.hosts:
        f = facts_by_host.get(host.name)
        if f is None:
            continue
        for c in CHECKS:
            if c.roles and not set(c.roles) & set(host.roles):
                continue
            reason = c.test(inv, host, f, facts_by_host, now)
            out.append(Finding(host.name, c.name, c.severity if reason else OK, reason, c.fix if reason else "",
                               ignored=bool(reason) and (ALL in ignore or c.name in ignore)))
    return tuple(out)


def blocking(findings):
    """The errors that stop the run: not ignored."""
    return tuple(f for f in findings if f.level == ERROR and not f.ignored)


def table(findings):
    """One row per host, one column per check with a failing cell somewhere; then each failure spelled out."""
    hosts = list(dict.fromkeys(f.host for f in findings))
    bad = [f for f in findings if f.level != OK]
    checks = [c for c in NAMES if any(f.check == c for f in bad)]
    if not findings:
        return "preflight: no host has facts"
    cells = {(f.host, f.check): f for f in findings}
    width = max(len(h) for h in hosts)
    if not checks:
        return f"preflight: every check passed on all {len(hosts)} hosts"
    rows = [f"{'host':<{width}}  " + "  ".join(checks)]
    for h in hosts:
        rows.append(f"{h:<{width}}  " + "  ".join(f"{_cell(cells.get((h, c))):<{len(c)}}" for c in checks))
    rows += [f"{f.level.upper()}{' (ignored)' if f.ignored else ''} {f.host} {f.check}: {f.reason} — {f.fix}"
             for f in bad]
    counts = Counter(f.level for f in bad)
    rows.append(f"preflight: {counts[ERROR]} error(s), {counts[WARNING]} warning(s) on {len(hosts)} hosts")
    return "\n".join(rows)


def _cell(f):
    return "-" if f is None else "ok" if f.level == OK else f.level.upper() + ("*" if f.ignored else "")
