"""Inventory changes reach a running cluster made by cluster.up on the doubles (1 control plane + 1 worker): an
apiserver extra arg is applied through kubeadm's own phases (the running API server has it, kubeadm-config stores
it), a label the inventory no longer lists is removed while a user's own label stays, a kubelet setting and flag
reach each kubelet one node at a time (the control plane's Ready on them before the worker's kubelet restarts), a
kube-proxy setting reaches its ConfigMap and new pods, `cluster.plan --live` is then empty and a second cluster.up
changes nothing."""

import shutil
import threading
import time

import pytest
import toml
import yaml

from kubefab import inventory, paths
from kubefab.api import kube, kubeproxy, nodes
from kubefab.errors import KubefabError
from kubefab.steps import CHANGED
from test_lab_live import live
from test_lab_up import run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

INFRA = "node-role.kubernetes.io/infra"
APISERVER_LOG = "/var/log/pods/kube-system_kube-apiserver/kube-apiserver.log"     # the kubelet double's


def edit(lab, change):
    raw = toml.loads(lab.inventory.read_text())
    change(raw)
    lab.inventory.write_text(toml.dumps(raw))


def running_flags(lab, host):
    """The flags of the API server now running on `host`, as the double logged them at its start."""
    lines = lab.run(host, f"grep 'started with flags' {APISERVER_LOG}").stdout.splitlines()
    return lines[-1].split("flags: ", 1)[1].split()


def kubelet_started(lab, host):
    """When `host`'s kubelet last started, on the machine's monotonic clock (the lab's hosts share its kernel)."""
    out = lab.run(host, "systemctl show -p ExecMainStartTimestampMonotonic --value kubelet").stdout
    return int(out.strip()) / 1e6


class PodsPoller(threading.Thread):
    """Reads the Nodes every 200 ms: when each first reported `pods` as its pod capacity (time.monotonic())."""

    def __init__(self, api, pods):
        super().__init__(daemon=True)
        self.api, self.pods, self.seen, self.done = api, pods, {}, threading.Event()

    def run(self):
        while not self.done.wait(0.2):
            try:
                listed = self.api.get(nodes.NODES)["items"]
            except KubefabError:                # an API server restarting with its kubelet
                continue
            for n in map(nodes.view, listed):
                if n.pods == self.pods:
                    self.seen.setdefault(n.name, time.monotonic())


def test_an_apiserver_arg_a_removed_label_kubelet_and_kube_proxy_settings_reach_a_running_cluster(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    edit(lab, lambda raw: raw["hosts"]["kf-w1"].update(labels={INFRA: ""}))
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    assert INFRA in nodes.view(api.get("/api/v1/nodes/kf-w1")).labels
    api.patch("/api/v1/nodes/kf-w1", {"metadata": {"labels": {"team": "blue"}}}, kube.MERGE)    # a user's own
    assert "--audit-log-maxage=30" not in running_flags(lab, "kf-cp1")

    assert {nodes.view(n).pods for n in api.get(nodes.NODES)["items"]} == {"110"}
    proxies = {p["metadata"]["uid"] for p in api.get(kubeproxy.PODS, {"labelSelector": kubeproxy.SELECTOR})["items"]}
    assert len(proxies) == 2

    def change(raw):
        raw["cluster"].setdefault("apiserver", {})["extra_args"] = {"audit-log-maxage": "30"}
        raw["cluster"]["kubelet"] = {"config": {"maxPods": 150}, "extra_args": {"v": "3"}}
        raw["cluster"]["kube_proxy"] = {"config": {"metricsBindAddress": "0.0.0.0:10249"}}
        del raw["hosts"]["kf-w1"]["labels"]
    edit(lab, change)
    code, text, r = run_of(lab, tmp_path, dry_run=True)
    assert code == 0, text
    assert "kubeadm init phase control-plane all" in text and "reconfigure-control-planes" in text
    assert "--audit-log-maxage=30" not in running_flags(lab, "kf-cp1")

    poller = PodsPoller(api, "150")
    poller.start()
    code, text, r = run_of(lab, tmp_path, yes=True)
    poller.done.set()
    assert code == 0, text
    results = {(x.host, x.phase): x for x in r.results}
    # each kubelet restarted once on the new configuration and flag: the control plane's first, then the worker's
    assert set(poller.seen) == {"kf-cp1", "kf-w1"}, poller.seen
    started = {h: kubelet_started(lab, h) for h in ("kf-cp1", "kf-w1")}
    assert started["kf-cp1"] < started["kf-w1"] < poller.seen["kf-w1"], (started, poller.seen)
    assert started["kf-cp1"] < poller.seen["kf-cp1"], (started, poller.seen)
    for host in ("kf-cp1", "kf-w1"):
        assert "--v=3" in lab.run(host, f"cat {paths.KUBELET_FLAGS}").stdout
        assert "maxPods: 150" in lab.run(host, f"cat {paths.KUBELET_CONFIG}").stdout
    assert results["kf-w1", "reconfigure-workers"].status == CHANGED
    # kube-proxy's ConfigMap has the new value, and every kube-proxy pod is a new one
    conf = yaml.safe_load(api.get(kubeproxy.CONFIGMAP)["data"][kubeproxy.KEY])
    assert conf["metricsBindAddress"] == "0.0.0.0:10249" and conf["clusterCIDR"], conf
    now = {p["metadata"]["uid"] for p in api.get(kubeproxy.PODS, {"labelSelector": kubeproxy.SELECTOR})["items"]}
    assert len(now) == 2 and not now & proxies, (proxies, now)
    assert "restarted node by node" in results["kf-cp1", "kube-proxy"].steps[0].detail
    assert "2 new kube-proxy pods Ready" in results["kf-cp1", "kube-proxy"].steps[0].detail
    assert live(lab, tmp_path / "state") == (0, "no changes\n")
    assert results["kf-cp1", "reconfigure-control-planes"].status == CHANGED, text
    steps = {s.name: s for s in results["kf-cp1", "reconfigure-control-planes"].steps}
    assert "kube-apiserver: manifest changed" in steps["regenerate the control-plane manifests"].detail, steps
    assert "--audit-log-maxage=30" in running_flags(lab, "kf-cp1")
    stored = yaml.safe_load(api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"][
        "ClusterConfiguration"])
    assert {"name": "audit-log-maxage", "value": "30"} in stored["apiServer"]["extraArgs"]
    labels = nodes.view(api.get("/api/v1/nodes/kf-w1")).labels
    assert INFRA not in labels and labels["team"] == "blue", labels
    assert f"unlabel {INFRA}" in results["kf-w1", "verify"].steps[0].detail

    code, text, again = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert not [(x.host, x.phase, x.detail) for x in again.results if x.status == CHANGED], text
