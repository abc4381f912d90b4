"""[addons] on a lab cluster: the runtime phase pulls every add-on image ahead (the lab has no registry: the crictl
double imports them as a pull would); an image the nodes lack makes verify name its Deployment and the image; then
cluster.up brings Headlamp, metrics-server and Envoy Gateway available, the Gateway programmed with a TLS secret from
kubefab's add-on CA, and the run after changes nothing; the UI token authenticates as the UI's ServiceAccount; the
sample routes through the Gateway (its --dry-run applies nothing); addons.remove --dry-run deletes nothing, addons.remove deletes exactly one
add-on's objects; an add-on taken out of the inventory is named with the command that removes it."""

import base64
import json
import shutil

import pytest
import toml
import yaml
from invoke import Config, Context

from kubefab import inventory, pki
from kubefab.api import addons, kube
from kubefab.components import addons as catalogue
from kubefab.pki import addons as addon_pki
from kubefab.pki import x509
from kubefab.tasks import addons as tasks
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
MIRROR = "mirror.lab.example/google_containers"
GATEWAY = "/apis/gateway.networking.k8s.io/v1/namespaces/envoy-gateway-system/gateways/web"


def configure(lab, tls=None, **addons_table):
    raw = toml.loads(lab.inventory.read_text())
    raw["cluster"]["image_repository"] = MIRROR
    raw["addons"] = dict(addons_table, **({"tls": tls} if tls else {}))
    lab.inventory.write_text(toml.dumps(raw))


def held(lab, host):
    return set(lab.run(host, "ctr -n k8s.io images ls -q").stdout.split())


def details(r):
    """(host, phase) -> what its steps said, in order."""
    return {(x.host, x.phase): " | ".join([x.detail] + [step.detail for step in x.steps]) for x in r.results}


def test_addons_install_verify_rerun_token_gateway_and_remove(new_lab, tmp_path, monkeypatch, capsys):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    configure(lab, ui="headlamp", metrics=True, gateway="envoy-gateway", tls={"issue": ["web.lab.example"]})
    monkeypatch.setattr(addons, "AVAILABLE_TIMEOUT", 30)
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    headlamp_image = catalogue.images(inv, catalogue.UI)[0]
    assert catalogue.images(inv, catalogue.METRICS) == (f"{MIRROR}/metrics-server:v0.8.0",)

    code, text, _ = run_of(lab, tmp_path, yes=True, only=("facts", "preflight", "runtime"))
    assert code == 0, text
    assert all(set(catalogue.node_images(inv)) <= held(lab, h.name) for h in inv.hosts), "pulled ahead on every node"
    for h in inv.hosts:     # what a node that was never given the image has (offline, not pulled ahead)
        lab.run(h.name, f"ctr -n k8s.io images rm {headlamp_image}")
    code, text, r = run_of(lab, tmp_path, yes=True, skip=("runtime",))
    said = details(r)
    assert code == 1, text
    assert "headlamp: 4 of 4 objects written" in said["kf-cp1", "addons"]
    assert "envoy-gateway: 22 of 22 objects written" in said["kf-cp1", "addons"]
    failed = said["kf-cp1", "verify"]
    assert "deployment kube-system/headlamp (headlamp) did not become available" in failed, failed
    assert f"ErrImagePull: failed to pull and unpack image \"{headlamp_image}\"" in failed, failed

    monkeypatch.setattr(addons, "AVAILABLE_TIMEOUT", 90)      # a busy machine: the proxy comes up after the others
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    said = details(r)
    assert "headlamp: 4 objects unchanged; metrics-server: 9 objects unchanged; envoy-gateway: 22 objects unchanged" \
        in said["kf-cp1", "addons"]
    assert "every add-on Deployment available, the gateway programmed" in said["kf-cp1", "verify"]
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0 and {x.status for x in r.results if x.phase not in ("facts", "preflight")} == {"unchanged"}, text

    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    gateway = api.get(GATEWAY)["status"]
    programmed = next(c for c in gateway["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["message"]) == ("True", "Address assigned to the Gateway, 1/1 envoy "
                                                                     "replicas available")
    assert {a["value"] for a in gateway["addresses"]} == {h.address for h in inv.hosts}, "a NodePort: node addresses"
    secret = api.get("/api/v1/namespaces/envoy-gateway-system/secrets/web-tls")
    tls = base64.b64decode(secret["data"]["tls.crt"])
    assert x509.problem(tls, addon_pki.ca_cert(inv)) is None, "the TLS secret chains to the add-on CA"
    assert x509.problem(tls, pki.ca_pair(inv)[0]) == "is not signed by its CA", "never to the cluster CA"
    assert x509.view(tls).dns == ("web.lab.example",)

    pods = api.get("/api/v1/pods")["items"]
    images = {c["image"] for p in pods if p["metadata"]["namespace"] in ("kube-system", "envoy-gateway-system")
              and p["metadata"]["name"].startswith(("headlamp-", "metrics-server-", "envoy-"))
              for c in p["spec"]["containers"]}
    assert images == {f"{MIRROR}/metrics-server:v0.8.0", headlamp_image, "docker.io/envoyproxy/gateway:v1.9.0",
                      "docker.io/envoyproxy/envoy:distroless-v1.39.0"}
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

    tasks.sample(ctx, dry_run=True)
    assert "sample would be applied: 3 of 3 objects would be written" in capsys.readouterr().out
    assert api.find("/apis/apps/v1/namespaces/default/deployments/echo") is None
    tasks.sample(ctx)
    assert "sample: 3 of 3 objects written" in capsys.readouterr().out
    route = api.get("/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/echo")
    assert route["spec"]["hostnames"] == ["web.lab.example"]
    kube.until(lambda: (addons._available(api.get("/apis/apps/v1/namespaces/default/deployments/echo")), "not yet"),
               30, "the sample's echo server did not become available")

    tasks.remove(ctx, "gateway", dry_run=True)
    listed = capsys.readouterr().out
    assert "add-on 'gateway' would be removed: 22 objects would be deleted" in listed and "Gateway envoy-gateway" \
        "-system/web" in listed
    assert api.find(GATEWAY) is not None and "gateway" in json.loads((inv.state_dir / "addons.json").read_text())

    gone = addons.remove(api, inv, "gateway")
    assert ("CustomResourceDefinition", "", "gateways.gateway.networking.k8s.io") in gone and len(gone) == 22
    assert api.find("/apis/apps/v1/namespaces/kube-system/deployments/metrics-server") is not None
    assert api.find("/apis/apps/v1/namespaces/kube-system/deployments/headlamp") is not None
    assert api.find("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io") is not None
    kube.until(lambda: (not [d for d in api.get("/apis/apps/v1/namespaces/envoy-gateway-system/deployments")["items"]],
                        "a proxy is left"), 30, "the proxy went with its GatewayClass")
    assert sorted(addons.remove(api, inv, "sample")) == [("Deployment", "default", "echo"),
                                                         ("Service", "default", "echo")], \
        "the route went with its CRD; the echo server is the sample's to remove"

    gone = addons.remove(api, inv, "ui")
    assert sorted(gone) == [("ClusterRoleBinding", "", "headlamp-admin"), ("Deployment", "kube-system", "headlamp"),
                            ("Service", "kube-system", "headlamp"), ("ServiceAccount", "kube-system", "headlamp-admin")]
    assert list(json.loads((inv.state_dir / "addons.json").read_text())) == ["metrics"]

    configure(lab, ui="none", metrics=False)
    code, text, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    assert "`invoke addons.remove metrics` removes it" in details(r)["kf-cp1", "addons"]
