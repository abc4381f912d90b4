"""cluster.upgrade's plan, decided from what the cluster runs before any host changes: the refusals a user sees
(a skipped minor with the path of minors, a downgrade, kubelets too old, a target the install source lacks),
the worker batches, and the nodes a re-run skips."""

import pytest

from kubefab.errors import KubefabError
from kubefab.plan import upgrade as upgrading
from kubefab.plan.upgrade import Survey

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
