"""kubeadm upgrade plan/apply/node on the doubles: one control plane and one worker at v1.33.5 in their own
network namespaces (API server double, real etcd), upgraded with a kubeadm of v1.34.1 as kubeadm would:
a skipped minor is refused in kubeadm's words, apply rewrites the manifests and kubeadm-config, node the rest."""

import json
import os
import shutil

import pytest
import yaml

from lab import Network
from lab.doubles import install_dir, testkit

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("upgrade")
    old, new = install_dir(base / "bin-1.33", "v1.33.5"), install_dir(base / "bin-1.34", "v1.34.1")
    with Network.up(2) as net:
        cp, worker = (testkit.NodeHost(n, ns.address, base / n, ns, old)
                      for n, ns in zip(("cp-1", "worker-1"), net.namespaces))
        try:
            pki = testkit.Cluster(endpoint=f"{cp.address}:6443")
            token = testkit.new_token()
            testkit.write_files(cp.root, pki.node_files("cp-1", cp.address))
            cp.path("init.yaml").write_text(yaml.safe_dump_all([
                {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
                 "bootstrapTokens": [{"token": token, "ttl": "1h"}], "nodeRegistration": {"name": "cp-1"},
                 "localAPIEndpoint": {"advertiseAddress": cp.address, "bindPort": 6443}},
                {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                 "kubernetesVersion": "v1.33.5", "controlPlaneEndpoint": f"{cp.address}:6443"}]))
            worker.path("join.yaml").write_text(yaml.safe_dump({
                "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
                "nodeRegistration": {"name": "worker-1"},
                "discovery": {"bootstrapToken": {"apiServerEndpoint": f"{cp.address}:6443", "token": token,
                                                 "caCertHashes": [pki.ca_hash()]}}}))
            out = cp.kubeadm("init", "--config", "/init.yaml", bin_dir=old)
            assert out.returncode == 0, out.stderr
            out = worker.kubeadm("join", "--config", "/join.yaml", bin_dir=old)
            assert out.returncode == 0, out.stderr
            yield cp, worker, old, new
        finally:
            for h in (worker, cp):
                h.kubeadm("reset", "-f", timeout=60, bin_dir=old)
                h.sock.close()


def images(h):
    return {name: yaml.safe_load(h.path(f"/etc/kubernetes/manifests/{name}.yaml").read_text())
            ["spec"]["containers"][0]["image"] for name in ("etcd", "kube-apiserver", "kube-scheduler")}


def test_upgrade_refuses_a_skipped_minor_then_moves_the_control_plane_and_the_worker(cluster):
    cp, worker, old, new = cluster
    out = cp.kubeadm("upgrade", "apply", "v1.35.0", "--yes", bin_dir=new)
    assert out.returncode == 1
    assert ('error execution phase preflight: the version argument is invalid due to these fatal errors:\n\n'
            '\t- Specified version to upgrade to "v1.35.0" is too high; kubeadm can upgrade only 1 minor version at '
            'a time\n\t- Specified version to upgrade to "v1.35.0" is at least one minor release higher than the '
            'kubeadm minor release (35 > 34). Such an upgrade is not supported\n\nPlease fix the misalignments '
            'highlighted above and try upgrading again') in out.stderr
    out = cp.kubeadm("upgrade", "apply", "v1.34.1", "--yes", bin_dir=old)
    assert out.returncode == 1
    assert "is at least one minor release higher than the kubeadm minor release (34 > 33)" in out.stderr

    out = cp.kubeadm("upgrade", "plan", "v1.34.1", bin_dir=new)
    assert out.returncode == 0, out.stderr
    assert "kubeadm upgrade apply v1.34.1" in out.stdout
    out = cp.kubeadm("upgrade", "apply", "v1.34.1", "--yes", "--certificate-renewal=false", bin_dir=new)
    assert out.returncode == 0, out.stderr
    assert 'SUCCESS! A control plane node of your cluster was upgraded to "v1.34.1"' in out.stdout
    assert images(cp) == {"etcd": "registry.k8s.io/etcd:3.6.4-0",
                          "kube-apiserver": "registry.k8s.io/kube-apiserver:v1.34.1",
                          "kube-scheduler": "registry.k8s.io/kube-scheduler:v1.34.1"}
    stored = yaml.safe_load(json.loads(cp.kubectl("get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "json"))
                            ["data"]["ClusterConfiguration"])
    assert stored["kubernetesVersion"] == "v1.34.1"
    assert json.loads(cp.kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"] == "v1.34.1"

    out = cp.kubeadm("upgrade", "plan", "v1.34.1", bin_dir=new)
    assert "Awesome, you're up-to-date! Enjoy!" in out.stdout
    out = cp.kubeadm("upgrade", "apply", "v1.33.5", "--yes", bin_dir=new)
    assert out.returncode == 1
    assert ("the version argument is invalid due to these errors:\n\n\t- Kubeadm version v1.34.1 can only be used "
            "to upgrade to Kubernetes version 1.34\n\nCan be bypassed if you pass the --force flag") in out.stderr

    out = worker.kubeadm("upgrade", "node", bin_dir=new)
    assert out.returncode == 0, out.stderr
    assert "Skipping phase. Not a control plane node." in out.stdout
    assert "The configuration for this node was successfully upgraded!" in out.stdout
