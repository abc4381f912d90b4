"""cluster.upgrade's uncordon through the API: a node is uncordoned only once Ready with the target kubelet AND
every DaemonSet pod bound to it Ready (a drained node whose network pod has not come back takes no workloads)."""

import threading
from types import SimpleNamespace

from kubefab.api import kube, upgrade
from kubefab.plan import upgrade as upgrading
from kubefab.steps import UncordonUpgraded


class Api:
    """A node Ready at v1.34.1 with one DaemonSet pod that turns Ready on the third read of the pods."""

    def __init__(self):
        self.reads, self.patches = 0, []

    def find(self, path):
        return {"metadata": {"name": "w-1"}, "spec": {"unschedulable": True},
                "status": {"nodeInfo": {"kubeletVersion": "v1.34.1"},
                           "conditions": [{"type": "Ready", "status": "True"}]}}

    def get(self, path, query=None):
        self.reads += 1
        ready = "True" if self.reads >= 3 else "False"
        daemon = {"metadata": {"namespace": "kube-flannel", "name": "kube-flannel-ds-x",
                               "ownerReferences": [{"kind": "DaemonSet", "controller": True}]},
                  "status": {"conditions": [{"type": "Ready", "status": ready}]}}
        return {"items": [daemon]}

    def patch(self, path, body, content_type):
        self.patches.append((self.reads, path, body))


def test_a_worker_is_uncordoned_only_once_its_daemonset_pods_are_ready(monkeypatch):
    monkeypatch.setattr(kube, "POLL_SECONDS", 0.01)
    api = Api()
    steps = SimpleNamespace(api=lambda: api, stop=threading.Event())
    _, detail = upgrade.uncordon_upgraded(steps, SimpleNamespace(name="w-1"), UncordonUpgraded("u", version="1.34.1"))
    assert api.patches == [(3, "/api/v1/nodes/w-1", {"metadata": {"annotations": {upgrading.CORDONED: None}},
                                                     "spec": {"unschedulable": False}})]
    assert detail == "Ready with kubelet v1.34.1 and 1 DaemonSet pods Ready, uncordoned"


class Flaky:
    """An API server behind a load balancer that drops the first connection, then answers."""

    stop = threading.Event()

    def __init__(self):
        self.calls = 0

    def get(self, path, query=None):
        self.calls += 1
        if self.calls == 1:
            raise kube.Unreachable("https://198.18.0.253:8443: no answer to GET: [SSL: UNEXPECTED_EOF_WHILE_READING]")
        if path.endswith("kubeadm-config"):
            return {"data": {"ClusterConfiguration": "kubernetesVersion: v1.33.5\n"}}
        if path == "/api/v1/nodes":
            return {"items": [{"metadata": {"name": "w-1", "annotations": {upgrading.CORDONED: "true"}},
                               "status": {"nodeInfo": {"kubeletVersion": "v1.34.1"}}}]}
        return {"items": []}


def test_the_survey_reads_again_when_the_api_server_drops_a_connection(monkeypatch):
    monkeypatch.setattr(kube, "POLL_SECONDS", 0.01)
    s = upgrade.survey(Flaky(), None)
    assert (s.cluster, s.kubelets, s.cordoned, s.schedulable) == ("1.33.5", {"w-1": "1.34.1"}, {"w-1"}, {"w-1"})


class Busy:
    """Nodes that the batch's other hosts patch at the same moment: the first patch of each meets a 409."""

    def __init__(self):
        self.patched, self.conflicts = [], set()

    def get(self, path, query=None):
        return {"metadata": {"name": path.rpartition("/")[2]}, "spec": {}}

    def patch(self, path, body, content_type):
        if path not in self.conflicts:
            self.conflicts.add(path)
            raise kube.ApiError("PATCH", path, 409, "Conflict", "the object has been modified")
        self.patched.append((path, body))


def test_a_batch_is_cordoned_and_marked_even_when_its_nodes_are_patched_at_once(monkeypatch):
    monkeypatch.setattr(kube, "POLL_SECONDS", 0.01)
    api = Busy()
    steps = SimpleNamespace(api=lambda: api)
    _, detail = upgrade.cordon_batch(steps, None, SimpleNamespace(nodes=("w-1", "w-2")))
    assert detail == "cordoned w-1, w-2"
    assert [p for p, _ in api.patched] == ["/api/v1/nodes/w-1", "/api/v1/nodes/w-2"]
    assert api.patched[0][1] == {"metadata": {"annotations": {upgrading.CORDONED: "true"}},
                                 "spec": {"unschedulable": True}}
