"""cluster.upgrade on lab clusters made by cluster.up on the doubles at 1.33.5 (offline source), the inventory then
moved to 1.34.1 and its offline directory.

Three control planes behind the HA VIP + 2 workers: the task, run as a user runs it (with --runtime), takes an etcd
backup, upgrades the control planes one at a time (kubeadm upgrade apply on the first; the doubles' event logs show
no two upgrading at once) while the VIP's /readyz keeps answering, and is sent SIGINT while kf-w1 is upgrading; the
same command again finishes the workers, never runs kubeadm upgrade apply again, and every kubelet reports 1.34.1,
the manifests name v1.34.1, and a third run finds nothing to upgrade. 1 control plane + 2 workers: a
PodDisruptionBudget with maxUnavailable 0 on a worker's pod stops the run at that batch, naming both, with the batch
uncordoned."""

import io
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT
from kubefab import inventory
from kubefab.api import kube, nodes
from kubefab.run import execute
from kubefab.run.session import Options
from lab import repo
from test_lab_ha import failure_windows, polling, readyz
from test_lab_packages import holds
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]
OLD, NEW = "1.33.5", "1.34.1"
PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
EVENTS = "/var/log/kubefab-doubles/events.log"      # lab.doubles.hostfs.EVENTS, read on the host


def upgrade(inv, containerd=False, **options):
    console = io.StringIO()
    start = time.monotonic()
    r = execute.upgrade(inv, Options(yes=True, **options), containerd=containerd, console=console)
    print(f"\ncluster.upgrade {options}: {time.monotonic() - start:.1f} s, exit {r.code}")
    return r, console.getvalue()


def kubelets(inv):
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    return {n.name: n.version for n in nodes.list_nodes(api)}


def manifest_images(lab, host):
    return {c: yaml.safe_load(lab.run(host, f"cat /etc/kubernetes/manifests/{c}.yaml").stdout)
            ["spec"]["containers"][0]["image"] for c in ("kube-apiserver", "kube-controller-manager",
                                                          "kube-scheduler")}


def events(lab, host):
    """(epoch seconds, event, version) of each line the doubles logged on `host`, in order."""
    out = lab.run(host, f"cat {EVENTS} 2>/dev/null || true").stdout
    return [(float(t), e, v) for t, e, v in (line.split() for line in out.splitlines())]


def upgrading_spans(lab, control_planes):
    """Each control plane's (start of kubeadm upgrade apply/node, start of its kubelet at the new version), by start."""
    spans = []
    for cp in control_planes:
        log = events(lab, cp)
        start = next(t for t, e, v in log if e in ("upgrade-apply-start", "upgrade-node-start"))
        end = next(t for t, e, v in log if e == "kubelet-start" and v == f"v{NEW}" and t > start)
        spans.append((start, end, cp))
    return sorted(spans)


def test_three_control_planes_one_at_a_time_the_vip_answering_then_a_run_interrupted_in_the_workers_is_finished(
        new_lab, tmp_path):
    lab = new_lab(hosts=5, control_planes=3, flavour="node", version=OLD, ha=True)
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    lab.write_inventory(NEW)
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")

    dry, text = upgrade(inv, dry_run=True, batch=1)
    assert dry.code == 0, text
    assert "batch 1: kf-w1" in text and "batch 2: kf-w2" in text and "kubeadm upgrade apply v1.34.1" in text
    assert not (inv.state_dir / "backups").exists() and set(kubelets(inv).values()) == {f"v{OLD}"}

    with polling(inv) as samples:       # the VIP's /readyz, each request stamped when it ends
        # the task as a user runs it, sent SIGINT (Ctrl-C) once kf-w1's kubeadm upgrade node has started
        run = subprocess.Popen([sys.executable, "-m", "invoke", "cluster.upgrade", "-i", str(lab.inventory),
                                "--state-dir", str(inv.state_dir), "--batch", "1", "--runtime", "--yes"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 1800      # the control planes first: minutes each on a loaded machine
        while not any(e == "upgrade-node-start" for _, e, _ in events(lab, "kf-w1")):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0]
            time.sleep(0.3)
        run.send_signal(signal.SIGINT)
        first = run.communicate(timeout=300)[0]
        assert run.returncode == 130, first
        assert "etcd backup: " in first and len(list((inv.state_dir / "backups").glob("*.db"))) == 1, first
        assert kubelets(inv)["kf-w2"] == f"v{OLD}", first

        r, text = upgrade(inv, batch=1, containerd=True)
        assert r.code == 0, text
    spans = upgrading_spans(lab, ("kf-cp1", "kf-cp2", "kf-cp3"))
    assert [cp for _, _, cp in spans] == ["kf-cp1", "kf-cp2", "kf-cp3"]
    assert all(end < spans[i + 1][0] for i, (_, end, _) in enumerate(spans[:-1])), spans
    windows = failure_windows(samples)
    print(f"\n{len(samples)} requests to the VIP's /readyz during the upgrade, {sum(not ok for _, ok in samples)} "
          f"failed, in windows of {', '.join(f'{w:.1f}' for _, w in windows) or 'none'} s")
    # a restarting API server stays in haproxy until its checks fail (inter x fall): requests sent to it meanwhile
    # fail (issue #19: taking it out of haproxy first is the HA layer's); the VIP answers the rest, and at the end
    assert sum(ok for _, ok in samples) > len(samples) / 2 and readyz(inv), windows

    # the re-run upgraded what the interrupted one left, and nothing on a control plane
    assert [e for _, e, _ in events(lab, "kf-cp1")].count("upgrade-apply-start") == 1
    assert "kubeadm upgrade apply" not in [s.name for x in r.results for s in x.steps], text
    assert {x.host for x in r.results if x.phase not in ("facts", "verify-upgrade")} <= {"kf-w1", "kf-w2"}
    assert kubelets(inv) == {n: f"v{NEW}" for n in ("kf-cp1", "kf-cp2", "kf-cp3", "kf-w1", "kf-w2")}
    w2 = {s.name: s.detail for x in r.results if x.host == "kf-w2" and x.phase == "workers" for s in x.steps}
    assert re.fullmatch(r"containerd \S+ -> \S+, restarted", w2["upgrade containerd"]), w2
    assert re.fullmatch(r"Ready with kubelet v1\.34\.1 and [1-9][0-9]* DaemonSet pods Ready, uncordoned",
                        w2["uncordon"]), w2
    for cp in ("kf-cp1", "kf-cp2", "kf-cp3"):
        assert set(manifest_images(lab, cp).values()) == {f"registry.k8s.io/{c}:v{NEW}" for c in
                                                          ("kube-apiserver", "kube-controller-manager",
                                                           "kube-scheduler")}
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    assert not any(n.unschedulable for n in nodes.list_nodes(api))

    again, text = upgrade(inv)
    assert again.code == 0, text
    assert f"every node already runs {NEW}, nothing to upgrade" in text
    assert {x.phase for x in again.results} == {"facts", "verify-upgrade"}, text


def test_a_budget_that_blocks_a_drain_stops_the_run_at_that_batch_and_uncordons_it(new_lab, tmp_path):
    """From the packages source (the lab's apt repository, one per minor): the control plane gets 1.34's packages,
    held again, before the workers' batch stops at the budget."""
    lab = new_lab(hosts=3, control_planes=1, flavour="node", version=OLD, install="packages")
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
    upgraded, stopped = holds(lab, "kf-cp1"), holds(lab, "kf-w1")     # the workers' batch never got that far
    assert {"kubeadm", "kubelet", "kubectl"} <= set(upgraded), upgraded
    for p in ("kubeadm", "kubelet"):
        assert f"{p} hold ok installed {NEW}-{repo.REVISION}" in upgraded, upgraded
        assert f"{p} hold ok installed {OLD}-{repo.REVISION}" in stopped, stopped
