"""What the user reads: the plan, the run's summary and the certificate table, as plain text."""

import datetime

from kubefab import plan
from kubefab.plan import phases
from kubefab.steps import FAILED, Api, Push


def plan_text(p):
    """The plan as text: cluster, PKI actions, then per phase which hosts, files and commands."""
    inv, b = p.inventory, p.bundle
    c = inv.cluster
    out = [f"kubefab plan for cluster {c.name!r}: Kubernetes {c.kubernetes_version}, {len(inv.hosts)} hosts "
           f"({len(inv.control_planes)} control-plane, {len(inv.non_control_planes)} worker)",
           f"  endpoint https://{inv.endpoint}  pods {c.pod_subnet}  services {c.service_subnet}  cni {c.cni}",
           f"  state {inv.state_dir}",
           *([f"  bootstrap token {b.token_id}.***  discovery CA hash {b.ca_hash}"] if b else []),
           f"  install from {inv.install.source}{f' ({inv.install.directory})' if inv.install.directory else ''}"]
    if p.facts is None and p.workflow.stages:
        out.append("  built offline: no facts, so steps already done on the hosts are listed too; cluster.up "
                   "gathers facts first, checks each step and runs only what is not done")
    out += [f"  warning: {w}" for w in inv.warnings]
    if b and p.workflow.name == "cluster.up":
        first = inv.first_control_plane.name
        out += [f"  note: {name} was taken out by node.remove ({when}) but the inventory still lists it: this plan "
                + (f"runs kubeadm init on it, a second cluster, and cluster.up refuses to — remove its [hosts.{name}] "
                   "table (the next control plane becomes the first)" if name == first else
                   f"joins it again — remove its [hosts.{name}] table unless you mean to") for name, when in b.removed]
    if b:           # a workflow that prepares no bundle (cluster.reset) has no PKI to show
        out += ["", "PKI and kubeconfigs (local)"] + _actions(b.actions)
    for name in p.stages:
        out += ["", f"{name}: {phases.STAGES[name]} — {'from the facts gathered' if p.facts else 'before the plan'}"]
    for number, pp in enumerate(p.phases, 1):
        out += ["", f"{number}. {pp.phase.name}: {pp.phase.title}{_order(pp)}"]
        if not pp.batches:
            out.append("   (no hosts)")
        for index, batch in enumerate(pp.batches, 1):
            if len(pp.batches) > 1:
                out.append(f"   batch {index}: {', '.join(hs.host.name for hs in batch)}")
            for hs in batch:
                out += _host_steps(hs)
    return "\n".join(out)


def _order(pp):
    hosts = plan.host_count(pp)
    count = f"{hosts} host{'s' * (hosts != 1)}"
    if pp.phase.order == "parallel":
        return f" — {count} at once"
    if pp.phase.order == "batches":
        return f" — {count} in {len(pp.batches)} batch{'es' * (len(pp.batches) != 1)}, one after another"
    return " — one host at a time" if hosts > 1 else ""


def _actions(actions):
    counts = {}
    for a in actions:
        counts[a.what] = counts.get(a.what, 0) + 1
    lines = [f"   {', '.join(f'{n} {w}' for w, n in sorted(counts.items()))}"]
    lines += [f"   {a.what:<9} {a.name}{f' @{a.node}' if a.node else ''}: {a.reason}"
              for a in actions if a.what != "kept"]
    return lines


def _host_steps(hs):
    lines = [f"   {hs.host.name} ({hs.host.address})"]
    for step in hs.steps:
        done = f"  [done: {step.done}]" if step.done else ""
        if isinstance(step, Api):
            lines.append(f"     from this machine: {step.what}")
        elif isinstance(step, Push):
            kept = f" ({step.in_place} more already in place)" if step.in_place and step.files else ""
            lines.append(f"     push {len(step.files)} files, each only when it differs{kept}:{done}")
            lines += [f"       {f.mode:04o} {f.size:>7}  {f.path}" for f in step.files]
        else:
            first = step.guard and "  (checked first)"
            lines.append(f"     $ {step.display()}{first or ''}{done}")
    return lines


def summary(results, seconds):
    """Hosts x phases, each cell the status and seconds; then every failed host with its cause."""
    phase_names = list(dict.fromkeys(r.phase for r in results))
    hosts = list(dict.fromkeys(r.host for r in results))
    cells = {(r.host, r.phase): r for r in results}
    width = max([len(h) for h in hosts] + [4])
    cols = {p: max(len(p), 16) for p in phase_names}
    out = [f"{'host':<{width}}  " + "  ".join(f"{p:<{cols[p]}}" for p in phase_names)]
    for h in hosts:
        out.append(f"{h:<{width}}  " + "  ".join(f"{_cell(cells.get((h, p))):<{cols[p]}}" for p in phase_names))
    failed = [r for r in results if r.status == FAILED]
    out += [f"FAILED {r.host} {r.phase}: {r.detail}".replace("\n", "\n    ") for r in failed]
    hosts_failed = len({r.host for r in failed})
    out.append(f"{len(hosts)} hosts, {hosts_failed} failed, {seconds:.1f} s")
    return "\n".join(out)


def _cell(r):
    if r is None:
        return "-"
    return f"{r.status} {r.seconds:.1f}s" if r.seconds else r.status


def kubelet_certs(facts, warn_days=30, at=None):
    """Each node's kubelet client certificate by expiry, from its facts ({host: Facts}; None: unreachable)."""
    at = at or datetime.datetime.now(datetime.timezone.utc)
    out = [f"{'expires (UTC)':<17} {'days':>5}  kubelet client certificate (/var/lib/kubelet/pki, the kubelet "
           "rotates it)"]
    known = sorted((f.kubelet_client_expiry, host) for host, f in facts.items() if f and f.kubelet_client_expiry)
    for expiry, host in known:
        days = (expiry - at).days
        out.append(f"{expiry:%Y-%m-%d %H:%M} {days:>5}  {host}" + ("  <-- WARNING: the kubelet has not rotated it"
                                                                  if days < warn_days else ""))
    out += [f"{'-':<17} {'-':>5}  {host}: "
            + ("no facts (unreachable)" if f is None else "no client certificate (not a node)")
            for host, f in sorted(facts.items()) if not (f and f.kubelet_client_expiry)]
    return "\n".join(out)


def certs(infos, warn_days=30, unreadable=()):
    """Every certificate, soonest expiry first, with a warning mark under `warn_days`; then each file that could
    not be read (bundle.Unreadable)."""
    out = [f"{'expires (UTC)':<17} {'days':>5}  {'file':<54} {'subject':<52} issuer / SANs"]
    for c in infos:
        mark = "  <-- WARNING: renew soon" if c.days_left < warn_days else ""
        out.append(f"{c.not_after:%Y-%m-%d %H:%M} {c.days_left:>5}  {c.file:<54} {c.subject:<52} "
                   f"{c.issuer}{mark}")
        if c.sans:
            out.append(f"{'':<24}SANs: {', '.join(c.sans)}")
    expiring = sum(c.days_left < warn_days for c in infos)
    out.append(f"{len(infos)} certificates; {expiring} expire within {warn_days} days")
    out += [f"error: {u.file}: {u.why} — {u.fix}" for u in unreadable]
    return "\n".join(out)
