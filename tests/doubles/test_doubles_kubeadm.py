"""The kubeadm and kubelet doubles reject what the real tools reject: config errors, bad
certificates and kubeconfigs, preflight failures — with kubeadm's wording and a non-zero exit."""

import subprocess
import sys

import pytest
import yaml
from cryptography import x509

from lab.doubles import install_dir, testkit

ADDRESS = "10.0.0.11"


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    return install_dir(tmp_path_factory.mktemp("bin"))


@pytest.fixture(scope="module")
def cluster():
    return testkit.Cluster(endpoint=f"{ADDRESS}:6443")


@pytest.fixture
def root(tmp_path):
    sock = testkit.prepare_host(tmp_path)
    yield tmp_path
    sock.close()


def init_config(node="cp-1", address=ADDRESS, extra_init="", extra_cluster="", version="kubeadm.k8s.io/v1beta4"):
    return (f"apiVersion: {version}\nkind: InitConfiguration\nnodeRegistration:\n  name: {node}\n{extra_init}"
            f"localAPIEndpoint:\n  advertiseAddress: {address}\n  bindPort: 6443\n---\n"
            f"apiVersion: {version}\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.5\n"
            f"controlPlaneEndpoint: {ADDRESS}:6443\n{extra_cluster}")


def kubeadm(bin_dir, root, *args, netns=None, path=None):
    env = testkit.double_env(root, bin_dir)
    if path is not None:
        env["PATH"] = path
    argv = [str(bin_dir / "kubeadm"), *args]
    return subprocess.run(netns.argv(argv) if netns else argv, env=env, capture_output=True, text=True, timeout=60)


def write_config(root, text, name="kubeadm.yaml"):
    (root / name).write_text(text)
    return f"/{name}"


# ---- configuration -------------------------------------------------------------------------

def test_unknown_field_is_rejected_with_the_strict_decoding_message(bin_dir, root):
    cfg = write_config(root, init_config(extra_init="  nodeIP: 10.0.0.11\n"))
    out = kubeadm(bin_dir, root, "init", "phase", "certs", "--config", cfg)
    assert out.returncode == 1
    assert ('error unmarshaling configuration schema.GroupVersionKind{Group:"kubeadm.k8s.io", Version:"v1beta4", '
            'Kind:"InitConfiguration"}: strict decoding error: unknown field "nodeRegistration.nodeIP"') in out.stderr
    assert kubeadm(bin_dir, root, "config", "validate", "--config", cfg).returncode == 1


def test_unknown_kind_is_ignored_with_a_warning(bin_dir, root):
    cfg = write_config(root, init_config() + "---\napiVersion: example.org/v1\nkind: Gizmo\n")
    out = kubeadm(bin_dir, root, "config", "images", "list", "--config", cfg)
    assert out.returncode == 0, out.stderr
    assert "Ignored configuration document with GroupVersionKind example.org/v1, Kind=Gizmo" in out.stderr


def test_old_api_versions_are_rejected_and_v1beta3_is_deprecated(bin_dir, root):
    old = kubeadm(bin_dir, root, "config", "images", "list", "--config",
                  write_config(root, init_config(version="kubeadm.k8s.io/v1beta2")))
    assert old.returncode == 1
    assert 'your configuration file uses an old API spec: "kubeadm.k8s.io/v1beta2". Please use kubeadm v1.22' in \
        old.stderr
    v3 = kubeadm(bin_dir, root, "config", "images", "list", "--config",
                 write_config(root, init_config(version="kubeadm.k8s.io/v1beta3")))
    assert v3.returncode == 0 and 'deprecated API spec: "kubeadm.k8s.io/v1beta3"' in v3.stderr


def test_v1beta4_only_fields_are_unknown_in_v1beta3(bin_dir, root):
    cfg = write_config(root, init_config(version="kubeadm.k8s.io/v1beta3",
                                         extra_cluster="encryptionAlgorithm: RSA-2048\n"))
    out = kubeadm(bin_dir, root, "config", "images", "list", "--config", cfg)
    assert out.returncode == 1 and 'unknown field "encryptionAlgorithm"' in out.stderr


def test_invalid_node_name_is_rejected(bin_dir, root):
    out = kubeadm(bin_dir, root, "init", "phase", "certs", "--config", write_config(root, init_config(node="CP_1")))
    assert out.returncode == 1 and 'Invalid value: "CP_1": a lowercase RFC 1123 subdomain' in out.stderr


def test_config_flag_cannot_be_mixed_with_init_flags(bin_dir, root):
    out = kubeadm(bin_dir, root, "init", "--config", write_config(root, init_config()), "--pod-network-cidr",
                  "10.244.0.0/16")
    assert out.returncode == 1 and "can not mix '--config' with arguments ['pod-network-cidr']" in out.stderr


def test_unknown_flags_and_phases_are_rejected(bin_dir, root):
    out = kubeadm(bin_dir, root, "init", "--pod-cidr", "10.244.0.0/16")
    assert out.returncode == 1 and "unknown flag: --pod-cidr" in out.stderr
    out = kubeadm(bin_dir, root, "init", "phase", "cert")
    assert out.returncode == 1 and 'unknown command "cert" for "kubeadm init phase"' in out.stderr


def test_images_follow_image_repository_and_version(bin_dir, root):
    default = kubeadm(bin_dir, root, "config", "images", "list", "--config", write_config(root, init_config()))
    assert default.stdout.split() == [
        "registry.k8s.io/kube-apiserver:v1.33.5", "registry.k8s.io/kube-controller-manager:v1.33.5",
        "registry.k8s.io/kube-scheduler:v1.33.5", "registry.k8s.io/kube-proxy:v1.33.5",
        "registry.k8s.io/coredns/coredns:v1.12.0", "registry.k8s.io/pause:3.10", "registry.k8s.io/etcd:3.5.21-0"]
    mirror = kubeadm(bin_dir, root, "config", "images", "list", "--config", write_config(
        root, init_config(extra_cluster="imageRepository: mirror.example/k8s\n")))
    assert "mirror.example/k8s/coredns:v1.12.0" in mirror.stdout.split()


def test_version_output_formats(bin_dir, root):
    assert kubeadm(bin_dir, root, "version", "-o", "short").stdout.strip() == "v1.33.5"
    assert '"gitVersion": "v1.33.5"' in kubeadm(bin_dir, root, "version", "-o", "json").stdout
    assert kubeadm(bin_dir, root, "version").stdout.startswith('kubeadm version: &version.Info{Major:"1"')


# ---- certificates and kubeconfigs ----------------------------------------------------------

def certs_phase(bin_dir, root, **kw):
    return kubeadm(bin_dir, root, "init", "phase", "certs", "--config", write_config(root, init_config(**kw)))


def test_a_complete_bundle_is_reused(bin_dir, root, cluster):
    testkit.write_files(root, cluster.node_files("cp-1", ADDRESS))
    before = (root / "etc/kubernetes/pki/apiserver.crt").read_bytes()
    out = certs_phase(bin_dir, root)
    assert out.returncode == 0, out.stderr
    assert "[certs] Using existing apiserver certificate and key on disk" in out.stdout
    assert (root / "etc/kubernetes/pki/apiserver.crt").read_bytes() == before


def test_apiserver_cert_missing_a_san_is_rejected(bin_dir, root, cluster):
    testkit.write_files(root, cluster.node_files("cp-1", ADDRESS))
    out = certs_phase(bin_dir, root, address="10.0.0.12")
    assert out.returncode == 1
    assert ('failed to write or validate certificate "apiserver": certificate apiserver is invalid: x509: certificate '
            'is valid for 10.96.0.1, 10.0.0.11, not 10.0.0.12') in out.stderr


def test_apiserver_cert_missing_the_node_name_is_rejected(bin_dir, root, cluster):
    testkit.write_files(root, cluster.node_files("cp-1", ADDRESS))
    out = certs_phase(bin_dir, root, node="cp-2")
    assert out.returncode == 1 and "certificate apiserver is invalid: x509: certificate is valid for cp-1, " \
                                   "kubernetes" in out.stderr and "not cp-2" in out.stderr


def test_leaf_not_signed_by_the_ca_on_disk_is_rejected(bin_dir, root, cluster):
    testkit.write_files(root, cluster.node_files("cp-1", ADDRESS))
    stranger = testkit.Cluster(endpoint=f"{ADDRESS}:6443").node_files("cp-1", ADDRESS)
    testkit.write_files(root, {k: v for k, v in stranger.items() if k.startswith("pki/apiserver.")})
    out = certs_phase(bin_dir, root)
    assert out.returncode == 1
    assert "error execution phase certs/apiserver: [certs] certificate apiserver not signed by CA certificate ca: " \
           "x509: certificate signed by unknown authority" in out.stderr


def test_only_the_ca_given_generates_every_leaf_from_it(bin_dir, root, cluster):
    shared = cluster.shared_files()
    testkit.write_files(root, {k: v for k, v in shared.items() if k in ("pki/ca.crt", "pki/ca.key")})
    out = certs_phase(bin_dir, root)
    assert out.returncode == 0, out.stderr
    pki = root / "etc/kubernetes/pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    apiserver = x509.load_pem_x509_certificate((pki / "apiserver.crt").read_bytes())
    apiserver.verify_directly_issued_by(ca)
    sans = apiserver.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(map(str, sans.get_values_for_type(x509.IPAddress))) == {"10.96.0.1", ADDRESS}
    assert {"cp-1", "kubernetes.default.svc.cluster.local"} <= set(sans.get_values_for_type(x509.DNSName))
    for name in ("front-proxy-ca.crt", "etcd/ca.crt", "etcd/server.crt", "sa.key", "sa.pub"):
        assert (pki / name).exists(), name


def test_missing_ca_key_with_missing_leaves_fails(bin_dir, root, cluster):
    testkit.write_files(root, {"pki/ca.crt": cluster.shared_files()["pki/ca.crt"]})
    out = certs_phase(bin_dir, root)
    assert out.returncode == 1
    assert "error execution phase certs/apiserver: couldn't load CA certificate ca" in out.stderr


def test_sa_pub_is_not_recreated_when_sa_key_exists(bin_dir, root, cluster):
    files = cluster.node_files("cp-1", ADDRESS)
    del files["pki/sa.pub"]
    testkit.write_files(root, files)
    assert certs_phase(bin_dir, root).returncode == 0
    assert not (root / "etc/kubernetes/pki/sa.pub").exists()


def test_kubeconfig_with_the_wrong_ca_bytes_is_rejected(bin_dir, root, cluster):
    files = cluster.node_files("cp-1", ADDRESS)
    conf = yaml.safe_load(files["admin.conf"])
    import base64
    pem = base64.b64decode(conf["clusters"][0]["cluster"]["certificate-authority-data"])
    conf["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        pem.replace(b"\n", b"\r\n")).decode()
    files["admin.conf"] = yaml.safe_dump(conf).encode()
    testkit.write_files(root, files)
    out = kubeadm(bin_dir, root, "init", "phase", "kubeconfig", "--config", write_config(root, init_config()))
    assert out.returncode == 1
    assert ('a kubeconfig file "/etc/kubernetes/admin.conf" exists already but has got the wrong CA cert'
            in out.stderr)


def test_kubeconfig_phase_writes_the_missing_ones(bin_dir, root, cluster):
    files = cluster.node_files("cp-1", ADDRESS)
    testkit.write_files(root, {k: v for k, v in files.items() if k.startswith("pki/")})
    out = kubeadm(bin_dir, root, "init", "phase", "kubeconfig", "--config", write_config(root, init_config()))
    assert out.returncode == 0, out.stderr
    kubelet = yaml.safe_load((root / "etc/kubernetes/kubelet.conf").read_text())
    assert kubelet["users"][0]["name"] == "system:node:cp-1"
    assert kubelet["clusters"][0]["cluster"]["server"] == f"https://{ADDRESS}:6443"


def test_check_expiration_lists_leaves_and_cas(bin_dir, root, cluster):
    testkit.write_files(root, cluster.node_files("cp-1", ADDRESS))
    out = kubeadm(bin_dir, root, "certs", "check-expiration")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()}
    # NAME  Mon DD, YYYY HH:MM UTC  RESIDUAL  CA  EXTERNALLY-MANAGED
    assert rows["apiserver"][6] in ("364d", "365d") and rows["apiserver"][7] == "ca"
    assert rows["admin.conf"][7] == "ca" and rows["etcd/server"][7] == "etcd-ca"
    assert rows["front-proxy-ca"][6] in ("9y", "10y") and rows["front-proxy-ca"][7] == "no"


# ---- preflight -----------------------------------------------------------------------------

def preflight(bin_dir, root, netns, *extra, path=None):
    return kubeadm(bin_dir, root, "init", "phase", "preflight", "--config", write_config(root, init_config()),
                   *extra, netns=netns, path=path)


def fake_proc(root, rel, text):
    p = root / "proc" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.mark.lab
def test_preflight_passes_on_a_prepared_host(bin_dir, root, netns):
    fake_proc(root, "sys/net/ipv4/ip_forward", "1\n")
    out = preflight(bin_dir, root, netns)
    assert out.returncode == 0, out.stderr


@pytest.mark.lab
def test_preflight_rejects_premade_manifests_and_etcd_data(bin_dir, root, netns):
    fake_proc(root, "sys/net/ipv4/ip_forward", "1\n")
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    (root / "etc/kubernetes/manifests/kube-apiserver.yaml").write_text("{}")
    (root / "etc/kubernetes/manifests/kube-vip.yaml").write_text("{}")
    (root / "var/lib/etcd/member").mkdir(parents=True)
    out = preflight(bin_dir, root, netns)
    assert out.returncode == 1
    assert ("[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: "
            "/etc/kubernetes/manifests/kube-apiserver.yaml already exists") in out.stderr
    assert "[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty" in out.stderr
    assert "kube-vip" not in out.stderr
    ignored = preflight(bin_dir, root, netns, "--ignore-preflight-errors",
                        "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml,DirAvailable--var-lib-etcd")
    assert ignored.returncode == 0 and "[WARNING DirAvailable--var-lib-etcd]" in ignored.stdout


@pytest.mark.lab
def test_preflight_ip_forward_swap_and_binaries(bin_dir, root, netns):
    fake_proc(root, "sys/net/ipv4/ip_forward", "0\n")
    fake_proc(root, "swaps", "Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n")
    out = preflight(bin_dir, root, netns, path=f"{bin_dir}:/nonexistent")
    assert out.returncode == 1
    assert ("[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set "
            "to 1") in out.stderr
    assert "[ERROR FileExisting-iptables]: iptables not found in system path" in out.stderr
    assert "[WARNING Swap]" in out.stdout and "[ERROR Swap]" not in out.stderr


@pytest.mark.lab
def test_preflight_fails_when_the_container_runtime_does_not_answer(bin_dir, tmp_path, netns):
    # kubeadm 1.31+ talks CRI itself: no socket only warns in the checks, then the image pull step fails, ignorably never
    fake_proc(tmp_path, "sys/net/ipv4/ip_forward", "1\n")
    out = preflight(bin_dir, tmp_path, netns, "--ignore-preflight-errors=all")
    assert out.returncode == 1
    assert ("[preflight] Some fatal errors occurred:\nfailed to create new CRI runtime service: validate service "
            'connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc '
            "error: code = Unavailable") in out.stderr
    assert "Couldn't create the interface used for talking to the container runtime" in out.stderr


@pytest.mark.lab
def test_preflight_reports_a_port_in_use(bin_dir, root, netns):
    fake_proc(root, "sys/net/ipv4/ip_forward", "1\n")
    holder = subprocess.Popen(netns.argv([sys.executable, "-c", "import socket,time; s=socket.socket(); "
                                          "s.bind(('127.0.0.1', 10259)); s.listen(); print('up', flush=True); "
                                          "time.sleep(60)"]), stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        out = preflight(bin_dir, root, netns)
        assert "[ERROR Port-10259]: Port 10259 is in use" in out.stderr
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.lab
@pytest.mark.parametrize("prepushed,check", [
    ("etc/kubernetes/kubelet.conf", "FileAvailable--etc-kubernetes-kubelet.conf"),
    ("etc/kubernetes/bootstrap-kubelet.conf", "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf"),
    ("etc/kubernetes/pki/ca.crt", "FileAvailable--etc-kubernetes-pki-ca.crt"),
])
def test_worker_join_rejects_prepushed_files(bin_dir, root, netns, cluster, prepushed, check):
    fake_proc(root, "sys/net/ipv4/ip_forward", "1\n")
    (root / prepushed).parent.mkdir(parents=True, exist_ok=True)
    (root / prepushed).write_text("x")
    cfg = write_config(root, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n"
                             "  name: worker-1\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.11:6443\n"
                             f"    token: {testkit.new_token()}\n    caCertHashes: ['{cluster.ca_hash()}']\n")
    out = kubeadm(bin_dir, root, "join", "--config", cfg, netns=netns)
    assert out.returncode == 1
    assert f"[ERROR {check}]: /{prepushed} already exists" in out.stderr


# ---- kubelet -------------------------------------------------------------------------------

def kubelet(bin_dir, root, netns):
    return subprocess.run(netns.argv([str(bin_dir / "kubelet"), "--config=/var/lib/kubelet/config.yaml"]),
                          env=testkit.double_env(root, bin_dir), capture_output=True, text=True, timeout=20)


@pytest.mark.lab
def test_kubelet_exits_without_its_config_like_before_init(bin_dir, root, netns):
    out = kubelet(bin_dir, root, netns)
    assert out.returncode == 1
    assert "failed to load kubelet config file, path: /var/lib/kubelet/config.yaml" in out.stderr


@pytest.mark.lab
def test_kubelet_refuses_swap_and_a_cgroup_driver_mismatch(bin_dir, root, netns):
    config = root / "var/lib/kubelet/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n")
    fake_proc(root, "swaps", "Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n")
    out = kubelet(bin_dir, root, netns)
    assert out.returncode == 1 and "running with swap on is not supported" in out.stderr
    (root / "proc/swaps").write_text("Filename Type Size Used Priority\n")
    (root / "etc/containerd/config.toml").write_text("version = 2\n")
    out = kubelet(bin_dir, root, netns)
    assert out.returncode == 1
    assert 'kubelet cgroup driver: "systemd" is different from containerd cgroup driver: "cgroupfs"' in out.stderr


# ---- reset ---------------------------------------------------------------------------------

def test_reset_cleans_what_kubeadm_owns_and_leaves_cni_config_with_the_real_words(bin_dir, root):
    etcd_manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "etcd", "namespace": "kube-system"},
                     "spec": {"containers": [{"name": "etcd", "command": [
                         "etcd", "--name=cp-1", "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"]}],
                         "volumes": [{"name": "etcd-data", "hostPath": {"path": "/var/lib/etcd-data"}}]}}
    files = {"etc/kubernetes/manifests/etcd.yaml": yaml.safe_dump(etcd_manifest), "etc/kubernetes/pki/ca.crt": "x",
             "etc/kubernetes/admin.conf": "x", "etc/kubernetes/kubelet.conf": "x",
             "etc/kubernetes/kubefab/init.yaml": "x", "var/lib/kubelet/config.yaml": "x",
             "var/lib/kubelet/pods/uid/containers/install-cni/0": "x", "var/lib/etcd-data/member/wal": "x",
             "etc/cni/net.d/10-flannel.conflist": "{}", "opt/cni/bin/flannel": "x", "var/lib/cni/networks/cbr0": "x"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    out = kubeadm(bin_dir, root, "reset", "-f")
    assert out.returncode == 0, out.stderr
    assert "[reset] Failed to remove etcd member" in out.stderr
    lines = out.stdout.splitlines()
    assert lines[lines.index("[reset] Deleted contents of the etcd data directory: /var/lib/etcd-data") + 1] == \
        "[reset] Stopping the kubelet service"
    assert "[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet " \
           "/etc/kubernetes/pki]" in lines
    assert out.stdout.endswith(
        "\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\n"
        "The reset process does not reset or clean up iptables rules or IPVS tables.\n"
        "If you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n\n"
        "If your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\n"
        "to reset your system's IPVS tables.\n\n"
        "The reset process does not clean your kubeconfig files and you must remove them manually.\n"
        "Please, check the contents of the $HOME/.kube/config file.\n")
    left = {rel for rel in files if (root / rel).exists()}
    assert left == {"etc/kubernetes/kubefab/init.yaml", "etc/cni/net.d/10-flannel.conflist", "opt/cni/bin/flannel",
                    "var/lib/cni/networks/cbr0"}, "CNI config, plugins and state, and foreign files, stay"
    for d in ("etc/kubernetes/manifests", "etc/kubernetes/pki", "var/lib/kubelet", "var/lib/etcd-data"):
        assert (root / d).is_dir() and not any((root / d).iterdir()), f"{d} is emptied, not removed"
