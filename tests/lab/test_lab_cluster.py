"""kubefab's rendered files against the doubles, in real lab hosts: kubefab's own runtime and push
phases prepare the hosts (the lab's offline install source holds the doubles), then `kubeadm init`
and `kubeadm join` pass, the kubelet runs under the host's systemd, and the cluster answers kubectl
with kubefab's admin.conf."""

import io
import shutil
import subprocess

import pytest
import yaml

from conftest import lab_unavailable
from kubefab import inventory
from kubefab.run import execute
from kubefab.run.session import Options
from lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def prepare(lab, state_dir, hosts=()):
    """kubefab's facts, preflight, runtime and push on the lab's hosts, as `cluster.up --only` runs them."""
    inv = inventory.load(lab.inventory, state_dir=state_dir)
    console = io.StringIO()
    options = Options(only=("facts", "preflight", "runtime", "push"), hosts=hosts, yes=True)
    assert execute.up(inv, options, console=console).code == 0, console.getvalue()
    return inv


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if lab_unavailable():
        pytest.skip(lab_unavailable())
    with Lab.up(hosts=2, control_planes=1, flavour="node") as lab:
        yield lab, prepare(lab, tmp_path_factory.mktemp("state"))


def kubeadm(lab, host, *args):
    return lab.run(host, "kubeadm " + " ".join(args) + " 2>&1", check=False, timeout=240)


def kubectl(inv, *args):
    admin = inv.state_dir / "kubeconfigs" / "admin.conf"
    return subprocess.run(["kubectl", "--kubeconfig", str(admin), *args], capture_output=True, text=True,
                          timeout=60)


def test_init_then_join_with_kubefabs_files(cluster):
    lab, inv = cluster
    cp, worker = inv.first_control_plane.name, inv.non_control_planes[0].name
    init = kubeadm(lab, cp, "init", "--config", "/etc/kubernetes/kubefab/init.yaml")
    assert init.returncode == 0, init.stdout[-3000:]
    # kubeadm took kubefab's whole bundle as it was: nothing regenerated but the kubelet's own kubeconfig
    assert "[certs] Using existing apiserver certificate and key on disk" in init.stdout
    assert "Generating" not in init.stdout
    assert [line for line in init.stdout.splitlines() if "Writing" in line and "kubeconfig" in line] == \
        ['[kubeconfig] Writing "kubelet.conf" kubeconfig file']
    join = kubeadm(lab, worker, "join", "--config", "/etc/kubernetes/kubefab/join.yaml")
    assert join.returncode == 0, join.stdout[-3000:]
    nodes = kubectl(inv, "get", "nodes", "-o", "name")
    assert nodes.returncode == 0, nodes.stderr
    assert set(nodes.stdout.split()) == {f"node/{cp}", f"node/{worker}"}


def test_cluster_info_pins_kubefabs_ca(cluster):
    lab, inv = cluster
    info = kubectl(inv, "get", "configmap", "-n", "kube-public", "cluster-info", "-o", "yaml")
    assert info.returncode == 0, info.stderr
    kubeconfig = yaml.safe_load(yaml.safe_load(info.stdout)["data"]["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{inv.endpoint}"


def test_a_worker_with_a_prepushed_ca_fails_join_preflight(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    inv = prepare(lab, tmp_path / "state", hosts=("kf-w1",))
    worker = inv.non_control_planes[0].name
    lab.run(worker, "mkdir -p /etc/kubernetes/pki && touch /etc/kubernetes/pki/ca.crt")
    join = kubeadm(lab, worker, "join", "--config", "/etc/kubernetes/kubefab/join.yaml")
    assert join.returncode != 0
    assert "FileAvailable--etc-kubernetes-pki-ca.crt" in join.stdout
