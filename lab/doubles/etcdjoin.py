"""Stacked etcd membership for `join --control-plane` and `reset` (reference §9): the existing
members are found through the etcd static pods' advertise-client-urls annotation; the new member
is added as a learner and promoted once in sync, like kubeadm's EtcdLearnerMode."""

import ssl
import time

import yaml

from . import manifests
from .hostfs import DoubleError, host, log, warn
from .kubeclient import ApiStatus, Client
from .store import EtcdStore, StoreError

ANNOTATION = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
RETRY_SECONDS = 0.5     # kubeadm's constants.EtcdAPICallRetryInterval, between its tries of an etcd call (promote too)


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
            time.sleep(RETRY_SECONDS)


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
            time.sleep(RETRY_SECONDS)


def remove_self(manifest_path, kubeconfig, verbosity):
    """reset's remove-etcd-member as kubeadm does it (phases/reset/removeetcdmember.go, phases/etcd/local.go
    RemoveStackedEtcdMemberFromCluster, util/etcd NewFromCluster): the cluster's config and the etcd endpoints are
    read through the API server with the reset's kubeconfig, the endpoints synced from the member list; the last
    member is never removed (it says so at --v=1); this member is found by its peer URL and removed through any
    member that answers. A failure is kubeadm's warning; the data directory is emptied either way (the phase's
    second look at it)."""
    try:
        api = Client.from_kubeconfig(kubeconfig)
    except (OSError, DoubleError, ValueError, AttributeError, KeyError, ssl.SSLError):
        return                  # "[reset] Could not obtain a client set" (V(1)): no kubeadm config, nothing removed
    try:
        api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    except (ApiStatus, DoubleError, OSError) as e:
        warn(f"[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get config map: {e}")
        return
    try:
        args = _etcd_args(manifest_path)
        pki = args["trusted-ca-file"].rsplit("/etcd/", 1)[0]
        mine_client, mine_peer = args["advertise-client-urls"], args["initial-advertise-peer-urls"]
        members = _members(existing_endpoints(api), pki)
        endpoints = [u for m in members for u in m.get("clientURLs", [])]
        if len(members) == 1 and mine_client in endpoints:
            if verbosity >= 1:
                log("[etcd] This is the only remaining etcd member in the etcd cluster, skip removing it")
            return
        ids = [m["ID"] for m in members if (m.get("peerURLs") or [""])[0] == mine_peer]
        if ids:
            _through_any(endpoints, pki, lambda etcd: etcd.call("/cluster/member/remove", {"ID": ids[0]}))
    except (OSError, KeyError, StoreError, DoubleError, ApiStatus, yaml.YAMLError) as e:
        warn(f"[reset] Failed to remove etcd member: {e}, please manually remove this etcd member using etcdctl")


def _etcd_args(manifest_path):
    pod = yaml.safe_load(manifest_path.read_text())
    return dict(a.lstrip("-").split("=", 1) for a in pod["spec"]["containers"][0]["command"][1:] if "=" in a)


def _members(endpoints, pki):
    return _through_any(endpoints, pki, lambda etcd: etcd.call("/cluster/member/list", {})).get("members", [])


def _through_any(endpoints, pki, call):
    """call(client) on the first endpoint that answers, as etcd's client balancer does; the last error else."""
    error = StoreError(f"no etcd endpoint among {endpoints}")
    for endpoint in endpoints:
        etcd = EtcdStore(endpoint, host(f"{pki}/etcd/ca.crt"), host(f"{pki}/etcd/healthcheck-client.crt"),
                         host(f"{pki}/etcd/healthcheck-client.key"))
        try:
            return call(etcd)
        except StoreError as e:
            error = e
    raise error
