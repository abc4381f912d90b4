"""Nodes as the API reports them, and the inventory's labels and taints brought onto them.

`view()` is pure: a Node object in, a NodeView out. `reconcile()` adds the labels the kubelet may not
set itself (kubeadm.kubelet_may_set) and makes the taints kubefab manages match the inventory: the
host's own taints, and kubeadm's control-plane taint, which a single-node cluster has removed.
What kubefab applied is recorded on the Node (annotations APPLIED_LABELS, APPLIED_TAINTS: the inventory's
label and taint keys), so a label or taint the inventory no longer lists is removed again, while those
anyone else set are left alone.
"""

import datetime
from dataclasses import dataclass

from kubefab.api import kube
from kubefab.components import kubeadm

ROLE_PREFIX = "node-role.kubernetes.io/"
CONTROL_PLANE_KEY = kubeadm.CONTROL_PLANE_TAINT.split(":")[0]
NODES = "/api/v1/nodes"
# the inventory's label keys (those the kubelet set at registration included) and taint keys, as last applied
APPLIED_LABELS, APPLIED_TAINTS = "kubefab.io/applied-labels", "kubefab.io/applied-taints"


@dataclass(frozen=True)
class NodeView:
    """One Node: what `kubectl get nodes -o wide` shows, plus why it is not Ready."""

    name: str
    roles: tuple
    version: str
    ready: bool
    reason: str              # the Ready condition's message when not Ready
    created: datetime.datetime
    internal_ip: str
    unschedulable: bool
    labels: dict
    taints: tuple            # of {key, value?, effect} dicts, as the API has them
    pods: str = ""           # allocatable pods: the kubelet's maxPods


@dataclass(frozen=True)
class NodeChange:
    """What reconcile() did on one host's Node: the changes made, or why none could be."""

    host: str
    changes: tuple
    missing: bool = False

    def __str__(self):
        if self.missing:
            return f"{self.host}: not registered — join it first"
        return f"{self.host}: {'; '.join(self.changes)}" if self.changes else f"{self.host}: unchanged"


def view(obj):
    """The NodeView of Node object `obj` (a dict as the API returns it)."""
    meta, status = obj["metadata"], obj.get("status") or {}
    labels = meta.get("labels") or {}
    ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), {})
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
    return NodeView(
        name=meta["name"], roles=tuple(sorted(k[len(ROLE_PREFIX):] for k in labels if k.startswith(ROLE_PREFIX))),
        version=(status.get("nodeInfo") or {}).get("kubeletVersion", ""), ready=ready.get("status") == "True",
        reason="" if ready.get("status") == "True" else ready.get("message", "no Ready condition reported yet"),
        created=_time(meta.get("creationTimestamp")), internal_ip=addresses.get("InternalIP", ""),
        unschedulable=bool((obj.get("spec") or {}).get("unschedulable")), labels=labels,
        taints=tuple((obj.get("spec") or {}).get("taints") or ()),
        pods=(status.get("allocatable") or {}).get("pods", ""))


def _time(text):
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def age(created, now):
    """kubectl's short age: 45s, 12m, 5h, 3d."""
    if created is None:
        return "<unknown>"
    seconds = int((now - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def list_nodes(api):
    """Every Node of the cluster as a NodeView, by name."""
    return tuple(sorted((view(n) for n in api.get(NODES)["items"]), key=lambda n: n.name))


# -- the inventory's labels and taints ------------------------------------------------------------

def wanted_labels(host):
    """The host's labels that only the API can set (the kubelet sets the others at registration)."""
    return {k: v for k, v in host.labels.items() if not kubeadm.kubelet_may_set(k)}


def wanted_taints(inv, host):
    """The taints `host` must carry: kubeadm.taints(), without the control-plane taint on a single-node cluster."""
    taints = kubeadm.taints(host)
    if len(inv.hosts) == 1:
        taints = [t for t in taints if t["key"] != CONTROL_PLANE_KEY]
    return taints


def node_patch(obj, labels, taints, listed=None):
    """(merge patch, changes) that bring Node `obj` to `labels` and the taints kubefab manages, remove the labels
    and taints it applied before that the inventory no longer lists, and record what it now applies (`listed`: the
    inventory's label keys, default `labels`' keys); ({}, ()) if there is nothing to do."""
    meta = obj["metadata"]
    have_labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    listed = set(labels if listed is None else listed)
    set_labels = {k: v for k, v in labels.items() if have_labels.get(k) != v}
    dropped = sorted(k for k in _keys(notes, APPLIED_LABELS) if k not in listed and k in have_labels)
    have = list((obj.get("spec") or {}).get("taints") or ())
    managed = {t["key"] for t in taints} | {CONTROL_PLANE_KEY} | _keys(notes, APPLIED_TAINTS)
    kept = [t for t in have if t["key"] not in managed or _plain(t) in map(_plain, taints)]
    added = [t for t in taints if _plain(t) not in map(_plain, have)]
    removed = [t for t in have if t not in kept]
    changes = tuple([f"label {k}={v}" for k, v in set_labels.items()] + [f"unlabel {k}" for k in dropped]
                    + [f"taint {_text(t)}" for t in added] + [f"untaint {_text(t)}" for t in removed])
    record = {APPLIED_LABELS: ",".join(sorted(listed)),
              APPLIED_TAINTS: ",".join(sorted({t["key"] for t in taints}))}
    record = {k: v for k, v in record.items() if notes.get(k, "") != v}
    patch = {}
    if set_labels or dropped or record:
        patch["metadata"] = {k: v for k, v in (("labels", {**set_labels, **dict.fromkeys(dropped)}),
                                               ("annotations", record)) if v}
    if added or removed:
        patch["spec"] = {"taints": kept + added}
    return patch, changes


def _keys(annotations, name):
    return {k for k in annotations.get(name, "").split(",") if k}


def _plain(taint):
    return (taint["key"], taint.get("value", ""), taint["effect"])


def _text(taint):
    return f"{taint['key']}{'=' + taint['value'] if taint.get('value') else ''}:{taint['effect']}"


def reconcile(api, inv, hosts=None):
    """Bring each host's Node (all hosts by default) to the inventory's labels and taints; a NodeChange each."""
    return tuple(reconcile_one(api, inv, host) for host in hosts or inv.hosts)


def reconcile_one(api, inv, host, read=None, attempts=3):
    """Bring `host`'s Node to the inventory's labels and taints, starting from Node object `read` when the caller
    has just read it (re-read after a conflict); its NodeChange."""
    path = f"{NODES}/{host.name}"
    for attempt in range(attempts):
        try:
            obj = read if attempt == 0 and read is not None else api.find(path)
            if obj is None:
                return NodeChange(host.name, (), missing=True)
            patch, changes = node_patch(obj, wanted_labels(host), wanted_taints(inv, host), host.labels)
            if not patch:
                return NodeChange(host.name, changes)
            # the resourceVersion makes the taint list a compare-and-swap: the node lifecycle
            # controller changes taints too (not-ready, unreachable), and its change must not be lost
            patch.setdefault("metadata", {})["resourceVersion"] = obj["metadata"]["resourceVersion"]
            api.patch(path, patch, kube.MERGE)
            return NodeChange(host.name, changes)
        except kube.Unreachable:        # a busy API server; a patch may have landed: the next read tells
            if attempt == attempts - 1:
                raise
        except kube.ApiError as e:      # 409: someone changed the node since it was read
            if e.status != 409 or attempt == attempts - 1:
                raise


# -- waiting --------------------------------------------------------------------------------------

NODE_TIMEOUT = 300


def wait_node(api, name, ready=True, timeout=NODE_TIMEOUT, since=None):
    """Wait until Node `name` is registered and, when `ready`, Ready — on a Ready condition whose lastHeartbeatTime
    is `since` (a datetime: a kubelet's start) or later, when given; the Node object of the read that showed it
    (so that its labels and taints need no second read)."""
    def check():
        obj = api.find(f"{NODES}/{name}")
        if obj is None:
            return False, f"{name} not registered"
        if ready and not view(obj).ready:
            return False, f"{name} NotReady ({view(obj).reason})"
        posted = heartbeat(obj)
        if ready and since is not None and (posted is None or posted < since):
            return False, (f"{name}: its kubelet, started at {since:%Y-%m-%dT%H:%M:%SZ}, has posted no Ready "
                           f"condition yet (the last one is from {f'{posted:%H:%M:%S}' if posted else 'no time'})")
        return True, obj
    return kube.until(check, timeout, f"node {name} {'was not Ready' if ready else 'did not register'}", api.stop)


def heartbeat(obj):
    """When the kubelet last posted the Node's Ready condition (its lastHeartbeatTime), or None."""
    ready = next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), {})
    try:
        return _time(ready.get("lastHeartbeatTime"))
    except ValueError:
        return None


def wait_ready(api, names, timeout=NODE_TIMEOUT):
    """Wait until every Node in `names` is registered and Ready; their NodeViews, or a Timeout naming the rest."""
    def check():
        # each Node by name: verify waits for every host at once, and a list per host is quadratic in the fleet
        found = {name: view(obj) for name in names for obj in [api.find(f"{NODES}/{name}")] if obj is not None}
        behind = [f"{name} not registered" if name not in found else f"{name} NotReady ({found[name].reason})"
                  for name in names if not (name in found and found[name].ready)]
        return (True, tuple(found[n] for n in names)) if not behind else (False, "; ".join(behind))
    return kube.until(check, timeout, f"nodes {', '.join(names)} were not all Ready", api.stop)
