"""The API-server double's Eviction subresource keeps PodDisruptionBudgets as the real server does: 429 with its
words and the budget named, the pod left running; terminal and Pending pods go without a budget check."""

import pytest

from lab.doubles import eviction, install_dir, testkit
from lab.doubles.kubeclient import ApiStatus, Client

pytestmark = pytest.mark.lab        # real etcd behind the API-server double
PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("evict")
    with testkit.local_apiserver(root, install_dir(root / "bin")):
        yield Client.from_kubeconfig(root / "etc/kubernetes/super-admin.conf")


def pod(client, name, app, phase="Running", ready=True):
    client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
                         "spec": {"nodeName": "w-1", "containers": [{"name": "c", "image": "busybox"}]}})
    client.request("PATCH", f"{PODS}/{name}/status", {"status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}, "application/merge-patch+json")


def budget(client, name, app, **spec):
    client.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                         "spec": {"selector": {"matchLabels": {"app": app}}, **spec}})


def evict(client, name):
    """(HTTP code, body) of an eviction of default/<name>."""
    try:
        return 201, client.create(f"{PODS}/{name}/eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                             "metadata": {"name": name, "namespace": "default"}})
    except ApiStatus as e:
        return e.code, e.body


def exists(client, name):
    try:
        client.get(f"{PODS}/{name}")
        return True
    except ApiStatus as e:
        assert e.code == 404
        return False


def test_discovery_lists_the_eviction_subresource(client):
    found = [r for r in client.get("/api/v1")["resources"] if r["name"] == "pods/eviction"]
    assert found and found[0]["kind"] == "Eviction" and found[0]["group"] == "policy" and found[0]["verbs"] == ["create"]


def test_a_budget_that_would_be_violated_answers_429_naming_it_and_keeps_the_pod(client):
    pod(client, "web-1", "web")
    pod(client, "web-2", "web")
    budget(client, "web-pdb", "web", minAvailable=2)
    eviction.sync_budgets(client)
    code, body = evict(client, "web-1")
    assert code == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [{"reason": "DisruptionTarget", "message":
                                          "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]
    assert exists(client, "web-1")


def test_an_allowed_eviction_deletes_the_pod_and_spends_the_budget(client):
    for n in (1, 2, 3):
        pod(client, f"api-{n}", "api")
    budget(client, "api-pdb", "api", maxUnavailable=1)
    eviction.sync_budgets(client)
    assert evict(client, "api-1")[0] == 201 and not exists(client, "api-1")
    # the handler decremented the budget: the next eviction is refused before the controller looks again
    assert evict(client, "api-2")[0] == 429 and exists(client, "api-2")
    assert client.get(f"{PDBS}/api-pdb")["status"]["disruptionsAllowed"] == 0


def test_a_budget_not_yet_seen_by_the_controller_refuses(client):
    pod(client, "db-1", "db")
    budget(client, "db-pdb", "db", minAvailable=0)
    code, body = evict(client, "db-1")
    assert code == 429 and body["details"]["causes"][0]["message"] == \
        "The disruption budget db-pdb is still being processed by the server."


def test_pending_and_finished_pods_are_evicted_whatever_the_budget(client):
    pod(client, "job-1", "job", phase="Succeeded", ready=False)
    pod(client, "job-2", "job", phase="Pending", ready=False)
    budget(client, "job-pdb", "job", minAvailable=5)
    eviction.sync_budgets(client)
    assert evict(client, "job-1")[0] == 201 and evict(client, "job-2")[0] == 201
    assert not exists(client, "job-1") and not exists(client, "job-2")


def test_a_pod_under_two_budgets_is_refused_and_a_wrong_name_is_a_bad_request(client):
    pod(client, "two-1", "two")
    budget(client, "two-a", "two", minAvailable=0)
    budget(client, "two-b", "two", minAvailable=0)
    eviction.sync_budgets(client)
    assert evict(client, "two-1")[0] == 500
    with pytest.raises(ApiStatus) as e:
        client.create(f"{PODS}/two-1/eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                 "metadata": {"name": "other"}})
    assert e.value.code == 400 and "name in URL does not match name in Eviction object" in str(e.value.body)
