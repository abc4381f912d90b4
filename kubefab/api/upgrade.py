"""cluster.upgrade through the API server: what the cluster runs (read once, before the plan), and the Api steps of
its phases — a worker batch cordoned before any of it is drained, a drain through the Eviction API that uncordons
the batch when it fails, each node waited for at the target version, and the end's check of every kubelet."""

import time

import yaml

from kubefab import fsutil, net, versions
from kubefab.api import drain, health, kube, nodes
from kubefab.errors import KubefabError
from kubefab.pki import kubeconfig
from kubefab.plan.snapshots import BACKUPS
from kubefab.plan.upgrade import CORDONED, Survey
from kubefab.remote import snapshot, ssh
from kubefab.steps import CHANGED, UNCHANGED

KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
VERSION = "/version"
SURVEY_TIMEOUT = 60


def survey(api, inv):
    """The Survey of the cluster: kubeadm-config's version, every node's kubelet, taints and upgrade mark, each
    control plane's images; read again while the API server does not answer (an HA address whose load balancer
    has just come up drops a connection now and then), for SURVEY_TIMEOUT seconds."""
    return kube.until(lambda: (True, _survey(api)), SURVEY_TIMEOUT, "the API server did not answer the upgrade's "
                      "reads", api.stop)


def _survey(api):
    config = (api.get(KUBEADM_CONFIG).get("data") or {}).get("ClusterConfiguration", "")
    cluster = (yaml.safe_load(config) or {}).get("kubernetesVersion", "")
    try:
        cluster = versions.bare(cluster)
    except ValueError:
        raise KubefabError(f"kube-system/kubeadm-config names kubernetesVersion {cluster!r}, not a release: "
                           "this cluster was not made by kubeadm as kubefab runs it") from None
    items = api.get(nodes.NODES)["items"]
    listed = [nodes.view(o) for o in items]
    cordoned = frozenset(o["metadata"]["name"] for o in items if CORDONED in (o["metadata"].get("annotations") or {}))
    kubelets = {n.name: versions.bare(n.version) for n in listed if n.version}
    schedulable = frozenset(n.name for n in listed if not any(t.get("effect") == "NoSchedule" for t in n.taints))
    pods = api.get(health.PODS, {"labelSelector": "tier=control-plane"})["items"]
    images = {}
    for pod in pods:
        component = (pod["metadata"].get("labels") or {}).get("component")
        running = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0].get("image")
        images.setdefault((pod.get("spec") or {}).get("nodeName"), {})[component] = \
            running or pod["spec"]["containers"][0]["image"]
    return Survey(cluster, kubelets, images, schedulable, cordoned)


def backup_etcd(steps, host, step):
    """An etcd snapshot into <state>/backups from the first control plane whose member gives one whole."""
    target = fsutil.ensure_dir(steps.inv.state_dir / BACKUPS)
    tried = []
    for cp in steps.inv.control_planes:
        try:
            db, data = snapshot.take(steps.ssh, steps.inv, cp, target, lambda: steps.api().get(VERSION)["gitVersion"])
        except (KubefabError, ssh.Unreachable) as e:
            tried.append(f"{cp.name}: {e}")
            continue
        return CHANGED, (f"{db} ({data.size} bytes, revision {data.revision}, {data.keys} keys, from {cp.name}'s "
                         f"member) — `invoke etcd.restore --from {db}` takes the cluster back to it")
    raise KubefabError("no etcd snapshot could be taken, so no control plane was changed:\n  " + "\n  ".join(tried))


CONFLICT_ATTEMPTS = 5


def _mark(api, node, body):
    """Merge-patch Node `node` with `body`, again on 409: the hosts of a batch cordon the same nodes at once."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return api.patch(f"{nodes.NODES}/{node}", body, kube.MERGE)
        except kube.ApiError as e:
            if e.status != 409 or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(kube.POLL_SECONDS)


def _uncordon(api, node):
    _mark(api, node, {"metadata": {"annotations": {CORDONED: None}}, "spec": {"unschedulable": False}})


def cordon_batch(steps, host, step):
    """Every node of the batch cordoned and marked CORDONED, so that a run stopped before its uncordon is finished
    by the next one."""
    cordoned = []
    for n in step.nodes:
        obj = steps.api().get(f"{nodes.NODES}/{n}")
        unschedulable = bool((obj.get("spec") or {}).get("unschedulable"))
        if unschedulable and CORDONED in (obj["metadata"].get("annotations") or {}):
            continue
        cordoned += [] if unschedulable else [n]
        _mark(steps.api(), n, {"metadata": {"annotations": {CORDONED: "true"}}, "spec": {"unschedulable": True}})
    if cordoned:
        return CHANGED, f"cordoned {', '.join(cordoned)}"
    return UNCHANGED, f"{', '.join(step.nodes)} already cordoned"


def drain_node(steps, host, step):
    try:
        evicted, skipped = drain.drain(steps.api(), host.name, steps.drain_timeout)
    except KubefabError as e:
        for n in step.nodes:
            _uncordon(steps.api(), n)
        raise KubefabError(f"{e} — the batch {', '.join(step.nodes)} was uncordoned") from None
    kept = f"; left {len(skipped)} static and DaemonSet pods" if skipped else ""
    return (CHANGED if evicted else UNCHANGED), f"{len(evicted)} pods evicted{kept}"


def _at_version(steps, host, version):
    want = f"v{version}"

    def check():
        obj = steps.api().find(f"{nodes.NODES}/{host.name}") or {}
        view = nodes.view(obj) if obj else None
        if view is None or not view.ready or view.version != want:
            return False, (f"{host.name} reports {view.version}, {'Ready' if view.ready else 'NotReady'}" if view
                           else f"{host.name} not registered")
        return True, view
    return kube.until(check, nodes.NODE_TIMEOUT, f"{host.name} was not Ready with kubelet {want}", steps.stop)


def wait_upgraded(steps, host, step):
    """The control plane's own API server /readyz and /readyz/etcd, its components, then its node at the target."""
    admin = kubeconfig.path(steps.inv, kubeconfig.BY_FILE["admin.conf"])
    api = kube.connect(admin, via=net.join_endpoint(host.internal_address), stop=steps.stop)
    served = kube.wait_ready(api)
    etcd = api.request("GET", "/readyz/etcd", timeout=(3, 10)).strip()
    if etcd != "ok":
        raise KubefabError(f"{host.name}: /readyz/etcd says {etcd!r}: its etcd member is not healthy")
    health.wait_control_plane(api, host.name)
    _at_version(steps, host, step.version)
    return UNCHANGED, f"API server {served} ready, etcd healthy, components Ready, node Ready at v{step.version}"


def _daemon_pods_ready(steps, host):
    """Wait until every DaemonSet pod bound to `host` reports Ready; how many there are."""
    def check():
        pods = [p for p in drain.pods_on(steps.api(), host.name) if drain.evictable(p)[1] == "DaemonSet pod"]
        behind = [p["metadata"]["name"] for p in pods if not _ready(p)]
        return (True, len(pods)) if not behind else (False, f"DaemonSet pods not Ready: {', '.join(behind)}")
    return kube.until(check, nodes.NODE_TIMEOUT, f"{host.name}: its DaemonSet pods were not Ready", steps.stop)


def _ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def uncordon_upgraded(steps, host, step):
    """The node Ready with the kubelet at the target and its DaemonSet pods Ready, then uncordoned."""
    _at_version(steps, host, step.version)
    daemons = _daemon_pods_ready(steps, host)
    _uncordon(steps.api(), host.name)
    return CHANGED, f"Ready with kubelet v{step.version} and {daemons} DaemonSet pods Ready, uncordoned"


def verify_kubelets(steps, host, step):
    want = f"v{step.version}"
    behind = [f"{v.name} ({v.version or 'no version'})" for v in nodes.list_nodes(steps.api())
              if v.name in {h.name for h in steps.inv.hosts} and v.version != want]
    if behind:
        raise KubefabError(f"kubelets not at {want}: {', '.join(behind)}")
    return UNCHANGED, f"every kubelet reports {want}"
