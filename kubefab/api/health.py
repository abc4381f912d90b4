"""`cluster.status`: nodes, control-plane components and certificate expiry, judged in one place.

The control-plane components are the kubelet's static pods, read as their mirror pods in kube-system
(label tier=control-plane), one per component and control-plane node, as kubeadm's own checks do:
componentstatuses is deprecated since 1.19 (and the API-server double does not serve it).
With [cluster.ha] (keepalived or kube-vip) it also names the control plane holding the VIP and, in keepalived
mode, each haproxy's view of the API servers, both read by the fact probe. `evaluate()` and `load_balancer()` are
pure: what is wrong, as sentences.
"""

import datetime
from dataclasses import dataclass

from kubefab import paths, pki
from kubefab.api import kube, nodes as nodes_mod
from kubefab.state import bundle

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
PODS = "/api/v1/namespaces/kube-system/pods"
CONTROL_PLANE_TIMEOUT = 240


@dataclass(frozen=True)
class Component:
    """One control-plane component on one node, as its mirror pod reports it."""

    node: str
    name: str
    ready: bool
    restarts: int
    detail: str


@dataclass(frozen=True)
class Status:
    server: str
    version: str
    nodes: tuple           # NodeView
    components: tuple      # Component
    certs: tuple           # pki.CertInfo
    problems: tuple        # what is wrong: the status exits non-zero when there is any
    warnings: tuple        # worth knowing, not wrong (certificates expiring soon, unknown nodes)
    balancer: object = None    # LoadBalancer, with [cluster.ha] other than external


@dataclass(frozen=True)
class LoadBalancer:
    """HA, from the control planes' facts: who holds the VIP and what each haproxy makes of every API server."""

    vip: str
    mode: str
    holders: tuple         # control planes one of whose interfaces carries the VIP
    backends: tuple        # keepalived: (control plane, ((API server, haproxy's status), ...)) for each one reached
    problems: tuple


def load_balancer(inv, facts_by_host):
    """The LoadBalancer of `inv` from {control plane: Facts, or None when it was not reached}."""
    cps = [h.name for h in inv.control_planes]
    reached = {name: f for name, f in facts_by_host.items() if f is not None}
    holders = tuple(name for name in cps if name in reached and inv.ha.vip in reached[name].addresses)
    problems = [f"{name}: not reached over SSH — its VIP and load balancer are unknown" for name in cps
                if name not in reached]
    if not holders and len(reached) == len(cps):
        problems.append(f"no control plane holds the VIP {inv.ha.vip} — check {_vip_service(inv)} on the control "
                        "planes")
    elif len(holders) > 1:
        problems.append(f"{', '.join(holders)} all hold the VIP {inv.ha.vip} — the control planes do not hear each "
                        f"other: check the network between them ({_vip_service(inv)})")
    backends = ()
    if inv.ha.mode == "keepalived":
        backends = tuple((name, tuple(reached[name].haproxy_servers.items())) for name in cps if name in reached)
        for name, servers in backends:
            if not servers:
                problems.append(f"{name}: haproxy's admin socket {paths.HAPROXY_SOCKET} did not answer — check "
                                "haproxy there (systemctl status haproxy)")
            # "UP 2/3": up, with a failed check or two that rise checks in a row will forget
            problems += [f"{name}'s haproxy: API server {server} is {state} — it fails /readyz (or does not answer)"
                         for server, state in servers if state.split()[0] != "UP"]
    return LoadBalancer(inv.ha.vip, inv.ha.mode, holders, backends, tuple(problems))


def _vip_service(inv):
    return "keepalived (systemctl status keepalived)" if inv.ha.mode == "keepalived" else "kube-vip's static pod"


def components(pods, control_planes):
    """A Component per (control-plane node, component); one without a mirror pod is not ready."""
    found = {}
    for pod in pods:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        name = (pod["metadata"].get("labels") or {}).get("component")
        statuses = status.get("containerStatuses") or ()
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
        found[(spec.get("nodeName"), name)] = Component(
            spec.get("nodeName"), name, ready, sum(s.get("restartCount", 0) for s in statuses),
            "" if ready else f"pod {pod['metadata']['name']} is {status.get('phase', 'Unknown')}, not Ready")
    return tuple(found.get((node, name)) or Component(node, name, False, 0, "no static pod reported")
                 for node in control_planes for name in COMPONENTS)


def evaluate(inv, node_views, comps, certs, warn_days):
    """(problems, warnings) for this inventory's cluster."""
    problems, warnings = [], []
    by_name = {n.name: n for n in node_views}
    for host in inv.hosts:
        node = by_name.get(host.name)
        if node is None:
            problems.append(f"{host.name}: not a node of the cluster — run `invoke node.join --host {host.name}`")
        elif not node.ready:
            problems.append(f"{host.name}: NotReady — {node.reason}")
    known = {h.name for h in inv.hosts}
    warnings += [f"{n.name}: a node the inventory does not list" for n in node_views if n.name not in known]
    problems += [f"{c.node}: {c.name} not ready — {c.detail}" for c in comps if not c.ready]
    for cert in certs:
        if cert.days_left < 0:
            problems.append(f"{cert.file}: expired on {cert.not_after:%Y-%m-%d} — reissue it from the local CA "
                            "and push it to the nodes")
        elif cert.days_left < warn_days:
            warnings.append(f"{cert.file}: expires in {cert.days_left} days ({cert.not_after:%Y-%m-%d})")
    return tuple(problems), tuple(warnings)


def wait_control_plane(api, node, timeout=CONTROL_PLANE_TIMEOUT):
    """Wait until `node`'s etcd, API server, controller-manager and scheduler report Ready (a join's gate)."""
    def check():
        pods = api.get(PODS, {"labelSelector": "tier=control-plane", "fieldSelector": f"spec.nodeName={node}"})
        behind = [f"{c.name}: {c.detail}" for c in components(pods["items"], [node]) if not c.ready]
        return (not behind, "; ".join(behind))
    return kube.until(check, timeout, f"{node}: the control-plane components were not all Ready", api.stop)


def gather(api, inv, version, warn_days=pki.WARN_DAYS, balancer=None):
    """The Status of `inv`'s cluster through `api` (already waited on: `version` is its gitVersion); `balancer`
    (a LoadBalancer) adds its problems."""
    node_views = nodes_mod.list_nodes(api)
    pods = api.get(PODS, {"labelSelector": "tier=control-plane"})["items"]
    comps = components(pods, [h.name for h in inv.control_planes])
    certs = bundle.certificates(inv, warn_days)
    problems, warnings = evaluate(inv, node_views, comps, certs, warn_days)
    return Status(api.server, version, node_views, comps, certs, problems + (balancer.problems if balancer else ()),
                  warnings, balancer)


def text(status, now=None):
    """The status as the user reads it: a nodes table, components, certificates, then what is wrong."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    out = [f"API server {status.server}: {status.version}", "",
           f"{'NAME':<20} {'STATUS':<28} {'ROLES':<22} {'AGE':>6}  {'VERSION':<10} INTERNAL-IP"]
    for n in status.nodes:
        state = ("Ready" if n.ready else "NotReady") + (",SchedulingDisabled" if n.unschedulable else "")
        out.append(f"{n.name:<20} {state:<28} {','.join(n.roles) or '<none>':<22} "
                   f"{nodes_mod.age(n.created, now):>6}  {n.version:<10} {n.internal_ip}")
    out += ["", "control plane"]
    for c in status.components:
        out.append(f"  {c.node:<20} {c.name:<24} {'ok' if c.ready else 'NOT READY'}"
                   + (f" ({c.restarts} restarts)" if c.restarts else ""))
    out += _balancer_text(status.balancer)
    soonest = min(status.certs, key=lambda c: c.not_after, default=None)
    out += ["", f"certificates: {len(status.certs)} in the state dir"
            + (f", soonest expiry {soonest.not_after:%Y-%m-%d} ({soonest.file})" if soonest else "")]
    out += [f"warning: {w}" for w in status.warnings]
    out += [f"problem: {p}" for p in status.problems]
    out.append(f"{len(status.problems)} problem{'s' * (len(status.problems) != 1)}")
    return "\n".join(out)


def _balancer_text(lb):
    if lb is None:
        return []
    out = ["", f"virtual IP {lb.vip} ({lb.mode}): held by {', '.join(lb.holders) or 'no control plane'}"]
    out += [f"  haproxy on {name:<20} " + (", ".join(f"{server} {state}" for server, state in servers)
                                           or "no answer from its admin socket") for name, servers in lb.backends]
    return out
