"""Shared fixtures. Tests marked `lab` get real SSH hosts in network namespaces (tests/lab)."""

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab import Lab, Network, down_labs, down_on_termination, packages

ROOT = Path(__file__).resolve().parent.parent

# Run as a background job (`cmd &` in a script, nohup), pytest inherits SIGINT ignored and so would every kubefab
# CLI a test starts and sends Ctrl-C to. Caught here instead, it is back to its default in each child (exec resets a
# caught signal, not an ignored one), as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def invoke(*args, cwd=ROOT, env=None):
    """`python -m invoke ARGS` as a user runs it in the checkout (or in `cwd`): the CompletedProcess, text."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


SESSION_LAB = {"hosts": 3, "control_planes": 1, "flavour": "node"}


@functools.cache
def lab_unavailable():
    """Why labs cannot run here, or '' when they can (root, network namespaces)."""
    if os.geteuid() != 0:
        return "lab tests need root (they create network namespaces, mounts and cgroups)"
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode:
        return "lab tests need network and mount namespaces, which this machine refuses"
    return ""


# A test's kind is its folder: tests/lab needs root and network namespaces (real SSH hosts, real etcd), tests/e2e the
# VMs of vagrant/. Elsewhere a test that needs them carries the mark itself; one that uses such a fixture unmarked is
# refused at collection, so `-m "not lab and not slow"` is the pure, fast part on any machine.
SUITE_MARKS = {"lab": "lab", "e2e": "e2e"}
FIXTURE_NEEDS = {"lab": "lab", "new_lab": "lab", "netns": "lab", "api": "lab", "vagrant_env": "slow"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    reason = lab_unavailable()
    unmarked = []
    for item in items:
        suite = Path(item.path).relative_to(ROOT / "tests").parts[0]
        if suite in SUITE_MARKS:
            item.add_marker(SUITE_MARKS[suite])
        for fixture in set(getattr(item, "fixturenames", ())) & set(FIXTURE_NEEDS):
            if not item.get_closest_marker(FIXTURE_NEEDS[fixture]):
                unmarked.append(f"{item.nodeid} uses the fixture {fixture!r}: mark it "
                                f"@pytest.mark.{FIXTURE_NEEDS[fixture]} or move it to tests/lab")
        if reason and item.get_closest_marker("lab"):
            item.add_marker(pytest.mark.skip(reason=reason))
    if unmarked:
        raise pytest.UsageError("\n".join(unmarked))


def pytest_collection_finish(session):
    # The lab's Debian packages (etcd, containerd, sshd, ...) are the explicit `python -m lab setup`; a run that
    # selects lab tests performs that same idempotent step here, so a fresh machine needs nothing by hand.
    if not lab_unavailable() and any(item.get_closest_marker("lab") for item in session.items):
        installed = packages.ensure()
        if installed:
            session.config.get_terminal_writer().line(f"lab set-up: installed {' '.join(installed)}")
    down_on_termination()  # CI's timeout or a closed terminal still removes the labs


@pytest.fixture(scope="session")
def lab():
    """A few node hosts (systemd, containerd) shared by the whole session: do not break them."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    down_labs(scope="stale")  # labs of an earlier run that was killed
    with Lab.up(**SESSION_LAB) as shared:
        yield shared


@pytest.fixture(scope="module")
def netns():
    """A private network namespace on a lab bridge, for doubles that bind 6443, 2379, 10250...; shared by a module."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    with Network.up(1) as net:
        yield net.namespaces[0]


@pytest.fixture
def new_lab():
    """A factory of fresh labs for destructive tests: `new_lab(hosts=2, quirks=...)`, all torn down after the test."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    made = []

    def make(**kwargs):
        made.append(Lab.up(**kwargs))
        return made[-1]

    yield make
    for one in made:
        one.down()
