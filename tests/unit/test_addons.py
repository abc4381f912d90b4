"""[addons]: validated with its lines, rendered from the pinned manifests with the inventory's registries, planned as
the addons phase after the pod network and a wait in verify on the first control plane."""

import pytest
import yaml

from inventories import host_tables
from kubefab import inventory, state
from kubefab.components import addons, templates
from kubefab.errors import InventoryError
from kubefab.plan import phases
from kubefab.state import addons as record
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
    ('[addons]\ngateway = "envoy-gateway"\n', "line 13: [addons] gateway is 'envoy-gateway': this kubefab installs no "
                                              "Gateway API implementation yet"),
    ('[addons.tls]\nissue = ["web.example.com"]\n', "line 13: [addons.tls] issue is for the gateway, which this "
                                                    "kubefab does not install yet"),
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


def test_every_template_names_its_deployments_and_fills_every_image():
    for addon in addons.ADDONS:
        text = templates.load(addon.template)
        named = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in yaml.safe_load_all(text)
                 if d["kind"] == "Deployment"}
        assert named == set(addon.deployments)
        assert all(f"${{{key}}}" in text for key in addon.images)


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
    assert record.record(inv, "metrics", [obj])
    assert not record.record(inv, "metrics", [obj]), "a second up writes the record again only when it changed"
    assert record.read(inv) == {"metrics": [obj]}
    assert (record.path(inv).stat().st_mode & 0o777) == 0o600
    state.check(inv)
    plain = load(tmp_path, "")
    phase = next(p for p in phases.PHASES if p.name == "addons")
    (step,) = phase.steps(plain, plain.first_control_plane, None, None)
    assert step.what == "no add-on in [addons]; still installed: metrics", "the run says how to remove it"
    record.forget(inv, "metrics")
    assert record.read(inv) == {}
    assert phase.steps(plain, plain.first_control_plane, None, None) == ()
