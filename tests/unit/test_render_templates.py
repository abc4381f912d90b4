"""The templates and the render table: every template is real, used, and filled strictly."""

import tomllib

import pytest
import yaml

from kubefab import paths
from kubefab.components import addons, cni, templates
from kubefab.errors import KubefabError
from kubefab.inventory import HOST_SETS
from kubefab.plan import render

FRAGMENTS = {"containerd/hosts-mirror.toml",     # filled once per mirror inside hosts.toml
             "ha/haproxy-server.cfg", "ha/keepalived-peer.conf",   # once per control plane, other control plane
             "ha/keepalived-end.conf"}                             # closes keepalived.conf after its peers


def test_every_template_is_in_the_table_and_every_row_has_its_template():
    assert set(templates.names()) == {spec.template for spec in render.FILES} | FRAGMENTS | set(cni.TEMPLATES) | set(addons.TEMPLATES)
    assert "kubeadm/init.yaml" in templates.names() and "__init__.py" not in templates.names()


@pytest.mark.parametrize("name", templates.names())
def test_templates_read_as_the_real_file_format(name):
    text = templates.load(name)
    if name.endswith(".yaml"):
        assert all(isinstance(doc, dict) for doc in yaml.safe_load_all(text))
    elif name.endswith(".toml"):
        tomllib.loads(text)
    assert "{{" not in text


def test_table_rows_name_known_host_sets_and_keep_token_files_private():
    for spec in render.FILES:
        assert spec.hosts in HOST_SETS, spec
        assert spec.mode in (0o600, 0o644), spec
        if spec.template.startswith("kubeadm/"):
            assert spec.mode == 0o600 and spec.on_host(None).startswith(paths.KUBEFAB + "/")


def test_kubefab_files_avoid_paths_kubeadm_preflight_checks():
    on_host = [spec.on_host("example.io") for spec in render.FILES]
    assert not set(on_host) & set(paths.MANIFESTS + paths.JOIN_WRITES)
    assert not [p for p in on_host if p.startswith((paths.PKI, "/etc/kubernetes/manifests"))]


def test_yaml_placeholder_without_value_names_file_and_key():
    with pytest.raises(KubefabError, match=r"templates/t.yaml: JoinConfiguration.discovery.bootstrapToken.token: "
                                           r"no value for \$\{token\}"):
        templates.fill_yaml("t.yaml", "kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
                                      "    token: ${token}\n", {}, {})


def test_yaml_values_keep_their_type():
    out = templates.fill_yaml("t.yaml", "kind: X\nport: ${port}\nsans: ${sans}\nttl: ${ttl}\n",
                              {"port": 6443, "sans": ("a", "10.0.0.1"), "ttl": "0"}, {})
    assert yaml.safe_load(out) == {"kind": "X", "port": 6443, "sans": ["a", "10.0.0.1"], "ttl": "0"}


def test_unused_values_and_partial_placeholders_are_errors():
    with pytest.raises(KubefabError, match=r"templates/t.yaml: has no placeholder for extra"):
        templates.fill_yaml("t.yaml", "kind: X\na: ${a}\n", {"a": 1, "extra": 2}, {})
    with pytest.raises(KubefabError, match=r"templates/t.yaml: X.version: 'v\$\{v\}' — a placeholder must be a "
                                           r"whole value"):
        templates.fill_yaml("t.yaml", "kind: X\nversion: v${v}\n", {"v": "1.34.2"}, {})


def test_text_placeholders_are_strict():
    with pytest.raises(KubefabError, match=r"templates/t.toml: line 2: no value for \$\{image\}"):
        templates.fill_text("t.toml", 'version = 2\nsandbox_image = "${image}"\n', {})
    with pytest.raises(KubefabError, match=r"holds a quote, backslash or line break"):
        templates.fill_text("t.toml", 'sandbox_image = "${image}"\n', {"image": 'x"\nSystemdCgroup = false'})
    assert templates.fill_text("t.toml", 'a = "${image}"\n', {"image": "r/p:3.10"}) == 'a = "r/p:3.10"\n'


def test_overlays_add_and_repeat_but_never_change_kubefabs_values():
    text = "kind: KubeletConfiguration\ncgroupDriver: systemd\nnested:\n  keep: 1\n"
    out = templates.fill_yaml("k.yaml", text, {}, {"KubeletConfiguration": (
        "[cluster.kubelet] config", {"cgroupDriver": "systemd", "maxPods": 150, "nested": {"add": 2}})})
    assert yaml.safe_load(out) == {"kind": "KubeletConfiguration", "cgroupDriver": "systemd",
                                   "nested": {"keep": 1, "add": 2}, "maxPods": 150}
    with pytest.raises(KubefabError, match=r"\[cluster.kubelet\] config.nested.keep = 3 conflicts with 1"):
        templates.fill_yaml("k.yaml", text, {}, {"KubeletConfiguration": ("[cluster.kubelet] config",
                                                                           {"nested": {"keep": 3}})})


def test_checks_catch_surviving_placeholders_and_broken_files():
    with pytest.raises(KubefabError, match=r"h:/a.yaml: InitConfiguration.nodeRegistration.name: a placeholder "
                                           r"survived"):
        templates.check("h:/a.yaml", "kind: InitConfiguration\nnodeRegistration:\n  name: ${node}\n")
    with pytest.raises(KubefabError, match=r"h:/c.toml: rendered file is not valid TOML"):
        templates.check("h:/c.toml", "version = 2\n[plugins\n")
    with pytest.raises(KubefabError, match=r"h:/s.conf: line 2: a placeholder survived rendering"):
        templates.check("h:/s.conf", "a = 1\nb = {{ b }}\n")
