"""The kubelet double's static pods, as the kubelet's file source reads staticPodPath: every regular file whose name
does not start with a dot is a manifest; one moved out of the directory stops its pod (what pki.renew and
etcd.restore rely on), one renamed beside the others keeps running."""

import shutil
import socket
from pathlib import Path

import pytest
import yaml

from lab.doubles import testkit
from lab.doubles.kubelet import StaticPods

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def etcd_manifest(client, peer):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "etcd", "namespace": "kube-system"},
            "spec": {"containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.21-0", "command": [
                "etcd", "--data-dir=/var/lib/etcd", f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}", f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}"]}]}}


def test_a_manifest_renamed_in_the_directory_keeps_running_and_one_moved_out_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(tmp_path))
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    client, peer = free_port(), free_port()
    (manifests / "etcd.yaml").write_text(yaml.safe_dump(etcd_manifest(client, peer)))
    (manifests / ".kube-scheduler.yaml.tmp").write_text("not: [a, pod")        # hidden: never read
    pods = StaticPods("/etc/kubernetes/manifests", Path("/nonexistent"))
    try:
        pods.sync()
        assert set(pods.running) == {"etcd"} and testkit.until(lambda: listening(client), 20)
        (manifests / "etcd.yaml").rename(manifests / "etcd.yaml.bak")
        pods.sync()
        assert set(pods.running) == {"etcd"} and listening(client)
        aside = tmp_path / "etc/kubernetes/kubefab/restoring"
        aside.mkdir(parents=True)
        (manifests / "etcd.yaml.bak").rename(aside / "etcd.yaml")
        pods.sync()
        assert pods.running == {} and testkit.until(lambda: not listening(client), 20)
    finally:
        pods.stop_all()
