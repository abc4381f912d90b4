"""Add-on workloads on the doubles: server-side apply with field managers on the API-server double, custom
resources only once their CRD is installed, and a Deployment's way to running pods (deployment and replicaset
controllers, the scheduler's placement by selector and taints, the kubelet's image check against containerd),
run in-process against real etcd and the API-server double, each node's files under its own root."""

import json
import shutil
import types

import pytest

from lab.doubles import cniplugins, deployments, install_dir, podrun, scheduler, testkit
from lab.doubles.kubeclient import ApiStatus, Client

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
APPLY = "application/apply-patch+yaml"
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("workloads")
    with testkit.local_apiserver(root, install_dir(root / "bin")) as (cluster, server, _):
        admin = Client.from_kubeconfig(root / "etc/kubernetes/super-admin.conf")
        yield types.SimpleNamespace(root=root, cluster=cluster, server=server, admin=admin)


def apply(client, path, obj, manager="kubefab", force=False):
    query = f"?fieldManager={manager}" + ("&force=true" if force else "") if manager else ""
    return client.request("PATCH", f"{path}{query}", obj, APPLY)


def refused(call):
    with pytest.raises(ApiStatus) as e:
        call()
    return e.value.code, e.value.body["message"]


def test_server_side_apply_records_each_manager_and_removes_only_what_the_manager_dropped(api):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ui", "labels": {"app": "ui", "tier": "web"}},
          "data": {"a": "1", "b": "2"}}
    assert refused(lambda: apply(api.admin, f"{CM}/ui", cm, manager=None)) == (
        422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
    created = apply(api.admin, f"{CM}/ui", cm)
    assert [(m["manager"], m["operation"]) for m in created["metadata"]["managedFields"]] == [("kubefab", "Apply")]
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}}}

    again = apply(api.admin, f"{CM}/ui", cm)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"], "no-op apply writes nothing"

    # another manager owns data.c and shares labels.tier; kubefab drops both b and tier from its config
    apply(api.admin, f"{CM}/ui", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "ui", "labels": {"tier": "web"}}, "data": {"c": "3"}}, manager="operator")
    cm["metadata"]["labels"] = {"app": "ui"}
    cm["data"] = {"a": "1"}
    after = apply(api.admin, f"{CM}/ui", cm)
    assert after["data"] == {"a": "1", "c": "3"}
    assert after["metadata"]["labels"] == {"app": "ui", "tier": "web"}, "a field another manager owns stays"
    assert {m["manager"] for m in after["metadata"]["managedFields"]} == {"kubefab", "operator"}

    changed = dict(cm, data={"a": "1", "c": "4"})
    assert refused(lambda: apply(api.admin, f"{CM}/ui", changed)) == (
        409, 'Apply failed with 1 conflict: conflict with "operator" using v1: .data.c')
    forced = apply(api.admin, f"{CM}/ui", changed, force=True)
    assert forced["data"]["c"] == "4"
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert "f:c" in owners["kubefab"]["f:data"] and "f:data" not in owners["operator"]


def test_keyed_lists_merge_by_name_and_an_item_the_manager_drops_is_removed(api):
    path = "/apis/apps/v1/namespaces/default/deployments/keyed"
    container = {"name": "a", "image": "docker.io/library/busybox:1.36", "args": ["x", "y"]}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "keyed"}, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "keyed"}}, "template": {
            "metadata": {"labels": {"app": "keyed"}},
            "spec": {"containers": [container, dict(container, name="b")]}}}}
    live = apply(api.admin, path, dep)
    fields = live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(fields) == {'k:{"name":"a"}', 'k:{"name":"b"}'}
    dep["spec"]["template"]["spec"]["containers"] = [dict(container, args=["z"])]
    live = apply(api.admin, path, dep)
    assert live["spec"]["template"]["spec"]["containers"] == [dict(container, args=["z"])]
    assert live["metadata"]["generation"] == 2


def test_custom_resources_need_their_crd_and_apiservices_are_stored(api):
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "eg"},
               "spec": {"gatewayClassName": "eg", "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}]}}
    path = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/eg"
    assert refused(lambda: apply(api.admin, path, gateway)) == (404, "the server could not find the requested resource")
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gateways.gateway.networking.k8s.io"},
           "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                    "names": {"kind": "Gateway", "listKind": "GatewayList", "plural": "gateways",
                              "singular": "gateway"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    apply(api.admin, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd)
    assert apply(api.admin, path, gateway)["spec"]["listeners"][0]["port"] == 443
    service = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
               "metadata": {"name": "v1beta1.metrics.k8s.io"},
               "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                        "versionPriority": 100, "insecureSkipTLSVerify": True,
                        "service": {"name": "metrics-server", "namespace": "kube-system"}}}
    stored = apply(api.admin, "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io", service)
    assert stored["spec"]["service"]["name"] == "metrics-server"


class Node:
    """A registered Node with its own root, a pod CIDR, a ready pod network and a kubelet pod worker whose
    containerd holds `held` images."""

    def __init__(self, api, name, pod_cidr, taints=()):
        self.name, self.root, self.held = name, api.root / "nodes" / name, set()
        conf = self.root / "kubelet.conf"
        conf.parent.mkdir(parents=True)
        conf.write_bytes(api.cluster.admin_kubeconfig(api.server, org="system:nodes", cn=f"system:node:{name}"))
        self.client = Client.from_kubeconfig(conf)
        self.client.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}},
            "spec": {"taints": list(taints), "podCIDR": pod_cidr}})
        net_d = self.root / "etc/cni/net.d"
        net_d.mkdir(parents=True)
        (net_d / "10-bridge.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "pods",
                                                              "plugins": [{"type": "bridge"}]}))
        cniplugins.install_release(self.root / "opt/cni/bin")
        self.worker = podrun.PodWorkers(name, lambda msg: None, lambda: self.held)

    def sync(self, monkeypatch):
        monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(self.root))
        self.worker.sync(self.client, "198.18.0.9")


def deployment(name, image, replicas, **pod):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": dict(pod, containers=[{"name": name, "image": image}])}}}


def settle(api, nodes, monkeypatch, rounds=3):
    for _ in range(rounds):
        deployments.sync(api.admin)
        scheduler.sync(api.admin)
        for node in nodes:
            node.sync(monkeypatch)
    deployments.sync(api.admin)


def owned_pods(api, app):
    return api.admin.get(f"/api/v1/namespaces/kube-system/pods?labelSelector=app%3D{app}")["items"]


def available(api, name):
    status = api.admin.get(f"/apis/apps/v1/namespaces/kube-system/deployments/{name}")["status"]
    return {c["type"]: c for c in status["conditions"]}["Available"], status


def test_a_deployment_runs_on_untainted_nodes_once_containerd_holds_its_image(api, monkeypatch):
    cp = Node(api, "wl-cp", "10.244.0.0/24", taints=[CP_TAINT])
    w1, w2 = Node(api, "wl-w1", "10.244.1.0/24"), Node(api, "wl-w2", "10.244.2.0/24")
    image = "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
    api.admin.create("/apis/apps/v1/namespaces/kube-system/deployments", deployment("ms", image, 2))
    settle(api, [cp, w1, w2], monkeypatch)

    pods = owned_pods(api, "ms")
    assert len(pods) == 2 and all(p["metadata"]["name"].startswith("ms-") for p in pods)
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["wl-w1", "wl-w2"], "spread, never on the control plane"
    waiting = pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "ErrImagePull", "message": (
        f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": failed to do request: '
        'Head "https://registry.k8s.io/v2/metrics-server/metrics-server/manifests/v0.8.0": dial tcp: lookup '
        'registry.k8s.io: no such host')}
    condition, _ = available(api, "ms")
    assert (condition["status"], condition["reason"]) == ("False", "MinimumReplicasUnavailable")

    w1.held.add(image)
    w2.held.add(image)
    settle(api, [cp, w1, w2], monkeypatch)
    condition, status = available(api, "ms")
    assert (condition["status"], condition["reason"], status["availableReplicas"]) == \
        ("True", "MinimumReplicasAvailable", 2)
    ips = {p["spec"]["nodeName"]: p["status"]["podIP"] for p in owned_pods(api, "ms")}
    assert ips["wl-w1"].startswith("10.244.1.") and ips["wl-w2"].startswith("10.244.2.")

    rs = api.admin.get("/apis/apps/v1/namespaces/kube-system/replicasets")["items"]
    mine = [r for r in rs if r["metadata"]["name"].startswith("ms-")]
    assert len(mine) == 1 and mine[0]["metadata"]["labels"]["pod-template-hash"] == \
        mine[0]["metadata"]["name"][len("ms-"):]

    api.admin.delete("/apis/apps/v1/namespaces/kube-system/deployments/ms")
    settle(api, [], monkeypatch, rounds=1)
    assert owned_pods(api, "ms") == [], "the garbage collector removes the ReplicaSet, then its pods"


def test_a_pod_that_fits_no_node_says_why_in_the_schedulers_words(api, monkeypatch):
    api.admin.create("/apis/apps/v1/namespaces/kube-system/deployments",
                     deployment("picky", "docker.io/library/busybox:1.36", 1, nodeSelector={"disk": "ssd"}))
    settle(api, [], monkeypatch, rounds=2)
    (pod,) = owned_pods(api, "picky")
    nodes = len(api.admin.get("/api/v1/nodes")["items"])
    assert pod["status"]["conditions"][0]["reason"] == "Unschedulable"
    assert pod["status"]["conditions"][0]["message"].startswith(f"0/{nodes} nodes are available: ")
    assert f"{nodes} node(s) didn't match Pod's node affinity/selector" in pod["status"]["conditions"][0]["message"]


def test_a_requested_token_authenticates_as_its_service_account_and_its_binding_authorizes_it(api):
    api.admin.create("/api/v1/namespaces/kube-system/serviceaccounts", {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ui-admin"}})
    token = api.admin.create("/api/v1/namespaces/kube-system/serviceaccounts/ui-admin/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    as_ui = Client.from_kubeconfig(api.root / "etc/kubernetes/super-admin.conf", token=token["status"]["token"])
    review = as_ui.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:kube-system:ui-admin"
    assert refused(lambda: as_ui.get("/api/v1/nodes"))[0] == 403
    api.admin.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "ui-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "ui-admin", "namespace": "kube-system"}]})
    assert "items" in as_ui.get("/api/v1/nodes")
