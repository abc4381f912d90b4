"""`invoke bench.*`: kubefab's benchmarks against its contenders (a checkout's development tool).

Each task runs one script of bench/ in its own Python process (so its memory and CPU are its own), prints the table
and writes bench/results/<name>.json (or --out).
"""

import shlex
import sys
from pathlib import Path

from invoke import Exit, task

BENCH = Path(__file__).resolve().parent.parent / "bench"
COMMON_HELP = {
    "runs": "runs per measurement, median reported (default 3)",
    "smoke": "small sizes and one run: checks the benchmark works (what CI runs)",
    "out": "directory for the JSON (default bench/results)",
}


def run_script(c, name, runs, smoke, out, **options):
    """Run bench/<name>.py with the common options and its own; its exit status ends the task."""
    argv = [sys.executable, str(BENCH / f"{name}.py"), "--runs", str(runs)]
    argv += [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    argv += ["--smoke"] * bool(smoke) + (["--out", out] if out else [])
    result = c.run(shlex.join(argv), pty=False, warn=True)
    if result.failed:
        raise Exit(code=result.exited)


@task(help={"hosts": "comma-separated fleet sizes, at least 3 (default 3,50,200)", **COMMON_HELP})
def plan_scale(c, hosts="3,50,200", runs=3, smoke=False, out=None):
    """How `cluster.plan` scales with the number of hosts: first plan, re-plan, marginal ms per host."""
    run_script(c, "plan_scale", runs, smoke, out, hosts=hosts)


@task(help={"control-planes": "comma-separated control-plane counts (default 1,5)",
            "algorithms": "comma-separated key algorithms: RSA-2048, ECDSA-P256 (default both)", **COMMON_HELP})
def pki(c, control_planes="1,5", algorithms="RSA-2048,ECDSA-P256", runs=3, smoke=False, out=None):
    """kubefab's PKI bundle against the openssl CLI making the same certificates, and a no-change re-run."""
    run_script(c, "pki", runs, smoke, out, control_planes=control_planes, algorithms=algorithms)
