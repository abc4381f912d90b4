"""A CNI DaemonSet applied through the API has its real effect on the nodes it schedules on: the
daemonset controller's pods, bound by node selector, affinity and taints, and the kubelet's run of their
init containers, which leave flannel's or calico's CNI config and plugins on the host (kubefab's own
manifests, rendered by kubefab). The controller and the kubelet's pod worker run here in-process against
real etcd and the API-server double, each node's files under its own root."""

import json
import os
import shutil
import threading
import time
import types

import pytest
import yaml

from kubefab.api import kube, kubeproxy
from kubefab.components import cni
from lab.doubles import cniplugins, daemonsets, install_dir, kubelet_checks, objects, podrun, testkit
from lab.doubles.kubeclient import ApiStatus, Client

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
INVENTORY = types.SimpleNamespace(path="inventory.toml", cluster=types.SimpleNamespace(
    pod_subnet="10.244.0.0/16", kube_proxy=types.SimpleNamespace(mode="iptables")))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    with testkit.local_apiserver(root, install_dir(root / "bin")) as (cluster, server, _):
        admin = Client.from_kubeconfig(root / "etc/kubernetes/super-admin.conf")
        yield types.SimpleNamespace(root=root, cluster=cluster, server=server, admin=admin)


class Node:
    """A registered Node with its own filesystem root and a kubelet pod worker using the node's identity."""

    def __init__(self, api, name, taints=(), pod_cidr=None):
        self.name, self.root = name, api.root / "nodes" / name
        self.root.mkdir(parents=True)
        conf = self.root / "kubelet.conf"
        conf.write_bytes(api.cluster.admin_kubeconfig(api.server, org="system:nodes", cn=f"system:node:{name}"))
        self.client = Client.from_kubeconfig(conf)
        self.client.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}},
            "spec": dict({"taints": list(taints)}, **({"podCIDR": pod_cidr} if pod_cidr else {}))})
        self.worker = podrun.PodWorkers(name, lambda msg: None)

    def sync(self, monkeypatch):
        monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(self.root))
        self.worker.sync(self.client, "198.18.0.9")

    def network_error(self, monkeypatch):
        monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(self.root))
        return kubelet_checks.cni_status()

    def path(self, rel):
        return self.root / rel.lstrip("/")


def apply(client, manifest, kinds=None):
    """Create the manifest's documents (of `kinds`) as kubectl create would."""
    for doc in yaml.safe_load_all(manifest):
        if not doc or (kinds and doc["kind"] not in kinds):
            continue
        group, _, version = doc["apiVersion"].rpartition("/")
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        ns = doc["metadata"].get("namespace")
        plural = {"Namespace": "namespaces", "ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts",
                  "DaemonSet": "daemonsets", "ClusterRole": "clusterroles",
                  "ClusterRoleBinding": "clusterrolebindings"}[doc["kind"]]
        try:
            client.create(f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}", doc)
        except ApiStatus as e:
            assert e.code == 409, e


def pods(api, namespace):
    return {p["spec"]["nodeName"]: p for p in api.admin.get(f"/api/v1/namespaces/{namespace}/pods")["items"]}


def test_flannel_config_and_plugin_land_on_every_node_it_tolerates(api, monkeypatch):
    cp = Node(api, "fl-cp", taints=[CONTROL_PLANE_TAINT], pod_cidr="10.244.0.0/24")
    worker = Node(api, "fl-worker")
    gpu = Node(api, "fl-gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}])
    manifest = cni.flannel(INVENTORY)
    conf = next(d for d in yaml.safe_load_all(manifest) if d["kind"] == "ConfigMap")["data"]["cni-conf.json"]

    # the DaemonSet before its ConfigMap: the pods wait on the volume, as the kubelet reports it
    apply(api.admin, manifest, kinds={"Namespace", "DaemonSet"})
    daemonsets.sync(api.admin)
    placed = pods(api, "kube-flannel")
    assert set(placed) == {"fl-cp", "fl-worker"}, "flannel tolerates NoSchedule (the control plane), not NoExecute"
    assert all(p["metadata"]["name"].startswith("kube-flannel-ds-") for p in placed.values())
    worker.sync(monkeypatch)
    waiting = pods(api, "kube-flannel")["fl-worker"]["status"]
    assert waiting["phase"] == "Pending"
    assert waiting["initContainerStatuses"][0]["state"]["waiting"]["message"] == \
        'MountVolume.SetUp failed for volume "flannel-cfg" : configmap "kube-flannel-cfg" not found'
    assert worker.network_error(monkeypatch) == "cni plugin not initialized"

    apply(api.admin, manifest)
    for node in (cp, worker, gpu):
        node.sync(monkeypatch)
    for node in (cp, worker):
        assert json.loads(node.path("/etc/cni/net.d/10-flannel.conflist").read_text()) == json.loads(conf)
        assert os.access(node.path("/opt/cni/bin/flannel"), os.X_OK)
        # the conflist chains portmap, which comes from the CNI plugins release, not from flannel's images
        assert node.network_error(monkeypatch) == 'failed to find plugin "portmap" in path [/opt/cni/bin]'
        cniplugins.install_release(node.path("/opt/cni/bin"))
        assert node.network_error(monkeypatch) is None
    assert not gpu.path("/etc/cni/net.d").exists() and not gpu.path("/opt/cni/bin").exists()
    assert gpu.network_error(monkeypatch) == "cni plugin not initialized"

    # flanneld needs the node's pod CIDR (nodeipam); without it the container crash-loops with flanneld's words
    crashing = pods(api, "kube-flannel")["fl-worker"]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert crashing == {"reason": "CrashLoopBackOff", "message": 'Error registering network: failed to acquire '
                                                                 'lease: node "fl-worker" pod cidr not assigned'}
    api.admin.patch("/api/v1/nodes/fl-worker", {"spec": {"podCIDR": "10.244.1.0/24"}})
    worker.sync(monkeypatch)
    assert worker.path("/run/flannel/subnet.env").read_text() == \
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    annotations = api.admin.get("/api/v1/nodes/fl-worker")["metadata"]["annotations"]
    assert annotations["flannel.alpha.coreos.com/backend-type"] == "vxlan"

    running = pods(api, "kube-flannel")
    assert {n: p["status"]["phase"] for n, p in running.items()} == {"fl-cp": "Running", "fl-worker": "Running"}
    assert [s["state"]["terminated"]["reason"] for s in running["fl-cp"]["status"]["initContainerStatuses"]] == \
        ["Completed", "Completed"]
    daemonsets.sync(api.admin)
    status = api.admin.get("/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds")["status"]
    assert (status["desiredNumberScheduled"], status["numberReady"]) == (2, 2)

    # init containers ran once per pod: a file removed by hand is not written again by the same pod
    worker.path("/etc/cni/net.d/10-flannel.conflist").unlink()
    worker.sync(monkeypatch)
    assert not worker.path("/etc/cni/net.d/10-flannel.conflist").exists()

    api.admin.delete("/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds")
    daemonsets.sync(api.admin)
    assert pods(api, "kube-flannel") == {}, "the garbage collector removes the DaemonSet's pods"
    assert cp.path("/etc/cni/net.d/10-flannel.conflist").is_file() and cp.path("/opt/cni/bin/flannel").is_file()


def test_a_daemonset_without_tolerations_skips_the_control_plane(api, monkeypatch):
    cp = Node(api, "nt-cp", taints=[CONTROL_PLANE_TAINT])
    Node(api, "nt-worker")
    manifest = cni.flannel(INVENTORY).replace("kube-flannel-ds", "plain-ds").replace(
        "      tolerations:\n      - operator: Exists\n        effect: NoSchedule\n", "")
    apply(api.admin, manifest)
    daemonsets.sync(api.admin)
    placed = {n for n, p in pods(api, "kube-flannel").items() if p["metadata"]["name"].startswith("plain-ds-")}
    assert placed >= {"nt-worker"} and "nt-cp" not in placed
    cp.sync(monkeypatch)
    assert not cp.path("/etc/cni/net.d").exists()


def test_calico_installs_its_plugins_and_config_with_the_node_name(api, monkeypatch):
    node = Node(api, "calico-1", taints=[CONTROL_PLANE_TAINT])
    apply(api.admin, cni.calico(INVENTORY), kinds={"ConfigMap", "ServiceAccount", "DaemonSet"})
    daemonsets.sync(api.admin)
    assert "calico-1" in {n for n, p in pods(api, "kube-system").items() if p["metadata"]["name"].startswith(
        "calico-node-")}
    node.sync(monkeypatch)
    conf = json.loads(node.path("/etc/cni/net.d/10-calico.conflist").read_text())
    assert conf["plugins"][0]["nodename"] == "calico-1" and conf["plugins"][0]["mtu"] == 0
    assert conf["plugins"][0]["kubernetes"]["kubeconfig"] == "/etc/cni/net.d/calico-kubeconfig"
    assert all(os.access(node.path(f"/opt/cni/bin/{p}"), os.X_OK) for p in ("calico", "calico-ipam", "portmap"))
    assert node.network_error(monkeypatch) is None, "calico's image brings portmap along"


def test_a_kube_proxy_restart_replaces_its_pods_one_node_at_a_time(api, monkeypatch):
    """kubefab's restart (kubectl rollout restart's annotation) against the controller and kubelets: the pods are
    replaced node by node under kubeadm's RollingUpdate (maxUnavailable 1), never two nodes without a Ready one."""
    names = ("kp-1", "kp-2", "kp-3")
    nodes = [Node(api, name, taints=[CONTROL_PLANE_TAINT] if name == "kp-1" else ()) for name in names]
    _, ds = next(o for o in objects.kube_proxy_objects({"networking": {}}, "registry.k8s.io/kube-proxy:v1.33.5",
                                                       api.server, None) if o[1]["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                     "values": list(names)}]}]}}}    # this test's nodes only
    api.admin.create("/apis/apps/v1/namespaces/kube-system/daemonsets", ds)

    def proxies():
        return [p for p in api.admin.get(kubeproxy.PODS)["items"]
                if p["metadata"]["labels"].get("k8s-app") == "kube-proxy" and p["spec"]["nodeName"] in names]

    def without_ready():
        ready = {p["spec"]["nodeName"] for p in proxies() if {"type": "Ready", "status": "True"} in [
            {k: c.get(k) for k in ("type", "status")} for c in (p.get("status") or {}).get("conditions") or ()]}
        return [n for n in names if n not in ready]

    def play():
        daemonsets.sync(api.admin)
        yield without_ready()
        for node in nodes:
            node.sync(monkeypatch)
            yield without_ready()

    for _ in range(2):
        list(play())
    first = {p["metadata"]["uid"] for p in proxies()}
    assert without_ready() == [] and len(first) == 3

    monkeypatch.setattr(kube, "POLL_SECONDS", 0.05)
    kubefab_api = kube.connect(api.root / "etc/kubernetes/super-admin.conf")
    said = []
    restart = threading.Thread(target=lambda: said.append(kubeproxy.restart(kubefab_api)))
    restart.start()
    missing = []
    deadline = time.monotonic() + 60
    while restart.is_alive() and time.monotonic() < deadline:
        missing += [tuple(m) for m in play()]
    restart.join(5)
    assert said and said[0].startswith("restarted node by node (kubectl.kubernetes.io/restartedAt "), said
    assert said[0].endswith("): 3 new kube-proxy pods Ready")
    assert max(map(len, missing)) == 1, "one node at a time"
    assert {m for m in missing if m} == {("kp-1",), ("kp-2",), ("kp-3",)}, missing
    now = {p["metadata"]["uid"] for p in proxies()}
    assert len(now) == 3 and not now & first
    status = api.admin.get(kubeproxy.DAEMONSET)["status"]
    assert (status["updatedNumberScheduled"], status["numberAvailable"], status["desiredNumberScheduled"]) == (3, 3, 3)
    assert status["observedGeneration"] == api.admin.get(kubeproxy.DAEMONSET)["metadata"]["generation"]
