"""The control-plane doubles accept exactly their reference pages' flags: every flag kubeadm (the double) writes
into the static pod manifests for kubefab's init config, with the inventory's extra_args, is accepted; an unknown
or removed flag is refused as the real component refuses it (`Error: unknown flag: --NAME`, exit 1)."""

import shutil
import subprocess

import pytest
import yaml

from inventories import host_tables
from kubefab import inventory, paths, plan
from kubefab.state import tree
from lab.doubles import flagsets, install_dir, testkit

INVENTORY = """\
[cluster]
name = "flags"
kubernetes_version = "1.33.5"
[cluster.apiserver]
extra_args = { "audit-log-maxage" = "30", "profiling" = false, "max-requests-inflight" = 800 }
[cluster.controller_manager]
extra_args = { "node-monitor-grace-period" = "50s", "terminated-pod-gc-threshold" = 100 }
[cluster.scheduler]
extra_args = { "kube-api-qps" = 100 }

""" + host_tables(1, 1)

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    return install_dir(tmp_path_factory.mktemp("bin"), version="v1.33.5")


def manifest_flags(root):
    """{component: [flag names]} of the static pod manifests under `root`, as the kubelet would pass them."""
    out = {}
    for name in COMPONENTS:
        pod = yaml.safe_load((root / f"etc/kubernetes/manifests/{name}.yaml").read_text())
        command = pod["spec"]["containers"][0]["command"]
        assert command[0] == name
        out[name] = [arg[2:].split("=", 1)[0] for arg in command[1:]]
    return out


def kubeadm_manifests(bin_dir, tmp_path, inventory_text):
    """Render kubefab's files for `inventory_text` and let the kubeadm double write the control-plane manifests
    from cp-1's init config; returns cp-1's root."""
    path = tmp_path / "inventory.toml"
    path.write_text(inventory_text)
    inv = inventory.load(path)
    plan.prepare(inv)
    root = tmp_path / "cp-1"
    shutil.copytree(tree.hosts_dir(inv) / "cp-1", root)
    out = subprocess.run([str(bin_dir / "kubeadm"), "init", "phase", "control-plane", "all",
                          "--config", paths.INIT_CONFIG], env=testkit.double_env(root, bin_dir),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return root


def test_every_flag_kubeadm_writes_for_kubefabs_init_config_is_accepted(bin_dir, tmp_path):
    flags = manifest_flags(kubeadm_manifests(bin_dir, tmp_path, INVENTORY))
    assert {"audit-log-maxage", "profiling", "max-requests-inflight"} <= set(flags["kube-apiserver"])
    assert {"node-monitor-grace-period", "allocate-node-cidrs"} <= set(flags["kube-controller-manager"])
    assert "kube-api-qps" in flags["kube-scheduler"]
    for name, names in flags.items():
        assert flagsets.unknown(name, names) is None, f"{name}: {flagsets.unknown(name, names)}"


def test_an_inventory_extra_arg_the_apiserver_lacks_stops_it_as_on_a_real_node(bin_dir, tmp_path):
    text = INVENTORY.replace('"max-requests-inflight" = 800', '"max-requests-inflight" = 800, "insecure-port" = 8080')
    root = kubeadm_manifests(bin_dir, tmp_path, text)
    pod = yaml.safe_load((root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())
    command = pod["spec"]["containers"][0]["command"]
    out = subprocess.run([str(bin_dir / command[0]), *command[1:]], env=testkit.double_env(root),
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (1, "Error: unknown flag: --insecure-port\n")


@pytest.mark.parametrize("component, flag", [
    ("kube-apiserver", "--insecure-port=8080"),            # removed in 1.24
    ("kube-controller-manager", "--port=10252"),           # insecure serving, removed in 1.24
    ("kube-scheduler", "--address=127.0.0.1"),             # insecure serving, removed in 1.24
])
def test_an_unknown_flag_is_refused_with_pflags_words(bin_dir, tmp_path, component, flag):
    out = subprocess.run([str(bin_dir / component), "--v=2", flag, "--bind-address=127.0.0.1"],
                         env=testkit.double_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (1, f"Error: unknown flag: {flag.split('=')[0]}\n")


def test_an_unknown_shorthand_is_refused_with_pflags_words(bin_dir, tmp_path):
    out = subprocess.run([str(bin_dir / "kube-scheduler"), "-x"], env=testkit.double_env(tmp_path),
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (1, "Error: unknown shorthand flag: 'x' in -x\n")


def test_underscores_are_normalized_to_dashes_as_in_component_base(bin_dir, tmp_path):
    out = subprocess.run([str(bin_dir / "kube-scheduler"), "--leader_elect=false",
                          "--kubeconfig=/etc/kubernetes/scheduler.conf"], env=testkit.double_env(tmp_path),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "unknown flag" not in out.stderr
    assert "stat /etc/kubernetes/scheduler.conf: no such file or directory" in out.stderr


def test_each_table_names_its_source():
    assert set(flagsets.SOURCES) == set(flagsets.FLAGS) == set(COMPONENTS)
