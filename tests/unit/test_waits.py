"""Waits on the API server end at their deadline naming what was last seen, and at once when the run stops."""

import datetime
import threading
import time
import types

import pytest

from kubefab.api import apisteps, kube, nodes
from kubefab.remote import ssh
from kubefab.steps import KubeletReady


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


def node(ready, heartbeat, message=""):
    return {"metadata": {"name": "w-1"}, "status": {"nodeInfo": {"kubeletVersion": "v1.33.5"},
                                                    "allocatable": {"pods": "150"}, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "message": message,
         "lastHeartbeatTime": heartbeat}]}}


class NodeReads:
    """Node w-1 as successive reads show it (the last one again and again)."""

    def __init__(self, *reads):
        self.reads, self.count, self.stop = list(reads), 0, threading.Event()

    def find(self, path):
        assert path == "/api/v1/nodes/w-1"
        self.count += 1
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


class KubeletStartedAt:
    """The SSH connection's answer to the read of when the kubelet started."""

    def __init__(self, text):
        self.text, self.scripts = text, []

    def run(self, host, script, timeout):
        self.scripts.append(script.decode())
        return ssh.Output(0, self.text, "", 0.01)


def test_after_a_kubelet_restart_the_ready_its_old_process_posted_is_not_enough(monkeypatch):
    monkeypatch.setattr(kube, "POLL_SECONDS", 0.01)
    reads = NodeReads(node(True, "2026-12-06T05:49:58Z"),       # the old kubelet's last word
                      node(False, "2026-12-06T05:50:02Z", "container runtime status check may not have completed yet"),
                      node(True, "2026-12-06T05:50:03Z"))
    started = KubeletStartedAt("2026-12-06T05:50:01Z\n")
    api_steps = apisteps.ApiSteps(None, started, None)
    api_steps._api = reads
    result = api_steps.run(KubeletReady("wait until node w-1 is Ready again"), types.SimpleNamespace(name="w-1"))
    assert result.detail == "Ready (v1.33.5), 150 pods at most, as its kubelet started at 05:50:01 posted"
    assert reads.count == 3, "the stale Ready and the NotReady at start were waited through"
    assert "systemctl show -p ExecMainStartTimestamp --value kubelet" in started.scripts[0]


def test_a_node_whose_new_kubelet_posts_nothing_times_out_saying_so(monkeypatch):
    monkeypatch.setattr(kube, "POLL_SECONDS", 0.01)
    since = datetime.datetime(2026, 12, 6, 5, 50, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(kube.Timeout, match=r"node w-1 was not Ready within 0.2s — last: w-1: its kubelet, started at "
                                           r"2026-12-06T05:50:01Z, has posted no Ready condition yet \(the last one is "
                                           r"from 05:49:58\)"):
        nodes.wait_node(NodeReads(node(True, "2026-12-06T05:49:58Z")), "w-1", timeout=0.2, since=since)
    # a heartbeat in the very second the kubelet started is its own: kubefab stops the old one a second before
    assert nodes.wait_node(NodeReads(node(True, "2026-12-06T05:50:01Z")), "w-1", since=since)
