"""The kubelet double's periodic work costs only what changed (every lab cluster runs one per node, on two shared
cores): a static-pod manifest is parsed again only when its bytes change, and containerd is asked its version once
per binary, not on every node status sync. What changed is sent at once: a static pod's new mirror Pod status goes
to the API server when the pod starts, as the kubelet's status manager sends it, not at the next node status sync."""

import os
import threading
import time
from pathlib import Path

import yaml

from lab.doubles import kubelet
from lab.doubles.kubelet import StaticPods

SLEEPER = "#!/bin/sh\nexec sleep 60\n"     # a control-plane double's stand-in: a process that runs
FAKE_CONTAINERD = """#!/bin/sh
echo run >> {calls}
echo "containerd github.com/containerd/containerd {version} 1234abcd"
"""


def test_an_unchanged_manifest_is_not_parsed_again_and_a_changed_one_is(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(tmp_path))
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "kube-system"},
           "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]}}
    (manifests / "web.yaml").write_text(yaml.safe_dump(pod))
    parsed = []
    monkeypatch.setattr(kubelet.yaml, "safe_load", lambda data: parsed.append(data) or yaml.load(data, yaml.SafeLoader))
    pods = StaticPods("/etc/kubernetes/manifests", Path("/nonexistent"))
    for _ in range(3):
        pods.sync()
    assert len(parsed) == 1 and pods.running["web"][2]["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10"

    pod["spec"]["containers"][0]["image"] = "registry.k8s.io/pause:3.11"
    (manifests / "web.yaml").write_text(yaml.safe_dump(pod))
    pods.sync()
    assert len(parsed) == 2 and pods.running["web"][2]["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.11"


def test_containerd_is_asked_its_version_once_until_the_binary_is_replaced(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    binary = tmp_path / "bin/containerd"
    binary.parent.mkdir()
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")

    def install(version):
        staged = binary.with_suffix(".new")    # a package upgrade puts a new file in place
        staged.write_text(FAKE_CONTAINERD.format(calls=calls, version=version))
        staged.chmod(0o755)
        staged.rename(binary)

    install("1.6.20")
    assert [kubelet.runtime_version() for _ in range(3)] == ["containerd://1.6.20"] * 3
    assert calls.read_text().count("run") == 1
    install("1.7.24")
    assert kubelet.runtime_version() == "containerd://1.7.24"
    assert calls.read_text().count("run") == 2


class Recorder:
    """An API server that answers every request and keeps (time, method, path) of each."""

    def __init__(self):
        self.requests = []

    def request(self, method, path, body=None, content_type=None):
        self.requests.append((time.monotonic(), method, path))
        return {"items": []}

    def get(self, path):
        return self.request("GET", path)

    def create(self, path, obj):
        return self.request("POST", path, obj)


def test_a_started_static_pod_is_reported_at_once_not_at_the_next_status_sync(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(tmp_path))
    monkeypatch.setenv("KUBEFAB_DOUBLE_STATUS_SECONDS", "30")
    api = Recorder()
    monkeypatch.setattr(kubelet, "ensure_client", lambda flags, name: api)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kube-scheduler").write_text(SLEEPER)
    (bin_dir / "kube-scheduler").chmod(0o755)
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    pods, stop = StaticPods("/etc/kubernetes/manifests", bin_dir), threading.Event()
    loop = threading.Thread(target=kubelet.api_loop, args=({}, {}, "kf-cp1", pods, stop, {}), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not any(m == "PATCH" for _, m, _ in api.requests):      # the first status sync is done
            assert time.monotonic() < deadline, api.requests
            time.sleep(0.05)
        (manifests / "kube-scheduler.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
            "spec": {"containers": [{"name": "kube-scheduler", "image": "registry.k8s.io/kube-scheduler:v1.33.5",
                                     "command": ["kube-scheduler"]}]}}))
        started = time.monotonic()
        pods.sync()
        mirror = "/api/v1/namespaces/kube-system/pods"
        while not any(m == "POST" and p == mirror and t > started for t, m, p in api.requests):
            assert time.monotonic() - started < 10, "the mirror Pod waited for the next 30 s status sync"
            time.sleep(0.05)
    finally:
        stop.set()
        pods.stop_all()
