"""[addons]: validated with its lines, rendered from the pinned manifests with the inventory's registries, planned as
the addons phase after the pod network and a wait in verify on the first control plane."""

import pytest
import yaml

from inventories import host_tables
import datetime
import types

from kubefab import inventory, pki, plan, state
from kubefab.api import addons as api_addons
from kubefab.api import kube
from kubefab.components import addons, templates
from kubefab.pki import addons as addon_pki
from kubefab.pki import x509
from kubefab.errors import InventoryError, KubefabError
from kubefab.plan import phases
from kubefab.state import applied_addons
from kubefab.steps import AddonsAvailable, ApplyAddons

BASE = '[cluster]\nname = "t"\n' + host_tables(control_planes=1, workers=2)


def load(tmp_path, extra, cluster=""):
    path = tmp_path / "inventory.toml"
    path.write_text(BASE.replace('name = "t"\n', f'name = "t"\n{cluster}') + extra)
    return inventory.load(path)


def problems(tmp_path, extra):
    with pytest.raises(InventoryError) as e:
        load(tmp_path, extra)
    return str(e.value)


@pytest.mark.parametrize("extra, expected", [
    ('[addons]\nui = "dashboard"\n', "line 13: [addons] ui is 'dashboard': the Kubernetes Dashboard was archived in "
                                     "January 2026 — use 'headlamp'"),
    ('[addons]\nui = "lens"\n', "line 13: [addons] ui is 'lens' — choose one of 'headlamp', 'none'"),
    ('[addons]\nui = "headlamp"\nui_node_port = 8080\n',
     "line 14: [addons] ui_node_port is 8080 — a NodePort must be in 30000-32767"),
    ('[addons]\nui_node_port = 30443\n', "line 13: [addons] ui_node_port is set but ui is 'none'"),
    ('[addons]\nmetrics = "yes"\n', "line 13: [addons] metrics must be true or false, not 'yes'"),
    ('[addons]\nmetric = true\n', "line 13: [addons] metric is not a known key — did you mean 'metrics'?"),
    ('[addons]\ngateway = "traefik"\n', "line 13: [addons] gateway is 'traefik' — choose one of 'envoy-gateway', "
                                        "'none'"),
    ('[addons]\ngateway = "ingress-nginx"\n', "line 13: [addons] gateway is 'ingress-nginx': it reached end of life in "
                                              "March 2026 — use 'envoy-gateway'"),
    ('[addons]\ngateway = "envoy-gateway"\n', "line 13: [addons] gateway needs [addons.tls] for its HTTPS listener — "
                                              "give cert and key"),
    ('[addons.tls]\nissue = ["web.example.com"]\n',
     "line 13: [addons.tls] issue is for the gateway, which is 'none' — set gateway = \"envoy-gateway\" or remove it"),
    ('[addons]\ngateway = "envoy-gateway"\n[addons.tls]\nissue = ["web.example.com", "bad name"]\n',
     "line 15: [addons.tls] issue holds 'bad name', neither a DNS name nor an IP address"),
    ('[addons]\ngateway = "envoy-gateway"\n[addons.tls]\nissue = ["a.example"]\ncert = "web.crt"\n',
     "line 15: [addons.tls] issue and cert/key are exclusive"),
    ('[addons]\ngateway = "envoy-gateway"\n[addons.tls]\ncert = "web.crt"\n',
     "line 15: [addons.tls] cert is set without key — give both"),
    ('[addons]\ngateway = "envoy-gateway"\n[addons.tls]\ncert = "missing.crt"\nkey = "missing.key"\n',
     "missing.crt: cannot be read (No such file or directory) — check the path (relative to the inventory)"),
])
def test_addons_mistakes_name_line_key_and_fix(tmp_path, extra, expected):
    assert expected in problems(tmp_path, extra)


def docs(inv, addon):
    return list(yaml.safe_load_all(addons.manifest(inv, addon)))


def images(inv):
    return sorted(c["image"] for a in addons.enabled(inv) for d in docs(inv, a) if d["kind"] == "Deployment"
                  for c in d["spec"]["template"]["spec"]["containers"])


def test_pinned_images_and_a_mirror_for_registry_k8s_io_as_kubeadm_names_its_own(tmp_path):
    inv = load(tmp_path, '[addons]\nui = "headlamp"\nmetrics = true\n')
    assert [a.name for a in addons.enabled(inv)] == ["ui", "metrics"]
    assert images(inv) == ["ghcr.io/headlamp-k8s/headlamp:v0.39.0",
                           "registry.k8s.io/metrics-server/metrics-server:v0.8.0"]
    mirrored = load(tmp_path, '[addons]\nui = "headlamp"\nmetrics = true\n',
                    cluster='image_repository = "registry.aliyuncs.com/google_containers"\n')
    # ghcr.io keeps its name: a [mirrors.registries] "ghcr.io" entry serves it through containerd, as for the CNI
    assert images(mirrored) == ["ghcr.io/headlamp-k8s/headlamp:v0.39.0",
                                "registry.aliyuncs.com/google_containers/metrics-server:v0.8.0"]


def test_the_ui_service_is_a_nodeport_only_when_asked_and_no_token_secret_is_made(tmp_path):
    def service(inv):
        return next(d for d in docs(inv, addons.UI) if d["kind"] == "Service")["spec"]
    assert service(load(tmp_path, '[addons]\nui = "headlamp"\n')) == {
        "type": "ClusterIP", "ports": [{"port": 80, "targetPort": 4466}], "selector": {"k8s-app": "headlamp"}}
    inv = load(tmp_path, '[addons]\nui = "headlamp"\nui_node_port = 30443\n')
    assert service(inv)["type"] == "NodePort" and service(inv)["ports"][0]["nodePort"] == 30443
    kinds = [(d["kind"], d["metadata"]["name"]) for a in addons.ADDONS for d in docs(inv, a)]
    assert ("ServiceAccount", addons.UI_ACCOUNT[1]) in kinds and not any(k == "Secret" for k, _ in kinds)


def test_every_template_names_its_deployments_and_renders_every_image(tmp_path):
    inv = load(tmp_path, GATEWAY.replace("[addons]\n", '[addons]\nui = "headlamp"\nmetrics = true\n'))
    for addon in (*addons.ADDONS, addons.SAMPLE):
        text = templates.load(addon.template)
        named = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in yaml.safe_load_all(text)
                 if d["kind"] == "Deployment"}
        assert named == set(addon.deployments)
        assert all(ref in addons.manifest(inv, addon) for ref in addons.images(inv, addon))


def test_the_addons_phase_follows_cni_and_verify_waits_on_the_first_control_plane_only(tmp_path):
    inv = load(tmp_path, '[addons]\nui = "headlamp"\nmetrics = true\n')
    names = [p.name for p in phases.PHASES]
    assert names.index("addons") == names.index("cni") + 1 and names.index("verify") == names.index("addons") + 1
    phase = next(p for p in phases.PHASES if p.name == "addons")
    (step,) = phase.steps(inv, inv.first_control_plane, None, None)
    assert isinstance(step, ApplyAddons) and "headlamp, metrics-server" in step.what
    waits = {h.name: [type(s) for s in phases.VERIFY.steps(inv, h, None, None)] for h in inv.hosts}
    assert [n for n, kinds in waits.items() if AddonsAvailable in kinds] == ["cp-1"]
    plain = load(tmp_path, "")
    assert phase.steps(plain, plain.first_control_plane, None, None) == ()
    assert all(AddonsAvailable not in map(type, phases.VERIFY.steps(plain, h, None, None)) for h in plain.hosts)


def test_the_record_adds_objects_once_and_the_state_dir_accepts_it(tmp_path):
    inv = load(tmp_path, '[addons]\nmetrics = true\n')
    obj = ("v1", "ServiceAccount", "kube-system", "metrics-server")
    assert applied_addons.record(inv, "metrics", [obj])
    assert not applied_addons.record(inv, "metrics", [obj]), "a second up writes the record again only when it changed"
    assert applied_addons.read(inv) == {"metrics": [obj]}
    assert (applied_addons.path(inv).stat().st_mode & 0o777) == 0o600
    state.check(inv)
    plain = load(tmp_path, "")
    phase = next(p for p in phases.PHASES if p.name == "addons")
    (step,) = phase.steps(plain, plain.first_control_plane, None, None)
    assert step.what == "no add-on in [addons]; still installed: metrics", "the run says how to remove it"
    applied_addons.forget(inv, "metrics")
    assert applied_addons.read(inv) == {}
    assert phase.steps(plain, plain.first_control_plane, None, None) == ()


GATEWAY = '[addons]\ngateway = "envoy-gateway"\n[addons.tls]\nissue = ["web.example.com", "10.0.0.50"]\n'


USER = '[addons]\ngateway = "envoy-gateway"\n[addons.tls]\ncert = "web.crt"\nkey = "web.key"\n'


def user_pair(tmp_path, days=30, other_key=False):
    """A self-signed certificate and key in the inventory's directory, as a user brings them; the [addons] text."""
    key = x509.new_key("RSA-2048")
    at = x509.now() - datetime.timedelta(days=400 if days < 0 else 0)
    cert = x509.issue(x509.Request(cn="web", org="", usages=(x509.SERVER,), dns=("web.example.com",), ips=(),
                                   is_ca=False, days=abs(days)), key, at=at)
    (tmp_path / "web.crt").write_bytes(cert)
    (tmp_path / "web.key").write_bytes((x509.new_key("RSA-2048") if other_key else key).reveal())
    return USER


def test_a_user_certificate_is_checked_at_load_with_the_line_of_the_key_at_fault(tmp_path):
    assert load(tmp_path, user_pair(tmp_path)).addons.tls.cert == str(tmp_path / "web.crt")
    expired = problems(tmp_path, user_pair(tmp_path, days=-30))
    assert "line 15: [addons.tls] cert " in expired and "web.crt: expired on " in expired, expired
    mismatched = problems(tmp_path, user_pair(tmp_path, other_key=True))
    assert "line 16: [addons.tls] key " in mismatched and "is not the private key of cert's certificate" in mismatched
    (tmp_path / "web.key").write_text("not a key\n")
    assert "is not an unencrypted PEM private key" in problems(tmp_path, USER)


def test_the_gateway_certificates_come_from_an_add_on_ca_never_the_cluster_ca_and_are_kept(tmp_path):
    inv = load(tmp_path, GATEWAY)
    plan.prepare(inv)
    ca = addon_pki.ca_cert(inv)
    cluster_ca = pki.ca_pair(inv)[0]
    tls, _ = addon_pki.tls_pair(inv)
    assert x509.problem(tls, ca) is None and x509.problem(tls, cluster_ca) == "is not signed by its CA"
    assert not x509.not_valid_for(tls, ("web.example.com", "10.0.0.50"))
    controller, _ = addon_pki.pair(inv, "addons/envoy-gateway")
    assert set(x509.view(controller).dns) == {"envoy-gateway", "envoy-gateway.envoy-gateway-system",
                                              "envoy-gateway.envoy-gateway-system.svc",
                                              "envoy-gateway.envoy-gateway-system.svc.cluster.local"}
    assert x509.view(addon_pki.pair(inv, "addons/envoy")[0]).dns == ("*.envoy-gateway-system",)
    before = {f.name: f.read_bytes() for f in (inv.state_dir / "pki" / "addons").iterdir()}
    assert {a.what for a in addon_pki.ensure(inv)} == {pki.KEPT}, "a second run issues nothing"
    more = load(tmp_path, GATEWAY.replace('"10.0.0.50"', '"10.0.0.50", "www.example.com"'))
    actions = {a.name: a for a in addon_pki.ensure(more)}
    assert actions["addons/gateway-tls"].what == pki.REISSUED and actions["addons/ca"].what == pki.KEPT
    assert (inv.state_dir / "pki" / "addons" / "ca.crt").read_bytes() == before["ca.crt"]
    (inv.state_dir / "pki" / "addons" / "ca.key").unlink()
    with pytest.raises(KubefabError, match="CA certificate without its key ca.key — kubefab never replaces a CA"):
        addon_pki.ensure(inv)
    assert addon_pki.ensure(load(tmp_path, "")) == (), "no gateway, no add-on PKI"


def test_envoy_gateway_gets_the_secrets_its_certgen_job_would_write_and_the_gateway_its_tls_secret(tmp_path):
    inv = load(tmp_path, GATEWAY)
    plan.prepare(inv)
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
               for s in addons.secret_objects(inv, addons.GATEWAY)}
    ns = "envoy-gateway-system"
    assert set(secrets) == {(ns, "envoy-gateway"), (ns, "envoy"), (ns, "envoy-rate-limit"), (ns, "envoy-oidc-hmac"),
                            (ns, "web-tls")}
    for name in ("envoy-gateway", "envoy", "envoy-rate-limit"):
        assert secrets[ns, name]["type"] == "kubernetes.io/tls"
        assert set(secrets[ns, name]["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert set(secrets[ns, "envoy-oidc-hmac"]["data"]) == {"hmac-secret"}
    gateway = next(d for d in docs(inv, addons.GATEWAY) if d["kind"] == "Gateway")
    (listener,) = gateway["spec"]["listeners"]
    assert listener["protocol"] == "HTTPS" and listener["tls"]["certificateRefs"][0]["name"] == "web-tls"
    assert gateway["metadata"]["namespace"] == ns
    assert not any(d["kind"] == "Secret" for d in docs(inv, addons.GATEWAY)), \
        "keys stay out of the manifest, which cluster.plan --live compares"


def test_the_gateway_manifest_carries_compact_structural_crds_and_the_mirrored_images(tmp_path):
    inv = load(tmp_path, GATEWAY, cluster='image_repository = "registry.aliyuncs.com/google_containers"\n')
    crds = {d["metadata"]["name"]: d for d in docs(inv, addons.GATEWAY) if d["kind"] == "CustomResourceDefinition"}
    assert set(crds) == {f"{p}.gateway.networking.k8s.io" for p in ("gatewayclasses", "gateways", "httproutes",
                                                                     "referencegrants")}
    for crd in crds.values():
        assert sum(v["storage"] for v in crd["spec"]["versions"]) == 1
        for v in crd["spec"]["versions"]:
            schema = v["schema"]["openAPIV3Schema"]
            assert schema["type"] == "object" and all("type" in s for s in schema["properties"].values())
    config = yaml.safe_load(next(d for d in docs(inv, addons.GATEWAY) if d["kind"] == "ConfigMap")["data"][
        "envoy-gateway.yaml"])
    kubernetes = config["envoyProxy"]["provider"]["kubernetes"]
    # docker.io keeps its name (a [mirrors.registries] entry serves it); registry.k8s.io follows image_repository
    assert kubernetes["envoyDeployment"]["container"]["image"] == "docker.io/envoyproxy/envoy:distroless-v1.39.0"
    assert kubernetes["envoyService"]["type"] == "NodePort", "a LoadBalancer gets no address on a bare cluster"
    assert addons.node_images(inv) == (
        "docker.io/envoyproxy/gateway:v1.9.0", "docker.io/envoyproxy/envoy:distroless-v1.39.0",
        "registry.aliyuncs.com/google_containers/agnhost:2.53")


def test_the_runtime_phase_pulls_the_add_on_images_ahead_through_crictl_and_not_without_add_ons(tmp_path):
    def pulls(inv):
        built = plan.build(inv, plan.prepare(inv), only=("runtime",))
        return [s for b in built.phases[0].batches for hs in b for s in hs.steps
                if getattr(s, "name", "") == "pull add-on images"]
    inv = load(tmp_path, '[addons]\nui = "headlamp"\nmetrics = true\n')
    steps = pulls(inv)
    assert len(steps) == len(inv.hosts), "every node pulls: the scheduler may place a pod on any"
    assert "crictl pull" in steps[0].script and "ghcr.io/headlamp-k8s/headlamp:v0.39.0" in steps[0].script
    assert "grep -qxF registry.k8s.io/metrics-server/metrics-server:v0.8.0" in steps[0].guard, \
        "a node that holds every image pulls nothing"
    assert pulls(load(tmp_path, "")) == []


class FakeApi:
    """Reads and deletes against a dict of paths, counting deletes."""

    def __init__(self, present):
        self.present, self.deleted = set(present), []

    def resource(self, api_version, kind, timeout=None):
        return types.SimpleNamespace(path=lambda ns, name: f"{kind}/{ns}/{name}")

    def find(self, path):
        return {} if path in self.present else None

    def delete(self, path, options):
        self.deleted.append(path)
        return path in self.present


def test_remove_dry_run_lists_what_would_go_and_deletes_nothing(tmp_path):
    inv = load(tmp_path, '[addons]\nmetrics = true\n')
    objects = [("v1", "ServiceAccount", "kube-system", "metrics-server"), ("apps/v1", "Deployment", "kube-system",
                                                                            "metrics-server")]
    applied_addons.record(inv, "metrics", objects)
    api = FakeApi({"ServiceAccount/kube-system/metrics-server", "Deployment/kube-system/metrics-server"})
    listed = api_addons.remove(api, inv, "metrics", dry_run=True)
    assert listed == (("Deployment", "kube-system", "metrics-server"), ("ServiceAccount", "kube-system",
                                                                        "metrics-server"))
    assert api.deleted == [] and applied_addons.read(inv) == {"metrics": objects}
    assert api_addons.remove(api, inv, "metrics") == listed and len(api.deleted) == 2 and applied_addons.read(inv) == {}


class ReadOnlyApi:
    """Serves every kind and holds the sample's Service already, as its last apply left it; writes are recorded."""

    def __init__(self, service):
        self.service, self.patched = service, []

    def resource(self, api_version, kind, timeout=None):
        return kube.Resource(api_version, kind, f"{kind.lower()}s", namespaced=True)

    def find(self, path):
        return self.service if path == "/api/v1/namespaces/default/services/echo" else None

    def patch(self, path, body, content_type=None, query=None):
        self.patched.append(path)


def test_sample_dry_run_says_what_it_would_apply_and_changes_nothing(tmp_path, monkeypatch, capsys):
    from invoke import Config, Context

    from kubefab.tasks import addons as tasks
    inv = load(tmp_path, '[addons]\ngateway = "envoy-gateway"\n[addons.tls]\nissue = ["web.example.com"]\n')
    applied_addons.record(inv, "gateway", [("v1", "Namespace", "", "envoy-gateway-system")])
    service = next(d for d in yaml.safe_load_all(addons.manifest(inv, addons.SAMPLE)) if d["kind"] == "Service")
    api = ReadOnlyApi(service)
    monkeypatch.setattr(tasks, "_api", lambda inv, via: api)
    ctx = Context(Config(overrides={"kubefab": {"inventory": str(inv.path), "state_dir": str(inv.state_dir)}}))
    tasks.sample(ctx, dry_run=True)
    assert capsys.readouterr().out == ("sample would be applied: 2 of 3 objects would be written\n"
                                       "  deployment.apps/echo created (dry run)\n"
                                       "  service/echo unchanged (dry run)\n"
                                       "  httproute.gateway.networking.k8s.io/echo created (dry run)\n")
    assert api.patched == [] and set(applied_addons.read(inv)) == {"gateway"}
    tasks.sample(ctx)
    assert len(api.patched) == 2 and set(applied_addons.read(inv)) == {"gateway", "sample"}
