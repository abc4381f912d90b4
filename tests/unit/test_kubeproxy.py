"""kube-proxy's ConfigMap brought to the inventory: the fields kubefab sets change, kubeadm's others stay, and a
field the inventory no longer sets goes back to kube-proxy's default."""

import re

import pytest
import yaml

from kubefab import inventory
from kubefab.api import kube, kubeproxy

BASE = """\
[cluster]
name = "kp"
kubernetes_version = "1.33.5"
control_plane_endpoint = "10.0.0.10:6443"

[hosts.cp]
address = "10.0.0.10"
roles = ["control-plane", "worker"]
"""
# config.conf as kubeadm writes it: the whole defaulted KubeProxyConfiguration
KUBEADM = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": "iptables",
           "clusterCIDR": "10.244.0.0/16", "ipvs": {"scheduler": "", "strictARP": False},
           "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"}}


def configmap(conf, recorded=None):
    notes = {kubeproxy.APPLIED: recorded} if recorded is not None else {}
    return {"metadata": {"name": "kube-proxy", "annotations": notes, "resourceVersion": "7"},
            "data": {kubeproxy.KEY: yaml.safe_dump(conf)}}


def load(tmp_path, extra=""):
    path = tmp_path / "inventory.toml"
    path.write_text(BASE + extra)
    return inventory.load(path)


def test_a_fresh_config_is_settled_and_a_new_mode_and_value_change_only_those_fields(tmp_path):
    have, new, record = kubeproxy.settled(configmap(KUBEADM), load(tmp_path))
    assert have == new == KUBEADM and record == "mode"
    inv = load(tmp_path, '\n[cluster.kube_proxy]\nmode = "ipvs"\nconfig = { ipvs = { scheduler = "lc" } }\n')
    have, new, record = kubeproxy.settled(configmap(KUBEADM, "mode"), inv)
    assert new == {**KUBEADM, "mode": "ipvs", "ipvs": {"scheduler": "lc", "strictARP": False}}
    assert record == "ipvs.scheduler,mode"
    # the inventory drops the scheduler again: kubefab removes what it set, kube-proxy takes its default
    _, back, record = kubeproxy.settled(configmap(new, "ipvs.scheduler,mode"), load(tmp_path))
    assert back == {**KUBEADM, "ipvs": {"strictARP": False}} and record == "mode"


class RollingApi:
    """kube-proxy's DaemonSet as the API shows it after `restart` patched it: the controller replaced the pod on
    kf-cp1, and kf-w1's new pod cannot pull its image."""

    def __init__(self, strategy="RollingUpdate"):
        self.strategy, self.patches, self.stamp = strategy, [], None

    def patch(self, path, body, content_type=kube.STRATEGIC):
        self.patches.append((path, body, content_type))
        self.stamp = body["spec"]["template"]["metadata"]["annotations"][kubeproxy.RESTARTED_AT]
        return {"metadata": {"generation": 4}, "spec": {"updateStrategy": {"type": self.strategy}}}

    def get(self, path, query=None):
        if path == kubeproxy.DAEMONSET:
            return {"status": {"observedGeneration": 4, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2,
                               "numberAvailable": 1}}
        assert (path, query) == (kubeproxy.PODS, {"labelSelector": kubeproxy.SELECTOR})
        new = {"annotations": {kubeproxy.RESTARTED_AT: self.stamp}}
        waiting = {"state": {"waiting": {"reason": "ErrImagePull", "message": "registry.k8s.io: no route to host"}}}
        return {"items": [
            {"metadata": dict(new, name="kube-proxy-a1b2c"), "spec": {"nodeName": "kf-cp1"},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": dict(new, name="kube-proxy-d3e4f"), "spec": {"nodeName": "kf-w1"},
             "status": {"conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [waiting]}}]}


def test_a_restart_is_kubectl_rollout_restart_and_a_stuck_node_is_named(monkeypatch):
    monkeypatch.setattr(kube, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(kubeproxy, "PROGRESS_TIMEOUT", 0.2)
    api = RollingApi()
    with pytest.raises(kube.Timeout) as e:
        kubeproxy.restart(api)
    # one strategic merge patch of the pod template, as kubectl rollout restart sends; no pod deleted (no delete call)
    [(path, body, ctype)] = api.patches
    assert (path, ctype) == (kubeproxy.DAEMONSET, kube.STRATEGIC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", api.stamp, re.ASCII)
    assert str(e.value) == ("kube-proxy's rollout made no progress: no further node's new pod was Ready within 0.2s — "
                            "last: 2 of 2 pods updated, 1 available; kf-w1: pod kube-proxy-d3e4f not Ready "
                            "(ErrImagePull: registry.k8s.io: no route to host)")


def test_an_on_delete_daemonset_is_not_waited_for_and_the_user_is_told():
    said = kubeproxy.restart(RollingApi("OnDelete"))
    assert said.endswith("but its updateStrategy is OnDelete: each pod takes the new config only once deleted "
                         "(kubectl -n kube-system delete pod -l k8s-app=kube-proxy)")


class ConfigMapApi:
    """ConfigMap kube-proxy as the API server holds it, changed by JSON merge patches."""

    def __init__(self, cm):
        self.cm = cm

    def find(self, path):
        assert path == kubeproxy.CONFIGMAP
        return yaml.safe_load(yaml.safe_dump(self.cm))      # a copy, as a read is

    def patch(self, path, body, content_type):
        assert (path, content_type) == (kubeproxy.CONFIGMAP, kube.MERGE)
        notes = self.cm["metadata"].setdefault("annotations", {})
        for key, value in body["metadata"].get("annotations", {}).items():
            notes.pop(key) if value is None else notes.__setitem__(key, value)
        self.cm["data"].update(body.get("data", {}))


def test_a_restart_a_stopped_run_left_undone_is_made_by_the_next_run(tmp_path, monkeypatch):
    inv = load(tmp_path, '\n[cluster.kube_proxy]\nmode = "ipvs"\n')
    api = ConfigMapApi(configmap(KUBEADM, "mode"))

    def interrupted(api, stop=None):
        raise kube.Timeout("kube-proxy's rollout made no progress")
    monkeypatch.setattr(kubeproxy, "restart", interrupted)
    with pytest.raises(kube.Timeout):
        kubeproxy.reconcile(api, inv)
    assert yaml.safe_load(api.cm["data"][kubeproxy.KEY])["mode"] == "ipvs" and kubeproxy.pending(api.cm)
    restarts = []
    monkeypatch.setattr(kubeproxy, "restart", lambda api, stop=None: restarts.append(1) or "restarted node by node")
    changed, said = kubeproxy.reconcile(api, inv)      # the ConfigMap is as the inventory says, its restart is not
    assert changed and restarts == [1] and not kubeproxy.pending(api.cm)
    assert said == "config.conf changed by a run that stopped before kube-proxy restarted; restarted node by node"
    assert kubeproxy.reconcile(api, inv) == (False, "config.conf as the inventory says (mode ipvs)")
    assert restarts == [1]
