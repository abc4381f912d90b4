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


@task(help={"hosts": "comma-separated fleet sizes, at least 3 (default 1000,5000)", **COMMON_HELP})
def plan_scale(c, hosts="1000,5000", runs=3, smoke=False, out=None):
    """How `cluster.plan` scales with the number of hosts: first plan, re-plan, marginal ms per host, peak memory."""
    run_script(c, "plan_scale", runs, smoke, out, hosts=hosts)


@task(help={"control-planes": "comma-separated control-plane counts (default 1,5)",
            "algorithms": "comma-separated key algorithms: RSA-2048, ECDSA-P256 (default both)", **COMMON_HELP})
def pki(c, control_planes="1,5", algorithms="RSA-2048,ECDSA-P256", runs=3, smoke=False, out=None):
    """kubefab's PKI bundle against the openssl CLI making the same certificates, and a no-change re-run."""
    run_script(c, "pki", runs, smoke, out, control_planes=control_planes, algorithms=algorithms)


LAB_HELP = {"workers": "kubefab's pool size (default 32, kubefab's own)",
            "ansible-venv": "venv holding ansible-core, made with pip when missing (default ~/.cache/kubefab-bench/"
                            "ansible-core)"}


@task(help={"hosts": "comma-separated lab sizes (default 10,50,100,200)", **LAB_HELP, **COMMON_HELP})
def facts(c, hosts="10,50,100,200", workers=32, ansible_venv=None, runs=3, smoke=False, out=None):
    """kubefab's facts stage against Ansible, parallel OpenSSH and the Fabric floor, on plain lab hosts (root)."""
    run_script(c, "facts", runs, smoke, out, hosts=hosts, workers=workers,
               **({"ansible_venv": ansible_venv} if ansible_venv else {}))


@task(help={"hosts": "comma-separated lab sizes (default 10,50,100)",
            "megabytes": "size of the offline-binaries directory pushed with the tree (default 50)",
            **LAB_HELP, **COMMON_HELP})
def push(c, hosts="10,50,100", megabytes=50, workers=32, ansible_venv=None, runs=3, smoke=False, out=None):
    """kubefab's push of each host's tree and the offline binaries against scp, rsync and Ansible's copy (root)."""
    run_script(c, "push", runs, smoke, out, hosts=hosts, megabytes=megabytes, workers=workers,
               **({"ansible_venv": ansible_venv} if ansible_venv else {}))


LAB_HELP_NODES = {"kubelet-seconds": "how often each kubelet double posts its node status (default 0: the double's "
                                      "2 s; 10, the real kubelet's, for labs of ~100 hosts)"}


@task(help={"hosts": "comma-separated lab sizes of node hosts, at least 2 (default 3,50)",
            "batches": "comma-separated worker batch sizes compared with joining one at a time (default 10,50)",
            "large-runs": "runs for labs of more than 10 hosts (default 1; --runs is for the smaller ones)",
            "first-batch": "workers the first up joins at once (default 0: one at a time, the lab inventory's)",
            "first-tries": "times the first up may run until no host fails (default 1)",
            "control-plane-weight": "each control plane's CPU share in workers' (default 1; 8 for 100 hosts: the "
                                    "lab's hosts share the cores real control planes have of their own)",
            "workers": LAB_HELP["workers"], **LAB_HELP_NODES, **COMMON_HELP})
def up(c, hosts="3,50", batches="10,50", large_runs=1, first_batch=0, first_tries=1, workers=32, kubelet_seconds=0,
       control_plane_weight=1, runs=3, smoke=False, out=None):
    """The whole cluster.up on labs of node hosts: phases, batches, a no-change up, plan --live, memory (root)."""
    run_script(c, "up", runs, smoke, out, hosts=hosts, batches=batches, large_runs=large_runs,
               first_batch=first_batch, first_tries=first_tries, workers=workers, **kubelet(kubelet_seconds),
               control_plane_weight=control_plane_weight)


@task(help={"hosts": "comma-separated lab sizes (default 20)",
            "batches": "comma-separated worker batch sizes, each on a fresh lab (default 1,10)",
            "first-batch": "workers the cluster.up before each upgrade joins at once (default 10)",
            "workers": LAB_HELP["workers"], **LAB_HELP_NODES, **COMMON_HELP})
def upgrade(c, hosts="20", batches="1,10", first_batch=10, workers=32, kubelet_seconds=0, runs=1, smoke=False,
            out=None):
    """cluster.upgrade 1.33.5 -> 1.34.1 on labs of node hosts: wall time per worker batch size, and the ratio (root)."""
    run_script(c, "upgrade", runs, smoke, out, hosts=hosts, batches=batches, first_batch=first_batch, workers=workers,
               **kubelet(kubelet_seconds))


def kubelet(seconds):
    """--kubelet-seconds for the script when given (0: the kubelet double's own 2 s)."""
    return {"kubelet_seconds": seconds} if float(seconds) else {}
