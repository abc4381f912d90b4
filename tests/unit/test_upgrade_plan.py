"""cluster.upgrade's plan, decided from what the cluster runs before any host changes: the refusals a user sees
(a skipped minor with the path of minors, a downgrade, kubelets too old, a target the install source lacks),
the worker batches (each cordoned whole before a drain), and the nodes a re-run skips."""

import pytest

from inventories import host_tables
from kubefab import inventory, plan
from kubefab.errors import KubefabError
from kubefab.plan import upgrade as upgrading, workflows
from kubefab.plan.upgrade import Survey
from kubefab.run import execute
from kubefab.run.session import Options

IMAGES_133 = {c: f"registry.k8s.io/{c}:v1.33.5" for c in upgrading.UPGRADED}


def survey(cluster="1.33.5", kubelets=None, images=None):
    return Survey(cluster, kubelets or {"cp1": "1.33.5", "w1": "1.33.5"}, images or {"cp1": IMAGES_133})


def test_a_skipped_minor_is_refused_with_the_path_of_minors():
    with pytest.raises(KubefabError) as e:
        upgrading.check("1.35.0", survey())
    assert "1.33.5 → 1.35.0 skips a minor" in str(e.value)
    assert "go 1.33 → 1.34 → 1.35" in str(e.value)


def test_a_downgrade_is_refused_naming_what_runs_newer():
    found = upgrading.refusals("1.33.5", survey("1.34.1", {"cp1": "1.34.1", "w1": "1.33.5"}))
    assert found == ("1.33.5 is older than what the cluster runs (1.34.1; kubelets of cp1) — kubefab does not "
                     "downgrade",)


def test_kubelets_more_than_three_minors_older_are_refused_by_name():
    found = upgrading.refusals("1.34.1", survey("1.33.5", {"cp1": "1.33.5", "w1": "1.30.4", "w2": "1.31.0"}))
    assert found == ("kubelets more than 3 minors older than 1.34.1: w1 (1.30.4) — upgrade them first",)


def test_a_target_the_offline_directory_does_not_provide_is_refused():
    found = upgrading.refusals("1.34.2", survey(), provided="1.34.1")
    assert found == ("1.34.2 is newer than the offline directory provides (its kubeadm is 1.34.1) — put the 1.34.2 "
                     "binaries in a directory and name it in [install] directory",)


def test_the_next_minor_and_a_newer_patch_pass():
    assert upgrading.refusals("1.34.1", survey()) == ()
    assert upgrading.refusals("1.33.7", survey()) == ()


@pytest.mark.parametrize("workers, batch, share, size", [
    (20, 0, 10, 2), (5, 0, 10, 1), (0, 0, 10, 1), (20, 3, 10, 3), (8, 0, 50, 4)])
def test_batches_are_the_given_size_or_a_share_of_the_workers_at_least_one(workers, batch, share, size):
    assert upgrading.batch_size(workers, batch, share) == size


def test_a_node_at_the_target_is_upgraded_only_with_its_components():
    s = survey("1.34.1", {"cp1": "1.34.1", "w1": "1.34.1"}, {"cp1": IMAGES_133})

    class Host:
        def __init__(self, name, cp):
            self.name, self.is_control_plane = name, cp
    assert s.upgraded(Host("w1", False), "1.34.1")
    assert not s.upgraded(Host("cp1", True), "1.34.1")


def upgrade_plan(tmp_path, survey, workers=3, batch=2):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.34.1"\n\n' + host_tables(2, workers))
    inv = inventory.load(path)
    return plan.build(inv, plan.prepare(inv), None, batch=batch, workflow=workflows.upgrade(survey, batch))


def steps_of(p, phase):
    return {hs.host.name: hs.steps for pp in p.phases if pp.phase.name == phase for b in pp.batches for hs in b}


def test_each_worker_cordons_its_whole_batch_before_its_drain(tmp_path):
    s = survey(kubelets={n: "1.33.5" for n in ("cp-1", "cp-2", "w-1", "w-2", "w-3")},
               images={"cp-1": IMAGES_133, "cp-2": IMAGES_133})
    p = upgrade_plan(tmp_path, s)
    workers = next(pp for pp in p.phases if pp.phase.name == "workers")
    assert [[hs.host.name for hs in b] for b in workers.batches] == [["w-1", "w-2"], ["w-3"]]
    for name, steps in steps_of(p, "workers").items():
        assert [type(x).__name__ for x in steps[:2]] == ["CordonBatch", "DrainInBatch"]
        assert steps[0].nodes == (("w-1", "w-2") if name != "w-3" else ("w-3",))
    first = [x.name for x in steps_of(p, "control-plane-first")["cp-1"]]
    assert first.index("kubeadm upgrade plan") < first.index("kubeadm upgrade apply") < first.index("restart kubelet")
    assert "kubeadm upgrade apply" not in [x.name for x in steps_of(p, "control-planes")["cp-2"]]


def test_a_rerun_skips_upgraded_nodes_and_never_applies_again(tmp_path):
    images_134 = {c: f"registry.k8s.io/{c}:v1.34.1" for c in upgrading.UPGRADED}
    s = survey("1.34.1", {"cp-1": "1.34.1", "cp-2": "1.33.5", "w-1": "1.34.1", "w-2": "1.33.5", "w-3": "1.33.5"},
               {"cp-1": images_134, "cp-2": IMAGES_133})
    p = upgrade_plan(tmp_path, s)
    assert steps_of(p, "control-plane-first") == {}
    assert set(steps_of(p, "workers")) == {"w-2", "w-3"}
    assert steps_of(p, "workers")["w-2"][0].nodes == ("w-2",)     # w-1 of its batch is done
    cp2 = [x.name for x in steps_of(p, "control-planes")["cp-2"]]
    assert "kubeadm upgrade node" in cp2 and "kubeadm upgrade apply" not in cp2


def names_in(p, phase, host):
    return [x.name for x in steps_of(p, phase)[host]]


def test_an_etcd_backup_is_taken_before_the_first_control_plane_changes_unless_no_backup(tmp_path):
    s = survey(kubelets={n: "1.33.5" for n in ("cp-1", "cp-2", "w-1", "w-2", "w-3")},
               images={"cp-1": IMAGES_133, "cp-2": IMAGES_133})
    p = upgrade_plan(tmp_path, s)
    assert [pp.phase.name for pp in p.phases if pp.batches][:2] == ["etcd-backup", "control-plane-first"]
    assert names_in(p, "etcd-backup", "cp-1") == ["etcd backup"]
    assert f"{p.inventory.state_dir}/backups" in steps_of(p, "etcd-backup")["cp-1"][0].what
    assert workflows._upgrade_intro(p).startswith("cluster.upgrade to 1.34.1: an etcd backup; then control planes")
    inv = p.inventory
    without = plan.build(inv, plan.prepare(inv), None, batch=2, workflow=workflows.upgrade(s, 2, backup=False))
    assert steps_of(without, "etcd-backup") == {} and "cp-1" in steps_of(without, "control-plane-first")


def test_no_backup_is_taken_when_every_control_plane_is_upgraded(tmp_path):
    images_134 = {c: f"registry.k8s.io/{c}:v1.34.1" for c in upgrading.UPGRADED}
    s = survey("1.34.1", {"cp-1": "1.34.1", "cp-2": "1.34.1", "w-1": "1.33.5", "w-2": "1.33.5", "w-3": "1.34.1"},
               {"cp-1": images_134, "cp-2": images_134})
    p = upgrade_plan(tmp_path, s)
    assert steps_of(p, "etcd-backup") == {} and set(steps_of(p, "workers")) == {"w-1", "w-2"}


def test_control_planes_without_etcdctl_refuse_the_upgrade_with_the_install_hint(tmp_path):
    p = upgrade_plan(tmp_path, survey())

    class Facts:
        def __init__(self, etcdctl):
            self.commands = {"etcdctl": etcdctl}
    facts = {"cp-1": Facts("/usr/bin/etcdctl"), "cp-2": Facts(""), "w-1": Facts("")}
    why = upgrading.without_etcdctl(p.inventory, facts)
    assert why.startswith("etcdctl is not installed on cp-2: cluster.upgrade takes an etcd backup")
    assert "apt-get install etcd-client" in why and "--no-backup" in why
    with pytest.raises(KubefabError) as e:
        upgrading.check("1.34.1", survey(), unbacked=why)
    assert "cluster.upgrade refused:\n  etcdctl is not installed on cp-2" in str(e.value)
    assert upgrading.without_etcdctl(p.inventory, {**facts, "cp-2": Facts("/usr/bin/etcdctl")}) == ""


def test_skipping_the_backup_phase_is_as_no_backup_so_etcdctl_is_not_asked_for():
    assert execute.backs_up(True, Options())
    assert not execute.backs_up(False, Options())
    assert not execute.backs_up(True, Options(skip=("etcd-backup",)))
    assert not execute.backs_up(True, Options(only=("workers", "verify-upgrade")))
    assert execute.backs_up(True, Options(only=("etcd-backup", "control-plane-first")))


def test_a_control_plane_that_runs_workloads_is_drained_first_and_uncordoned_after(tmp_path):
    s = Survey("1.33.5", {n: "1.33.5" for n in ("cp-1", "cp-2", "w-1", "w-2", "w-3")},
               {"cp-1": IMAGES_133, "cp-2": IMAGES_133}, schedulable=frozenset({"cp-2", "w-1"}))
    p = upgrade_plan(tmp_path, s)
    cp2 = steps_of(p, "control-planes")["cp-2"]
    assert [type(x).__name__ for x in cp2[:2]] == ["CordonBatch", "DrainInBatch"] and cp2[0].nodes == ("cp-2",)
    assert [type(x).__name__ for x in cp2[-2:]] == ["WaitUpgraded", "UncordonUpgraded"]
    assert "CordonBatch" not in [type(x).__name__ for x in steps_of(p, "control-plane-first")["cp-1"]]


def test_runtime_upgrades_containerd_on_each_node_in_its_turn_and_batch(tmp_path):
    s = survey(kubelets={n: "1.33.5" for n in ("cp-1", "cp-2", "w-1", "w-2", "w-3")},
               images={"cp-1": IMAGES_133, "cp-2": IMAGES_133})
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.34.1"\n\n' + host_tables(2, 3))
    inv = inventory.load(path)
    plain = plan.build(inv, plan.prepare(inv), None, batch=2, workflow=workflows.upgrade(s, 2))
    p = plan.build(inv, plan.prepare(inv), None, batch=2, workflow=workflows.upgrade(s, 2, containerd=True))
    assert [[[hs.host.name for hs in b] for b in pp.batches] for pp in p.phases] == \
        [[[hs.host.name for hs in b] for b in pp.batches] for pp in plain.phases]
    assert "upgrade containerd" not in [x.name for steps in steps_of(plain, "workers").values() for x in steps]
    for phase, hosts in (("control-plane-first", ["cp-1"]), ("control-planes", ["cp-2"]),
                         ("workers", ["w-1", "w-2", "w-3"])):
        for host in hosts:
            steps = names_in(p, phase, host)
            assert steps.index("kubeadm upgrade node" if host != "cp-1" else "kubeadm upgrade apply") \
                < steps.index("upgrade containerd") < steps.index("restart kubelet"), (host, steps)
            if phase == "workers":
                assert steps.index("drain") < steps.index("upgrade containerd")
    step = next(x for x in steps_of(p, "workers")["w-1"] if x.name == "upgrade containerd")
    assert "apt-get install -qy --only-upgrade containerd" in step.script and "systemctl restart containerd" in \
        step.script


def test_a_worker_left_cordoned_by_an_interrupted_run_is_upgraded_again_to_its_uncordon(tmp_path):
    images_134 = {c: f"registry.k8s.io/{c}:v1.34.1" for c in upgrading.UPGRADED}
    at = {n: "1.34.1" for n in ("cp-1", "cp-2", "w-1", "w-2")}
    s = Survey("1.34.1", {**at, "w-3": "1.33.5"}, {"cp-1": images_134, "cp-2": images_134},
               cordoned=frozenset({"w-1"}))
    p = upgrade_plan(tmp_path, s)
    assert set(steps_of(p, "workers")) == {"w-1", "w-3"} and steps_of(p, "etcd-backup") == {}
    assert names_in(p, "workers", "w-1")[-2:] == ["restart kubelet", "uncordon"]
    assert steps_of(p, "workers")["w-1"][-2].done == "the kubelet reports 1.34.1"
