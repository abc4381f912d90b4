"""Preflight: kubeadm's checks and kubefab's whole-cluster ones, a table of pure functions of every host's facts.

`evaluate(inv, facts_by_host, ...)` gives one Finding per host and check: ok, done (already true of a
node of this cluster), fix (the runtime phase will make it so), warning or error. Errors stop the run
unless ignored by name (`--ignore CHECK`, `all`); `table(findings)` is the host x check report.
"""

import difflib
import textwrap
from dataclasses import dataclass
from types import MappingProxyType

from kubefab.errors import KubefabError
from kubefab.preflight.checks import (CHECKS, DONE, ERROR, FIX, NAMES, OK, ROLES, THIS_CLUSTER, WARNING, Subject,
                                      membership)


@dataclass(frozen=True)
class Finding:
    host: str
    check: str
    status: str
    reason: str = ""
    fix: str = ""
    ignored: bool = False          # an error the user chose to ignore, reported as a warning


# -- evaluation -----------------------------------------------------------------------------------

def resolve_ignore(names):
    """The lowercased check names to ignore; "all" ignores every one that may be ignored. An unknown name, or
    one that cannot be ignored, is an error."""
    known = {n.lower(): n for n in NAMES}
    fixed = {c.name.lower(): c for c in CHECKS if c.not_ignorable}
    wanted = {n.strip().lower() for n in names if n.strip()}
    for name in sorted(wanted - set(known) - {"all"}):
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {known[close[0]]!r}?" if close else f"checks are: {', '.join(NAMES)}"
        raise KubefabError(f"--ignore {name}: no preflight check of that name — {hint}")
    for name in sorted(wanted & set(fixed)):
        raise KubefabError(f"--ignore {fixed[name].name}: this check cannot be ignored: {fixed[name].not_ignorable}")
    return frozenset(set(known) - set(fixed)) if "all" in wanted else frozenset(wanted)


def evaluate(inv, facts_by_host, *, failures=None, ca_sha256="", ignore=(), prepared=True):
    """One Finding per host and applicable check, hosts in inventory order, checks in table order.

    facts_by_host: host name -> Facts for every host probed; failures: host name -> why it has no
    facts (unreachable, bad probe output), reported as check Reachable. ca_sha256: this cluster's CA
    (state.ca_fingerprint). prepared: the runtime phase runs before kubeadm, so what it repairs is FIX,
    not an error. Whole-cluster checks compare only the hosts probed.
    """
    ignored = resolve_ignore(ignore)
    everyone = MappingProxyType(dict(facts_by_host))
    failures = failures or {}
    out = []
    for host in inv.hosts:
        if host.name in failures:
            out.append(_ignorable(Finding(host.name, "Reachable", ERROR, failures[host.name],
                                          "check the address, sshd and the [ssh] settings"), ignored))
            continue
        f = everyone.get(host.name)
        if f is None:
            continue
        s = Subject(inv, host, f, everyone, ca_sha256, membership(inv, host, f, ca_sha256))
        out += [_ignorable(_judge(c, s, prepared), ignored) for c in CHECKS if _applies(c, inv, host)]
    return tuple(out)


def _applies(check, inv, host):
    return ROLES[check.roles](inv, host) and check.when(inv)


def _judge(check, s, prepared):
    if check.node_fails and s.member == THIS_CLUSTER:
        return Finding(s.host.name, check.name, DONE, "a node of this cluster already")
    outcome = check.test(s)
    if outcome is None:
        return Finding(s.host.name, check.name, OK)
    if not outcome.status and check.runtime and prepared:
        return Finding(s.host.name, check.name, FIX, outcome.reason, f"the runtime phase {check.runtime}")
    return Finding(s.host.name, check.name, outcome.status or check.severity, outcome.reason, outcome.fix)


def _ignorable(finding, ignored):
    if finding.status == ERROR and finding.check.lower() in ignored:
        return Finding(finding.host, finding.check, WARNING, finding.reason, finding.fix, ignored=True)
    return finding


def errors(findings):
    """The findings that stop the run."""
    return tuple(f for f in findings if f.status == ERROR)


# -- the report -----------------------------------------------------------------------------------

LEGEND_WIDTH = 110
MARKS = {OK: ".", DONE: "done", FIX: "fix", WARNING: "warn", ERROR: "ERROR"}
ORDER = (ERROR, WARNING, FIX, DONE)


def table(findings):
    """The host x check table: a row per host with anything to report, a column per check that is not ok
    somewhere ("-": not checked there), then each such cell spelled out, alike ones merged."""
    hosts = list(dict.fromkeys(f.host for f in findings))
    cells = {(f.host, f.check): f for f in findings}
    failing = [f for f in findings if f.status != OK]
    failed_checks, failed_hosts = {f.check for f in failing}, {f.host for f in failing}
    flagged = [n for n in NAMES if n in failed_checks]
    counts = {s: sum(f.status == s for f in findings) for s in ORDER}
    out = [f"preflight: {len(hosts)} hosts, " + ", ".join(f"{n} {_plural(s, n)}" for s, n in counts.items())]
    if not flagged:
        return "\n".join(out + ["every check passed on every host"])
    rows = [h for h in hosts if h in failed_hosts]
    width = max(len(h) for h in rows) + 2
    out.append(" " * width + "".join(f"{i:>6}" for i in range(1, len(flagged) + 1)))
    for h in rows:
        marks = (_mark(cells[(h, n)]) if (h, n) in cells else "-" for n in flagged)
        out.append(f"{h:<{width}}" + "".join(f"{m:>6}" for m in marks))
    if len(rows) < len(hosts):
        out.append(f"({len(hosts) - len(rows)} other hosts: every check passed)")
    out += textwrap.wrap("  ".join(f"{i}={n}" for i, n in enumerate(flagged, 1)), LEGEND_WIDTH,
                         break_long_words=False, break_on_hyphens=False)
    return "\n".join(out + _details(findings))


def _mark(finding):
    return "ign" if finding.ignored else MARKS[finding.status]


def _plural(status, n):
    word = {ERROR: "error", WARNING: "warning", FIX: "to fix in the runtime phase", DONE: "done"}[status]
    return word + ("s" if n != 1 and status in (ERROR, WARNING) else "")


def _details(findings):
    groups = {}
    for f in findings:
        if f.status != OK:
            groups.setdefault((ORDER.index(f.status), NAMES.index(f.check), f.reason, f.fix, f.ignored), []).append(f)
    lines = [""]
    for (rank, _, reason, fix, ignored), alike in sorted(groups.items()):
        hosts = ", ".join(f.host for f in alike)
        label = "ignored error" if ignored else ORDER[rank]
        lines.append(f"{label} {alike[0].check} on {hosts}: {reason}" + (f" — {fix}" if fix else ""))
    return lines
