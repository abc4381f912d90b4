"""kubefab's API side against real etcd and the API-server double, both running on kubefab's own PKI:
the client from the local admin.conf (directly and through a forward), idempotent apply of the CNI
manifests, bootstrap tokens kubeadm's join accepts, node labels and taints, drain, cluster.status."""

import base64
import logging
import shutil
import socket
import subprocess
import threading

import pytest
import yaml
from invoke import Config, Context, Exit

from kubefab import inventory, pki
from kubefab.api import apisteps, apply, bootstrap, drain, health, kube, nodes
from kubefab.components import cni
from kubefab.pki import kubeconfig, token
from kubefab.state import bundle
from kubefab.steps import ApplyCni, NodeReady, RemoveNode
from lab import Network, spec
from lab.doubles import controllers, install_dir, objects as kubeadm_objects, testkit
from lab.doubles.kubeclient import Client
from kubefab.tasks import cluster_api

ADDRESSES = {}          # cp, w: set by the cluster fixture

pytestmark = [pytest.mark.lab,        # real etcd behind the API-server double
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]

INVENTORY = """
[cluster]
name = "kf-api"
control_plane_endpoint = "{cp}:{port}"
pod_subnet = "10.200.0.0/16"
cni = "{cni}"

[hosts.cp-1]
address = "{cp}"
roles = ["control-plane"]

[hosts.w-1]
address = "{w}"
roles = ["worker"]
labels = {{ "node-role.kubernetes.io/worker" = "", zone = "a" }}
taints = ["dedicated=infra:NoSchedule"]
"""


def load(base, port, cni_name="flannel", state=None):
    path = base / f"inventory-{cni_name}.toml"
    path.write_text(INVENTORY.format(port=port, cni=cni_name, **ADDRESSES))
    return inventory.load(path, state_dir=state or base / "state")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """etcd + the API-server double serving kubefab's PKI for cp-1, as after `kubeadm init` (the
    kubeadm:cluster-admins binding exists, so kubefab's admin.conf has cluster-admin)."""
    base = tmp_path_factory.mktemp("kubeapi")
    port = testkit.free_port()
    # a node address is never loopback: cp-1 is this machine's address on a lab bridge, w-1 a namespace behind it
    net, procs = Network.up(1), testkit.Processes()
    try:
        ADDRESSES.update(cp=str(spec.subnet(net.id)[1]), w=net.namespaces[0].address)
        cp = ADDRESSES["cp"]
        inv = load(base, port)
        pki.ensure(inv)
        kubeconfig.ensure(inv)
        root = base / "root"
        for f in bundle.host_files(inv, inv.host("cp-1")):
            dest = root / f.path_on_host.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.local_source.read_bytes())
        bin_dir = install_dir(base / "bin")
        etcd = testkit.start_etcd(procs, root)
        proc = procs.start([str(bin_dir / "kube-apiserver"), *testkit.apiserver_flags(root, etcd, cp, port)],
                           root / "apiserver.log", env=testkit.double_env(root))
        testkit.wait_port(cp, port, proc=proc)
        sup = kube.connect(inv.state_dir / "kubeconfigs/super-admin.conf")
        kube.wait_ready(sup, timeout=30)
        sup.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "metadata": {"name": "kubeadm:cluster-admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "kubeadm:cluster-admins", "apiGroup": "rbac.authorization.k8s.io"}]})
        api = kube.connect(inv.state_dir / "kubeconfigs/admin.conf")
        yield type("Cluster", (), dict(base=base, port=port, cp=cp, inv=inv, root=root, bin_dir=bin_dir, api=api))
    finally:
        procs.stop()
        net.down()


def node_object(name, ready=True, taints=()):
    """A Node as the kubelet registers it (every NodeSystemInfo field, Ready as given), with the address flannel
    records for it once its pod runs: the host's internal address."""
    address = ADDRESSES.get({"cp-1": "cp", "w-1": "w"}.get(name), "198.18.255.9")
    info = {k: "x" for k in ("architecture", "bootID", "containerRuntimeVersion", "kernelVersion",
                             "kubeProxyVersion", "machineID", "operatingSystem", "osImage", "systemUUID")}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name},
                         "annotations": {"flannel.alpha.coreos.com/public-ip": address}},
            "spec": {"taints": list(taints)} if taints else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "message": "kubelet is posting ready status" if ready else
                                       "container runtime network not ready: NetworkReady=false"}],
                       "addresses": [{"type": "InternalIP", "address": address}],
                       "nodeInfo": dict(info, kubeletVersion="v1.33.5")}}


def ensure_node(api, name, **kw):
    api.delete(f"/api/v1/nodes/{name}")
    api.create("/api/v1/nodes", node_object(name, **kw))


# -- connecting -----------------------------------------------------------------------------------

def test_wait_ready_returns_the_server_version(cluster):
    assert kube.wait_ready(cluster.api, timeout=10) == "v1.33.5"


def test_wait_ready_gives_up_at_its_deadline_with_the_last_error(cluster, tmp_path):
    closed = testkit.free_port()
    conf = tmp_path / "admin.conf"
    doc = yaml.safe_load((cluster.inv.state_dir / "kubeconfigs/admin.conf").read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed}"
    conf.write_text(yaml.safe_dump(doc))
    with pytest.raises(kube.Timeout) as err:
        kube.wait_ready(kube.connect(conf), timeout=2)
    assert f"https://127.0.0.1:{closed}: the API server was not ready within 2s" in str(err.value)
    assert "refused" in str(err.value).lower()


def relay(listen, target):
    """A TCP forward from `listen` to `target` (what an SSH tunnel's local end is); returns its port."""
    server = socket.create_server((listen, 0))

    def pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            b.close()

    def serve():
        while True:
            conn, _ = server.accept()
            upstream = socket.create_connection(target)
            threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_through_a_forward_the_certificate_is_checked_for_the_real_endpoint(cluster):
    # 127.0.0.3 is not in the apiserver certificate: only the endpoint's own name makes TLS pass
    port = relay("127.0.0.3", (cluster.cp, cluster.port))
    admin = cluster.inv.state_dir / "kubeconfigs/admin.conf"
    api = kube.connect(admin, via=f"127.0.0.3:{port}")
    assert api.server == f"https://127.0.0.3:{port}"
    assert {n.name for n in nodes.list_nodes(api)} == {n.name for n in nodes.list_nodes(cluster.api)}
    plain = yaml.safe_load(admin.read_text())
    plain["clusters"][0]["cluster"]["server"] = f"https://127.0.0.3:{port}"
    (cluster.base / "direct.conf").write_text(yaml.safe_dump(plain))
    with pytest.raises(kube.Unreachable, match="127.0.0.3"):
        kube.connect(cluster.base / "direct.conf").get("/version")


def test_a_refusal_carries_the_servers_own_message(cluster):
    with pytest.raises(kube.ApiError) as err:
        cluster.api.get("/api/v1/namespaces/default/configmaps/absent")
    assert err.value.status == 404 and err.value.message == 'configmaps "absent" not found'


# -- apply ----------------------------------------------------------------------------------------

def test_flannel_apply_creates_then_changes_nothing_then_configures_only_what_changed(cluster, tmp_path):
    first = apply.apply(cluster.api, cni.manifest(cluster.inv), "flannel")
    assert [str(a) for a in first][:2] == ["namespace/kube-flannel created", "clusterrole.rbac.authorization.k8s.io/"
                                                                            "flannel created"]
    assert {a.action for a in first} == {apply.CREATED} and len(first) == 6
    again = apply.apply(cluster.api, cni.manifest(cluster.inv), "flannel")
    assert {a.action for a in again} == {apply.UNCHANGED}
    ds = cluster.api.get("/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds")
    assert ds["metadata"]["generation"] == 1, "an unchanged apply writes nothing"
    other = load(tmp_path, cluster.port, state=cluster.inv.state_dir)
    text = cni.manifest(other).replace("10.200.0.0/16", "10.201.0.0/16")
    changed = {str(a) for a in apply.apply(cluster.api, text, "flannel") if a.action != apply.UNCHANGED}
    assert changed == {"configmap/kube-flannel-cfg configured"}
    cfg = cluster.api.get("/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg")
    assert '"Network": "10.201.0.0/16"' in cfg["data"]["net-conf.json"]
    apply.apply(cluster.api, cni.manifest(cluster.inv), "flannel")


def test_calico_apply_defines_its_crds_before_objects_need_them(cluster):
    inv = load(cluster.base, cluster.port, "calico", state=cluster.inv.state_dir)
    text = cni.manifest(inv) + "---\n" + yaml.safe_dump({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "default-ipv4-ippool"},
        "spec": {"cidr": inv.cluster.pod_subnet}})
    result = apply.apply(cluster.api, text, "calico")
    assert [a.kind for a in result[:len(cni.CALICO_CRDS)]] == ["CustomResourceDefinition"] * len(cni.CALICO_CRDS)
    assert str(result[-1]) == "ippool.crd.projectcalico.org/default-ipv4-ippool created"
    assert {a.action for a in apply.apply(cluster.api, text, "calico")} == {apply.UNCHANGED}


def test_a_manifest_document_without_a_name_is_refused_before_anything_is_applied(cluster):
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok-cm}\n---\napiVersion: v1\nkind: ConfigMap\n"
    with pytest.raises(kube.KubefabError, match="custom.yaml: document 2 has no metadata.name"):
        apply.apply(cluster.api, text, "custom.yaml")
    assert cluster.api.find("/api/v1/namespaces/default/configmaps/ok-cm") is None


# -- bootstrap tokens ---------------------------------------------------------------------------

def kubeadm(cluster, root, *args):
    return subprocess.run([str(cluster.bin_dir / "kubeadm"), *args], env=testkit.double_env(root, cluster.bin_dir),
                          capture_output=True, text=True, timeout=120)


def decoded(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_token_secret_has_the_shape_kubeadm_token_create_writes(cluster):
    out = kubeadm(cluster, cluster.root, "token", "create", "--ttl", "1h", "--kubeconfig",
                  "/etc/kubernetes/super-admin.conf")
    assert out.returncode == 0, out.stderr
    theirs = cluster.api.get(f"{bootstrap.SECRETS}/bootstrap-token-{out.stdout.split('.')[0]}")
    value = bootstrap.create(cluster.api)
    ours = cluster.api.get(f"{bootstrap.SECRETS}/bootstrap-token-{value.reveal().split('.')[0]}")
    assert (ours["type"], ours["metadata"]["namespace"]) == (theirs["type"], theirs["metadata"]["namespace"])
    mine, kubeadms = decoded(ours), decoded(theirs)
    assert set(mine) - {"description"} == set(kubeadms)
    for key in ("usage-bootstrap-authentication", "usage-bootstrap-signing", "auth-extra-groups"):
        assert mine[key] == kubeadms[key]
    assert abs(int(mine["expiration"][11:13]) - int(kubeadms["expiration"][11:13])) in (0, 23)
    assert value.reveal() not in repr(value)


def join_discovery(cluster, tmp_path, value):
    """`kubeadm join`'s discovery with token `value` and kubefab's CA hash; the later phases skipped."""
    sock = testkit.prepare_host(tmp_path)
    (tmp_path / "join.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
        "nodeRegistration": {"name": "w-1"}, "timeouts": {"discovery": "1s"},
        "skipPhases": ["kubelet-start"],
        "discovery": {"bootstrapToken": {"apiServerEndpoint": f"{cluster.cp}:{cluster.port}", "token": value,
                                         "caCertHashes": [token.ca_cert_hash(cluster.inv)]}}}))
    try:
        return kubeadm(cluster, tmp_path, "join", "--config", "/join.yaml", "--ignore-preflight-errors=all")
    finally:
        sock.close()


@pytest.fixture
def cluster_info(cluster):
    """What kubeadm init publishes for discovery: cluster-info from admin.conf, kubeadm-config, kubelet-config."""
    admin = yaml.safe_load((cluster.inv.state_dir / "kubeconfigs/admin.conf").read_text())
    info = {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "", "cluster": admin["clusters"][0]["cluster"]}]}
    objects = [("kube-public", "cluster-info", {"kubeconfig": yaml.safe_dump(info)}),
               ("kube-system", "kubeadm-config", {"ClusterConfiguration": yaml.safe_dump({
                   "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                   "kubernetesVersion": "v1.33.5", "controlPlaneEndpoint": cluster.inv.endpoint})}),
               ("kube-system", "kubelet-config", {"kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                                             "kind: KubeletConfiguration\n"})]
    for ns, name, data in objects:
        if cluster.api.find(f"/api/v1/namespaces/{ns}/configmaps/{name}") is None:
            cluster.api.create(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": name}, "data": data})
    client = signer_client(cluster)
    kubeadm_objects.grant_config_reads(client)
    kubeadm_objects.grant_bootstrap_tokens(client)


def test_kubeadm_join_discovery_accepts_a_token_made_through_the_api_until_it_is_deleted(cluster, cluster_info,
                                                                                         tmp_path):
    client = signer_client(cluster)
    with bootstrap.temporary(cluster.api) as value:
        controllers.sign_cluster_info(client)      # the controller-manager's bootstrapsigner
        out = join_discovery(cluster, tmp_path / "a", value.reveal())
        assert out.returncode == 0, out.stderr
        assert "[discovery] Cluster info signature and contents are valid" in out.stdout + out.stderr
    assert cluster.api.find(f"{bootstrap.SECRETS}/bootstrap-token-{value.reveal().split('.')[0]}") is None
    controllers.sign_cluster_info(client)
    out = join_discovery(cluster, tmp_path / "b", value.reveal())
    assert out.returncode == 1
    assert "could not find a JWS signature in the cluster-info ConfigMap for token ID" in out.stderr


def signer_client(cluster):
    return Client.from_kubeconfig(cluster.inv.state_dir / "kubeconfigs/super-admin.conf")


# -- nodes ----------------------------------------------------------------------------------------

def test_inventory_labels_and_taints_are_applied_once(cluster):
    ensure_node(cluster.api, "cp-1", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    ensure_node(cluster.api, "w-1", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
    changes = {c.host: c for c in nodes.reconcile(cluster.api, cluster.inv)}
    assert changes["cp-1"].changes == ()
    assert changes["w-1"].changes == ("label node-role.kubernetes.io/worker=", "taint dedicated=infra:NoSchedule")
    w1 = nodes.view(cluster.api.get("/api/v1/nodes/w-1"))
    assert w1.roles == ("worker",) and "zone" not in w1.labels, "zone is the kubelet's to set (node-labels)"
    assert {t["key"] for t in w1.taints} == {"node.kubernetes.io/not-ready", "dedicated"}, "others' taints stay"
    assert [str(c) for c in nodes.reconcile(cluster.api, cluster.inv)] == ["cp-1: unchanged", "w-1: unchanged"]


def test_a_single_node_cluster_loses_the_control_plane_taint(cluster, tmp_path):
    path = tmp_path / "single.toml"
    path.write_text(f'[cluster]\nname = "kf-api"\ncontrol_plane_endpoint = "{cluster.cp}:{cluster.port}"\n'
                    f'[hosts.cp-1]\naddress = "{cluster.cp}"\nroles = ["control-plane"]\n')
    single = inventory.load(path, state_dir=cluster.inv.state_dir)
    ensure_node(cluster.api, "cp-1", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    assert [str(c) for c in nodes.reconcile(cluster.api, single)] == [
        "cp-1: untaint node-role.kubernetes.io/control-plane:NoSchedule"]
    assert not nodes.view(cluster.api.get("/api/v1/nodes/cp-1")).taints


def test_a_host_that_is_not_a_node_is_reported_not_invented(cluster):
    cluster.api.delete("/api/v1/nodes/w-1")
    assert [str(c) for c in nodes.reconcile(cluster.api, cluster.inv, [cluster.inv.host("w-1")])] == [
        "w-1: not registered — join it first"]
    assert cluster.api.find("/api/v1/nodes/w-1") is None


def test_remove_cordons_drains_and_deletes_the_node_but_leaves_static_and_daemonset_pods(cluster):
    ensure_node(cluster.api, "w-1")
    pods = {"app": {}, "flannel": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                                         "name": "kube-flannel-ds", "uid": "u1", "controller": True}]},
            "static-w-1": {"annotations": {drain.MIRROR: "x"}}}
    for name, meta in pods.items():
        cluster.api.create("/api/v1/namespaces/default/pods", {"metadata": dict(meta, name=name), "spec": {
            "nodeName": "w-1", "containers": [{"name": "c", "image": "busybox"}]}})
    result = drain.remove(cluster.api, "w-1", timeout=20)
    assert result.evicted == ("default/app",)
    assert result.skipped == ("default/flannel (DaemonSet pod)", "default/static-w-1 (static pod)")
    assert result.deleted and cluster.api.find("/api/v1/nodes/w-1") is None
    assert drain.remove(cluster.api, "w-1").deleted is False


# -- cluster.status -------------------------------------------------------------------------------

def status(cluster):
    ctx = Context(Config(overrides={"kubefab": {"inventory": str(cluster.inv.path),
                                                "state_dir": str(cluster.inv.state_dir)}}))
    cluster_api.status(ctx)


def static_pods(api, node, not_ready=()):
    """The kubelet's mirror pods of a control-plane node, Ready unless named in `not_ready`."""
    for component in health.COMPONENTS:
        path = f"/api/v1/namespaces/kube-system/pods/{component}-{node}"
        api.delete(path)
        api.create("/api/v1/namespaces/kube-system/pods", {
            "metadata": {"name": f"{component}-{node}", "labels": {"component": component, "tier": "control-plane"},
                         "annotations": {drain.MIRROR: "x"}},
            "spec": {"nodeName": node, "containers": [{"name": component, "image": "x"}]}})
        ready = "False" if component in not_ready else "True"
        api.patch(f"{path}/status", {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": ready}]}}, kube.MERGE)


def test_a_join_waits_for_the_previous_control_plane_to_be_ready(cluster):
    static_pods(cluster.api, "cp-1", not_ready=("etcd",))
    with pytest.raises(kube.Timeout, match="cp-1: the control-plane components were not all Ready within 1s — "
                                           "last: etcd: pod etcd-cp-1 is Running, not Ready"):
        health.wait_control_plane(cluster.api, "cp-1", timeout=1)
    static_pods(cluster.api, "cp-1")
    health.wait_control_plane(cluster.api, "cp-1", timeout=5)


def test_verify_waits_for_every_node_to_be_registered_and_ready(cluster):
    ensure_node(cluster.api, "cp-1")
    cluster.api.delete("/api/v1/nodes/w-1")
    with pytest.raises(kube.Timeout, match="last: w-1 not registered"):
        nodes.wait_ready(cluster.api, ["cp-1", "w-1"], timeout=1)
    ensure_node(cluster.api, "w-1", ready=False)
    with pytest.raises(kube.Timeout, match=r"w-1 NotReady \(container runtime network not ready"):
        nodes.wait_ready(cluster.api, ["cp-1", "w-1"], timeout=1)
    ensure_node(cluster.api, "w-1")
    assert [n.name for n in nodes.wait_ready(cluster.api, ["cp-1", "w-1"], timeout=5)] == ["cp-1", "w-1"]


def test_status_exits_non_zero_while_a_node_is_not_ready(cluster, capsys):
    for name in ("cp-1", "w-1"):
        ensure_node(cluster.api, name)
    static_pods(cluster.api, "cp-1")
    status(cluster)
    healthy = capsys.readouterr().out
    assert "0 problems" in healthy and "cp-1" in healthy and "kube-scheduler" in healthy
    cluster.api.patch("/api/v1/nodes/w-1/status", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "message": "container runtime network not ready"}]}}, kube.MERGE)
    with pytest.raises(Exit) as exit_:
        status(cluster)
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "problem: w-1: NotReady — container runtime network not ready" in out
    assert "1 problem\n" in out + "\n"


def test_a_kind_the_server_does_not_serve_is_named_with_what_it_does_serve(cluster):
    with pytest.raises(kube.Timeout, match=r"no Widget served in example.org/v1 within 1s — last: it serves nothing"):
        cluster.api.resource("example.org/v1", "Widget", timeout=1)
    with pytest.raises(kube.Timeout, match=r"no Widget served in v1 within 1s — last: it serves .*ConfigMap"):
        cluster.api.resource("v1", "Widget", timeout=1)


# -- cluster.up's Api steps (kubefab.api.apisteps): a step result each, changed only when something was written --

LOG = logging.getLogger("test")


def run(inv, step, host):
    return apisteps.ApiSteps(inv, None, LOG).run(step("test"), inv.host(host))


def test_the_cni_step_writes_the_manifest_once(cluster):
    cluster.api.delete("/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds")
    first = run(cluster.inv, ApplyCni, "cp-1")
    assert first.status == "changed" and "daemonset.apps/kube-flannel-ds created" in first.detail
    again = run(cluster.inv, ApplyCni, "cp-1")
    assert again.status == "unchanged" and again.detail.endswith("objects unchanged")


def test_verify_applies_labels_and_taints_and_with_cni_none_needs_registration_not_ready(cluster):
    ensure_node(cluster.api, "w-1", ready=True)
    done = run(cluster.inv, NodeReady, "w-1")
    assert done.status == "changed" and "taint dedicated=infra:NoSchedule" in done.detail
    assert run(cluster.inv, NodeReady, "w-1").status == "unchanged"
    ensure_node(cluster.api, "w-1", ready=False)
    none = load(cluster.base, cluster.port, "none", state=cluster.inv.state_dir)
    result = run(none, NodeReady, "w-1")
    assert result.status == "changed" and "Ready once your pod network runs" in result.detail, result


def test_verify_reads_a_ready_node_from_one_list_when_its_labels_and_taints_are_as_the_inventory_says(
        cluster, monkeypatch):
    ensure_node(cluster.api, "w-1", ready=True)
    run(cluster.inv, NodeReady, "w-1")
    requests, request = [], kube.Api.request
    monkeypatch.setattr(kube.Api, "request", lambda self, method, path, *a, **kw: (
        requests.append((method, path)), request(self, method, path, *a, **kw))[1])
    assert run(cluster.inv, NodeReady, "w-1").status == "unchanged"
    assert requests == [("GET", "/api/v1/nodes")]          # the LIST every node's verify step shares


def test_removing_a_node_drains_and_deletes_it_once(cluster):
    ensure_node(cluster.api, "w-1")
    assert run(cluster.inv, RemoveNode, "w-1").status == "changed"
    assert cluster.api.find("/api/v1/nodes/w-1") is None
    gone = run(cluster.inv, RemoveNode, "w-1")
    assert (gone.status, gone.detail) == ("unchanged", "not a node of the cluster")

