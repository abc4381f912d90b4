"""The API side on a lab cluster that kubeadm (the double) built from kubefab's files: waiting for the
API server through kubefab's admin.conf, the CNI apply, verify, cluster.status, removing a worker and
joining it again with a fresh token made through the API after the init token is gone."""

import json
import shutil

import pytest
import yaml
from invoke import Config, Context, Exit

from conftest import lab_unavailable
from kubefab import apply, bootstrap, cni, drain, health, kube, nodes, token
from lab import Lab
from tasks import cluster_api
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


def flannel_config(lab, host, manifest):
    """What flannel's install-cni init containers leave on every node (the DaemonSet's effect, which the
    doubles do not play): its conflist, and a plugin binary for each type it names (flannel's own binary;
    portmap comes with the CNI plugins the runtime phase installs)."""
    cfg = next(d for d in yaml.safe_load_all(manifest) if d["kind"] == "ConfigMap")["data"]["cni-conf.json"]
    binaries = " && ".join(f"printf '#!/bin/sh\\n' > /opt/cni/bin/{p['type']} && chmod 755 /opt/cni/bin/{p['type']}"
                           for p in json.loads(cfg)["plugins"])
    lab.run(host, f"mkdir -p {CNI_DIR} /opt/cni/bin && cat > {CNI_DIR}/10-flannel.conflist && {binaries}", input=cfg)


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
    assert {a.action for a in apply.apply(api, manifest, "flannel")} == {apply.CREATED}
    assert {a.action for a in apply.apply(api, manifest, "flannel")} == {apply.UNCHANGED}
    assert status_exit(inv) == 1, "nodes stay NotReady until the CNI config is on them"
    for h in inv.hosts:
        flannel_config(lab, h.name, manifest)
    ready = nodes.wait_ready(api, [h.name for h in inv.hosts], timeout=60)
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
