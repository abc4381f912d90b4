"""`kubeadm init phase control-plane` and `init phase upload-config` on the kubeadm double, with kubeadm's
sub-commands, flags and words: a sub-phase rewrites only its own manifest from the config, the parent alone prints
its help, an unknown sub-phase or a flag of another sub-phase is refused; upload-config updates the ConfigMaps of a
running cluster."""

import subprocess

import pytest
import yaml

from lab.doubles import install_dir, testkit

ADDRESS = "10.0.0.11"


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    return install_dir(tmp_path_factory.mktemp("bin"))


def config(extra_args=(), address=ADDRESS):
    args = "".join(f"  - name: {k}\n    value: \"{v}\"\n" for k, v in extra_args)
    return (f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp-1\n"
            f"localAPIEndpoint:\n  advertiseAddress: {address}\n  bindPort: 6443\n---\n"
            f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.5\n"
            f"controlPlaneEndpoint: {address}:6443\n" + (f"apiServer:\n  extraArgs:\n{args}" if args else ""))


def kubeadm(bin_dir, root, *args):
    return subprocess.run([str(bin_dir / "kubeadm"), *args], env=testkit.double_env(root, bin_dir),
                          capture_output=True, text=True, timeout=60)


def command(root, component):
    return yaml.safe_load((root / f"etc/kubernetes/manifests/{component}.yaml").read_text())["spec"]["containers"][0][
        "command"]


def test_control_plane_sub_phases_write_their_own_manifest_from_the_config(bin_dir, tmp_path):
    (tmp_path / "k.yaml").write_text(config())
    out = kubeadm(bin_dir, tmp_path, "init", "phase", "control-plane", "all", "--config", "/k.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        '[control-plane] Using manifest folder "/etc/kubernetes/manifests"',
        '[control-plane] Creating static Pod manifest for "kube-apiserver"',
        '[control-plane] Creating static Pod manifest for "kube-controller-manager"',
        '[control-plane] Creating static Pod manifest for "kube-scheduler"']
    scheduler = (tmp_path / "etc/kubernetes/manifests/kube-scheduler.yaml").read_bytes()
    assert "--audit-log-maxage=30" not in command(tmp_path, "kube-apiserver")

    (tmp_path / "k.yaml").write_text(config(extra_args=[("audit-log-maxage", 30)]))
    out = kubeadm(bin_dir, tmp_path, "init", "phase", "control-plane", "apiserver", "--config", "/k.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ['[control-plane] Creating static Pod manifest for "kube-apiserver"']
    assert "--audit-log-maxage=30" in command(tmp_path, "kube-apiserver")
    assert (tmp_path / "etc/kubernetes/manifests/kube-scheduler.yaml").read_bytes() == scheduler


def test_the_parent_phase_alone_prints_its_help_and_changes_nothing(bin_dir, tmp_path):
    (tmp_path / "k.yaml").write_text(config())
    out = kubeadm(bin_dir, tmp_path, "init", "phase", "control-plane", "--config", "/k.yaml")
    assert out.returncode == 0, out.stderr
    assert "This command is not meant to be run on its own" in out.stdout and "  scheduler" in out.stdout
    assert not (tmp_path / "etc/kubernetes/manifests").exists()


@pytest.mark.parametrize("args, error", [
    (("control-plane", "etcd"), 'unknown command "etcd" for "kubeadm init phase control-plane"'),
    (("control-plane", "scheduler", "--service-cidr", "10.96.0.0/16"), "unknown flag: --service-cidr"),
    (("control-plane", "apiserver", "--config", "/k.yaml", "--service-cidr", "10.96.0.0/16"),
     "can not mix '--config' with arguments ['service-cidr']"),
    (("upload-config", "kubelet", "--cert-dir", "/x"), "unknown flag: --cert-dir"),
    (("upload-config", "kubeadmin"), 'unknown command "kubeadmin" for "kubeadm init phase upload-config"'),
])
def test_a_wrong_sub_phase_or_flag_is_refused_in_kubeadms_words(bin_dir, tmp_path, args, error):
    (tmp_path / "k.yaml").write_text(config())
    out = kubeadm(bin_dir, tmp_path, "init", "phase", *args)
    assert out.returncode == 1 and error in out.stderr, out.stderr


@pytest.mark.lab        # real etcd behind the API-server double
def test_upload_config_updates_the_configmaps_of_a_running_cluster(bin_dir, tmp_path):
    with testkit.local_apiserver(tmp_path, bin_dir) as (cluster, server, port):
        (tmp_path / "etc/kubernetes/admin.conf").write_bytes(cluster.admin_kubeconfig(server))
        (tmp_path / "k.yaml").write_text(config(extra_args=[("audit-log-maxage", 30)], address="127.0.0.1")
                                         .replace("6443", str(port)))
        out = kubeadm(bin_dir, tmp_path, "init", "phase", "upload-config", "kubeadm", "--config", "/k.yaml")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ['[upload-config] Storing the configuration used in ConfigMap '
                                           '"kubeadm-config" in the "kube-system" Namespace']
        out = kubeadm(bin_dir, tmp_path, "init", "phase", "upload-config", "all", "--config", "/k.yaml",
                      "--kubeconfig", "/etc/kubernetes/admin.conf")
        assert out.returncode == 0, out.stderr
        assert "[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system" in out.stdout
        from lab.doubles.kubeclient import Client
        c = Client.from_kubeconfig(tmp_path / "etc/kubernetes/admin.conf")
        stored = yaml.safe_load(c.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"][
            "ClusterConfiguration"])
        assert {"name": "audit-log-maxage", "value": "30"} in stored["apiServer"]["extraArgs"]
        assert "kubelet" in c.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")["data"]
