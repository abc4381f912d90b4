"""What the user reads: the plan and the certificate table, as plain text."""

from kubefab.phases import Api, Push


def plan(p):
    """The plan as text: cluster, PKI actions, then per phase which hosts, files and commands."""
    inv = p.inventory
    c = inv.cluster
    out = [f"kubefab plan for cluster {c.name!r}: Kubernetes {c.kubernetes_version}, {len(inv.hosts)} hosts "
           f"({len(inv.control_planes)} control-plane, {len(inv.non_control_planes)} worker)",
           f"  endpoint https://{inv.endpoint}  pods {c.pod_subnet}  services {c.service_subnet}  cni {c.cni}",
           f"  state {inv.state_dir}",
           f"  bootstrap token {p.token_id}.***  discovery CA hash {p.ca_hash}"]
    out += [f"  warning: {w}" for w in inv.warnings]
    out += ["", "PKI and kubeconfigs (local)"] + _actions(p.actions)
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
    hosts = sum(len(b) for b in pp.batches)
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
        if isinstance(step, Push):
            lines.append(f"     push {len(step.files)} files:")
            lines += [f"       {f.mode:04o} {f.size:>7}  {f.path}" for f in step.files]
        elif isinstance(step, Api):
            lines.append(f"     api: {step.what}")
        else:
            lines.append(f"     $ {'sudo ' if step.sudo and hs.host.ssh.sudo else ''}{step.display()}")
    return lines


def certs(infos, warn_days=30):
    """Every certificate, soonest expiry first, with a warning mark under `warn_days`."""
    out = [f"{'expires (UTC)':<17} {'days':>5}  {'file':<54} {'subject':<52} issuer / SANs"]
    for c in infos:
        mark = "  <-- WARNING: renew soon" if c.days_left < warn_days else ""
        out.append(f"{c.not_after:%Y-%m-%d %H:%M} {c.days_left:>5}  {c.file:<54} {c.subject:<52} "
                   f"{c.issuer}{mark}")
        if c.sans:
            out.append(f"{'':<24}SANs: {', '.join(c.sans)}")
    expiring = sum(c.days_left < warn_days for c in infos)
    out.append(f"{len(infos)} certificates; {expiring} expire within {warn_days} days")
    return "\n".join(out)
