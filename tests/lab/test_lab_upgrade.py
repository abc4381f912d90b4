"""cluster.upgrade on a lab cluster made by cluster.up on the doubles at 1.33.5 (1 control plane + 2 workers,
offline source): the inventory moved to 1.34.1 and its offline directory, the run upgrades the control plane with
kubeadm upgrade apply, then the workers one batch at a time; every kubelet reports 1.34.1, the manifests name
v1.34.1, and a second run finds nothing to upgrade. A run stopped after the control plane is resumed by the same
command, which upgrades the workers only and never runs kubeadm upgrade apply again. A PodDisruptionBudget with
maxUnavailable 0 on a worker's pod stops the run at that batch, naming both, with the batch uncordoned."""

import io
import shutil
import time

import pytest
import yaml

from kubefab import inventory
from kubefab.api import kube, nodes
from kubefab.run import execute
from kubefab.run.session import Options
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]
OLD, NEW = "1.33.5", "1.34.1"
PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"


def upgrade(inv, **options):
    console = io.StringIO()
    start = time.monotonic()
    r = execute.upgrade(inv, Options(yes=True, **options), console=console)
    print(f"\ncluster.upgrade {options}: {time.monotonic() - start:.1f} s, exit {r.code}")
    return r, console.getvalue()


def kubelets(inv):
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    return {n.name: n.version for n in nodes.list_nodes(api)}


def manifest_images(lab, host):
    return {c: yaml.safe_load(lab.run(host, f"cat /etc/kubernetes/manifests/{c}.yaml").stdout)
            ["spec"]["containers"][0]["image"] for c in ("kube-apiserver", "kube-controller-manager",
                                                          "kube-scheduler")}


def test_upgrade_moves_every_node_to_the_next_minor_and_a_second_run_has_nothing_to_do(new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=1, flavour="node", version=OLD)
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    lab.write_inventory(NEW)
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")

    dry, text = upgrade(inv, dry_run=True)
    assert dry.code == 0, text
    assert "batch 1: kf-w1" in text and "batch 2: kf-w2" in text and "kubeadm upgrade apply v1.34.1" in text
    assert set(kubelets(inv).values()) == {f"v{OLD}"}

    # a run that stopped after the control plane (as Ctrl-C between phases leaves it)
    first, text = upgrade(inv, only=("control-plane-first",))
    assert first.code == 0, text
    assert kubelets(inv) == {"kf-cp1": f"v{NEW}", "kf-w1": f"v{OLD}", "kf-w2": f"v{OLD}"}
    assert "cluster.upgrade to 1.34.1: control planes one at a time: kf-cp1" in text
    applied = [s.name for x in first.results for s in x.steps]
    assert "kubeadm upgrade apply" in applied, text

    r, text = upgrade(inv)
    assert r.code == 0, text
    assert "cluster.upgrade to 1.34.1: workers in 2 batches: kf-w1 | kf-w2" in text
    assert {x.host for x in r.results if x.phase != "facts" and x.phase != "verify-upgrade"} == {"kf-w1", "kf-w2"}
    assert kubelets(inv) == {"kf-cp1": f"v{NEW}", "kf-w1": f"v{NEW}", "kf-w2": f"v{NEW}"}
    assert set(manifest_images(lab, "kf-cp1").values()) == {f"registry.k8s.io/{c}:v{NEW}" for c in
                                                            ("kube-apiserver", "kube-controller-manager",
                                                             "kube-scheduler")}
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    assert not any(n.unschedulable for n in nodes.list_nodes(api))

    again, text = upgrade(inv)
    assert again.code == 0, text
    assert f"every node already runs {NEW}, nothing to upgrade" in text
    assert {x.phase for x in again.results} == {"facts", "verify-upgrade"}, text


def test_a_budget_that_blocks_a_drain_stops_the_run_at_that_batch_and_uncordons_it(new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=1, flavour="node", version=OLD)
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    api.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
                      "spec": {"nodeName": "kf-w1", "hostNetwork": True,
                               "containers": [{"name": "web", "image": "busybox"}]}})
    api.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web-pdb"},
                      "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}})
    deadline = time.monotonic() + 60
    while (api.get(f"{PDBS}/web-pdb").get("status") or {}).get("currentHealthy") != 1:
        assert time.monotonic() < deadline, "the budget never counted its pod"
        time.sleep(0.5)
    lab.write_inventory(NEW)
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")

    r, text = upgrade(inv, batch=2, drain_timeout=3)
    assert r.code == 1, text
    assert "cannot evict pod default/web-1" in text and "web-pdb" in text, text
    assert "the batch kf-w1, kf-w2 was uncordoned" in text, text
    assert not any(n.unschedulable for n in nodes.list_nodes(api))
    assert kubelets(inv)["kf-cp1"] == f"v{NEW}"
