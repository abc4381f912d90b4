"""node.remove as data: when etcd lets a control plane's member go, the phases each kind of removal runs, the
refusals made before anything is touched, and the cluster.up plan's word about a removed host still listed; behind
a VIP, the first control plane going and the load balancers of those that stay letting it go."""

import io
import re

import pytest

from conftest import invoke
from inventories import host_tables
from kubefab import inventory, plan
from kubefab.api import apisteps, kube
from kubefab.api.members import Member, judge, peer_url
from kubefab.errors import KubefabError
from kubefab.pki import vrrp
from kubefab.plan import workflows
from kubefab.run import execute, report
from kubefab.run.session import Options
from kubefab.state import removal, tree


@pytest.fixture
def inv(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n\n' + host_tables(3, 1))
    return inventory.load(path, state_dir=tmp_path / "state")


def members(inv, healthy=("cp-1", "cp-2", "cp-3"), learners=()):
    return tuple(Member(str(i), h.name, peer_url(h), (), h.name in learners, h.name in healthy)
                 for i, h in enumerate(inv.control_planes, 1))


def test_a_member_may_go_while_the_healthy_ones_left_keep_a_quorum_and_an_even_count_left_is_a_warning(inv):
    cp1 = inv.host("cp-1")
    verdict = judge(members(inv), cp1)
    assert verdict.member.name == "cp-1" and verdict.refusal == ""
    assert verdict.warnings == ("etcd will have 2 members: an even count tolerates no more failed members than 1 do "
                                "(0) — add a control plane to make it odd again",)
    assert judge(members(inv, healthy=("cp-2", "cp-3")), cp1).refusal == "", "a dead member itself may go"


def test_removing_a_member_that_would_leave_no_quorum_is_refused_naming_the_sick_one(inv):
    verdict = judge(members(inv, healthy=("cp-1", "cp-2")), inv.host("cp-1"))
    assert verdict.refusal == ("removing cp-1's etcd member leaves 2 members of which 1 are healthy, and etcd needs 2 "
                               "for a quorum — bring cp-3 back first")


def test_the_last_voting_member_is_refused_and_learners_do_not_count(inv):
    verdict = judge(members(inv, learners=("cp-2", "cp-3")), inv.host("cp-1"))
    assert verdict.refusal.startswith("cp-1 holds the cluster's last etcd member")
    assert judge(members(inv)[1:], inv.host("cp-1")).member is None


def test_a_worker_is_drained_reset_and_deleted_and_has_no_etcd_member_phase(inv):
    p = plan.build(inv, None, None, hosts=("w-1",), workflow=workflows.remove("w-1", drain_timeout=60))
    assert [(pp.phase.name, [[hs.host.name for hs in b] for b in pp.batches]) for pp in p.phases] == [
        ("drain", [["w-1"]]), ("reset", [["w-1"]]), ("delete-node", [["w-1"]]), ("etcd-member", []),
        ("load-balancers", [])]
    text = report.plan_text(p)
    assert "within 60 s" in text and "$ kubeadm reset -f" in text


def test_an_unreachable_control_plane_loses_only_its_node_and_member(inv):
    p = plan.build(inv, None, None, hosts=("cp-2",), workflow=workflows.remove("cp-2", unreachable=True))
    assert [pp.phase.name for pp in p.phases if pp.batches] == ["delete-node", "etcd-member"]
    assert "nothing runs on it" in workflows.remove("cp-2", unreachable=True).intro(p)


@pytest.mark.parametrize("hosts, says", [
    ((), "node.remove takes exactly one host: --host NAME"),
    (("w-1", "cp-2"), "node.remove takes exactly one host: --host NAME"),
    (("cp-1",), "the control-plane endpoint 10.0.0.11:6443 is cp-1's own address")])
def test_refusals_come_before_any_host_is_touched(inv, hosts, says):
    with pytest.raises(KubefabError) as e:
        execute.remove(inv, Options(hosts=hosts, yes=True), unreachable=True)
    assert says in str(e.value)
    assert not inv.state_dir.exists()


def test_the_only_control_plane_is_refused(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n\n' + host_tables(1, 1))
    one = inventory.load(path, state_dir=tmp_path / "state")
    with pytest.raises(KubefabError, match="cp-1 is the cluster's only control plane"):
        execute.remove(one, Options(hosts=("cp-1",), yes=True), unreachable=True)


def test_cluster_ups_plan_says_it_would_join_a_removed_host_again_until_it_is_a_node_again(inv):
    removal.record(inv, "w-1")
    text = report.plan_text(plan.build(inv, plan.prepare(inv)))
    assert "note: w-1 was taken out by node.remove (" in text
    assert "this plan joins it again — remove its [hosts.w-1] table unless you mean to" in text
    assert removal.forget(inv, "w-1") and not removal.forget(inv, "w-1")
    assert "taken out by node.remove" not in report.plan_text(plan.build(inv, plan.prepare(inv)))


@pytest.fixture
def ha(tmp_path):
    path = tmp_path / "ha.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n[cluster.ha]\nvip = "10.0.0.100"\n\n'
                    + host_tables(3, 1))
    return inventory.load(path, state_dir=tmp_path / "state")


class _Etcd:
    """members.Etcd as three healthy members answer it."""

    def __init__(self, inv, hosts):
        self.inv = inv

    def members(self, skip=(), health=True):
        return members(self.inv)


def test_behind_a_vip_the_first_control_plane_may_go_and_the_others_load_balancers_let_it_go(ha, monkeypatch):
    monkeypatch.setattr(execute.members, "Etcd", _Etcd)
    console = io.StringIO()
    outcome = execute.remove(ha, Options(hosts=("cp-1",), dry_run=True), unreachable=True, console=console)
    assert outcome.code == 0, console.getvalue()
    assert [(pp.phase.name, [[hs.host.name for hs in b] for b in pp.batches]) for pp in outcome.plan.phases
            if pp.batches] == [("delete-node", [["cp-1"]]), ("etcd-member", [["cp-1"]]),
                               ("load-balancers", [["cp-2"], ["cp-3"]])]
    text = console.getvalue()
    assert "cp-1's API server out of haproxy's backends" in text and "cp-1 out of keepalived's unicast peers" in text
    assert vrrp.credentials(ha)[1].reveal() not in text


def test_the_control_planes_that_stay_get_the_configs_cluster_up_renders_once_the_removal_is_recorded(ha):
    p = plan.build(ha, None, None, hosts=("cp-1",), workflow=workflows.remove("cp-1"))
    steps = {pp.phase.name: [[hs.steps for hs in b] for b in pp.batches] for pp in p.phases}
    assert steps["reset"][0][0][0].name == "stop keepalived and haproxy", "the VIP leaves before kubeadm reset"
    sent = {hs.host.name: [s.stdin for s in hs.steps] for pp in p.phases if pp.phase.name == "load-balancers"
            for b in pp.batches for hs in b}
    haproxy, keepalived = sent["cp-2"][0], sent["cp-2"][1].reveal()
    assert re.findall(r"\n    server (\S+) ", haproxy) == ["cp-2", "cp-3"]
    assert re.search(r"unicast_peer \{\n(.*?)\n    \}", keepalived, re.S).group(1).split() == ["10.0.0.13"]
    assert "priority 200\n" in keepalived, "cp-2 is now the first of the control planes"

    removal.record(ha, "cp-1")
    plan.prepare(ha)
    for host, (haproxy, keepalived) in sent.items():
        assert tree.local_path(ha, host, "/etc/haproxy/haproxy.cfg").read_text() == haproxy
        assert tree.local_path(ha, host, "/etc/keepalived/keepalived.conf").read_text() == keepalived.reveal()
    assert "server cp-1 " in tree.local_path(ha, "cp-1", "/etc/haproxy/haproxy.cfg").read_text(), \
        "a removed host's own files still name it, as when it joins again"


def test_removing_a_worker_leaves_the_load_balancers_alone(ha):
    p = plan.build(ha, None, None, hosts=("w-1",), workflow=workflows.remove("w-1"))
    assert [pp.phase.name for pp in p.phases if pp.batches] == ["drain", "reset", "delete-node"]
    assert all(s.name != "stop keepalived and haproxy" for pp in p.phases for b in pp.batches for hs in b
               for s in hs.steps)


def test_cluster_up_refuses_to_run_kubeadm_init_on_a_removed_first_control_plane(ha):
    removal.record(ha, "cp-1")
    assert "runs kubeadm init on it, a second cluster, and cluster.up refuses to" in report.plan_text(
        plan.build(ha, plan.prepare(ha)))
    with pytest.raises(KubefabError, match=r"cp-1 was taken out by node.remove, .* remove its \[hosts.cp-1\] table"):
        execute.up(ha, Options(yes=True))


def test_the_last_word_after_removing_the_first_control_plane_says_cluster_up_refuses_until_its_table_goes(
        ha, monkeypatch):
    monkeypatch.setattr(execute.members, "Etcd", _Etcd)
    monkeypatch.setattr(execute, "run", lambda *a, **k: execute.Outcome("node.remove", (), (), "done", 0))
    said = {}
    for name in ("cp-1", "cp-2"):
        console = io.StringIO()
        execute.remove(ha, Options(hosts=(name,), yes=True), unreachable=True, console=console)
        said[name] = console.getvalue()
    assert ("remove its [hosts.cp-1] table (kubefab does not edit the inventory, and cluster.up refuses to run until "
            "it is gone: it would kubeadm init a second cluster there)") in said["cp-1"]
    assert "remove its [hosts.cp-2] table (kubefab does not edit the inventory, and a cluster.up would join it again)" \
        in said["cp-2"]


def test_the_cli_takes_the_host_named_by_host_and_refuses_two(inv, tmp_path):
    args = ("node.remove", "-i", str(inv.path), "--state-dir", str(tmp_path / "cli"), "--unreachable", "--dry-run")
    one = invoke(*args, "--host", "w-1")
    assert one.returncode == 0 and "dry run: nothing was changed" in one.stdout, one.stdout + one.stderr
    assert "3. delete-node: Delete the Node" in one.stdout
    two = invoke(*args, "--host", "w-1,cp-2")
    assert two.returncode != 0 and "node.remove takes exactly one host: --host NAME" in two.stderr


def test_an_endpoint_not_answering_from_here_is_reached_through_a_control_plane_that_was_not_removed(inv, monkeypatch):
    class Hosts:
        def forward(self, host, address, port):
            raise RuntimeError(f"forwarded through {host.name}")
    monkeypatch.setattr(apisteps, "reachable", lambda address, port: False)
    removal.record(inv, "cp-1")
    with pytest.raises(RuntimeError, match="forwarded through cp-2"):
        apisteps.ApiSteps(inv, Hosts(), log=None).api()


def test_the_delete_of_the_node_waits_out_an_endpoint_that_does_not_answer_for_a_moment(inv):
    class Api:
        def __init__(self):
            self.tries = 0

        def delete(self, path):
            self.tries += 1
            if self.tries < 3:
                raise kube.Unreachable(f"no answer to DELETE {path}: EOF occurred in violation of protocol")
            return True
    steps = apisteps.ApiSteps(inv, None, log=None)
    steps._api = Api()
    assert steps.delete_node(inv.host("cp-2")) == ("changed", "deleted") and steps._api.tries == 3
    assert removal.read(inv).keys() == {"cp-2"}
