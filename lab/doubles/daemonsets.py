"""The controller-manager's daemonset controller and the garbage collection of its pods, as far as the
doubles need them: one Pod per DaemonSet and eligible Node, bound to that node.

Eligibility is the daemonset controller's predicate (pkg/controller/daemon: nodeSelector, required
node affinity, taints of effect NoSchedule/NoExecute against the pod's tolerations plus those the
controller adds to every daemon pod, util.AddOrUpdateDaemonPodTolerations). The real controller sets
a node affinity on metadata.name and lets the scheduler bind the pod; the doubles have no scheduler, so
the pod is created with that affinity and its spec.nodeName set at once. Pods whose DaemonSet is gone
are deleted (the garbage collector's background propagation), as are pods bound to a Node that no
longer exists (podgc).

A changed pod template (a new `controller-revision-hash`, e.g. `kubectl rollout restart`'s
`kubectl.kubernetes.io/restartedAt` annotation) is rolled out as update.go's rollingUpdate does without surge:
a pass that created pods does nothing else (the controller waits for its expectations), otherwise old pods that
are not available are deleted, and old available ones only while fewer than maxUnavailable nodes are unavailable
(a node without a pod, or with a new pod not available yet, counts as unavailable); the next passes create their
replacements. The status is updateDaemonSetStatus's: per node that should run the pod, its oldest pod counts."""

import datetime
import hashlib
import json
import math


DAEMONSETS = "/apis/apps/v1/daemonsets"
# util.AddOrUpdateDaemonPodTolerations: what every daemon pod tolerates, whatever its spec says
AUTO_TOLERATIONS = (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                    ("node.kubernetes.io/unschedulable", "NoSchedule"))
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def tolerations(spec):
    added = AUTO_TOLERATIONS + ((HOST_NETWORK_TOLERATION,) if spec.get("hostNetwork") else ())
    own = list(spec.get("tolerations") or [])
    return own + [{"key": k, "operator": "Exists", "effect": e} for k, e in added
                  if {"key": k, "operator": "Exists", "effect": e} not in own]


def tolerates(toleration, taint):
    """v1 Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return toleration.get("value", "") == taint.get("value", "")


def _expression(expr, value, present):
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def _term(term, node):
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    return all(_expression(e, labels.get(e.get("key")), e.get("key") in labels)
               for e in term.get("matchExpressions") or []) and \
        all(_expression(e, fields.get(e.get("key")), e.get("key") in fields) for e in term.get("matchFields") or [])


def should_run(spec, node):
    """Whether a pod of this template belongs on `node` (selector, affinity, taints)."""
    return unfit(spec, node, tolerations(spec)) is None


def unfit(spec, node, tols):
    """Why a pod of `spec` tolerating `tols` cannot go on `node`, in the scheduler's words; None when it can."""
    labels = node["metadata"].get("labels") or {}
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()) or \
            (terms is not None and not any(_term(t, node) for t in terms)):
        return "didn't match Pod's node affinity/selector"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tols):
            return f"had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    return None


def revision(ds):
    """The template's hash: the `controller-revision-hash` of the pods made from it (the real one is an FNV hash)."""
    return hashlib.sha256(json.dumps(ds["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]


def pod_for(ds, node_name):
    """The Pod the controller creates for `ds` on `node_name` (util.CreatePodTemplate + the scheduler's bind)."""
    template = ds["spec"]["template"]
    spec = json.loads(json.dumps(template.get("spec") or {}))
    spec["tolerations"] = tolerations(spec)
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    spec["nodeName"] = node_name
    meta = ds["metadata"]
    labels = dict((template.get("metadata") or {}).get("labels") or {},
                  **{"controller-revision-hash": revision(ds),
                     "pod-template-generation": str(meta.get("generation", 1))})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"], "labels": labels,
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": spec}


def _owner(pod):
    return next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def _revision_of(pod):
    return (pod["metadata"].get("labels") or {}).get("controller-revision-hash")


def _ready(pod):
    return _ready_since(pod) is not None


def _ready_since(pod):
    """When the pod's Ready condition last turned True, or None while it is not Ready."""
    cond = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
    if cond.get("status") != "True":
        return None
    when = cond.get("lastTransitionTime")
    return datetime.datetime.fromisoformat(when.replace("Z", "+00:00")) if when else datetime.datetime.min.replace(
        tzinfo=datetime.timezone.utc)


def available(pod, min_ready, now):
    """podutil.IsPodAvailable: Ready for at least minReadySeconds."""
    since = _ready_since(pod)
    return since is not None and (not min_ready or since + datetime.timedelta(seconds=min_ready) <= now)


def max_unavailable(ds, desired):
    """updatedDesiredNodeCounts' maxUnavailable: RollingUpdate's, a percentage of the desired nodes rounded up; 1
    when it comes to 0 (with no surge, the double's only kind of rollout)."""
    strategy = ds["spec"].get("updateStrategy") or {}
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 0)
    count = math.ceil(int(value[:-1]) * desired / 100) if isinstance(value, str) else int(value)
    return count or (1 if desired else 0)


def rollout(ds, wanted, owned, now):
    """The names of the old pods rollingUpdate deletes now (maxSurge 0): the unavailable ones, then available ones
    while fewer than maxUnavailable of the nodes that should run the pod are unavailable."""
    if ((ds["spec"].get("updateStrategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
        return []
    current, min_ready = revision(ds), ds["spec"].get("minReadySeconds", 0)
    on = {name: [p for p in owned if p["spec"]["nodeName"] == name] for name in wanted}
    unavailable, replace, candidates = 0, [], []
    for name in wanted:
        new = [p for p in on[name] if _revision_of(p) == current]
        old = [p for p in on[name] if p not in new]
        if len(new) > 1 or len(old) > 1 or bool(new) == bool(old):
            unavailable += 1        # nothing there, or the pod loop still to sort it out
        elif new:
            unavailable += not available(new[0], min_ready, now)
        elif not available(old[0], min_ready, now):
            replace.append(old[0]["metadata"]["name"])
            unavailable += 1
        else:
            candidates.append(old[0]["metadata"]["name"])
    return replace + candidates[:max(0, max_unavailable(ds, len(wanted)) - unavailable)]


def sync(client):
    """One pass of the daemonset controller, podgc and the garbage collector over every DaemonSet."""
    daemonsets = client.get(DAEMONSETS).get("items", [])
    nodes = {n["metadata"]["name"]: n for n in client.get("/api/v1/nodes").get("items", [])}
    pods = client.get("/api/v1/pods").get("items", [])
    uids = {ds["metadata"]["uid"] for ds in daemonsets}
    for pod in pods:
        owner, node = _owner(pod) or {}, pod.get("spec", {}).get("nodeName")
        if (owner.get("kind") == "DaemonSet" and owner.get("uid") not in uids) or (node and node not in nodes):
            meta = pod["metadata"]
            client.delete_if_present(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
    now = datetime.datetime.now(datetime.timezone.utc)
    for ds in daemonsets:
        owned = [p for p in pods if (_owner(p) or {}).get("uid") == ds["metadata"]["uid"]
                 and p["spec"].get("nodeName") in nodes]
        placed = {p["spec"]["nodeName"] for p in owned}
        wanted = [name for name, node in sorted(nodes.items()) if should_run(ds["spec"]["template"].get("spec") or {},
                                                                             node)]
        namespace = ds["metadata"]["namespace"]
        made = [client.create(f"/api/v1/namespaces/{namespace}/pods", pod_for(ds, name))
                for name in wanted if name not in placed]
        gone = set() if made else set(rollout(ds, wanted, owned, now))
        for name in sorted(gone):
            client.delete_if_present(f"/api/v1/namespaces/{namespace}/pods/{name}")
        update_status(client, ds, wanted, [p for p in owned + made if p["metadata"]["name"] not in gone], now)


def update_status(client, ds, wanted, owned, now):
    """updateDaemonSetStatus: per node that should run the pod, its oldest pod counts (scheduled, ready,
    available, updated); a pod on a node that should not run it is misscheduled."""
    current, min_ready = revision(ds), ds["spec"].get("minReadySeconds", 0)
    counts = dict.fromkeys(("current", "ready", "available", "updated"), 0)
    for name in wanted:
        here = sorted((p for p in owned if p["spec"]["nodeName"] == name),
                      key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        if not here:
            continue
        oldest = here[0]
        counts["current"] += 1
        counts["ready"] += _ready(oldest)
        counts["available"] += available(oldest, min_ready, now)
        counts["updated"] += _revision_of(oldest) == current
    status = {"desiredNumberScheduled": len(wanted), "currentNumberScheduled": counts["current"],
              "numberMisscheduled": len({p["spec"]["nodeName"] for p in owned} - set(wanted)),
              "numberReady": counts["ready"], "numberAvailable": counts["available"],
              "updatedNumberScheduled": counts["updated"],
              "numberUnavailable": len(wanted) - counts["available"],
              "observedGeneration": ds["metadata"].get("generation", 1)}
    if {k: (ds.get("status") or {}).get(k) for k in status} != status:
        client.patch(f"/apis/apps/v1/namespaces/{ds['metadata']['namespace']}/daemonsets/{ds['metadata']['name']}"
                     "/status", {"status": status})
