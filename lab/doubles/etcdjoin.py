"""Stacked etcd membership for `join --control-plane` and `reset` (reference §9): the existing
members are found through the etcd static pods' advertise-client-urls annotation; the new member
is added as a learner and promoted once in sync, like kubeadm's EtcdLearnerMode."""

import time

import yaml

from . import manifests
from .hostfs import DoubleError, host, log, warn
from .store import EtcdStore, StoreError

ANNOTATION = "kubeadm.kubernetes.io/etcd.advertise-client-urls"


def _client(endpoint, pki):
    return EtcdStore(endpoint, host(f"{pki}/etcd/ca.crt"), host(f"{pki}/apiserver-etcd-client.crt"),
                     host(f"{pki}/apiserver-etcd-client.key"))


def existing_endpoints(api):
    pods = api.get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd").get("items", [])
    urls = [p["metadata"].get("annotations", {}).get(ANNOTATION) for p in pods]
    urls = [u for u in urls if u]
    if not urls:
        raise DoubleError("etcd cluster is not healthy: no etcd static pod with annotation "
                          f"{ANNOTATION} found in kube-system")
    return urls


def add_member(node, cluster, api, timeout):
    pki = cluster["certificatesDir"]
    etcd = _client(existing_endpoints(api)[0], pki)
    adv = f"[{node.address}]" if ":" in node.address else node.address
    peer = f"https://{adv}:2380"
    members = etcd.call("/cluster/member/list", {}).get("members", [])
    if not any(peer in m.get("peerURLs", []) for m in members):
        added = _retried(lambda: etcd.call("/cluster/member/add", {"peerURLs": [peer], "isLearner": True}), timeout,
                         "error adding etcd member as learner")
        member_id = added["member"]["ID"]
        members = added.get("members", members)
        log(f"[etcd] Announced new etcd member joining to the existing etcd cluster as learner {member_id}")
    else:
        member_id = next(m["ID"] for m in members if peer in m.get("peerURLs", []))
    initial = ",".join(f"{m.get('name') or node.name}={m['peerURLs'][0]}" for m in members)
    manifests.write("etcd", manifests.etcd(cluster, node, manifests.images(cluster), initial_cluster=initial))
    log("[etcd] Wrote Static Pod manifest for a local etcd member to \"/etc/kubernetes/manifests/etcd.yaml\"")
    promote(etcd, member_id, timeout)


def _retried(call, timeout, what):
    """call() until it succeeds, as kubeadm retries its etcd API calls (etcdAPICall timeout): a member just
    promoted leaves the cluster `unhealthy` to etcd's strict reconfiguration check for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except StoreError as e:
            if time.monotonic() > deadline:
                raise DoubleError(f"{what}: {e}")
            time.sleep(0.5)


def promote(etcd, member_id, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            etcd.call("/cluster/member/promote", {"ID": member_id})
            log(f"[etcd] Promoted learner member {member_id} to a voting member")
            return
        except StoreError as e:
            if time.monotonic() > deadline:
                raise DoubleError(f"failed to promote learner member {member_id}: {e}")
            time.sleep(1)


def remove_self(manifest_path):
    """Best effort, like kubeadm: a failure is a warning, reset goes on."""
    try:
        pod = yaml.safe_load(manifest_path.read_text())
        args = dict(a.lstrip("-").split("=", 1) for a in pod["spec"]["containers"][0]["command"][1:] if "=" in a)
        pki = args["trusted-ca-file"].rsplit("/etcd/", 1)[0]
        etcd = _client("https://127.0.0.1:2379", pki)
        members = etcd.call("/cluster/member/list", {}).get("members", [])
        mine = [m for m in members if m.get("name") == args.get("name")]
        if mine and len(members) > 1:
            etcd.call("/cluster/member/remove", {"ID": mine[0]["ID"]})
            log(f"[reset] Removed member {args.get('name')} from the etcd cluster")
    except (OSError, KeyError, StoreError, yaml.YAMLError) as e:
        warn(f"[reset] Failed to remove etcd member: {e}, please manually remove this etcd member using etcdctl")
