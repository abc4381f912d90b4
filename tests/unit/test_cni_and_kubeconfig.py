"""Pure parts of the API side: the CNI manifests, the user's kubeconfig merge, node patches, status judgement."""

import datetime
import os
import stat

import pytest
import yaml

from kubefab import inventory
from kubefab.api import health, nodes
from kubefab.components import cni
from kubefab.errors import InventoryError, KubefabError
from kubefab.state import kubeconfig_merge

from inventories import host_tables

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc)


def load(tmp_path, cluster="", hosts=None, mirrors=""):
    path = tmp_path / "inventory.toml"
    path.write_text(f'[cluster]\nname = "t"\n{cluster}\n{hosts if hosts is not None else host_tables(1, 2)}\n{mirrors}')
    return inventory.load(path, state_dir=tmp_path / "state")


def containers(text):
    for doc in yaml.safe_load_all(text):
        pod = (((doc or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        yield from (pod.get("initContainers") or []) + (pod.get("containers") or [])


# -- CNI --------------------------------------------------------------------------------------------

def test_flannel_network_is_the_pod_subnet_and_follows_kube_proxy_nftables(tmp_path):
    inv = load(tmp_path, 'pod_subnet = "10.32.0.0/16"\n[cluster.kube_proxy]\nmode = "nftables"')
    docs = list(yaml.safe_load_all(cni.manifest(inv)))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert yaml.safe_load(config["net-conf.json"]) == {"Network": "10.32.0.0/16", "EnableNFTables": True,
                                                        "Backend": {"Type": "vxlan"}}
    assert yaml.safe_load(config["cni-conf.json"])["plugins"][0]["type"] == "flannel"
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == "flannel"


def test_calico_default_pool_is_the_pod_subnet(tmp_path):
    inv = load(tmp_path, 'pod_subnet = "10.33.0.0/16"\ncni = "calico"')
    docs = list(yaml.safe_load_all(cni.manifest(inv)))
    node = next(c for c in containers(cni.manifest(inv)) if c["name"] == "calico-node")
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.33.0.0/16"} in node["env"]
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert "ippools.crd.projectcalico.org" in crds and len(crds) == len(cni.CALICO_CRDS)
    assert {d["kind"] for d in docs} >= {"DaemonSet", "Deployment", "ClusterRole", "ConfigMap"}


@pytest.mark.parametrize("name", ["flannel", "calico"])
def test_cni_images_come_from_docker_io_which_the_registry_mirrors_serve(tmp_path, name):
    inv = load(tmp_path, f'cni = "{name}"\nimage_repository = "registry.aliyuncs.com/google_containers"',
               mirrors='[mirrors.registries]\n"docker.io" = ["https://docker.m.daocloud.io"]')
    images = {c["image"] for c in containers(cni.manifest(inv))}
    assert images and all(i.startswith(f"docker.io/{name}/") and ":v" in i for i in images)
    assert set(inv.mirrors.registries) == {i.split("/")[0] for i in images}


def test_cni_none_renders_nothing_and_ipv6_is_refused_when_the_inventory_loads(tmp_path):
    assert cni.manifest(load(tmp_path, 'cni = "none"')) == ""
    with pytest.raises(InventoryError, match=r"line 3: \[cluster\] pod_subnet fd00:10::/56 is not IPv4 only: "
                                             "kubefab's flannel manifest is IPv4"):
        load(tmp_path, 'pod_subnet = "fd00:10::/56"\nservice_subnet = "fd00:20::/112"',
             hosts='[hosts.cp-1]\naddress = "fd00::11"\nroles = ["control-plane"]\n')
    with pytest.raises(InventoryError, match="pod_subnet 10.244.0.0/16,fd00:10::/56 is not IPv4 only: kubefab's "
                                             "calico manifest"):
        load(tmp_path, 'cni = "calico"\npod_subnet = "10.244.0.0/16,fd00:10::/56"\n'
                       'service_subnet = "10.96.0.0/12,fd00:20::/112"')


# -- kubeconfig merge -------------------------------------------------------------------------------

def admin(server="https://10.0.0.11:6443", ca="Q0E="):
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kubernetes-admin@t", "preferences": {},
        "clusters": [{"name": "t", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": "Y2VydA==",
                                                        "client-key-data": "a2V5"}}],
        "contexts": [{"name": "kubernetes-admin@t", "context": {"cluster": "t", "user": "kubernetes-admin"}}]})


OTHER = {"apiVersion": "v1", "kind": "Config", "current-context": "work",
         "clusters": [{"name": "work", "cluster": {"server": "https://work:6443"}}],
         "users": [{"name": "me", "user": {"token": "abc"}}],
         "contexts": [{"name": "work", "context": {"cluster": "work", "user": "me", "namespace": "ops"}}]}


def test_merge_keeps_every_other_entry_switches_context_and_writes_0600(tmp_path):
    kube_dir = tmp_path / ".kube"
    kube_dir.mkdir(mode=0o750)
    path = kube_dir / "config"
    path.write_text(yaml.safe_dump(OTHER))
    os.chmod(path, 0o644)
    assert kubeconfig_merge.merge_into(path, admin(), "prod") == kubeconfig_merge.ADDED
    merged = yaml.safe_load(path.read_text())
    for section in ("clusters", "users", "contexts"):
        assert OTHER[section][0] in merged[section]
    assert merged["current-context"] == "prod"
    assert {"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}} in merged["contexts"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(kube_dir.stat().st_mode) == 0o750, "the directory keeps its mode"
    assert kubeconfig_merge.merge_into(path, admin(), "prod") == kubeconfig_merge.UNCHANGED
    assert kubeconfig_merge.merge_into(path, admin(ca="Q0E=").replace("a2V5", "bmV3"), "prod") == \
        kubeconfig_merge.UPDATED


def test_merge_refuses_a_same_named_cluster_of_another_server(tmp_path):
    path = tmp_path / "config"
    kubeconfig_merge.merge_into(path, admin(), "prod")
    before = path.read_text()
    with pytest.raises(KubefabError, match="a cluster named 'prod' already points at https://10.0.0.11:6443 with "
                                           "another CA — pass --context NAME"):
        kubeconfig_merge.merge_into(path, admin(server="https://10.9.9.9:6443", ca="T1RIRVI="), "prod")
    assert path.read_text() == before


def test_kubeconfig_env_decides_the_file_as_kubectl_does(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert kubeconfig_merge.default_path({"HOME": str(tmp_path)}) == tmp_path / ".kube/config"
    assert kubeconfig_merge.default_path({"KUBECONFIG": str(a)}) == a
    assert kubeconfig_merge.default_path({"KUBECONFIG": f"{a}{os.pathsep}{b}"}) == b, "none exists: the last"
    a.write_text("{}")
    assert kubeconfig_merge.default_path({"KUBECONFIG": f"{a}{os.pathsep}{b}"}) == a, "the first existing"


def test_export_writes_the_admin_kubeconfig_0600_renamed_on_request(tmp_path):
    out = tmp_path / "t.conf"
    assert kubeconfig_merge.export(out, admin(), "lab")
    doc = yaml.safe_load(out.read_text())
    assert doc["current-context"] == "lab" and doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.11:6443"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not kubeconfig_merge.export(out, admin(), "lab"), "a second export changes nothing"


# -- node patches and status ------------------------------------------------------------------------

def node(taints=(), labels=None, ready=True):
    return {"metadata": {"name": "w-1", "labels": labels or {}, "resourceVersion": "7",
                         "creationTimestamp": "2026-11-27T12:00:00Z"},
            "spec": {"taints": list(taints)},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "message": "cni"}],
                       "nodeInfo": {"kubeletVersion": "v1.34.2"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.21"}]}}


def test_node_patch_replaces_a_changed_taint_and_keeps_foreign_ones():
    foreign = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    old = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    want = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    patch, changes = nodes.node_patch(node([foreign, old]), {"node-role.kubernetes.io/infra": ""}, [want])
    assert patch == {"metadata": {"labels": {"node-role.kubernetes.io/infra": ""}}, "spec": {"taints": [foreign, want]}}
    assert changes == ("label node-role.kubernetes.io/infra=", "taint dedicated=infra:NoSchedule",
                       "untaint dedicated=db:NoSchedule")
    assert nodes.node_patch(node([foreign, want], {"node-role.kubernetes.io/infra": ""}),
                            {"node-role.kubernetes.io/infra": ""}, [want]) == ({}, ())


def test_node_view_reads_roles_age_and_why_it_is_not_ready():
    view = nodes.view(node(labels={"node-role.kubernetes.io/control-plane": ""}, ready=False))
    assert (view.roles, view.version, view.ready, view.reason, view.internal_ip) == (
        ("control-plane",), "v1.34.2", False, "cni", "10.0.0.21")
    assert nodes.age(view.created, NOW) == "2d"


def test_evaluate_names_every_problem_and_only_warns_about_soon_expiring_certs(tmp_path):
    inv = load(tmp_path, hosts=host_tables(1, 1))
    views = (nodes.view(dict(node(), metadata=dict(node()["metadata"], name="cp-1"))),
             nodes.view(dict(node(ready=False), metadata=dict(node()["metadata"], name="stray"))))
    comps = health.components([], ["cp-1"])
    cert = type("Cert", (), dict(file="pki/apiserver.crt", days_left=10, not_after=NOW))
    problems, warnings = health.evaluate(inv, views, comps, (cert,), warn_days=30)
    assert problems[0] == "w-1: not a node of the cluster — run `invoke node.join --host w-1`"
    assert "cp-1: etcd not ready — no static pod reported" in problems and len(problems) == 5
    assert warnings == ("stray: a node the inventory does not list",
                        "pki/apiserver.crt: expires in 10 days (2026-11-29)")


def test_a_manifest_file_is_applied_as_given_but_only_with_the_inventorys_pod_subnet(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net/flannel.yml").write_text(cni.manifest(load(tmp_path, 'pod_subnet = "10.40.0.0/16"')))
    inv = load(tmp_path, 'pod_subnet = "10.40.0.0/16"\ncni_manifest = "net/flannel.yml"')
    assert cni.manifest(inv) == (tmp_path / "net/flannel.yml").read_text()
    (tmp_path / "net/flannel.yml").write_text("kind: [")
    with pytest.raises(KubefabError, match=r"inventory.toml: \[cluster\] cni_manifest .*flannel.yml is not valid "
                                           "YAML"):
        cni.manifest(inv)


def test_kubeconfig_task_writes_the_admin_conf_or_merges_it_where_kubeconfig_points(tmp_path, monkeypatch, capsys):
    from invoke import Config, Context

    from kubefab.pki import kubeconfig
    from kubefab import pki
    from kubefab.tasks import cluster_api
    inv = load(tmp_path, hosts=host_tables(1, 0))
    pki.ensure(inv)
    kubeconfig.ensure(inv)
    ctx = Context(Config(overrides={"kubefab": {"inventory": str(inv.path), "state_dir": str(inv.state_dir)}}))
    monkeypatch.chdir(tmp_path)
    cluster_api.kubeconfig_file(ctx)
    written = tmp_path / "t.conf"
    assert written.read_text() == (inv.state_dir / "kubeconfigs/admin.conf").read_text()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(OTHER))
    monkeypatch.setenv("KUBECONFIG", str(mine))
    cluster_api.kubeconfig_file(ctx, merge=True, context="lab-t")
    assert f"{mine}: context 'lab-t' added; current context is now 'lab-t'" in capsys.readouterr().out
    merged = yaml.safe_load(mine.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["work", "lab-t"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://10.0.0.11:6443"


def test_flannel_and_calico_are_told_the_nodes_own_address_not_the_default_routes(tmp_path):
    flannel = {c["name"]: c for c in containers(cni.manifest(load(tmp_path)))}["kube-flannel"]
    assert "--iface=$(NODE_IP)" in flannel["args"]
    assert {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}} in flannel["env"]
    calico = {c["name"]: c for c in containers(cni.manifest(load(tmp_path, 'cni = "calico"')))}["calico-node"]
    assert {"name": "IP_AUTODETECTION_METHOD", "value": "kubernetes-internal-ip"} in calico["env"]


@pytest.mark.parametrize("name, value", [("flannel", "10.0.2.15"), ("calico", "10.0.2.15/24")])
def test_a_node_advertising_another_address_than_its_internal_one_is_named_with_what_it_advertises(
        tmp_path, name, value):
    inv = load(tmp_path, f'cni = "{name}"')
    host = inv.hosts[1]
    spec = cni.ADVERTISED[name]
    node = {"metadata": {"annotations": {spec.annotation: value}}}
    problem = cni.advertise_problem(inv, host, cni.advertised(node, spec))
    assert problem.startswith(f"{host.name} advertises 10.0.2.15 to the pod network ({spec.annotation}), not its "
                              f"internal_address {host.internal_address}")
    assert f"kubefab's {name} manifest" in problem and spec.fix in problem
    own = {"metadata": {"annotations": {spec.annotation: host.internal_address + ("/24" if name == "calico" else "")}}}
    assert cni.advertise_problem(inv, host, cni.advertised(own, spec)) is None
    assert cni.advertised({"metadata": {}}, spec) == ""
