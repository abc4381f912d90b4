"""The benchmarks keep working: each runs in smoke mode (smallest sizes, one run) and writes its JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = {"wall_s", "cpu_s", "peak_rss_mb", "child_peak_rss_mb"}
# benchmark -> (row keys, the keys among them that hold a measurement, rows expected in smoke mode)
BENCHMARKS = {
    "plan_scale": ({"hosts", "first", "replan", "marginal_ms_per_host", "marginal_cpu_ms_per_host",
                    "replan_over_first"}, ("first", "replan"), 2),
    "pki": ({"control_planes", "algorithm", "certificates", "files", "kubefab", "rerun", "openssl",
             "kubefab_over_openssl", "kubefab_over_openssl_cpu", "rerun_over_first",
             "rerun_over_first_cpu"},
            ("kubefab", "rerun", "openssl"), 2),
}


def bench(*argv):
    # PYTHONPATH: the scripts import this checkout's kubefab, whatever the interpreter has installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


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


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
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


def test_tasks_list_every_benchmark():
    run = bench("-m", "invoke", "--list")
    assert run.returncode == 0, run.stderr
    assert "bench.pki" in run.stdout and "bench.plan-scale" in run.stdout


@pytest.mark.parametrize("argv, message", [
    (["bench.pki", "--algorithms", "DSA-1024"], "give counts of at least 1 and algorithms among RSA-2048, ECDSA-P256"),
    (["bench.plan-scale", "--hosts", "2,50"], "every size needs at least 3 hosts"),
])
def test_a_bad_option_ends_the_task_with_the_scripts_error(argv, message, tmp_path):
    run = bench("-m", "invoke", *argv, "--out", str(tmp_path))
    assert run.returncode == 2
    assert message in run.stderr
    assert not list(tmp_path.iterdir())
