"""Inventory changes reach a running cluster made by cluster.up on the doubles (1 control plane + 1 worker): an
apiserver extra arg is applied through kubeadm's own phases (the running API server has it, kubeadm-config stores
it), a label the inventory no longer lists is removed while a user's own label stays, and a second cluster.up
changes nothing."""

import shutil

import pytest
import toml
import yaml

from kubefab import inventory
from kubefab.api import kube, nodes
from kubefab.steps import CHANGED
from test_lab_up import run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

INFRA = "node-role.kubernetes.io/infra"
APISERVER_LOG = "/var/log/pods/kube-system_kube-apiserver/kube-apiserver.log"     # the kubelet double's


def edit(lab, change):
    raw = toml.loads(lab.inventory.read_text())
    change(raw)
    lab.inventory.write_text(toml.dumps(raw))


def running_flags(lab):
    """The flags of the API server now running on kf-cp1, as the double logged them at its start."""
    lines = lab.run("kf-cp1", f"grep 'started with flags' {APISERVER_LOG}").stdout.splitlines()
    return lines[-1].split("flags: ", 1)[1].split()


def test_an_apiserver_arg_and_a_removed_label_reach_a_running_cluster_and_a_second_up_changes_nothing(
        new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    edit(lab, lambda raw: raw["hosts"]["kf-w1"].update(labels={INFRA: ""}))
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    assert INFRA in nodes.view(api.get("/api/v1/nodes/kf-w1")).labels
    api.patch("/api/v1/nodes/kf-w1", {"metadata": {"labels": {"team": "blue"}}}, kube.MERGE)    # a user's own
    assert "--audit-log-maxage=30" not in running_flags(lab)

    def change(raw):
        raw["cluster"].setdefault("apiserver", {})["extra_args"] = {"audit-log-maxage": "30"}
        del raw["hosts"]["kf-w1"]["labels"]
    edit(lab, change)
    code, text, r = run_of(lab, tmp_path, dry_run=True)
    assert code == 0, text
    assert "kubeadm init phase control-plane all" in text and "reconfigure-control-planes" in text
    assert "--audit-log-maxage=30" not in running_flags(lab)

    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    results = {(x.host, x.phase): x for x in r.results}
    assert results["kf-cp1", "reconfigure-control-planes"].status == CHANGED, text
    steps = {s.name: s for s in results["kf-cp1", "reconfigure-control-planes"].steps}
    assert "kube-apiserver: manifest changed" in steps["regenerate the control-plane manifests"].detail, steps
    assert "--audit-log-maxage=30" in running_flags(lab)
    stored = yaml.safe_load(api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"][
        "ClusterConfiguration"])
    assert {"name": "audit-log-maxage", "value": "30"} in stored["apiServer"]["extraArgs"]
    labels = nodes.view(api.get("/api/v1/nodes/kf-w1")).labels
    assert INFRA not in labels and labels["team"] == "blue", labels
    assert f"unlabel {INFRA}" in results["kf-w1", "verify"].steps[0].detail

    code, text, again = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert not [(x.host, x.phase, x.detail) for x in again.results if x.status == CHANGED], text
