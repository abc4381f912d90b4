"""The workflows of the tasks that change hosts, as data: their phase names, and refusals of unknown ones."""

import subprocess
import sys
from pathlib import Path

import pytest

from inventories import host_tables
from kubefab import inventory
from kubefab.api import apisteps
from kubefab.errors import KubefabError
from kubefab.plan import renewal, workflows
from kubefab.run import execute
from kubefab.run.session import Options
from kubefab.steps import Api

ROOT = Path(__file__).resolve().parents[2]
UP = ("facts, preflight, runtime, push, init, join-control-plane, reconfigure-control-planes, join-workers, "
      "reconfigure-workers, kube-proxy, cni, addons, verify")
JOIN = "facts, preflight, load-balancers, runtime, push, join, verify"
RESET = "reset-workers, reset-control-planes, reset-leader"


@pytest.fixture
def inv_path(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n\n' + host_tables(2, 2))
    return path


def test_each_workflow_lists_its_phases_in_order():
    assert ", ".join(workflows.UP.names) == UP
    assert ", ".join(workflows.join().names) == JOIN
    assert ", ".join(workflows.reset().names) == RESET
    assert ", ".join(workflows.renew(renewal.Due((), ())).names) == "facts, push-certs, restart"


@pytest.mark.parametrize("run, unknown, valid", [
    (execute.up, "reset-leader", UP), (execute.join, "init", JOIN), (execute.reset, "join", RESET)])
@pytest.mark.parametrize("option", ["only", "skip"])
def test_only_and_skip_refuse_a_phase_the_workflow_lacks_listing_its_own(inv_path, run, unknown, valid, option):
    inv = inventory.load(inv_path, state_dir=inv_path.parent / "state")
    with pytest.raises(KubefabError) as e:
        run(inv, Options(hosts=("w-1",), yes=True, **{option: (unknown,)}))
    assert str(e.value) == f"unknown phase {unknown!r} — phases are: {valid}"
    assert not (inv_path.parent / "state").exists(), "nothing is made before the refusal"


def test_the_task_refuses_an_unknown_phase_with_exit_2_and_no_traceback(inv_path):
    p = subprocess.run([sys.executable, "-m", "invoke", "cluster.reset", "-i", str(inv_path), "--skip", "reset",
                        "--yes"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"error: unknown phase 'reset' — phases are: {RESET}" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_reset_runs_the_workers_then_the_other_control_planes_last_joined_first_then_the_first(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\n' + host_tables(3, 2))
    inv = inventory.load(path)
    batches = {p.name: [[h.name for h in b] for b in workflows.phases.batches(p, inv)]
               for p in workflows.reset().phases}
    assert batches == {"reset-workers": [["w-1", "w-2"]], "reset-control-planes": [["cp-3"], ["cp-2"]],
                       "reset-leader": [["cp-1"]]}


def test_every_kind_of_api_step_has_its_runner():
    runners = {**apisteps.RUNNERS, **apisteps.STEP_RUNNERS}
    assert set(runners) == set(Api.__subclasses__()) and len(runners) == 22
    assert not set(apisteps.RUNNERS) & set(apisteps.STEP_RUNNERS)
