"""kube-proxy's configuration on a running cluster: ConfigMap kube-system/kube-proxy brought to the inventory, then
kube-proxy's pods recreated so that they read it.

kubeadm's `init phase addon kube-proxy` (and `upgrade apply`) create or update the ConfigMap from the whole config
but leave the running pods alone, and kube-proxy reads its config only at start. kubefab changes in `config.conf`
the fields its KubeProxyConfiguration sets (kubeadm/init.yaml's document, [cluster.kube_proxy] config merged in:
`mode` and the inventory's own) and keeps the rest as kubeadm wrote it; it records those fields on the ConfigMap
(annotation APPLIED), so one the inventory no longer sets is removed again and kube-proxy takes its default.
Then every kube-proxy pod is deleted and the DaemonSet controller makes new ones, as `kubectl delete pod` would.
"""

import yaml

from kubefab.api import kube
from kubefab.components import kubeadm

NAMESPACE = "kube-system"
CONFIGMAP = f"/api/v1/namespaces/{NAMESPACE}/configmaps/kube-proxy"
DAEMONSET = f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/kube-proxy"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SELECTOR = "k8s-app=kube-proxy"
KEY = "config.conf"
APPLIED = "kubefab.io/applied-config"       # the fields kubefab set in config.conf, dotted, comma-separated
RECREATE_TIMEOUT = 300


def _leaves(doc, at=()):
    """The dotted paths of `doc`'s values that are not tables (apiVersion and kind left out)."""
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*at, key))
        elif (*at, key) not in (("apiVersion",), ("kind",)):
            yield ".".join((*at, key))


def _put(doc, path, value):
    *tables, last = path.split(".")
    for key in tables:
        doc = doc.setdefault(key, {})
    doc[last] = value


def _drop(doc, path):
    *tables, last = path.split(".")
    for key in tables:
        doc = doc.get(key)
        if not isinstance(doc, dict):
            return
    doc.pop(last, None)


def _get(doc, path):
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def settled(cm, inv):
    """(config.conf as the ConfigMap `cm` holds it, as kubefab would write it, the record kubefab would write)."""
    want = kubeadm.kube_proxy_configuration(inv.cluster)
    have, new = (yaml.safe_load(cm["data"][KEY]) or {} for _ in range(2))      # two copies: `new` is edited
    fields = sorted(_leaves(want))
    recorded = {p for p in ((cm["metadata"].get("annotations") or {}).get(APPLIED, "")).split(",") if p}
    for path in sorted(recorded - set(fields)):
        _drop(new, path)
    for path in fields:
        _put(new, path, _get(want, path))
    return have, new, ",".join(fields)


def reconcile(api, inv, stop=None):
    """(changed, detail): ConfigMap kube-proxy brought to the inventory, then kube-proxy's pods recreated."""
    cm = api.find(CONFIGMAP)
    if cm is None:
        return False, "no ConfigMap kube-system/kube-proxy: kube-proxy is not installed"
    have, new, record = settled(cm, inv)
    noted = (cm["metadata"].get("annotations") or {}).get(APPLIED)
    if have == new:
        if noted != record:
            api.patch(CONFIGMAP, {"metadata": {"annotations": {APPLIED: record}}}, kube.MERGE)
        return False, f"config.conf as the inventory says (mode {new.get('mode') or 'default'})"
    api.patch(CONFIGMAP, {"metadata": {"annotations": {APPLIED: record}, "resourceVersion":
                                       cm["metadata"]["resourceVersion"]},
                          "data": {KEY: yaml.safe_dump(new, sort_keys=True)}}, kube.MERGE)
    changed = [p for p in sorted(set(_leaves(have)) | set(_leaves(new))) if _get(have, p) != _get(new, p)]
    return True, f"config.conf: {', '.join(changed)} changed; {recreate(api, stop)}"


def recreate(api, stop=None):
    """Delete every kube-proxy pod, then wait until the DaemonSet runs a new one on each node it wants."""
    pods = api.get(PODS, {"labelSelector": SELECTOR})["items"]
    old = {p["metadata"]["uid"] for p in pods}
    for pod in pods:
        api.delete(f"{PODS}/{pod['metadata']['name']}")

    def check():
        desired = ((api.find(DAEMONSET) or {}).get("status") or {}).get("desiredNumberScheduled", 0)
        fresh = [p for p in api.get(PODS, {"labelSelector": SELECTOR})["items"] if p["metadata"]["uid"] not in old]
        return (len(fresh) >= desired, f"{len(fresh)} of {desired} kube-proxy pods recreated")
    kube.until(check, RECREATE_TIMEOUT, "kube-proxy's pods were not all recreated", stop)
    return f"{len(old)} kube-proxy pods deleted, the DaemonSet made new ones"
