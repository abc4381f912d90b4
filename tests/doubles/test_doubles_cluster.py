"""End to end on this machine: kubeadm init, a worker join and a control-plane join, each node in
its own network namespace and filesystem root, with the kubelet double running static pods (API
server double, real etcd) and TLS-bootstrapping; then kubeadm reset on every node."""

import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from lab import Network
from lab.doubles import install_dir, testkit
from lab.doubles.store import EtcdStore

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
NODES = ("cp-1", "cp-2", "worker-1")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    bin_dir = install_dir(base / "bin")
    hosts = {}
    with Network.up(len(NODES)) as net:
        try:
            for name, ns in zip(NODES, net.namespaces):
                hosts[name] = testkit.NodeHost(name, ns.address, base / name, ns, bin_dir)
            yield hosts
        finally:
            for h in hosts.values():
                h.kubeadm("reset", "-f", timeout=60)
                h.sock.close()


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def empty(path):
    return not path.exists() or not any(path.iterdir())


def nodes(h):
    return {n["metadata"]["name"]: n for n in json.loads(h.kubectl("get", "nodes", "-o", "json"))["items"]}


def members(h):
    """The etcd member names, asked of `h`'s member with the healthcheck-client certificate."""
    pki = h.path("/etc/kubernetes/pki/etcd")
    etcd = EtcdStore(f"https://{h.address}:2379", pki / "ca.crt", pki / "healthcheck-client.crt",
                     pki / "healthcheck-client.key")
    return sorted(m["name"] for m in etcd.call("/cluster/member/list", {})["members"])


def ready(node):
    return {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"


def test_init_join_and_reset(lab):
    cp1, cp2, w1 = lab["cp-1"], lab["cp-2"], lab["worker-1"]
    pki = testkit.Cluster(endpoint=f"{cp1.address}:6443")
    token = testkit.new_token()
    testkit.write_files(cp1.root, pki.node_files("cp-1", cp1.address))
    cp1_leaves = pki.node_files("cp-1", cp1.address, first=False)
    cp1.path("init.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "bootstrapTokens": [{"token": token, "ttl": "1h"}], "nodeRegistration": {"name": "cp-1"},
         "skipPhases": ["addon/kube-proxy"],
         "localAPIEndpoint": {"advertiseAddress": cp1.address, "bindPort": 6443}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.33.5",
         "controlPlaneEndpoint": f"{cp1.address}:6443", "networking": {"podSubnet": "10.244.0.0/16"}},
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"}]))
    join = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
            "discovery": {"bootstrapToken": {"apiServerEndpoint": f"{cp1.address}:6443", "token": token,
                                             "caCertHashes": [pki.ca_hash()]}}}
    w1.path("join.yaml").write_text(yaml.safe_dump(dict(join, nodeRegistration={
        "name": "worker-1", "taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}],
        "kubeletExtraArgs": [{"name": "node-ip", "value": w1.address}, {"name": "node-labels", "value": "zone=a"}]})))
    cp2.path("join.yaml").write_text(yaml.safe_dump(dict(join, nodeRegistration={"name": "cp-2"}, controlPlane={
        "localAPIEndpoint": {"advertiseAddress": cp2.address, "bindPort": 6443}})))

    init = cp1.kubeadm("init", "--config", "/init.yaml")
    assert init.returncode == 0, init.stderr
    assert f"kubeadm join {cp1.address}:6443 --token {token}" in init.stdout and pki.ca_hash() in init.stdout
    out = w1.kubeadm("join", "--config", "/join.yaml")
    assert out.returncode == 0, out.stderr

    # node-1's leaves copied to node 2 lack its SANs (reference §9, pitfall 1)
    testkit.write_files(cp2.root, cp1_leaves)
    out = cp2.kubeadm("join", "--config", "/join.yaml")
    assert out.returncode == 1
    assert "certificate apiserver is invalid: x509: certificate is valid for cp-1, kubernetes" in out.stderr
    testkit.write_files(cp2.root, pki.node_files("cp-2", cp2.address, first=False))
    out = cp2.kubeadm("join", "--config", "/join.yaml")
    assert out.returncode == 0, out.stderr

    wait_for(lambda: set(nodes(cp1)) == {"cp-1", "cp-2", "worker-1"})
    got = nodes(cp1)
    assert not any(ready(n) for n in got.values())
    for name in ("cp-1", "cp-2"):
        assert "node-role.kubernetes.io/control-plane" in got[name]["metadata"]["labels"]
        assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in got[name]["spec"]["taints"]
    assert {"key": "dedicated", "value": "infra", "effect": "NoSchedule"} in got["worker-1"]["spec"]["taints"]
    assert got["worker-1"]["metadata"]["labels"]["zone"] == "a"
    wait_for(lambda: all(n["spec"].get("podCIDR") for n in nodes(cp1).values()))

    # the worker's files came from discovery and TLS bootstrap, not from a push
    assert w1.path("/etc/kubernetes/pki/ca.crt").read_bytes() == testkit.cert_pem(pki.cas["ca"][0])
    assert not w1.path("/etc/kubernetes/bootstrap-kubelet.conf").exists()
    user = yaml.safe_load(w1.path("/etc/kubernetes/kubelet.conf").read_text())["users"][0]["user"]
    assert user["client-certificate"] == "/var/lib/kubelet/pki/kubelet-client-current.pem"
    assert "ClusterConfiguration" in cp1.kubectl("get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "yaml")
    daemonsets = cp1.kubectl("get", "ds", "-n", "kube-system", "-o", "name")
    assert "kube-proxy" not in daemonsets, "addon/kube-proxy was skipped"
    assert "deployment.apps/coredns" in cp1.kubectl("get", "deploy", "-n", "kube-system", "-o", "name")

    # Ready follows the CNI config, node by node
    # Ready follows a CNI config that loads and whose plugin binaries exist
    cni = w1.path("/etc/cni/net.d/10-test.conflist")
    cni.parent.mkdir(parents=True)
    cni.write_text('{"cniVersion": "1.0.0", "name": "test", "plugins": [{"type": "bridge"}]}')
    time.sleep(1.5)
    worker = nodes(cp1)["worker-1"]
    assert not ready(worker)
    assert 'failed to find plugin "bridge" in path [/opt/cni/bin]' in \
        {c["type"]: c for c in worker["status"]["conditions"]}["Ready"]["message"]
    plugin = w1.path("/opt/cni/bin/bridge")
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    wait_for(lambda: ready(nodes(cp1)["worker-1"]))
    addresses = {a["type"]: a["address"] for a in nodes(cp1)["worker-1"]["status"]["addresses"]}
    assert addresses["InternalIP"] == w1.address
    assert not ready(nodes(cp1)["cp-1"])

    pods = json.loads(cp1.kubectl("get", "pods", "-n", "kube-system", "-l", "component=etcd", "-o", "json"))["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["etcd-cp-1", "etcd-cp-2"]

    assert members(cp1) == ["cp-1", "cp-2"]
    for h in (w1, cp2, cp1):
        out = h.kubeadm("reset", "-f", "--v=1", timeout=60)
        assert out.returncode == 0, out.stderr
        if h is cp2:        # its member left through the API's etcd endpoints, not its own etcd
            assert members(cp1) == ["cp-1"] and "Failed to remove etcd member" not in out.stderr
        if h is cp1:        # the last member stays, in kubeadm's words (at --v=1)
            assert "[etcd] This is the only remaining etcd member in the etcd cluster, skip removing it" in out.stdout
        assert empty(h.path("/etc/kubernetes/manifests")) and empty(h.path("/etc/kubernetes/pki"))
        assert not h.path("/etc/kubernetes/kubelet.conf").exists()
        out = subprocess.run(["ip", "netns", "pids", h.ns.name], capture_output=True, text=True)
        assert out.stdout.split() == [], f"{h.name}: processes left after reset"
    assert cni.exists(), "reset leaves /etc/cni/net.d alone"
