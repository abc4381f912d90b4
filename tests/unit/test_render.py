"""Rendered files: what kubeadm, containerd and the kernel will read on each host."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from inventories import host_tables
from kubefab import inventory, paths, pki, plan
from kubefab.components import kubeadm
from kubefab.errors import InventoryError
from kubefab.pki import kubeconfig, token, x509
from kubefab.plan import render
from kubefab.state import bundle, tree

from lab.doubles import install_dir, testkit

SINGLE = """\
[cluster]
name = "single"
kubernetes_version = "1.34.2"
token_ttl = "2h"
[cluster.apiserver]
extra_args = { "audit-log-maxage" = "30", "profiling" = false, "max-requests-inflight" = 800 }
cert_sans = ["api.single.example", "203.0.113.10"]
[cluster.controller_manager]
extra_args = { "node-monitor-grace-period" = "50s" }
[cluster.kubelet]
extra_args = { "max-pods" = "150" }
config = { maxPods = 150, evictionHard = { "memory.available" = "200Mi" } }

[hosts.cp-1]
address = "10.0.0.11"
roles = ["control-plane"]
labels = { "node-role.kubernetes.io/ingress" = "", "topology.kubernetes.io/zone" = "a" }
[hosts.w-1]
address = "10.0.0.21"
internal_address = "10.1.0.21"
roles = ["worker"]
labels = { zone = "a", "node-role.kubernetes.io/worker" = "", "node.kubernetes.io/pool" = "gpu" }
taints = ["dedicated=gpu:NoSchedule", "spot:PreferNoSchedule"]
[hosts.w-2]
address = "10.0.0.22"
roles = ["worker"]
"""

HA = """\
[cluster]
name = "ha"
kubernetes_version = "1.33.5"
control_plane_endpoint = "api.ha.internal:8443"
image_repository = "registry.aliyuncs.com/google_containers"
encryption_algorithm = "ECDSA-P256"
cert_validity_days = 90
ca_validity_days = 1000
[cluster.kube_proxy]
mode = "ipvs"
config = { ipvs = { scheduler = "wrr" } }

""" + host_tables(3, 1) + """
[mirrors.registries]
"docker.io" = ["https://docker.m.daocloud.io", "https://mirror.ccs.tencentyun.com"]
"registry.local:5000" = ["http://10.0.0.5:5000"]
"""

BOTH = """\
[cluster]
name = "both"
kubernetes_version = "1.31.4"
encryption_algorithm = "ECDSA-P256"

[hosts.solo]
address = "10.0.0.31"
roles = ["control-plane", "worker"]
taints = ["dedicated=db:NoExecute"]
[hosts.edge]
address = "10.0.0.32"
roles = ["control-plane", "worker"]
[hosts.w-1]
address = "10.0.0.33"
roles = ["worker"]
"""

TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def build(tmp_path_factory, name, text):
    path = tmp_path_factory.mktemp(name) / "inventory.toml"
    path.write_text(text)
    inv = inventory.load(path)
    pki.ensure(inv)
    kubeconfig.ensure(inv)
    return inv, render.render(inv)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return build(tmp_path_factory, "single", SINGLE)


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    return build(tmp_path_factory, "ha", HA)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return build(tmp_path_factory, "both", BOTH)


@pytest.fixture(params=["single", "ha", "both"])
def any_cluster(request):
    return request.getfixturevalue(request.param)


def on_host(inv, host, path):
    return tree.local_path(inv, host, path)


def docs(inv, host, path):
    return {d["kind"]: d for d in yaml.safe_load_all(on_host(inv, host, path).read_text())}


def args(items):
    return {a["name"]: a["value"] for a in items}


# ---- kubeadm init ----------------------------------------------------------------------------------

def test_init_config_holds_the_four_kinds_in_order_with_v1beta4(single):
    inv, _ = single
    loaded = list(yaml.safe_load_all(on_host(inv, "cp-1", paths.INIT_CONFIG).read_text()))
    assert [(d["apiVersion"], d["kind"]) for d in loaded] == [
        ("kubeadm.k8s.io/v1beta4", "InitConfiguration"), ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration"),
        ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
        ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")]


def test_init_configuration_registers_the_node_with_the_token(single):
    inv, _ = single
    init = docs(inv, "cp-1", paths.INIT_CONFIG)["InitConfiguration"]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.0.0.11", "bindPort": 6443}
    assert init["bootstrapTokens"][0]["token"] == token.bootstrap_token(inv).reveal()
    assert TOKEN_RE.match(init["bootstrapTokens"][0]["token"])
    assert init["bootstrapTokens"][0]["ttl"] == "2h"
    node = init["nodeRegistration"]
    assert node["name"] == "cp-1"
    assert node["criSocket"] == "unix:///var/run/containerd/containerd.sock"
    assert args(node["kubeletExtraArgs"])["node-ip"] == "10.0.0.11"


def test_cluster_configuration_carries_the_inventory(single, ha):
    inv, _ = single
    cluster = docs(inv, "cp-1", paths.INIT_CONFIG)["ClusterConfiguration"]
    assert cluster["kubernetesVersion"] == "v1.34.2"
    assert cluster["clusterName"] == "single"
    assert cluster["controlPlaneEndpoint"] == "10.0.0.11:6443"
    assert cluster["certificatesDir"] == paths.PKI
    assert cluster["encryptionAlgorithm"] == "RSA-2048"
    assert cluster["certificateValidityPeriod"] == "8760h"
    assert cluster["caCertificateValidityPeriod"] == "87600h"
    assert cluster["networking"] == {"serviceSubnet": "10.96.0.0/12", "podSubnet": "10.244.0.0/16",
                                     "dnsDomain": "cluster.local"}
    assert cluster["apiServer"]["certSANs"] == ["api.single.example", "203.0.113.10"]
    inv, _ = ha
    cluster = docs(inv, "cp-1", paths.INIT_CONFIG)["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "api.ha.internal:8443"
    assert cluster["imageRepository"] == "registry.aliyuncs.com/google_containers"
    assert cluster["encryptionAlgorithm"] == "ECDSA-P256"
    assert (cluster["certificateValidityPeriod"], cluster["caCertificateValidityPeriod"]) == ("2160h", "24000h")


def test_extra_args_are_lists_of_name_and_string_value(single):
    inv, _ = single
    cluster = docs(inv, "cp-1", paths.INIT_CONFIG)["ClusterConfiguration"]
    assert cluster["apiServer"]["extraArgs"] == [
        {"name": "audit-log-maxage", "value": "30"}, {"name": "profiling", "value": "false"},
        {"name": "max-requests-inflight", "value": "800"}]
    assert cluster["controllerManager"]["extraArgs"] == [{"name": "node-monitor-grace-period", "value": "50s"}]
    assert cluster["scheduler"]["extraArgs"] == []


def test_component_configs_merge_the_inventory_over_kubefabs_settings(single, ha):
    inv, _ = single
    kubelet = docs(inv, "cp-1", paths.INIT_CONFIG)["KubeletConfiguration"]
    assert kubelet["cgroupDriver"] == "systemd"
    assert kubelet["maxPods"] == 150 and kubelet["evictionHard"] == {"memory.available": "200Mi"}
    assert docs(inv, "cp-1", paths.INIT_CONFIG)["KubeProxyConfiguration"]["mode"] == "iptables"
    inv, _ = ha
    proxy = docs(inv, "cp-1", paths.INIT_CONFIG)["KubeProxyConfiguration"]
    assert proxy["mode"] == "ipvs" and proxy["ipvs"] == {"scheduler": "wrr"}


def test_a_component_config_that_contradicts_kubefab_is_refused_when_the_inventory_loads(tmp_path):
    text = SINGLE.replace('config = { maxPods = 150', 'config = { cgroupDriver = "cgroupfs", maxPods = 150')
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=r"line 12: \[cluster.kubelet\] config cgroupDriver = 'cgroupfs' "
                                             r"conflicts with 'systemd', which kubefab sets"):
        inventory.load(path)


def test_kubelet_extra_args_may_not_replace_the_per_host_node_ip(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text(SINGLE.replace('extra_args = { "max-pods" = "150" }', 'extra_args = { "node-ip" = "1.2.3.4" }'))
    with pytest.raises(InventoryError, match=r"line 11: \[cluster.kubelet\] extra_args sets 'node-ip', which "
                                             "kubefab sets per host from each host's internal_address — remove it"):
        inventory.load(path)


# ---- joins --------------------------------------------------------------------------------------------

def test_worker_join_pins_the_ca_and_carries_token_and_endpoint(single):
    inv, _ = single
    for name in ("w-1", "w-2"):
        join = docs(inv, name, paths.JOIN_CONFIG)
        assert list(join) == ["JoinConfiguration"]
        cfg = join["JoinConfiguration"]
        bootstrap = cfg["discovery"]["bootstrapToken"]
        assert bootstrap["apiServerEndpoint"] == inv.endpoint == "10.0.0.11:6443"
        assert bootstrap["token"] == token.bootstrap_token(inv).reveal()
        assert len(bootstrap["caCertHashes"]) == 1 and HASH_RE.match(bootstrap["caCertHashes"][0])
        assert bootstrap["caCertHashes"] == [token.ca_cert_hash(inv)]
        assert "controlPlane" not in cfg
        assert cfg["nodeRegistration"]["name"] == name
    node_ip = args(docs(inv, "w-1", paths.JOIN_CONFIG)["JoinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"])
    assert node_ip["node-ip"] == "10.1.0.21" and node_ip["max-pods"] == "150"


def test_control_plane_joins_advertise_their_own_address_without_a_certificate_key(ha):
    inv, _ = ha
    for name, address in (("cp-2", "10.0.0.12"), ("cp-3", "10.0.0.13")):
        cfg = docs(inv, name, paths.JOIN_CONFIG)["JoinConfiguration"]
        assert cfg["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": address, "bindPort": 6443}}
        assert cfg["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "api.ha.internal:8443"
        assert HASH_RE.match(cfg["discovery"]["bootstrapToken"]["caCertHashes"][0])
        assert args(cfg["nodeRegistration"]["kubeletExtraArgs"])["node-ip"] == address
    assert "controlPlane" not in docs(inv, "w-1", paths.JOIN_CONFIG)["JoinConfiguration"]


def test_each_host_gets_exactly_one_kubeadm_config(any_cluster):
    inv, files = any_cluster
    for host in inv.hosts:
        got = {f.path for f in files if f.host == host.name}
        first = host.name == inv.first_control_plane.name
        assert (paths.INIT_CONFIG in got, paths.JOIN_CONFIG in got) == (first, not first)
        assert all(f.mode == 0o600 for f in files if f.path in (paths.INIT_CONFIG, paths.JOIN_CONFIG))


def test_kubeadm_double_accepts_every_rendered_config(any_cluster, tmp_path_factory):
    inv, files = any_cluster
    bin_dir = install_dir(tmp_path_factory.mktemp("bin"), version=f"v{inv.cluster.kubernetes_version}")
    for f in files:
        if f.path in (paths.INIT_CONFIG, paths.JOIN_CONFIG):
            out = subprocess.run([str(bin_dir / "kubeadm"), "config", "validate", "--config", f.path],
                                 env=testkit.double_env(tree.hosts_dir(inv) / f.host, bin_dir),
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, f"{f.host}:{f.path}: {out.stderr}"


# ---- taints and labels ------------------------------------------------------------------------------

def node_registration(inv, host):
    path = paths.INIT_CONFIG if host == inv.first_control_plane.name else paths.JOIN_CONFIG
    kind = "InitConfiguration" if path == paths.INIT_CONFIG else "JoinConfiguration"
    return docs(inv, host, path)[kind]["nodeRegistration"]


def test_control_plane_only_nodes_keep_kubeadms_taint_and_workers_get_their_own(single, ha):
    inv, _ = single
    assert node_registration(inv, "cp-1")["taints"] == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert node_registration(inv, "w-1")["taints"] == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, {"key": "spot", "effect": "PreferNoSchedule"}]
    assert node_registration(inv, "w-2")["taints"] == []
    inv, _ = ha
    assert node_registration(inv, "cp-3")["taints"] == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]


def test_a_node_with_both_roles_is_not_tainted_control_plane(both):
    inv, _ = both
    assert node_registration(inv, "solo")["taints"] == [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]
    assert node_registration(inv, "edge")["taints"] == []
    assert "controlPlane" in docs(inv, "edge", paths.JOIN_CONFIG)["JoinConfiguration"]


def test_only_labels_the_kubelet_may_set_go_to_node_labels(single):
    inv, _ = single
    worker = args(node_registration(inv, "w-1")["kubeletExtraArgs"])
    assert worker["node-labels"] == "zone=a,node.kubernetes.io/pool=gpu"
    cp = args(node_registration(inv, "cp-1")["kubeletExtraArgs"])
    assert cp["node-labels"] == "topology.kubernetes.io/zone=a"
    assert "node-labels" not in args(node_registration(inv, "w-2")["kubeletExtraArgs"])


@pytest.mark.parametrize("label, kubelet", [
    ("zone", True), ("example.com/team", True), ("node.kubernetes.io/pool", True),
    ("kubelet.kubernetes.io/x", True), ("topology.kubernetes.io/zone", True), ("kubernetes.io/hostname", True),
    ("node-role.kubernetes.io/worker", False), ("node-restriction.kubernetes.io/x", False),
    ("kubernetes.io/role", False), ("example.k8s.io/x", False), ("k8s.io/x", False)])
def test_kubelet_label_rule_matches_node_restriction(label, kubelet):
    assert kubeadm.kubelet_may_set(label) is kubelet


# ---- workers receive nothing kubeadm join writes itself ----------------------------------------------

def test_no_worker_tree_holds_pki_kubelet_kubeconfigs_or_manifests(any_cluster):
    inv, _ = any_cluster
    for host in inv.non_control_planes:
        root = tree.hosts_dir(inv) / host.name
        present = {"/" + str(p.relative_to(root)) for p in root.rglob("*")}
        assert not any(p.startswith(("/etc/kubernetes/pki", "/etc/kubernetes/manifests")) for p in present)
        assert not present & {"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf"}
        assert not any(p.endswith(".conf") and p.startswith("/etc/kubernetes/") for p in present)


def test_no_host_gets_a_static_pod_manifest(any_cluster):
    inv, files = any_cluster
    assert not [f for f in files if f.path.startswith("/etc/kubernetes/manifests/")]
    assert not [f for f in files if f.path in paths.JOIN_WRITES and f.host != inv.first_control_plane.name]


def test_control_planes_get_their_pki_and_kubeconfigs_copied_unchanged(ha):
    inv, files = ha
    for host in inv.control_planes:
        for hf in bundle.host_files(inv, host):
            local = tree.local_path(inv, host.name, hf.path_on_host)
            assert local.read_bytes() == Path(hf.local_source).read_bytes()
            assert local.stat().st_mode & 0o777 == hf.mode
    assert tree.local_path(inv, "cp-2", "/etc/kubernetes/pki/ca.key").is_file()


# ---- containerd ----------------------------------------------------------------------------------------

def containerd_config(inv, host):
    return tomllib.loads(on_host(inv, host, "/etc/containerd/config.toml").read_text())


def test_containerd_config_uses_systemd_cgroups_and_kubeadms_pause_image(single, ha):
    for inv, _ in (single, ha):
        for host in inv.hosts:
            conf = containerd_config(inv, host.name)
            cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
            assert conf["version"] == 2
            assert cri["containerd"]["runtimes"]["runc"]["runtime_type"] == "io.containerd.runc.v2"
            assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
            assert cri["registry"]["config_path"] == paths.CONTAINERD_CERTS_D
            assert cri["sandbox_image"] == kubeadm.images(inv)[5]
    inv, _ = ha
    assert containerd_config(inv, "w-1")["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == \
        "registry.aliyuncs.com/google_containers/pause:3.10"


def test_containerd_socket_matches_kubeadm_and_crictl(single):
    inv, _ = single
    socket = containerd_config(inv, "w-1")["grpc"]["address"]
    # /var/run is a symlink to /run: kubeadm's default spelling and containerd's name the same socket
    assert node_registration(inv, "w-1")["criSocket"].replace("/var/run/", "/run/") == f"unix://{socket}"
    crictl = yaml.safe_load(on_host(inv, "w-1", "/etc/crictl.yaml").read_text())
    assert crictl == {"runtime-endpoint": f"unix://{socket}", "image-endpoint": f"unix://{socket}",
                      "timeout": 10, "debug": False}


@pytest.mark.skipif(not shutil.which("containerd"), reason="containerd is not installed")
def test_containerd_itself_reads_the_config_as_intended(ha, tmp_path):
    inv, _ = ha
    dump = subprocess.run(["containerd", "--config", str(on_host(inv, "w-1", "/etc/containerd/config.toml")),
                           "config", "dump"], capture_output=True, text=True, timeout=30)
    assert dump.returncode == 0, dump.stderr
    cri = tomllib.loads(dump.stdout)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == kubeadm.pause_image(inv)
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_one_hosts_toml_per_mirrored_registry_with_mirrors_in_order(ha, single):
    inv, files = ha
    for host in inv.hosts:
        got = sorted(f.path for f in files if f.host == host.name and f.path.startswith(paths.CONTAINERD_CERTS_D))
        assert got == ["/etc/containerd/certs.d/docker.io/hosts.toml",
                       "/etc/containerd/certs.d/registry.local_5000_/hosts.toml"]
    text = on_host(inv, "w-1", "/etc/containerd/certs.d/docker.io/hosts.toml").read_text()
    docker = tomllib.loads(text)
    assert docker["server"] == "https://registry-1.docker.io"
    assert list(docker["host"]) == ["https://docker.m.daocloud.io", "https://mirror.ccs.tencentyun.com"]
    assert text.index("docker.m.daocloud.io") < text.index("mirror.ccs.tencentyun.com")
    assert all(h["capabilities"] == ["pull", "resolve"] for h in docker["host"].values())
    local = tomllib.loads(on_host(inv, "cp-2", "/etc/containerd/certs.d/registry.local_5000_/hosts.toml").read_text())
    assert local == {"server": "https://registry.local:5000",
                     "host": {"http://10.0.0.5:5000": {"capabilities": ["pull", "resolve"]}}}
    inv, files = single
    assert not [f for f in files if f.path.startswith(paths.CONTAINERD_CERTS_D)]


# ---- kernel ------------------------------------------------------------------------------------------

def settings(inv, host, path):
    lines = on_host(inv, host, path).read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_modules_and_sysctls_for_kubeadm_and_bridged_traffic(single, ha):
    inv, files = single
    assert settings(inv, "w-2", "/etc/modules-load.d/k8s.conf") == ["overlay", "br_netfilter"]
    assert not [f for f in files if f.path == "/etc/modules-load.d/k8s-ipvs.conf"]
    assert render.kernel_modules(inv) == ("overlay", "br_netfilter")
    assert settings(inv, "cp-1", "/etc/sysctl.d/99-kubernetes.conf") == [
        "net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1",
        "net.bridge.bridge-nf-call-ip6tables = 1"]
    assert not [f for f in files if "ipv6" in f.path]
    inv, _ = ha
    assert settings(inv, "w-1", "/etc/modules-load.d/k8s-ipvs.conf") == [
        "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]
    assert render.kernel_modules(inv) == ("overlay", "br_netfilter", "ip_vs", "ip_vs_rr", "ip_vs_wrr",
                                          "ip_vs_sh", "nf_conntrack")


def test_dual_stack_subnets_reach_kubeadm_and_turn_on_ipv6_forwarding(tmp_path):
    pods, services = "10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12,fd00:10:96::/112"
    text = BOTH.replace('encryption_algorithm = "ECDSA-P256"',
                        f'encryption_algorithm = "ECDSA-P256"\ncni = "none"\npod_subnet = "{pods}"\n'
                        f'service_subnet = "{services}"')
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    inv = inventory.load(path)
    plan.prepare(inv)
    assert settings(inv, "w-1", "/etc/sysctl.d/99-kubernetes-ipv6.conf") == [
        "net.ipv6.conf.all.forwarding = 1", "net.ipv6.conf.default.forwarding = 1"]
    cluster = docs(inv, "solo", paths.INIT_CONFIG)["ClusterConfiguration"]
    assert cluster["networking"] == {"serviceSubnet": services, "podSubnet": pods, "dnsDomain": "cluster.local"}
    assert "10.96.0.1" in x509.view(pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("solo"))[0].read_bytes()).ips


# ---- images ----------------------------------------------------------------------------------------

def test_images_are_named_as_kubeadm_names_them(single, ha):
    inv, _ = single
    assert kubeadm.images(inv) == (
        "registry.k8s.io/kube-apiserver:v1.34.2", "registry.k8s.io/kube-controller-manager:v1.34.2",
        "registry.k8s.io/kube-scheduler:v1.34.2", "registry.k8s.io/kube-proxy:v1.34.2",
        "registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.4-0")
    inv, _ = ha
    repo = "registry.aliyuncs.com/google_containers"
    assert kubeadm.images(inv) == (
        f"{repo}/kube-apiserver:v1.33.5", f"{repo}/kube-controller-manager:v1.33.5",
        f"{repo}/kube-scheduler:v1.33.5", f"{repo}/kube-proxy:v1.33.5", f"{repo}/coredns:v1.12.0",
        f"{repo}/pause:3.10", f"{repo}/etcd:3.5.21-0")


def test_images_equal_kubeadm_config_images_list_for_the_rendered_config(any_cluster, tmp_path_factory):
    inv, _ = any_cluster
    bin_dir = install_dir(tmp_path_factory.mktemp("bin"), version=f"v{inv.cluster.kubernetes_version}")
    out = subprocess.run([str(bin_dir / "kubeadm"), "config", "images", "list", "--config", paths.INIT_CONFIG],
                         env=testkit.double_env(tree.hosts_dir(inv) / inv.first_control_plane.name, bin_dir),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert tuple(out.stdout.split()) == kubeadm.images(inv)
