"""cluster.up's Api steps against real etcd and the API-server double on kubefab's PKI (test_kube_api's cluster):
each comes back as a step result, changed only when it wrote something."""

import logging

from kubefab import apisteps, phases
from kubefab.steps import Api
from test_kube_api import cluster, ensure_node, load  # noqa: F401 (cluster is a fixture)

LOG = logging.getLogger("test")


def run(inv, name, host):
    return apisteps.ApiSteps(inv, None, LOG).run(Api(name, "test"), inv.host(host))


def test_the_cni_step_writes_the_manifest_once(cluster):  # noqa: F811
    first = run(cluster.inv, phases.CNI, "cp-1")
    assert first.status == "changed" and "daemonset.apps/kube-flannel-ds created" in first.detail
    again = run(cluster.inv, phases.CNI, "cp-1")
    assert again.status == "unchanged" and again.detail.endswith("objects unchanged")


def test_verify_applies_labels_and_taints_and_with_cni_none_needs_registration_not_ready(cluster):  # noqa: F811
    ensure_node(cluster.api, "w-1", ready=True)
    done = run(cluster.inv, phases.NODE, "w-1")
    assert done.status == "changed" and "taint dedicated=infra:NoSchedule" in done.detail
    assert run(cluster.inv, phases.NODE, "w-1").status == "unchanged"
    ensure_node(cluster.api, "w-1", ready=False)
    none = load(cluster.base, cluster.port, "none", state=cluster.inv.state_dir)
    result = run(none, phases.NODE, "w-1")
    assert result.status == "changed" and "Ready once your pod network runs" in result.detail, result


def test_removing_a_node_drains_and_deletes_it_once(cluster):  # noqa: F811
    ensure_node(cluster.api, "w-1")
    assert run(cluster.inv, apisteps.REMOVE, "w-1").status == "changed"
    assert cluster.api.find("/api/v1/nodes/w-1") is None
    gone = run(cluster.inv, apisteps.REMOVE, "w-1")
    assert (gone.status, gone.detail) == ("unchanged", "not a node of the cluster")

