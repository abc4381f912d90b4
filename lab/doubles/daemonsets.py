"""The controller-manager's daemonset controller and the garbage collection of its pods, as far as the
doubles need them: one Pod per DaemonSet and eligible Node, bound to that node.

Eligibility is the daemonset controller's predicate (pkg/controller/daemon: nodeSelector, required
node affinity, taints of effect NoSchedule/NoExecute against the pod's tolerations plus those the
controller adds to every daemon pod, util.AddOrUpdateDaemonPodTolerations). The real controller sets
a node affinity on metadata.name and lets the scheduler bind the pod; the doubles have no scheduler, so
the pod is created with that affinity and its spec.nodeName set at once. Pods whose DaemonSet is gone
are deleted (the garbage collector's background propagation), as are pods bound to a Node that no
longer exists (podgc)."""

import hashlib
import json


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
    revision = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    labels = dict((template.get("metadata") or {}).get("labels") or {},
                  **{"controller-revision-hash": revision, "pod-template-generation": str(meta.get("generation", 1))})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"], "labels": labels,
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": spec}


def _owner(pod):
    return next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def _ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


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
    for ds in daemonsets:
        owned = [p for p in pods if (_owner(p) or {}).get("uid") == ds["metadata"]["uid"]
                 and p["spec"].get("nodeName") in nodes]
        placed = {p["spec"]["nodeName"] for p in owned}
        wanted = [name for name, node in sorted(nodes.items()) if should_run(ds["spec"]["template"].get("spec") or {},
                                                                             node)]
        for name in wanted:
            if name not in placed:
                owned.append(client.create(f"/api/v1/namespaces/{ds['metadata']['namespace']}/pods",
                                           pod_for(ds, name)))
        update_status(client, ds, wanted, owned)



def update_status(client, ds, wanted, owned):
    ready = sum(1 for p in owned if _ready(p))
    on = {p["spec"]["nodeName"] for p in owned}
    status = {"desiredNumberScheduled": len(wanted), "currentNumberScheduled": len(on),
              "numberMisscheduled": len(on - set(wanted)), "numberReady": ready, "numberAvailable": ready,
              "updatedNumberScheduled": len(owned), "numberUnavailable": max(len(wanted) - ready, 0),
              "observedGeneration": ds["metadata"].get("generation", 1)}
    if {k: (ds.get("status") or {}).get(k) for k in status} != status:
        client.patch(f"/apis/apps/v1/namespaces/{ds['metadata']['namespace']}/daemonsets/{ds['metadata']['name']}"
                     "/status", {"status": status})
