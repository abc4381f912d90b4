"""Envoy Gateway on the doubles: kubefab's gateway add-on applied to the API-server double (CRDs refused unless
structural, custom resources served once installed), then the gateway controller double, acting as envoy-gateway's
ServiceAccount, programs the Gateway only while its TLS secret is valid, and only once its proxy runs."""

import base64
import shutil
import types

import pytest

from inventories import host_tables
from kubefab import inventory, plan
from kubefab.api import addons, kube
from kubefab.components import addons as catalogue
from lab.doubles import components, gateways, install_dir, testkit
from lab.doubles.kubeclient import ApiStatus, Client
from test_doubles_workloads import Node, settle

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
GATEWAY = "/apis/gateway.networking.k8s.io/v1/namespaces/envoy-gateway-system/gateways/web"
SECRET = "/api/v1/namespaces/envoy-gateway-system/secrets/web-tls"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway")
    with testkit.local_apiserver(root, install_dir(root / "bin")) as (cluster, server, _):
        conf = root / "etc/kubernetes/super-admin.conf"
        yield types.SimpleNamespace(root=root, cluster=cluster, server=server, admin=Client.from_kubeconfig(conf),
                                    kube=kube.connect(conf), conf=conf)


def test_an_unstructural_crd_is_refused_in_the_api_servers_words(api):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"properties": {"size": {"type": "integer"}}}}}}}]}}
    with pytest.raises(ApiStatus) as e:
        api.admin.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert e.value.code == 422 and e.value.body["message"] == (
        'CustomResourceDefinition.apiextensions.k8s.io "widgets.example.com" is invalid: spec.versions[0].schema.'
        "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields")


def test_the_gateway_is_programmed_once_its_proxy_runs_and_only_with_a_valid_tls_secret(api, tmp_path, monkeypatch):
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\n' + host_tables(control_planes=1, workers=1) +
                    '[addons]\ngateway = "envoy-gateway"\n[addons.tls]\nissue = ["web.example.com"]\n')
    inv = inventory.load(path)
    plan.prepare(inv)
    (installed,) = addons.install(api.kube, inv)
    assert {a.kind for a in installed.applied} >= {"CustomResourceDefinition", "GatewayClass", "Gateway", "Secret"}
    crd = api.admin.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gateways.gateway.networking.k8s.io")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"

    worker = Node(api, "gw-w1", "10.244.1.0/24")
    worker.held |= set(catalogue.node_images(inv))
    api.admin.patch("/api/v1/nodes/gw-w1/status", {"status": {"addresses": [{"type": "InternalIP",
                                                                             "address": "198.18.0.9"}]}})
    envoy = components.EnvoyGatewayClient(api.conf, api.admin)()      # made before a node's root maps paths

    def run(rounds=4):
        for _ in range(rounds):
            settle(api, [worker], monkeypatch, rounds=1)
            gateways.collect(api.admin)
            gateways.sync(envoy)
        return {c["type"]: c for c in api.admin.get(GATEWAY)["status"]["conditions"]}

    conditions = run()
    assert conditions["Programmed"]["status"] == "True", conditions
    assert conditions["Programmed"]["message"] == "Address assigned to the Gateway, 1/1 envoy replicas available"
    assert api.admin.get(GATEWAY)["status"]["addresses"] == [{"type": "IPAddress", "value": "198.18.0.9"}], \
        "the proxy's Service is a NodePort: the Gateway's addresses are the nodes'"

    good = api.admin.get(SECRET)
    api.admin.patch(SECRET, {"data": {"tls.key": base64.b64encode(b"not a key").decode()}})
    conditions = run(1)
    listener = {c["type"]: c for c in api.admin.get(GATEWAY)["status"]["listeners"][0]["conditions"]}
    assert (conditions["Accepted"]["status"], conditions["Programmed"]["status"]) == ("False", "False")
    assert listener["ResolvedRefs"]["reason"] == "InvalidCertificateRef"
    assert listener["ResolvedRefs"]["message"].startswith(
        "certificate refs 0: Secret envoy-gateway-system/web-tls must contain valid tls.crt and tls.key")
    api.admin.delete(SECRET)
    run(1)
    listener = {c["type"]: c for c in api.admin.get(GATEWAY)["status"]["listeners"][0]["conditions"]}
    assert listener["ResolvedRefs"]["message"] == \
        "certificate refs 0: Secret envoy-gateway-system/web-tls does not exist."
    kept = {k: v for k, v in good.items() if k in ("apiVersion", "kind", "type", "data")}
    api.admin.create("/api/v1/namespaces/envoy-gateway-system/secrets", dict(kept, metadata={"name": "web-tls"}))
    assert run(2)["Programmed"]["status"] == "True"

    gone = addons.remove(api.kube, inv, "gateway")
    assert len(gone) == len(installed.applied)
    with pytest.raises(ApiStatus) as e:
        api.admin.get(GATEWAY)
    assert e.value.code == 404, "the kind is no longer served once its CRD is gone"
