"""Waits on the API server end at their deadline naming what was last seen, and at once when the run stops."""

import threading
import time

import pytest

from kubefab.api import kube


def test_a_wait_that_never_succeeds_times_out_with_the_last_reason():
    with pytest.raises(kube.Timeout, match=r"node w-1 was not Ready within 0.5s — last: NotReady \(no CNI\)"):
        kube.until(lambda: (False, "NotReady (no CNI)"), 0.5, "node w-1 was not Ready")


def test_ctrl_c_ends_a_long_wait_at_once():
    stop, checks = threading.Event(), []
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    with pytest.raises(kube.Stopped, match="stopped waiting: the API server was not ready"):
        kube.until(lambda: (checks.append(1), (False, "connection refused"))[1], 600, "the API server was not ready",
                   stop)
    assert time.monotonic() - start < 10 and len(checks) <= 3      # not the 600 s deadline


def test_a_wait_that_succeeds_returns_its_value():
    answers = iter([(False, "not yet"), (True, "v1.33.5")])
    assert kube.until(lambda: next(answers), 30, "the API server was not ready") == "v1.33.5"


def test_an_api_server_that_does_not_answer_for_a_moment_is_waited_for():
    def check():
        if not answers:
            return True, "Ready"
        raise answers.pop()
    answers = [kube.Unreachable("no answer to GET /api/v1/nodes/w-1: read timed out")]
    assert kube.until(check, 30, "node w-1 was not Ready") == "Ready"
    answers = [kube.Unreachable("no answer to GET /api/v1/nodes/w-1: read timed out")] * 5
    with pytest.raises(kube.Timeout, match="within 1.5s — last: no answer to GET /api/v1/nodes/w-1"):
        kube.until(check, 1.5, "node w-1 was not Ready")
