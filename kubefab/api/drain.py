"""Take a node out of the cluster before it is reset: cordon, drain, delete (as `kubectl drain` and
`kubectl delete node` do).

Drain evicts every pod on the node except mirror pods (the kubelet's static pods) and DaemonSet pods
(their controller would recreate them at once); pods of a finished phase are deleted. Evictions
respect PodDisruptionBudgets: a 429 is retried until the deadline, then named in the error. When the
server offers no eviction subresource, pods are deleted, as kubectl does.
"""

import time
from dataclasses import dataclass

from kubefab.api import kube
from kubefab.errors import KubefabError

DRAIN_TIMEOUT = 300
MIRROR = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class Drained:
    """What removing a node did: the pods evicted (namespace/name) and those left to the reset."""

    node: str
    evicted: tuple
    skipped: tuple
    deleted: bool


def cordon(api, node):
    """Mark `node` unschedulable; False when it was already."""
    path = f"/api/v1/nodes/{node}"
    obj = api.get(path)
    if (obj.get("spec") or {}).get("unschedulable"):
        return False
    api.patch(path, {"spec": {"unschedulable": True}}, kube.MERGE)
    return True


def evictable(pod):
    """(True, '') for a pod drain evicts; (False, why) for mirror and DaemonSet pods."""
    meta = pod["metadata"]
    if MIRROR in (meta.get("annotations") or {}):
        return False, "static pod"
    if any(o.get("kind") == "DaemonSet" and o.get("controller") for o in meta.get("ownerReferences") or ()):
        return False, "DaemonSet pod"
    return True, ""


def pods_on(api, node):
    query = {"fieldSelector": f"spec.nodeName={node}"}
    return api.get("/api/v1/pods", query)["items"]


def drain(api, node, timeout=DRAIN_TIMEOUT):
    """Evict the node's evictable pods and wait until they are gone; (evicted, skipped) as namespace/name."""
    deadline = time.monotonic() + timeout
    pods = pods_on(api, node)
    chosen = [p for p in pods if evictable(p)[0]]
    skipped = tuple(f"{_name(p)} ({evictable(p)[1]})" for p in pods if not evictable(p)[0])
    eviction = api.has_subresource("v1", "pods", "eviction")
    for pod in chosen:
        _evict(api, pod, eviction, deadline)
    _wait_gone(api, node, {_name(p) for p in chosen}, deadline)
    return tuple(_name(p) for p in chosen), skipped


def _name(pod):
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def _evict(api, pod, eviction, deadline):
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    path = f"/api/v1/namespaces/{ns}/pods/{name}"
    finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    while True:
        try:
            if eviction and not finished:
                api.create(f"{path}/eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                "metadata": {"name": name, "namespace": ns}})
            else:
                api.delete(path)
            return
        except kube.ApiError as e:
            if e.status == 404:
                return
            if e.status != 429 or time.monotonic() > deadline:
                raise KubefabError(f"cannot evict pod {ns}/{name}: {e.message}") from None
        time.sleep(kube.POLL_SECONDS)


def _wait_gone(api, node, names, deadline):
    while True:
        left = sorted(names & {_name(p) for p in pods_on(api, node)})
        if not left:
            return
        if time.monotonic() > deadline:
            raise KubefabError(f"node {node}: pods still running after the drain timeout: {', '.join(left)}")
        time.sleep(kube.POLL_SECONDS)


def remove(api, node, timeout=DRAIN_TIMEOUT):
    """Cordon, drain and delete Node `node`; what happened, as a Drained (deleted False if it was gone)."""
    if api.find(f"/api/v1/nodes/{node}") is None:
        return Drained(node, (), (), deleted=False)
    cordon(api, node)
    evicted, skipped = drain(api, node, timeout)
    return Drained(node, evicted, skipped, deleted=api.delete(f"/api/v1/nodes/{node}"))
