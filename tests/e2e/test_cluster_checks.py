"""The shared cluster checks on API objects as the API server returns them: each problem is found and named."""

from e2e.cluster_checks import (ECHO_PORT, across_nodes, connect_command, echo_workload, leftover_problems,
                                node_problems, pod_per_node, pod_problems, reach_problems, snapshot, until)


def node(name, status="True", reason="KubeletReady", message=""):
    return {"metadata": {"name": name, "uid": f"uid-{name}"},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": status, "reason": reason, "message": message}]}}


def pod(name, phase="Running", ready="True", waiting=None, restarts=0):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"name": name, "uid": f"uid-{name}"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}],
                       "containerStatuses": [{"name": "c", "state": state, "restartCount": restarts}]}}


def test_nodes_must_all_be_registered_and_ready():
    nodes = {"items": [node("k8s-master"), node("k8s-s2", "False", "KubeletNotReady",
                                                "container runtime network not ready")]}
    assert node_problems(nodes, ["k8s-master"]) == []
    assert node_problems(nodes, ["k8s-master", "k8s-s2", "k8s-s3"]) == [
        "node k8s-s3 is not registered",
        "node k8s-s2 is not Ready: KubeletNotReady container runtime network not ready",
    ]


def test_pods_must_be_running_and_ready():
    pods = {"items": [pod("etcd-k8s-master"), pod("coredns-1", "Pending", "False", "ImagePullBackOff"),
                      pod("kube-proxy-x", ready="False"), pod("job-1", "Succeeded", "False")]}
    assert pod_problems(pods) == ["pod coredns-1 is Pending: ImagePullBackOff", "pod kube-proxy-x is Running, not ready"]
    assert pod_problems({"items": [pod("etcd-k8s-master")]}) == []


def test_a_restart_or_a_new_pod_changes_the_snapshot():
    nodes, pods = {"items": [node("k8s-master")]}, {"items": [pod("etcd-k8s-master")]}
    assert snapshot(nodes, pods) == snapshot(nodes, {"items": [pod("etcd-k8s-master")]})
    assert snapshot(nodes, pods) != snapshot(nodes, {"items": [pod("etcd-k8s-master", restarts=1)]})
    assert snapshot(nodes, pods) != snapshot({"items": [node("k8s-master"), node("k8s-s2")]}, pods)


def test_leftovers_are_named_per_host():
    assert leftover_problems("k8s-s3", "") == []
    assert leftover_problems("k8s-s3", "/etc/kubernetes/kubelet.conf\n") == [
        "k8s-s3: /etc/kubernetes/kubelet.conf is still there after cluster.reset"]


def test_until_stops_at_the_first_clean_answer_or_at_the_deadline():
    answers = iter([["not yet"], ["not yet"], []])
    assert until(lambda: next(answers), timeout=5, interval=0) == []
    assert until(lambda: ["never"], timeout=0, interval=0) == ["never"]


def test_the_echo_service_selects_the_echo_pods():
    deployment, service = echo_workload()
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == deployment["spec"]["template"]["spec"]["containers"][0][
        "ports"][0]["containerPort"]


def test_one_pod_per_node_and_every_pair_across_nodes_is_tried_and_named_when_it_fails():
    placed = pod_per_node(["k8s-master", "k8s-s2", "k8s-s3"])
    assert [p["spec"]["nodeName"] for p in placed] == ["k8s-master", "k8s-s2", "k8s-s3"]
    assert placed[0]["spec"]["tolerations"] == [{"operator": "Exists"}], "the control plane's taint too"
    for p, ip in zip(placed, ("10.244.0.5", "10.244.1.3", "10.244.2.4")):
        p["status"] = {"podIP": ip}
    pairs = across_nodes({"items": placed})
    assert len(pairs) == 6 and all(src != dst for _, src, dst, _ in pairs)
    assert ("kubefab-e2e-across-k8s-s2", "k8s-s2", "k8s-s3", "10.244.2.4") in pairs
    assert connect_command("10.244.2.4")[-2:] == [f"10.244.2.4:{ECHO_PORT}", "--timeout=5s"]
    outcomes = {(src, dst, ip): (0, "") for _, src, dst, ip in pairs}
    assert reach_problems(outcomes) == []
    outcomes["k8s-s2", "k8s-s3", "10.244.2.4"] = (1, "TIMEOUT\n")
    assert reach_problems(outcomes) == [
        "a pod on k8s-s2 cannot reach the pod on k8s-s3 at 10.244.2.4:8080 (exit 1: TIMEOUT) — pod traffic between "
        "these nodes is lost; check the address each node advertises to the CNI "
        "(flannel.alpha.coreos.com/public-ip, projectcalico.org/IPv4Address)"]
