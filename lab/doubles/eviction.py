"""The Eviction subresource (POST pods/<name>/eviction) and the disruption controller's PodDisruptionBudget status,
as kubernetes/kubernetes pkg/registry/core/pod/storage/eviction.go and pkg/controller/disruption do them.

An eviction deletes the pod unless a budget selecting it allows no disruption: then 429 with the server's words
("Cannot evict pod as it would violate the pod's disruption budget.") and the budget named in details.causes.
Terminal and Pending pods go without a budget check; a pod under two budgets gets 500; a budget whose status
the controller has not caught up with (observedGeneration < generation) answers 429 too. The budget's status is
the controller's (`sync_budgets`, run by the controller-manager double); the handler only decrements it.
"""

import datetime
import math

TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."
CAUSE = "DisruptionTarget"           # policyv1.DisruptionBudgetCause
PDBS = "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
DELETION_TIMEOUT = 120               # the controller forgets a disrupted pod that was not deleted after 2 min


def status(code, reason="", message="", causes=()):
    """A metav1.Status body: Success for 201, else a Failure with `reason`, `message` and details.causes."""
    if code == 201:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if causes:
        body["details"] = {"causes": [{"reason": CAUSE, "message": c} for c in causes]}
    return body


def selects(selector, labels):
    """metav1.LabelSelectorAsSelector(selector).Matches(labels); a nil or empty selector matches nothing."""
    selector = selector or {}
    exprs = selector.get("matchExpressions") or []
    if not selector.get("matchLabels") and not exprs:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    ops = {"In": lambda k, vs: labels.get(k) in vs, "NotIn": lambda k, vs: labels.get(k) not in vs,
           "Exists": lambda k, vs: k in labels, "DoesNotExist": lambda k, vs: k not in labels}
    return all(ops[e["operator"]](e["key"], e.get("values") or ()) for e in exprs)


def ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def evict(api, namespace, name, eviction, dry_run):
    """(HTTP code, body) of an Eviction of pod namespace/name; the pod is deleted when the budgets allow."""
    if (eviction.get("metadata") or {}).get("name") != name:
        return 400, status(400, "BadRequest", "name in URL does not match name in Eviction object")
    pods = api.find("", "v1", "pods")
    pod = api.read(pods, namespace, name)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
        return _delete(api, pods, namespace, name, dry_run)
    budgets = api.find("policy", "v1", "poddisruptionbudgets")
    mine = [b for b in api.list(budgets, namespace, {})[0]
            if selects((b.get("spec") or {}).get("selector"), pod["metadata"].get("labels") or {})]
    if len(mine) > 1:
        return 500, dict(status(500, message="This pod has more than one PodDisruptionBudget, which the eviction "
                                             "subresource does not support."), reason="")
    if mine:
        pdb = mine[0]
        st = pdb.get("status") or {}
        healthy, desired = st.get("currentHealthy", 0), st.get("desiredHealthy", 0)
        if not (not ready(pod) and healthy >= desired > 0):
            refused = _check_and_decrement(api, budgets, pdb, name, dry_run)
            if refused:
                return refused
    return _delete(api, pods, namespace, name, dry_run)


def _check_and_decrement(api, budgets, pdb, pod_name, dry_run):
    meta, st = pdb["metadata"], dict(pdb.get("status") or {})
    if st.get("observedGeneration", 0) < meta.get("generation", 0):
        return 429, status(429, "TooManyRequests", TOO_MANY,
                           (f"The disruption budget {meta['name']} is still being processed by the server.",))
    if st.get("disruptionsAllowed", 0) == 0:
        return 429, status(429, "TooManyRequests", TOO_MANY, (
            f"The disruption budget {meta['name']} needs {st.get('desiredHealthy', 0)} healthy pods and has "
            f"{st.get('currentHealthy', 0)} currently",))
    if dry_run:
        return None
    st["disruptionsAllowed"] -= 1
    st["disruptedPods"] = dict(st.get("disruptedPods") or {}, **{pod_name: _now()})
    api.replace(budgets, meta["namespace"], meta["name"], dict(pdb, status=st), pdb, "status")
    return None


def _delete(api, pods, namespace, name, dry_run):
    if not dry_run:
        api.delete(pods, namespace, name)
    return 201, status(201)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _count(value, expected, round_up):
    """An IntOrString of a budget against `expected` pods (a percentage rounded up or down as the controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * expected / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def budget_status(pdb, pods, now=None):
    """The disruption controller's status of `pdb` over its namespace's `pods`. Deviation: the expected count is
    the number of selected pods (the real controller asks their controllers' scale for percentages and
    maxUnavailable); the double has no Deployments to ask."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    spec, old = pdb.get("spec") or {}, pdb.get("status") or {}
    chosen = [p for p in pods if selects(spec.get("selector"), p["metadata"].get("labels") or {})]
    names = {p["metadata"]["name"] for p in chosen}
    disrupted = {k: v for k, v in (old.get("disruptedPods") or {}).items() if k in names and
                 (now - datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))).total_seconds() < DELETION_TIMEOUT}
    healthy = sum(ready(p) and not p["metadata"].get("deletionTimestamp") and p["metadata"]["name"] not in disrupted
                  for p in chosen)
    expected = len(chosen)
    if "maxUnavailable" in spec:
        desired = max(0, expected - _count(spec["maxUnavailable"], expected, round_up=True))
    else:
        desired = _count(spec.get("minAvailable", 0), expected, round_up=True)
    allowed = max(0, healthy - desired)
    condition = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                 "reason": "SufficientPods" if allowed else "InsufficientPods",
                 "observedGeneration": pdb["metadata"].get("generation", 1), "message": ""}
    return {"observedGeneration": pdb["metadata"].get("generation", 1), "disruptedPods": disrupted or None,
            "disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
            "expectedPods": expected, "conditions": [condition]}


def sync_budgets(client):
    """The disruption controller: every budget's status from the pods it selects, written when it changed."""
    for pdb in client.get("/apis/policy/v1/poddisruptionbudgets").get("items", []):
        meta = pdb["metadata"]
        pods = client.get(f"/api/v1/namespaces/{meta['namespace']}/pods").get("items", [])
        new = {k: v for k, v in budget_status(pdb, pods).items() if v is not None}
        old = pdb.get("status") or {}
        keys = (set(new) | set(old)) - {"conditions"}
        if {k: old.get(k) for k in keys} != {k: new.get(k) for k in keys}:
            client.request("PUT", f"{PDBS.format(ns=meta['namespace'])}/{meta['name']}/status", dict(pdb, status=new))
