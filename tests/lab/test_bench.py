"""The benchmarks keep working: each runs in smoke mode (smallest sizes, one run) and writes its JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubefab.plan import workflows
from lab import kernel, spec, state

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = {"wall_s", "cpu_s", "peak_rss_mb", "child_peak_rss_mb"}
FACTS = ("kubefab", "preflight", "ansible_setup", "ansible_raw", "openssh", "floor")
PUSH = ("kubefab", "scp", "rsync", "ansible_copy")
PUSH_EXTRA = ("kubefab_again",)   # a second push onto hosts that hold every file
# benchmark -> (row keys, the keys among them that hold a measurement, rows expected in smoke mode)
BENCHMARKS = {
    "plan_scale": ({"hosts", "first", "replan", "marginal_ms_per_host", "marginal_cpu_ms_per_host",
                    "replan_over_first", "peak_rss_mb", "peak_over_smallest"}, ("first", "replan"), 2),
    "pki": ({"control_planes", "algorithm", "certificates", "files", "kubefab", "rerun", "openssl",
             "kubefab_over_openssl", "kubefab_over_openssl_cpu", "rerun_over_first",
             "rerun_over_first_cpu"},
            ("kubefab", "rerun", "openssl"), 2),
    "facts": ({"hosts", "lab", "workers", *FACTS, "cpu_ms_per_host", "kubefab_cpu_ms_per_host_beyond_floor",
               *(f"kubefab_over_{n}{cpu}" for n in FACTS[2:] for cpu in ("", "_cpu"))}, FACTS, 1),
    "push": ({"hosts", "lab", "workers", "files_per_host", "mb_per_host", *PUSH, *PUSH_EXTRA, "again_over_first",
              "cpu_ms_per_host",
              *(f"kubefab_over_{n}{cpu}" for n in PUSH[1:] for cpu in ("", "_cpu"))}, (*PUSH, *PUSH_EXTRA), 1),
    "up": ({"hosts", "control_planes", "workers", "runs", "lab", "pool", "first", "again", "preflight",
            "first_phases", "again_phases", "again_changed", "again_failed", "batch_failed", "again_ssh_runs_per_host",
            "again_api_requests", "again_over_facts", "again_over_preflight", "cpu_ms_per_host",
            "again_cpu_ms_per_host", "join_workers", "rss_bytes_per_extra_host", "cpu_ms_per_extra_host", "live",
            "live_facts_s", "live_api_requests", "live_over_facts", "live_changes", "load_at_again", "load_at_live",
            "first_retried"},
           ("first", "again", "preflight", "live"), 1),
    "upgrade": ({"hosts", "control_planes", "workers", "batch", "lab", "upgrade", "load_before", "phases", "runs",
                 "over_batch_1"}, ("upgrade",), 1),
}
ON_LAB = ("facts", "push", "up", "upgrade")     # they build labs (of plain hosts, or node hosts for up): root and namespaces


def bench(*argv):
    # PYTHONPATH: the scripts import this checkout's kubefab, whatever the interpreter has installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def committed(name):
    path = ROOT / "bench" / "results" / f"{name}.json"
    return path.read_bytes() if path.exists() else None


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """smoke(name) -> (finished process, results dir, bench/results/<name>.json before the run); each runs once."""
    done = {}

    def run(name):
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            before = committed(name)
            done[name] = bench(f"bench/{name}.py", "--smoke", "--out", str(out)), out, before
        return done[name]
    return run


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.lab) if n in ON_LAB else n
                                  for n in sorted(BENCHMARKS)])
def test_smoke_run_writes_its_results(name, smoke):
    run, out, before = smoke(name)
    assert run.returncode == 0, run.stderr
    doc = json.loads((out / f"{name}.json").read_text())
    keys, measured, count = BENCHMARKS[name]
    assert (doc["benchmark"], doc["runs"], doc["smoke"]) == (name, 1, True)
    assert {"cores", "memory_mb", "python", "versions"} <= doc["machine"].keys()
    assert doc["machine"]["versions"]["kubefab"]
    assert len(doc["rows"]) == count
    for row in doc["rows"]:
        assert row.keys() == keys
        for key in measured:
            assert row[key].keys() == SAMPLE
            assert row[key]["wall_s"] > 0 and row[key]["peak_rss_mb"] > 0
    assert f"wrote {out / f'{name}.json'}" in run.stdout
    assert committed(name) == before, "smoke mode wrote into bench/results"


def test_pki_smoke_compares_both_algorithms_against_openssl(smoke):
    run, out, _ = smoke("pki")
    assert run.returncode == 0, run.stderr
    rows = json.loads((out / "pki.json").read_text())["rows"]
    assert sorted(r["algorithm"] for r in rows) == ["ECDSA-P256", "RSA-2048"]
    for row in rows:
        # 1 control-plane node: 10 certificates of kubeadm's tree and 4 kubeconfigs, made by both sides
        assert row["certificates"] == 14
        assert row["openssl"]["child_peak_rss_mb"] > 0, "the openssl side ran no process"


@pytest.mark.lab
@pytest.mark.parametrize("name", ON_LAB)
def test_a_lab_benchmark_leaves_no_lab_behind(name, smoke):
    run, out, _ = smoke(name)
    assert run.returncode == 0, run.stderr
    for row in json.loads((out / f"{name}.json").read_text())["rows"]:
        lab_id, lab_dir, owner = row["lab"]["id"], row["lab"]["dir"], row["lab"]["owner_pid"]
        record = state.load(lab_dir)
        if record is not None and record.owner_pid != owner:
            continue    # another run has taken the freed id since: its objects carry the same names
        assert not Path(lab_dir).exists(), f"{lab_dir} is left"
        assert kernel.netns_list(spec.netns_name(lab_id, "")) == []
        assert kernel.link_list(spec.veth_name(lab_id, "")) == []
        assert spec.bridge_name(lab_id) not in kernel.link_list(spec.bridge_name(lab_id))
        assert kernel.mounts_under(lab_dir) == []


@pytest.mark.lab
def test_facts_smoke_runs_every_contender_on_the_lab(smoke):
    run, out, _ = smoke("facts")
    assert run.returncode == 0, run.stderr
    [row] = json.loads((out / "facts.json").read_text())["rows"]
    assert row["hosts"] == 3
    # the process contenders spent their CPU in child processes; kubefab and the floor in this one
    for name in ("ansible_setup", "ansible_raw", "openssh"):
        assert row[name]["cpu_s"] > 0.01, name
    assert row["kubefab_over_floor"] > 0 and row["kubefab_over_ansible_setup"] > 0
    assert "beyond floor" in run.stdout


@pytest.mark.lab
def test_push_smoke_sends_the_tree_and_the_offline_binaries(smoke):
    run, out, _ = smoke("push")
    assert run.returncode == 0, run.stderr
    [row] = json.loads((out / "push.json").read_text())["rows"]
    # smoke mode: a 5 MB offline directory (7 files) beside the push phase's tree of certificates and configs
    assert 5 <= row["mb_per_host"] < 6
    assert row["files_per_host"] > 7
    for name in (*PUSH, *PUSH_EXTRA):
        assert row[name]["wall_s"] > 0, name


@pytest.mark.lab
def test_up_smoke_times_every_phase_and_a_second_up_changes_nothing(smoke):
    run, out, _ = smoke("up")
    assert run.returncode == 0, run.stderr
    [row] = json.loads((out / "up.json").read_text())["rows"]
    assert (row["hosts"], row["control_planes"], row["workers"]) == (3, 1, 2)
    assert row["first_phases"].keys() == row["again_phases"].keys() == {*workflows.UP.names, "other"}
    # one control plane: no other to join, no [addons]; the first up ran every other stage and phase (the
    # reconfiguration only finds its steps done: kubeadm init makes the manifests from this config)
    idle = ("join-control-plane", "addons")
    assert [row["first_phases"][name] for name in idle] == [None] * len(idle), row
    assert all(row["first_phases"][name] > 0 for name in workflows.UP.names if name not in idle), row
    # the second up found the cluster made: it changed nothing, and what joining cost it is near nothing
    assert row["again_changed"] == 0 and row["again_failed"] == row["batch_failed"] == [], row
    assert row["first_phases"]["join-workers"] > 10 * (row["again_phases"]["join-workers"] or 0)
    assert row["again_phases"]["facts"] > 0 and row["again_over_facts"] > 1 and row["again_over_preflight"] > 0
    assert row["again_ssh_runs_per_host"] >= 1
    # cluster.plan --live found no changes: one facts round trip and its reads of the API
    assert row["live_changes"] == [], row["live_changes"]
    assert row["live_over_facts"] >= 1 and row["live_facts_s"] > 0 and row["live_api_requests"] >= 1
    assert len(row["load_at_again"]) == len(row["load_at_live"]) == row["runs"]
    # smoke mode: one batch of one worker at a time after a reset, beside the first up's
    assert row["join_workers"].keys() == {"first", "1"} and row["join_workers"]["1"] > 0
    assert row["rss_bytes_per_extra_host"] is row["cpu_ms_per_extra_host"] is None and row["cpu_ms_per_host"] > 0


def test_tasks_list_every_benchmark():
    run = bench("-m", "invoke", "--list")
    assert run.returncode == 0, run.stderr
    for name in ("bench.pki", "bench.plan-scale", "bench.facts", "bench.push", "bench.up", "bench.upgrade"):
        assert name in run.stdout


@pytest.mark.parametrize("argv, message", [
    (["bench.pki", "--algorithms", "DSA-1024"], "give counts of at least 1 and algorithms among RSA-2048, ECDSA-P256"),
    (["bench.plan-scale", "--hosts", "2,50"], "every size needs at least 3 hosts"),
    (["bench.facts", "--hosts", "0,10"], "give sizes and workers of at least 1"),
    (["bench.push", "--megabytes", "0"], "give sizes, workers and megabytes of at least 1"),
    (["bench.up", "--hosts", "1,3"],
     "give sizes of at least 2 hosts, and batches, workers, runs and weight of at least 1"),
    (["bench.upgrade", "--batches", "0"], "give sizes of at least 2 hosts and batches of at least 1"),
])
def test_a_bad_option_ends_the_task_with_the_scripts_error(argv, message, tmp_path):
    run = bench("-m", "invoke", *argv, "--out", str(tmp_path))
    assert run.returncode == 2
    assert message in run.stderr
    assert not list(tmp_path.iterdir())
