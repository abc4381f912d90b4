"""Big labs come up and go down cleanly; a lab whose runner was killed is cleaned by `lab.down`.

Set-up and teardown times and memory are printed (run with -s) for the README; nothing here
asserts a duration.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import Lab, down_labs, kernel, state

pytestmark = [pytest.mark.lab, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def available_mb():
    meminfo = Path("/proc/meminfo").read_text()
    return int(next(line for line in meminfo.splitlines() if line.startswith("MemAvailable:")).split()[1]) // 1024


def pss_mb(lab):
    """Proportional set size of every process in the lab's hosts, in MB."""
    kib = 0
    for pid in kernel.pids_in_netns(lab.state.netns):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):  # a short-lived child already gone
            continue
        kib += int(next(line for line in rollup.splitlines() if line.startswith("Pss:")).split()[1])
    return kib / 1024


def traces(record):
    """Whatever of lab `record` the machine still shows, as an operator would look for it."""
    lab_dir = Path(record.dir)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    mountinfo = Path("/proc/self/mountinfo").read_text()
    return ([n for n in record.netns if n in netns.split()]
            + [name for name in (record.bridge, *record.veths) if f" {name}:" in links or f" {name}@" in links]
            + [line for line in mountinfo.splitlines() if str(lab_dir) in line]
            + [f"pid {pid}" for pid in record.pids.values() if os.path.exists(f"/proc/{pid}")]
            + [cg for cg in record.cgroups if os.path.exists(cg)]
            + ([str(lab_dir)] if lab_dir.exists() else []))


@pytest.mark.parametrize("hosts, flavour", [(10, "plain"), (100, "plain"), (3, "node")])
def test_a_lab_comes_up_and_goes_down_without_a_trace(hosts, flavour):
    free, start = available_mb(), time.monotonic()
    lab = Lab.up(hosts=hosts, flavour=flavour)
    up_s, used = time.monotonic() - start, free - available_mb()
    pss = pss_mb(lab)
    charged = sum(int(Path(cg, "memory.usage_in_bytes").read_text()) for cg in lab.state.cgroups
                  if Path(cg, "memory.usage_in_bytes").exists()) / 2 ** 20
    try:
        assert len(lab.inventory.read_text().split("[hosts.")) == hosts + 1
        assert all(lab.run(h.name, "hostname").stdout.strip() == h.name for h in (lab.hosts[0], lab.hosts[-1]))
    finally:
        start = time.monotonic()
        lab.down()
        down_s = time.monotonic() - start
    print(f"\n{hosts} {flavour} hosts: up {up_s:.1f} s, down {down_s:.1f} s, machine memory used {used} MB, "
          f"processes' PSS {pss:.0f} MB ({pss / hosts:.1f} MB per host)"
          + (f", memory cgroups {charged:.0f} MB ({charged / hosts:.1f} MB per host)" if charged else ""))
    assert traces(lab.state) == []


RUNNER = """
import time
from lab import Lab
lab = Lab.up(hosts=3)
print(lab.dir, flush=True)
time.sleep(600)
"""


def test_down_cleans_a_lab_whose_runner_was_killed():
    runner = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        lab_dir = runner.stdout.readline().strip()
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    record = state.load(lab_dir)
    assert record is not None, "the runner did not start its lab"
    assert len(traces(record)) > 3, "the lab should outlive its killed runner"
    assert record.lab_id in down_labs(scope="stale")
    assert traces(record) == []
