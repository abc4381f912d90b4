"""The API side on a lab cluster that kubeadm (the double) built from kubefab's files: waiting for the
API server through kubefab's admin.conf, the CNI apply, verify, cluster.status, removing a worker and
joining it again with a fresh token made through the API after the init token is gone."""

import json
import shutil
import time

import pytest
import yaml
from invoke import Config, Context, Exit

from conftest import lab_unavailable
from kubefab.api import apply, bootstrap, drain, health, kube, nodes
from kubefab.components import cni
from kubefab.pki import token
from lab import Lab
from kubefab.tasks import cluster_api
from test_lab_cluster import kubeadm, prepare

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
CNI_DIR = "/etc/cni/net.d"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if lab_unavailable():
        pytest.skip(lab_unavailable())
    with Lab.up(hosts=2, control_planes=1, flavour="node") as lab:
        inv = prepare(lab, tmp_path_factory.mktemp("state"))
        cp, worker = inv.first_control_plane.name, inv.non_control_planes[0].name
        out = kubeadm(lab, cp, "init", "--config", "/etc/kubernetes/kubefab/init.yaml")
        assert out.returncode == 0, out.stdout[-3000:]
        out = kubeadm(lab, worker, "join", "--config", "/etc/kubernetes/kubefab/join.yaml")
        assert out.returncode == 0, out.stdout[-3000:]
        yield lab, inv, kube.connect(inv.state_dir / "kubeconfigs/admin.conf")


def flannel_pods(api):
    return {p["spec"]["nodeName"]: p["status"].get("phase") for p in
            api.get("/api/v1/namespaces/kube-flannel/pods")["items"]}


def status_exit(inv):
    ctx = Context(Config(overrides={"kubefab": {"inventory": str(inv.path), "state_dir": str(inv.state_dir)}}))
    try:
        cluster_api.status(ctx)
    except Exit as e:
        return e.code
    return 0


def test_up_after_init_wait_cni_verify_and_status(cluster):
    lab, inv, api = cluster
    cp = inv.first_control_plane.name
    assert kube.wait_ready(api, timeout=60).startswith("v1.")
    health.wait_control_plane(api, cp, timeout=120)
    manifest = cni.manifest(inv)
    assert status_exit(inv) == 1, "nodes stay NotReady until the CNI config is on them"
    assert {a.action for a in apply.apply(api, manifest, "flannel")} == {apply.CREATED}
    assert {a.action for a in apply.apply(api, manifest, "flannel")} == {apply.UNCHANGED}
    applied = time.monotonic()
    ready = nodes.wait_ready(api, [h.name for h in inv.hosts], timeout=60)
    print(f"all nodes Ready {time.monotonic() - applied:.1f}s after the apply")
    # the DaemonSet's pods ran flannel's init containers on every node (the control plane's taint is tolerated)
    cfg = next(d for d in yaml.safe_load_all(manifest) if d["kind"] == "ConfigMap")["data"]["cni-conf.json"]
    for h in inv.hosts:
        assert json.loads(lab.run(h.name, f"cat {CNI_DIR}/10-flannel.conflist").stdout) == json.loads(cfg)
        lab.run(h.name, "test -x /opt/cni/bin/flannel && test -x /opt/cni/bin/portmap")
    # and flanneld's: the VXLAN device and its chains, which kubeadm reset leaves for kubefab's reset
    for h in inv.hosts:
        out = lab.run(h.name, "ip -o link show flannel.1; iptables -w -t nat -S FLANNEL-POSTRTG; "
                              "cat /run/flannel/subnet.env", check=False)
        assert "flannel.1:" in out.stdout and "-N FLANNEL-POSTRTG" in out.stdout, out.stdout + out.stderr
        assert "FLANNEL_NETWORK=" + inv.cluster.pod_subnet in out.stdout
    assert flannel_pods(api) == {h.name: "Running" for h in inv.hosts}
    assert all(n.ready and n.version.startswith("v1.") for n in ready)
    assert next(n for n in ready if n.name == cp).roles == ("control-plane",)
    assert all(str(c).endswith("unchanged") for c in nodes.reconcile(api, inv))
    assert status_exit(inv) == 0


def test_a_removed_worker_joins_again_with_a_fresh_token_after_the_init_token_is_gone(cluster):
    lab, inv, api = cluster
    worker = inv.non_control_planes[0].name
    removed = drain.remove(api, worker, timeout=60)
    assert removed.deleted and api.find(f"/api/v1/nodes/{worker}") is None
    assert status_exit(inv) == 1
    out = kubeadm(lab, worker, "reset", "-f")
    assert out.returncode == 0, out.stdout[-2000:]
    assert "The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d" in out.stdout
    lab.run(worker, f"test -f {CNI_DIR}/10-flannel.conflist")
    assert bootstrap.delete(api, token.bootstrap_token(inv)), "the init token was in the cluster"
    with bootstrap.temporary(api) as fresh:
        health.wait_control_plane(api, inv.first_control_plane.name, timeout=60)
        out = kubeadm(lab, worker, "join", inv.endpoint, "--token", fresh.reveal(),
                      "--discovery-token-ca-cert-hash", token.ca_cert_hash(inv))
        assert out.returncode == 0, out.stdout[-3000:]
    secrets = api.get(bootstrap.SECRETS)["items"]
    assert not [s for s in secrets if s.get("type") == bootstrap.TYPE], "the fresh token was removed"
    nodes.wait_ready(api, [worker], timeout=60)
    assert status_exit(inv) == 0
