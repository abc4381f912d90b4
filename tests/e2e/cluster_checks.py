"""Checks on a running kubefab cluster, shared by the end-to-end run on the VMs of vagrant/ and any lab test that
builds a cluster (`from e2e.cluster_checks import node_problems`): they read API objects as JSON (the kubernetes
client's raw responses or `kubectl get -o json`) and shell output from the hosts, and return the problems as
sentences; an empty list means all is well."""

import time

# The workload reached through a NodePort: Kubernetes' own test image answering /hostname with the pod's name.
ECHO = "kubefab-e2e-echo"
ECHO_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
ECHO_PORT = 8080
# One echo pod bound to each node, each connecting to the others' pod IPs: pod-to-pod traffic across nodes, which
# a CNI advertising a NAT adapter's shared address (VirtualBox's 10.0.2.15) breaks while every node is Ready.
ACROSS = "kubefab-e2e-across"
# What `cluster.reset` must leave on a host: none of these (the packages stay installed).
RESET_LEFTOVERS = ("/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/kubelet.conf",
                   "/etc/kubernetes/admin.conf", "/var/lib/etcd/member")


def _condition(obj, kind):
    return next((c for c in obj.get("status", {}).get("conditions", ()) if c["type"] == kind), {})


def node_problems(nodes, names):
    """Every node in `names` is registered and Ready."""
    by_name = {n["metadata"]["name"]: n for n in nodes["items"]}
    problems = [f"node {name} is not registered" for name in names if name not in by_name]
    for name in names:
        ready = _condition(by_name.get(name, {}), "Ready")
        if name in by_name and ready.get("status") != "True":
            problems.append(f"node {name} is not Ready: {ready.get('reason', 'no Ready condition')} "
                            f"{ready.get('message', '')}".rstrip())
    return problems


def pod_problems(pods):
    """Every pod is Running with all its containers ready (pods of finished Jobs aside)."""
    problems = []
    for pod in pods["items"]:
        name, phase = pod["metadata"]["name"], pod.get("status", {}).get("phase")
        if phase == "Succeeded":
            continue
        if phase != "Running" or _condition(pod, "Ready").get("status") != "True":
            waiting = [s["state"]["waiting"].get("reason", "") for s in pod["status"].get("containerStatuses", ())
                       if "waiting" in s.get("state", {})]
            problems.append(f"pod {name} is {phase}{', not ready' if phase == 'Running' else ''}"
                            f"{': ' + ', '.join(waiting) if waiting else ''}")
    return problems


def snapshot(nodes, pods):
    """What a second `cluster.up` must not change: each node and pod, its uid and its containers' restarts."""
    return ({n["metadata"]["name"]: n["metadata"]["uid"] for n in nodes["items"]},
            {p["metadata"]["name"]: (p["metadata"]["uid"],
                                     tuple(s.get("restartCount", 0) for s in p["status"].get("containerStatuses", ())))
             for p in pods["items"]})


def leftover_problems(host, present):
    """`present`: the RESET_LEFTOVERS that still exist on `host` (one path a line) after `cluster.reset`."""
    return [f"{host}: {path} is still there after cluster.reset" for path in present.split()]


def until(check, timeout, interval=5.0):
    """Call `check` until it returns no problem or `timeout` seconds pass; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        problems = check()
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(interval)


def echo_workload(replicas=2):
    """A Deployment of the echo image and a NodePort Service in front of it."""
    labels = {"app": ECHO}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ECHO, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "echo", "image": ECHO_IMAGE,
                                     "args": ["netexec", "--http-port=8080"],
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": ECHO, "labels": labels},
               "spec": {"type": "NodePort", "selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    return deployment, service


def pod_per_node(node_names):
    """An echo Pod bound to each node (spec.nodeName: placed without the scheduler; every taint tolerated)."""
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{ACROSS}-{name}", "labels": {"app": ACROSS}},
             "spec": {"nodeName": name, "tolerations": [{"operator": "Exists"}], "containers": [{
                 "name": "echo", "image": ECHO_IMAGE, "args": ["netexec", f"--http-port={ECHO_PORT}"],
                 "ports": [{"containerPort": ECHO_PORT}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": ECHO_PORT}}}]}}
            for name in node_names]


def across_nodes(pods):
    """(pod name, its node, the other pod's node, the other pod's IP) for every ordered pair on different nodes."""
    placed = [(p["metadata"]["name"], p["spec"]["nodeName"], p["status"].get("podIP", "")) for p in pods["items"]]
    return [(name, node, other_node, ip) for name, node, _ in placed for _, other_node, ip in placed
            if other_node != node]


def connect_command(ip):
    """What runs in a pod to reach another pod: agnhost's `connect` (exit 0 once a TCP connection is made)."""
    return ["/agnhost", "connect", f"{ip}:{ECHO_PORT}", "--timeout=5s"]


def reach_problems(outcomes):
    """`outcomes`: {(from node, to node, to pod IP): (exit code, output)} of connect_command in the pods."""
    return [f"a pod on {src} cannot reach the pod on {dst} at {ip}:{ECHO_PORT} (exit {code}: {out.strip()}) — "
            "pod traffic between these nodes is lost; check the address each node advertises to the CNI "
            "(flannel.alpha.coreos.com/public-ip, projectcalico.org/IPv4Address)"
            for (src, dst, ip), (code, out) in sorted(outcomes.items()) if code != 0]
