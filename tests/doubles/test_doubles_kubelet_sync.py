"""The kubelet double's periodic work costs only what changed (every lab cluster runs one per node, on two shared
cores): a static-pod manifest is parsed again only when its bytes change, and containerd is asked its version once
per binary, not on every node status sync."""

import os
from pathlib import Path

import yaml

from lab.doubles import kubelet
from lab.doubles.kubelet import StaticPods

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
