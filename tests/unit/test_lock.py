"""One run at a time per cluster: the state dir's lock names its holder; a dead holder's lock is taken over."""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kubefab.errors import KubefabError
from kubefab.run import lock

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from kubefab.run import lock
with lock.held(Path({state!r})):
    print("held", flush=True)
    time.sleep(60)
"""


def holder(state):
    p = subprocess.Popen([sys.executable, "-c", HOLD.format(root=str(ROOT), state=str(state))], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    p = holder(tmp_path)
    try:
        with pytest.raises(KubefabError, match=rf"another kubefab run holds .*run.lock: pid {p.pid} on "):
            with lock.held(tmp_path):
                pass
    finally:
        p.kill()
        p.wait()


def test_the_lock_of_a_killed_run_is_stale_and_taken_over(tmp_path, caplog):
    p = holder(tmp_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert json.loads((tmp_path / lock.NAME).read_text())["pid"] == p.pid
    # Not the "kubefab" logger: once any test has run log.setup() it no longer propagates to caplog's handler.
    with caplog.at_level(logging.WARNING, logger="test_lock"), lock.held(tmp_path, logging.getLogger("test_lock")):
        assert json.loads((tmp_path / lock.NAME).read_text())["pid"] == os.getpid()
    assert f"stale lock {tmp_path / lock.NAME} of pid {p.pid}" in caplog.text
    assert (tmp_path / lock.NAME).read_text() == ""
