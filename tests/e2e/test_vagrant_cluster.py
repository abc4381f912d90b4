"""kubefab end to end on the VMs of vagrant/: `cluster.up` on fresh Debian machines, every node Ready and the
kube-system pods Running, a NodePort service reached from this machine, a pod on each node reaching the pods on
the others (VirtualBox's NAT adapter must not be what the CNI uses), a second `cluster.up` that changes nothing,
one worker reset and joined again, and `cluster.reset` leaving every machine clean.

Runs only with KUBEFAB_E2E=vagrant, against machines just made by `vagrant up` (README.md, "Try it on your
machine"); the inventory comes from `invoke vagrant.inventory`, so any KUBEFAB_* layout and either provider work.
The tests run in file order, each on the cluster the one before left.
"""

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from e2e.cluster_checks import (ACROSS, RESET_LEFTOVERS, across_nodes, connect_command, echo_workload,
                                leftover_problems, node_problems, pod_per_node, pod_problems, reach_problems, snapshot,
                                until)
from kubefab import inventory

ROOT = Path(__file__).resolve().parents[2]
TASK_TIMEOUT = 1800  # one cluster.up on three VMs: packages, images and joins, on a slow link
READY_TIMEOUT = 900

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get("KUBEFAB_E2E") != "vagrant",
                       reason="end to end on the VMs of vagrant/: set KUBEFAB_E2E=vagrant after `cd vagrant && "
                              "vagrant up` (README.md, \"Try it on your machine\")"),
]


def invoke(*args):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=TASK_TIMEOUT)


def task(inv, name, *args):
    """Run kubefab task `name` on the VMs' inventory; it must succeed."""
    run = invoke(name, "-i", str(inv.path), *args)
    assert run.returncode == 0, f"invoke {name} {' '.join(args)} exited {run.returncode}:\n" \
                                f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return run


@pytest.fixture(scope="module")
def vms(tmp_path_factory):
    """The inventory of the running VMs, in a fresh directory (so a fresh state directory and PKI)."""
    path = tmp_path_factory.mktemp("vagrant") / "inventory.toml"
    run = invoke("vagrant.inventory", "--output", str(path))
    if run.returncode:
        pytest.skip(f"the VMs of vagrant/ do not answer: {run.stderr.strip()}")
    inv = inventory.load(path)
    for h in inv.hosts:
        try:
            socket.create_connection((h.address, h.ssh.port), timeout=5).close()
        except OSError as e:
            pytest.skip(f"{h.name} ({h.address}:{h.ssh.port}) does not answer: {e}")
    return inv


def ssh(h, command, *options):
    """Run `command` on host `h` with OpenSSH, as kubefab logs in (its key, user and known_hosts file)."""
    argv = ["ssh", "-p", str(h.ssh.port), "-i", h.ssh.identity_file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={h.ssh.known_hosts_file}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ConnectTimeout=10", *options, f"{h.ssh.user}@{h.address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def api_client(inv):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(inv.state_dir / "kubeconfigs" / "admin.conf"))


def nodes(inv):
    from kubernetes import client

    return json.loads(client.CoreV1Api(api_client(inv)).list_node(_preload_content=False).data)


def pods(inv, namespace="kube-system", selector=""):
    from kubernetes import client

    return json.loads(client.CoreV1Api(api_client(inv)).list_namespaced_pod(
        namespace, label_selector=selector, _preload_content=False).data)


def cluster_problems(inv):
    return node_problems(nodes(inv), [h.name for h in inv.hosts]) + pod_problems(pods(inv))


def kubernetes_files(inv):
    """Every file under /etc/kubernetes on every host, with its mtime and size."""
    listing = "sudo find /etc/kubernetes -type f -printf '%p %T@ %s\\n' | sort"
    return {h.name: ssh(h, listing).stdout for h in inv.hosts}


def leftovers(h):
    """The RESET_LEFTOVERS still on host `h`."""
    present = ssh(h, " ; ".join(f"sudo test -e {p} && echo {p}" for p in RESET_LEFTOVERS) + " ; true")
    return leftover_problems(h.name, present.stdout)


def test_machines_are_fresh_debian_named_as_the_inventory_says(vms):
    problems = []
    for h in vms.hosts:
        facts = ssh(h, "hostname; ip -4 -o addr show; command -v kubeadm kubelet kubectl containerd crictl || true")
        assert facts.returncode == 0, f"{h.name}: {facts.stderr}"
        lines = facts.stdout.splitlines()
        if lines[0] != h.name:
            problems.append(f"{h.name}: hostname is {lines[0]}")
        if f" {h.address}/" not in facts.stdout:
            problems.append(f"{h.name}: {h.address} is not on any interface")
        problems += [f"{h.name}: {line} is pre-installed — kubefab's runtime phase must install it; "
                     "`vagrant destroy -f && vagrant up` for fresh machines" for line in lines if line.startswith("/")]
    assert problems == []


def test_password_login_is_off(vms):
    for h in vms.hosts:
        run = ssh(h, "true", "-o", "PubkeyAuthentication=no", "-o",
                  "PreferredAuthentications=password,keyboard-interactive")
        assert run.returncode == 255
        assert "Permission denied (publickey)" in run.stderr, f"{h.name}: {run.stderr}"


def test_cluster_up_brings_every_node_to_ready(vms):
    task(vms, "cluster.up")
    assert until(lambda: cluster_problems(vms), READY_TIMEOUT) == []


def test_a_nodeport_service_answers_from_this_machine(vms):
    from kubernetes import client

    api = api_client(vms)
    deployment, service = echo_workload(replicas=2)
    client.AppsV1Api(api).create_namespaced_deployment("default", deployment)
    created = client.CoreV1Api(api).create_namespaced_service("default", service)
    selector = f"app={deployment['metadata']['name']}"

    def echo_problems():
        echo = pods(vms, "default", selector)
        return pod_problems(echo) or ([] if len(echo["items"]) == 2 else ["the echo pods are not all created"])

    try:
        assert until(echo_problems, READY_TIMEOUT) == []
        names = {p["metadata"]["name"] for p in pods(vms, "default", selector)["items"]}
        port = created.spec.ports[0].node_port
        for h in vms.hosts:
            with urllib.request.urlopen(f"http://{h.address}:{port}/hostname", timeout=10) as answer:
                assert answer.read().decode() in names, f"{h.name}:{port} answered, but not from an echo pod"
    finally:
        client.CoreV1Api(api).delete_namespaced_service(service["metadata"]["name"], "default")
        client.AppsV1Api(api).delete_namespaced_deployment(deployment["metadata"]["name"], "default")


def exec_in(api, pod, command):
    """(exit code, output) of `command` run in `pod` of the default namespace, as `kubectl exec` runs it."""
    from kubernetes import client
    from kubernetes.stream import stream

    run = stream(client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, "default", command=command,
                 stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    run.run_forever(timeout=30)
    output = run.read_all()
    run.close()
    return run.returncode, output


def test_a_pod_on_each_node_reaches_the_pods_on_the_others(vms):
    from kubernetes import client

    api = api_client(vms)
    core = client.CoreV1Api(api)
    for pod in pod_per_node([h.name for h in vms.hosts]):
        core.create_namespaced_pod("default", pod)

    def placed_problems():
        across = pods(vms, "default", f"app={ACROSS}")
        return pod_problems(across) or ([] if len(across["items"]) == len(vms.hosts) else ["not all pods created"])

    try:
        assert until(placed_problems, READY_TIMEOUT) == []
        outcomes = {(node, other, ip): exec_in(api, name, connect_command(ip))
                    for name, node, other, ip in across_nodes(pods(vms, "default", f"app={ACROSS}"))}
        assert len(outcomes) == len(vms.hosts) * (len(vms.hosts) - 1)
        assert reach_problems(outcomes) == []
    finally:
        core.delete_collection_namespaced_pod("default", label_selector=f"app={ACROSS}")


def test_a_second_cluster_up_changes_nothing(vms):
    before = snapshot(nodes(vms), pods(vms)), kubernetes_files(vms)
    task(vms, "cluster.up")
    assert (snapshot(nodes(vms), pods(vms)), kubernetes_files(vms)) == before


def test_a_reset_worker_joins_again(vms):
    worker = vms.workers[-1]  # k8s-s3 with the Vagrantfile's defaults
    task(vms, "cluster.reset", "--host", worker.name)
    assert leftovers(worker) == []
    assert ssh(worker, "systemctl is-active kubelet").stdout.strip() != "active"
    task(vms, "node.join", "--host", worker.name)
    assert until(lambda: cluster_problems(vms), READY_TIMEOUT) == []


def test_cluster_reset_leaves_every_machine_clean(vms):
    task(vms, "cluster.reset")
    assert [p for h in vms.hosts for p in leftovers(h)] == []
    for h in vms.control_planes:
        with pytest.raises(OSError):
            socket.create_connection((h.address, 6443), timeout=5).close()
