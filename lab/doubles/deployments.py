"""The controller-manager's deployment and replicaset controllers, and the garbage collection of what they own, as
far as the doubles need them (pkg/controller/deployment, pkg/controller/replicaset).

A Deployment gets one ReplicaSet per pod template, named `<deployment>-<pod-template-hash>` and labelled with that
hash (the controller's SafeEncodeString of a 32-bit hash of the template); the current one is scaled to
spec.replicas and older ones to 0 once it is available (at once with the Recreate strategy). A ReplicaSet creates
or deletes unbound pods (`generateName: <replicaset>-`) until it owns spec.replicas of them; the scheduler double
binds them. Status follows the pods' Ready condition: the Deployment's Available condition is True when at least
replicas - maxUnavailable (default 25%, rounded down) pods are available, with the controller's reasons and
messages. Objects whose owner is gone are deleted (the garbage collector's background propagation).
"""

import hashlib
import json


DEPLOYMENTS = "/apis/apps/v1/deployments"
REPLICASETS = "/apis/apps/v1/replicasets"
HASH_LABEL = "pod-template-hash"
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"       # k8s.io/apimachinery/pkg/util/rand.SafeEncodeString


def template_hash(template):
    number = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:4], "big")
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in str(number))


def controller_of(obj):
    return next((o for o in obj["metadata"].get("ownerReferences") or [] if o.get("controller")), None) or {}


def owner_ref(obj, kind):
    return {"apiVersion": "apps/v1", "kind": kind, "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def max_unavailable(deployment, replicas):
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    return int(replicas * int(value[:-1]) / 100) if isinstance(value, str) and value.endswith("%") else int(value)


def _path(obj, plural, group="/apis/apps/v1"):
    return f"{group}/namespaces/{obj['metadata']['namespace']}/{plural}/{obj['metadata']['name']}"



def sync(client):
    """One pass of the deployment controller, the replicaset controller and the garbage collector."""
    deployments = client.get(DEPLOYMENTS).get("items", [])
    uids = {d["metadata"]["uid"] for d in deployments}
    sets = client.get(REPLICASETS).get("items", [])
    for rs in sets:
        owner = controller_of(rs)
        if owner.get("kind") == "Deployment" and owner.get("uid") not in uids:
            client.delete_if_present(_path(rs, "replicasets"))
    for d in deployments:
        sync_deployment(client, d, [rs for rs in sets if controller_of(rs).get("uid") == d["metadata"]["uid"]])
    sets = client.get(REPLICASETS).get("items", [])
    pods = client.get("/api/v1/pods").get("items", [])
    rs_uids = {rs["metadata"]["uid"] for rs in sets}
    for pod in pods:
        owner = controller_of(pod)
        if owner.get("kind") == "ReplicaSet" and owner.get("uid") not in rs_uids:
            client.delete_if_present(_path(pod, "pods", "/api/v1"))
    for rs in sets:
        sync_replicaset(client, rs, [p for p in pods if controller_of(p).get("uid") == rs["metadata"]["uid"]])


def new_replicaset(d, hash_, revision):
    template = json.loads(json.dumps(d["spec"]["template"]))
    labels = dict((template.get("metadata") or {}).get("labels") or {}, **{HASH_LABEL: hash_})
    template.setdefault("metadata", {})["labels"] = labels
    selector = json.loads(json.dumps(d["spec"].get("selector") or {}))
    selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
    meta = d["metadata"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta["namespace"], "labels": labels,
                         "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [owner_ref(d, "Deployment")]},
            "spec": {"replicas": d["spec"].get("replicas", 1), "selector": selector, "template": template}}


def sync_deployment(client, d, owned):
    replicas = d["spec"].get("replicas", 1)
    hash_ = template_hash(d["spec"]["template"])
    current = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == hash_), None)
    if current is None:
        revision = 1 + max((int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision",
                                                                              0)) for rs in owned), default=0)
        current = client.create(f"/apis/apps/v1/namespaces/{d['metadata']['namespace']}/replicasets",
                                new_replicaset(d, hash_, revision))
    elif current["spec"].get("replicas") != replicas:
        current = client.patch(_path(current, "replicasets"), {"spec": {"replicas": replicas}})
    old = [rs for rs in owned if rs["metadata"]["uid"] != current["metadata"]["uid"]]
    done = (current.get("status") or {}).get("availableReplicas", 0) >= replicas
    for rs in old:
        if rs["spec"].get("replicas") and (done or max_unavailable(d, replicas) == 0):
            client.patch(_path(rs, "replicasets"), {"spec": {"replicas": 0}})
    update_status(client, d, current, old)


def update_status(client, d, current, old):
    replicas = d["spec"].get("replicas", 1)
    counts = {k: sum((rs.get("status") or {}).get(k, 0) for rs in [current, *old])
              for k in ("replicas", "readyReplicas", "availableReplicas")}
    updated = (current.get("status") or {}).get("replicas", 0)
    available = counts["availableReplicas"] >= replicas - max_unavailable(d, replicas)
    name = current["metadata"]["name"]
    progressed = (current.get("status") or {}).get("availableReplicas", 0) >= replicas and not any(
        (rs.get("status") or {}).get("replicas") for rs in old)
    conditions = [
        {"type": "Available", "status": "True" if available else "False",
         "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
         "message": f"Deployment {'has' if available else 'does not have'} minimum availability."},
        {"type": "Progressing", "status": "True",
         "reason": "NewReplicaSetAvailable" if progressed else "ReplicaSetUpdated",
         "message": f'ReplicaSet "{name}" ' + ("has successfully progressed." if progressed else "is progressing.")}]
    status = dict(counts, updatedReplicas=updated, observedGeneration=d["metadata"].get("generation", 1),
                  unavailableReplicas=max(replicas - counts["availableReplicas"], 0), conditions=conditions)
    _patch_status(client, _path(d, "deployments"), d, status)


def _patch_status(client, path, obj, status):
    def plain(s):
        return {k: ([{f: c.get(f) for f in ("type", "status", "reason", "message")} for c in v]
                    if k == "conditions" else v) for k, v in (s or {}).items()}
    if plain(obj.get("status")) != plain(status):
        client.patch(f"{path}/status", {"status": status})


def pod_for(rs):
    template = rs["spec"]["template"]
    meta = rs["metadata"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                         "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [owner_ref(rs, "ReplicaSet")]},
            "spec": dict(template.get("spec") or {}, schedulerName=(template.get("spec") or {}).get(
                "schedulerName", "default-scheduler"))}


def sync_replicaset(client, rs, pods):
    wanted = rs["spec"].get("replicas", 1)
    pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    for _ in range(wanted - len(pods)):
        pods.append(client.create(f"/api/v1/namespaces/{rs['metadata']['namespace']}/pods", pod_for(rs)))
    # the controller deletes unbound and not-ready pods first (controller.ActivePods ordering)
    surplus = sorted(pods, key=lambda p: (bool(p["spec"].get("nodeName")), ready(p)))[:max(len(pods) - wanted, 0)]
    for pod in surplus:
        client.delete_if_present(_path(pod, "pods", "/api/v1"))
        pods.remove(pod)
    n_ready = sum(1 for p in pods if ready(p))
    status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": n_ready,
              "availableReplicas": n_ready, "observedGeneration": rs["metadata"].get("generation", 1)}
    _patch_status(client, _path(rs, "replicasets"), rs, status)
