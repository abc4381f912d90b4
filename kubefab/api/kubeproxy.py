"""kube-proxy's configuration on a running cluster: ConfigMap kube-system/kube-proxy brought to the inventory, then
kube-proxy restarted node by node so that it reads it.

kubeadm's `init phase addon kube-proxy` (and `upgrade apply`) create or update the ConfigMap from the whole config
but leave the running pods alone, and kube-proxy reads its config only at start. kubefab changes in `config.conf`
the fields its KubeProxyConfiguration sets (kubeadm/init.yaml's document, [cluster.kube_proxy] config merged in:
`mode` and the inventory's own) and keeps the rest as kubeadm wrote it; it records those fields on the ConfigMap
(annotation APPLIED), so one the inventory no longer sets is removed again and kube-proxy takes its default.
Then it restarts the DaemonSet as `kubectl rollout restart` does (the pod template's RESTARTED_AT annotation): the
DaemonSet controller replaces the pods under its RollingUpdate maxUnavailable (kubeadm's: 1 node at a time), and
kubefab waits as `kubectl rollout status` does, each next node's new pod Ready within PROGRESS_TIMEOUT. The
ConfigMap carries PENDING from the write that changes config.conf until that restart is done, so a run stopped in
between (Ctrl-C, a rollout that timed out) leaves the restart to the next run and to `cluster.plan --live`.
"""

import datetime

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
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"      # kubectl rollout restart's pod template annotation
PENDING = "kubefab.io/restart-pending"      # on the ConfigMap from config.conf's change until kube-proxy restarted
PROGRESS_TIMEOUT = 120      # seconds for one more node's new kube-proxy pod to be Ready (the image may be pulled)


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
    """(changed, detail): ConfigMap kube-proxy brought to the inventory, then kube-proxy restarted node by node."""
    cm = api.find(CONFIGMAP)
    if cm is None:
        return False, "no ConfigMap kube-system/kube-proxy: kube-proxy is not installed"
    have, new, record = settled(cm, inv)
    notes = cm["metadata"].get("annotations") or {}
    if have == new:
        if notes.get(APPLIED) != record:
            api.patch(CONFIGMAP, {"metadata": {"annotations": {APPLIED: record}}}, kube.MERGE)
        if PENDING not in notes:
            return False, f"config.conf as the inventory says (mode {new.get('mode') or 'default'})"
        return True, f"config.conf changed by a run that stopped before kube-proxy restarted; {_restart(api, stop)}"
    # the change and its pending restart in one write: a run stopped before the restart leaves it to the next
    api.patch(CONFIGMAP, {"metadata": {"annotations": {APPLIED: record, PENDING: "true"}, "resourceVersion":
                                       cm["metadata"]["resourceVersion"]},
                          "data": {KEY: yaml.safe_dump(new, sort_keys=True)}}, kube.MERGE)
    changed = [p for p in sorted(set(_leaves(have)) | set(_leaves(new))) if _get(have, p) != _get(new, p)]
    return True, f"config.conf: {', '.join(changed)} changed; {_restart(api, stop)}"


def pending(cm):
    """Whether ConfigMap `cm` changed since kube-proxy last restarted (a run stopped in between)."""
    return PENDING in (cm["metadata"].get("annotations") or {})


def _restart(api, stop):
    said = restart(api, stop)
    api.patch(CONFIGMAP, {"metadata": {"annotations": {PENDING: None}}}, kube.MERGE)
    return said


def restart(api, stop=None):
    """`kubectl rollout restart daemonset/kube-proxy`, then wait until the rollout is complete; what happened, said.

    Complete is `kubectl rollout status`'s test: the controller observed the new generation, and its pods on every
    node it wants are updated and available. The wait ends with a Timeout naming the nodes whose new pod is not
    Ready when no further node's is within PROGRESS_TIMEOUT."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ds = api.patch(DAEMONSET, {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}})
    strategy = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return (f"restarted ({RESTARTED_AT} {stamp}), but its updateStrategy is {strategy}: each pod takes the new "
                f"config only once deleted (kubectl -n {NAMESPACE} delete pod -l {SELECTOR})")
    generation, best = ds["metadata"].get("generation", 0), -1
    while True:
        done, ready = kube.until(lambda: _progress(api, generation, stamp, best), PROGRESS_TIMEOUT,
                                 "kube-proxy's rollout made no progress: no further node's new pod was Ready", stop)
        if done:
            return f"restarted node by node ({RESTARTED_AT} {stamp}): {ready} new kube-proxy pods Ready"
        best = ready


def _progress(api, generation, stamp, best):
    """((rollout complete, new pods Ready), ...) once complete or more than `best` new pods are Ready; else (False,
    where the rollout stands and which nodes hold it up)."""
    status = api.get(DAEMONSET).get("status") or {}
    desired = status.get("desiredNumberScheduled", 0)
    pods = api.get(PODS, {"labelSelector": SELECTOR})["items"]
    new = [p for p in pods if ((p["metadata"].get("annotations") or {}).get(RESTARTED_AT)) == stamp]
    ready = [p for p in new if _ready(p)]
    done = (status.get("observedGeneration", 0) >= generation and status.get("updatedNumberScheduled", 0) >= desired
            and status.get("numberAvailable", 0) >= desired)
    if done or len(ready) > best:
        return True, (done, len(ready))
    waiting = [f"{p['spec'].get('nodeName') or '(no node yet)'}: pod {p['metadata']['name']} not Ready"
               f"{_why(p)}" for p in new if not _ready(p)]
    return False, (f"{status.get('updatedNumberScheduled', 0)} of {desired} pods updated, "
                   f"{status.get('numberAvailable', 0)} available"
                   + (f"; {'; '.join(waiting)}" if waiting else f"; {len(new)} new pods, all Ready"))


def _ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _why(pod):
    """' (reason: message)' of the first container that waits, as kubectl rollout status warns; '' when none."""
    for c in (pod.get("status") or {}).get("containerStatuses") or ():
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            return f" ({waiting.get('reason', '')}: {waiting.get('message', '')})"
    return ""
