"""kube-proxy's ConfigMap brought to the inventory: the fields kubefab sets change, kubeadm's others stay, and a
field the inventory no longer sets goes back to kube-proxy's default."""

import yaml

from kubefab import inventory
from kubefab.api import kubeproxy

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
