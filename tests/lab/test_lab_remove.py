"""node.remove on lab clusters made by cluster.up on the doubles (real etcd). A worker: its drain is refused while a
PodDisruptionBudget allows no disruption, then it is drained, reset and deleted with the operator's iptables rule and
SSH intact, cluster.up's plan says it would join it again, and node.join brings it back Ready as one Node. Three
control planes: a removal that would cost etcd its quorum is refused, another leaves two members (a warning), and a
worker cut off the network loses its Node without SSH, the run saying what stays on it."""

import shutil
import time

import pytest

from kubefab import inventory, plan
from kubefab.api import kube, members, nodes
from kubefab.errors import KubefabError
from kubefab.remote import ssh
from kubefab.run import report
from kubefab.state import removal
from lab.doubles import testkit
from test_lab_up import edit_inventory, run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
KEEP = "-p tcp --dport 9999 -m comment --comment operator-rule -j ACCEPT"
PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"


def cells(r):
    return {(x.host, x.phase): x for x in r.results}


def pod(name, node):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "hostNetwork": True, "containers": [{"name": "web", "image": "busybox"}]}}


def test_a_worker_is_drained_within_its_budget_removed_and_joins_again(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    lab.run("kf-w1", f"iptables -A INPUT {KEEP}")
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    for n in (1, 2):
        api.create(PODS, pod(f"web-{n}", "kf-w1"))
    api.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web-pdb"},
                      "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    testkit.until(lambda: (api.get(f"{PDBS}/web-pdb").get("status") or {}).get("currentHealthy") == 2, 60)

    code, text, _ = run_of(lab, tmp_path, "remove", hosts=("kf-w1",), dry_run=True)
    assert code == 0 and "dry run: nothing was changed" in text, text
    assert [line.split(":")[0] for line in text.splitlines() if line[:3] in ("1. ", "2. ", "3. ", "4. ")] == [
        "1. drain", "2. reset", "3. delete-node", "4. etcd-member"], text
    assert not api.get("/api/v1/nodes/kf-w1")["spec"].get("unschedulable")

    start = time.monotonic()
    code, text, r = run_of(lab, tmp_path, "remove", yes=True, hosts=("kf-w1",), drain_timeout=3)
    assert code == 1 and "The disruption budget web-pdb needs 2 healthy pods and has 2 currently" in text, text
    assert [x.phase for x in r.results] == ["drain"], "nothing is reset while the drain is refused"
    assert api.get("/api/v1/nodes/kf-w1")["spec"]["unschedulable"] is True
    assert lab.run("kf-w1", "test -f /etc/kubernetes/kubelet.conf", check=False).returncode == 0

    api.delete(f"{PDBS}/web-pdb")
    code, text, r = run_of(lab, tmp_path, "remove", yes=True, hosts=("kf-w1",))
    print(f"\nnode.remove of a worker: {time.monotonic() - start:.1f} s for both runs")
    assert code == 0, text
    assert [x.phase for x in r.results] == ["drain", "reset", "delete-node"], text
    assert "2 pods evicted" in cells(r)["kf-w1", "drain"].steps[0].detail
    assert api.find("/api/v1/nodes/kf-w1") is None and not api.get(PODS)["items"]
    rules = lab.run("kf-w1", "iptables-save").stdout        # and SSH still answers: the run's reset went over it
    assert "operator-rule" in rules and "KUBE-" not in rules and "FLANNEL" not in rules, rules
    assert "remove its [hosts.kf-w1] table" in text
    assert "note: kf-w1 was taken out by node.remove" in report.plan_text(plan.build(inv, plan.prepare(inv)))

    code, text, r = run_of(lab, tmp_path, "join", yes=True, hosts=("kf-w1",))
    assert code == 0, text
    listed = [n for n in nodes.list_nodes(api) if n.name == "kf-w1"]
    assert len(listed) == 1 and listed[0].ready
    assert removal.read(inv) == {}


def test_three_control_planes_keep_their_quorum_and_a_dead_worker_goes_without_ssh(new_lab, tmp_path):
    lab = new_lab(hosts=4, control_planes=3, flavour="node")
    edit_inventory(lab, connect_timeout=3)      # a cut host is given up on after 3 s
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    with pytest.raises(KubefabError, match="the control-plane endpoint .* is kf-cp1's own address"):
        run_of(lab, tmp_path, "remove", yes=True, hosts=("kf-cp1",))
    lab.cut("kf-cp3")
    with pytest.raises(KubefabError, match="leaves 2 members of which 1 are healthy, and etcd needs 2 for a quorum "
                                           "— bring kf-cp3 back first"):
        run_of(lab, tmp_path, "remove", yes=True, hosts=("kf-cp2",))
    lab.connect("kf-cp3")

    start = time.monotonic()
    code, text, r = run_of(lab, tmp_path, "remove", yes=True, hosts=("kf-cp2",))
    print(f"\nnode.remove of a control plane: {time.monotonic() - start:.1f} s")
    assert code == 0, text
    assert "warning: etcd will have 2 members" in text
    hosts = ssh.Hosts()
    try:
        left = members.Etcd(inv, hosts).members()
    finally:
        hosts.close()
    assert sorted(m.name for m in left) == ["kf-cp1", "kf-cp3"] and all(m.healthy for m in left)
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    assert sorted(n.name for n in nodes.list_nodes(api)) == ["kf-cp1", "kf-cp3", "kf-w1"]

    lab.cut("kf-w1")
    code, text, r = run_of(lab, tmp_path, "remove", yes=True, hosts=("kf-w1",))
    assert code == 0, text
    assert "kf-w1 cannot be reached" in text and "not cleaned on kf-w1, which was not reached" in text
    assert [x.phase for x in r.results] == ["delete-node"]
    assert api.find("/api/v1/nodes/kf-w1") is None
