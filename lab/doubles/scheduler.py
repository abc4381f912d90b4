"""The kube-scheduler double's one job: bind each unbound pod (schedulerName default-scheduler) to a node, by the
rules the daemonset controller double uses (node selector, required node affinity, NoSchedule/NoExecute taints
against the pod's own tolerations) plus cordoned nodes, spreading pods over the fitting nodes (fewest pods
first, then by name). A pod that fits nowhere gets PodScheduled=False, reason Unschedulable, with the
scheduler's message ("0/3 nodes are available: ..."). Binding is the pods/binding subresource, as the real
scheduler's DefaultBinder does."""

from collections import Counter

from .daemonsets import tolerates, unfit
from .kubeclient import ApiStatus

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def reason(spec, node):
    tols = spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not any(tolerates(t, UNSCHEDULABLE_TAINT) for t in tols):
        return "were unschedulable"
    return unfit(spec, node, tols)


def unschedulable_message(reasons, total):
    if not total:
        return "no nodes available to schedule pods"
    parts = ", ".join(f"{n} node(s) {r}" for r, n in sorted(Counter(reasons).items()))
    return (f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: {total} "
            "Preemption is not helpful for scheduling.")


def sync(client):
    """One scheduling pass over every pending, unbound pod."""
    nodes = sorted(client.get("/api/v1/nodes").get("items", []), key=lambda n: n["metadata"]["name"])
    pods = client.get("/api/v1/pods").get("items", [])
    load = Counter(p["spec"].get("nodeName") for p in pods)
    for pod in pods:
        spec, meta = pod["spec"], pod["metadata"]
        if spec.get("nodeName") or meta.get("deletionTimestamp") or \
                spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            continue
        reasons = {n["metadata"]["name"]: reason(spec, n) for n in nodes}
        fits = [name for name, why in reasons.items() if why is None]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if fits:
            target = min(fits, key=lambda name: (load[name], name))
            try:
                client.create(f"{path}/binding", {"apiVersion": "v1", "kind": "Binding", "metadata": {
                    "name": meta["name"], "namespace": meta["namespace"]}, "target": {"kind": "Node", "name": target}})
                load[target] += 1
            except ApiStatus as e:
                if e.code not in (404, 409):
                    raise
            continue
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": unschedulable_message(list(reasons.values()), len(nodes))}
        current = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"]
        if not current or {k: current[0].get(k) for k in condition} != condition:
            client.request("PATCH", f"{path}/status", {"status": {"conditions": [condition], "phase": "Pending"}},
                           "application/merge-patch+json")
