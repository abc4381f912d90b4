"""[addons] on a lab cluster: cluster.up installs Headlamp and metrics-server server-side after the pod network,
verify names a Deployment whose image the nodes lack (the lab has no registry: images are loaded into containerd
as an offline install loads them), the next up brings them available and the one after changes nothing; the UI
token authenticates as the UI's ServiceAccount; addons.remove deletes exactly one add-on's objects; an add-on
taken out of the inventory is named with the command that removes it."""

import json
import shutil
import sys

import pytest
import toml
import yaml
from invoke import Config, Context

from kubefab import inventory
from kubefab.api import addons, kube
from kubefab.components import addons as catalogue
from kubefab.tasks import addons as tasks
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
MIRROR = "mirror.lab.example/google_containers"


def configure(lab, **addons_table):
    raw = toml.loads(lab.inventory.read_text())
    raw["cluster"]["image_repository"] = MIRROR
    raw["addons"] = addons_table
    lab.inventory.write_text(toml.dumps(raw))


def load_images(lab, inv, refs):
    """What an offline install does before cluster.up: the images imported into each node's containerd."""
    # the doubles as the runtime phase installed them on the host (beside kubeadm: the checkout may sit under /tmp,
    # which every lab host mounts afresh)
    code = ("import os, sys; sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath('/usr/bin/kubeadm')), "
            f"'lib')); from doubles import images; images.pull({refs!r})")
    for h in inv.hosts:
        lab.run(h.name, f"{sys.executable} -c {json.dumps(code)}", timeout=120)


def details(r):
    """(host, phase) -> what its steps said, in order."""
    return {(x.host, x.phase): " | ".join([x.detail] + [step.detail for step in x.steps]) for x in r.results}


def test_addons_install_verify_rerun_token_and_remove(new_lab, tmp_path, monkeypatch, capsys):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    configure(lab, ui="headlamp", metrics=True)
    monkeypatch.setattr(addons, "AVAILABLE_TIMEOUT", 20)
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    metrics_image, headlamp_image = (catalogue.image(inv, ref) for ref in
                                     (*catalogue.METRICS.images.values(), *catalogue.UI.images.values()))
    assert metrics_image == f"{MIRROR}/metrics-server:v0.8.0"

    code, text, _ = run_of(lab, tmp_path, yes=True, only=("facts", "preflight", "runtime"))
    assert code == 0, text
    load_images(lab, inv, [metrics_image])
    code, text, r = run_of(lab, tmp_path, yes=True)
    said = details(r)
    assert code == 1, text
    assert "headlamp: 4 of 4 objects written" in said["kf-cp1", "addons"]
    failed = said["kf-cp1", "verify"]
    assert "deployment kube-system/headlamp (headlamp) did not become available" in failed, failed
    assert f"ErrImagePull: failed to pull and unpack image \"{headlamp_image}\"" in failed, failed

    load_images(lab, inv, [headlamp_image])
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert "headlamp: 4 objects unchanged; metrics-server: 9 objects unchanged" in details(r)["kf-cp1", "addons"]
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0 and {x.status for x in r.results if x.phase not in ("facts", "preflight")} == {"unchanged"}, text

    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    pods = api.get("/api/v1/namespaces/kube-system/pods")["items"]
    images = {c["image"] for p in pods if p["metadata"]["name"].startswith(("headlamp-", "metrics-server-"))
              for c in p["spec"]["containers"]}
    assert images == {metrics_image, headlamp_image}
    assert all(p["spec"]["nodeName"] == "kf-w1" for p in pods if p["metadata"]["name"].startswith("headlamp-")), \
        "the control plane's taint keeps the add-ons on the worker"

    ctx = Context(Config(overrides={"kubefab": {"inventory": str(lab.inventory), "state_dir": str(inv.state_dir)}}))
    tasks.ui_token(ctx, ttl="15m")
    token, comment = capsys.readouterr().out.splitlines()
    assert comment.startswith("# expires ")
    assert "kubectl -n kube-system port-forward service/headlamp 8080:80" in comment
    admin = yaml.safe_load((inv.state_dir / "kubeconfigs" / "admin.conf").read_text())
    admin["users"][0]["user"] = {"token": token}
    (tmp_path / "ui.conf").write_text(yaml.safe_dump(admin))
    review = kube.connect(tmp_path / "ui.conf").create("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:kube-system:headlamp-admin"
    assert not any(token in f.read_text(errors="replace") for f in inv.state_dir.rglob("*") if f.is_file())

    gone = addons.remove(api, inv, "ui")
    assert sorted(gone) == [("ClusterRoleBinding", "", "headlamp-admin"), ("Deployment", "kube-system", "headlamp"),
                            ("Service", "kube-system", "headlamp"), ("ServiceAccount", "kube-system", "headlamp-admin")]
    assert api.find("/apis/apps/v1/namespaces/kube-system/deployments/metrics-server") is not None
    assert api.find("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io") is not None
    assert list(json.loads((inv.state_dir / "addons.json").read_text())) == ["metrics"]

    configure(lab, ui="none", metrics=False)
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert "`invoke addons.remove metrics` removes it" in details(r)["kf-cp1", "addons"]
