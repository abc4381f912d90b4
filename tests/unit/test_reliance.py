"""Everything the plan relies on is refused when the inventory loads, with its line, before any state file exists:
the CNI manifest, taints, component flags and configs, pod-subnet capacity and endpoint placement, and values that
would only fail while rendering."""

import pytest

from conftest import invoke
from kubefab import inventory
from kubefab.errors import InventoryError

BASE = """\
[cluster]
name = "t"
kubernetes_version = "1.34.2"
{cluster}
[hosts.cp-1]
address = "10.0.0.11"
roles = ["control-plane"]
{cp}
[hosts.w-1]
address = "10.0.0.21"
roles = ["worker"]
{worker}
"""

FLANNEL_NET = """\
kind: ConfigMap
metadata: {{name: kube-flannel-cfg}}
data:
  net-conf.json: '{conf}'
"""


def text(cluster="", cp="", worker="", tail=""):
    """BASE with lines added: [cluster] keys from line 4, cp-1's from line 8, w-1's from line 12, then `tail` from
    line 13 (each part one line long when given one line)."""
    return BASE.format(cluster=cluster, cp=cp, worker=worker) + tail


def load(tmp_path, inventory_text, files=None):
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    path = tmp_path / "inventory.toml"
    path.write_text(inventory_text)
    return inventory.load(path, state_dir=tmp_path / "state")


def flannel(network):
    return FLANNEL_NET.format(conf=f'{{"Network": "{network}"}}')


CNI = [
    (text('cni_manifest = "missing.yaml"'), {},
     ["line 4: [cluster] cni_manifest cannot read", "missing.yaml (No such"]),
    (text('cni_manifest = "."'), {}, ["line 4: [cluster] cni_manifest", "is not a regular file"]),
    (text('cni_manifest = "/dev/null"'), {}, ["line 4: [cluster] cni_manifest /dev/null is not a regular file"]),
    (text('cni = "none"\ncni_manifest = "net.yaml"'), {"net.yaml": flannel("10.244.0.0/16")},
     ['line 5: [cluster] cni_manifest is set but cni = "none"']),
    (text('cni_manifest = "net.yaml"'), {"net.yaml": "kind: ["},
     ["line 4: [cluster] cni_manifest", "is not valid YAML"]),
    (text('cni_manifest = "net.yaml"'), {"net.yaml": flannel("10.40.0.0/16")},
     ["line 4: [cluster] cni_manifest", "net-conf.json Network is 10.40.0.0/16, but [cluster] pod_subnet is "
      "10.244.0.0/16"]),
    (text('cni_manifest = "net.yaml"'), {"net.yaml": FLANNEL_NET.format(conf="[1]")},
     ["line 4: [cluster] cni_manifest", "net-conf.json is not valid JSON"]),
    (text('pod_subnet = "10.244.0.0/16,fd00:10::/56"\nservice_subnet = "10.96.0.0/12,fd00:20::/112"'), {},
     ["line 4: [cluster] pod_subnet 10.244.0.0/16,fd00:10::/56 is not IPv4 only: kubefab's flannel manifest"]),
    (text('cni = "calico"\npod_subnet = "10.244.0.0/16,fd00:10::/56"\nservice_subnet = "10.96.0.0/12,fd00:20::/112"'),
     {}, ["line 5: [cluster] pod_subnet", "kubefab's calico manifest is IPv4 only"]),
]

TAINTS = [
    (text(worker='taints = ["a=1:NoSchedule", "a=2:NoSchedule"]'),
     ["line 12: [hosts.w-1] taints a:NoSchedule appears twice (with 'a=1:NoSchedule')", "unique by key and effect"]),
    (text(cp='taints = ["node-role.kubernetes.io/control-plane=yes:NoSchedule"]'),
     ["line 8: [hosts.cp-1] taints node-role.kubernetes.io/control-plane:NoSchedule appears twice (with kubeadm's "
      "control-plane taint)"]),
    (text(worker=f'taints = ["{"k" * 64}=v:NoSchedule"]'), ["line 12: [hosts.w-1] taints entry", "its name 'kkk"]),
    (text(worker=f'taints = ["{"a" * 254}/k:NoSchedule"]'), ["its prefix 'aaa", "at most 253 characters"]),
    (text(worker='taints = ["Example.com/k:NoSchedule"]'), ["its prefix 'Example.com' is not a lowercase DNS"]),
    (text(worker='taints = ["/k:NoSchedule"]'), ["entry '/k:NoSchedule'", "its prefix before '/' is empty"]),
    (text(worker='taints = ["a/b/c:NoSchedule"]'), ["it has more than one '/'"]),
    (text(worker=f'taints = ["k={"v" * 64}:NoSchedule"]'), ["value 'vvv", "is not at most 63"]),
    (text(worker='taints = ["k=-v:NoSchedule"]'), ["value '-v' is not at most 63"]),
    (text(worker='taints = ["k=v:NoSchedule\\n"]'), ["its effect 'NoSchedule\\n' is not one of NoSchedule"]),
    (text(worker='taints = ["dedicated=infra:Never"]'), ["entry 'dedicated=infra:Never'", "its effect 'Never'"]),
    (text(worker='taints = ["dedicated=infra"]'), ["it has no ':Effect'"]),
]

FLAGS = [
    (text(tail='[cluster.kubelet]\nextra_args = { "eviction-hard" = "memory.available<100Mi nodefs.available<10%" }'),
     ["line 14: [cluster.kubelet] extra_args 'eviction-hard' = 'memory.available<100Mi nodefs.available<10%' holds "
      "whitespace", "systemd splits at whitespace"]),
    (text(tail='[cluster.kubelet]\nextra_args = { "node-labels" = "a=b" }'),
     ["line 14: [cluster.kubelet] extra_args sets 'node-labels', which kubefab sets per host from each host's labels"]),
    (text(tail='[cluster.kubelet]\nextra_args = { "hostname_override" = "x" }'),
     ["[cluster.kubelet] extra_args sets 'hostname_override', which kubefab sets per host"]),
    (text(tail='[cluster.apiserver]\nextra_args = { "v=4" = "" }'),
     ["line 14: [cluster.apiserver] extra_args entry 'v=4' holds '='", '{ "v" = "..." }']),
    (text(tail='[cluster.scheduler]\nextra_args = { "" = "x" }'), ["[cluster.scheduler] extra_args has an empty flag"]),
    (text(tail='[cluster.scheduler]\nextra_args = { "feature gates" = "x" }'),
     ["entry 'feature gates' is not a flag name"]),
    (text(tail='[cluster.apiserver]\nextra_args = { "service-cluster-ip-range" = "10.100.0.0/16" }'),
     ["line 14: [cluster.apiserver] extra_args 'service-cluster-ip-range' = '10.100.0.0/16' differs from [cluster] "
      "service_subnet ('10.96.0.0/12')"]),
    (text(tail='[cluster.controller_manager]\nextra_args = { "service_cluster_ip_range" = "10.100.0.0/16" }'),
     ["[cluster.controller_manager] extra_args 'service_cluster_ip_range' = '10.100.0.0/16' differs"]),
    (text(tail='[cluster.controller_manager]\nextra_args = { "cluster-cidr" = "10.32.0.0/16" }'),
     ["'cluster-cidr' = '10.32.0.0/16' differs from [cluster] pod_subnet ('10.244.0.0/16')"]),
    (text(tail='[cluster.controller_manager]\nextra_args = { "cluster-name" = "other" }'),
     ["'cluster-name' = 'other' differs from [cluster] name ('t')"]),
    (text(tail='[cluster.apiserver]\nextra_args = { "advertise-address" = "10.0.0.11" }'),
     ["'advertise-address', which kubefab sets per host from each control-plane host's internal_address"]),
    (text(tail='[cluster.kubelet]\nconfig = { maxPods = "many" }'),
     ["line 14: [cluster.kubelet] config maxPods must be a whole number", "(Go int32), not 'many'"]),
    (text(tail='[cluster.kubelet]\nconfig = { maxPods = 3000000000 }'), ["maxPods must be a whole number"]),
    (text(tail='[cluster.kubelet]\nconfig = { maxPod = 110 }'),
     ["line 14: [cluster.kubelet] config maxPod is not a field of KubeletConfiguration — did you mean 'maxPods'?"]),
    (text(tail='[cluster.kubelet]\nconfig = { evictionHard = { "memory.available" = 100 } }'),
     ["config evictionHard must be a table of strings (Go map[string]string)"]),
    (text(tail='[cluster.kubelet]\nconfig = { syncFrequency = "1 minute" }'),
     ["syncFrequency must be a Go duration such as '10s'"]),
    (text(tail='[cluster.kubelet]\nconfig.authentication.webhook.enabled = "yes"'),
     ["line 14: [cluster.kubelet] config authentication.webhook.enabled must be true or false (Go bool), not 'yes'"]),
    (text(tail='[cluster.kubelet]\nconfig = { registerWithTaints = [{ key = "a", effect = 1 }] }'),
     ["config registerWithTaints item 1.effect must be a string"]),
    (text(tail='[cluster.kubelet]\nconfig = { cgroupDriver = "cgroupfs" }'),
     ["line 14: [cluster.kubelet] config cgroupDriver = 'cgroupfs' conflicts with 'systemd', which kubefab sets"]),
    (text(tail='[cluster.kube_proxy]\nconfig = { mode = "ipvs" }'),
     ["line 14: [cluster.kube_proxy] config mode = 'ipvs' conflicts with 'iptables', which kubefab sets"]),
    (text(tail='[cluster.kubelet]\nconfig = { clusterDomain = "corp.local" }'),
     ["line 14: [cluster.kubelet] config clusterDomain = 'corp.local' differs from [cluster] dns_domain "
      "('cluster.local')"]),
    (text(tail='[cluster.kube_proxy]\nconfig = { clusterCIDR = "10.32.0.0/16" }'),
     ["[cluster.kube_proxy] config clusterCIDR = '10.32.0.0/16' differs from [cluster] pod_subnet"]),
    (text(tail='[cluster.kube_proxy]\nconfig = { kind = "KubeletConfiguration" }'),
     ["line 14: [cluster.kube_proxy] config kind = 'KubeletConfiguration' conflicts with 'KubeProxyConfiguration'"]),
    (text(tail='[cluster.kube_proxy]\nconfig = { ipvs = { strictARP = "true" } }'),
     ["[cluster.kube_proxy] config ipvs.strictARP must be true or false"]),
    (text(tail='[cluster.kube_proxy]\nconfig = { conntrak = {} }'),
     ["config conntrak is not a field of KubeProxyConfiguration — did you mean 'conntrack'?"]),
]

PLACEMENT = [
    (text('pod_subnet = "10.244.0.0/24"'),
     ["line 4: [cluster] pod_subnet 10.244.0.0/24 holds 1 node range(s) of /24 (the IPv4 default) but the inventory "
      "has 2 hosts", "use a /23 or larger"]),
    (text('pod_subnet = "10.244.0.0/24"', tail='[cluster.controller_manager]\n'
                                                'extra_args = { "node-cidr-mask-size" = 24 }'),
     ["holds 1 node range(s) of /24 ([cluster.controller_manager] extra_args 'node-cidr-mask-size')"]),
    (text('control_plane_endpoint = "10.244.0.5:6443"'),
     ["line 4: [cluster] control_plane_endpoint 10.244.0.5 lies inside pod_subnet 10.244.0.0/16"]),
    (text('control_plane_endpoint = "10.96.0.1:6443"'),
     ["[cluster] control_plane_endpoint 10.96.0.1 lies inside service_subnet 10.96.0.0/12"]),
]

RENDERED = [
    (text("image_repository = 'registry.example/\"x'"),
     ["line 4: [cluster] image_repository 'registry.example/\"x' cannot stand in containerd's config.toml"]),
    (text('image_repository = "registry.example/\\u0001x"'), ["line 4: [cluster] image_repository", "control"]),
    (text(tail='[cluster.apiserver]\nextra_args = { "audit-log-path" = "/var/log/${x}" }'),
     ["line 14: [cluster.apiserver] extra_args '/var/log/${x}' holds '${' or '{{', which kubefab's check of every "
      "rendered file takes for a placeholder left unfilled"]),
    (text(tail='[cluster.kubelet]\nconfig = { evictionHard = { "{{x}}" = "1" } }'),
     ["line 14: [cluster.kubelet] config '{{x}}' holds '${' or '{{'"]),
    (text(tail='[mirrors.registries]\n"docker.io" = ["https://m.example/\\nSystemdCgroup = false"]'),
     ["line 14: [mirrors.registries] docker.io 'https://m.example/\\nSystemdCgroup = false' cannot stand in "
      "containerd's hosts.toml"]),
]


@pytest.mark.parametrize("inventory_text,files,expected", CNI, ids=[e[0] for _, _, e in CNI])
def test_the_cni_manifest_is_checked_when_the_inventory_loads(tmp_path, inventory_text, files, expected):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, inventory_text, files)
    for part in expected:
        assert part in str(err.value)


@pytest.mark.parametrize("inventory_text,expected", TAINTS + FLAGS + PLACEMENT + RENDERED,
                         ids=[e[0] for _, e in TAINTS + FLAGS + PLACEMENT + RENDERED])
def test_what_would_fail_after_init_is_refused_with_its_line(tmp_path, inventory_text, expected):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, inventory_text)
    for part in expected:
        assert part in str(err.value)


def test_what_kubernetes_accepts_loads(tmp_path):
    good = text('pod_subnet = "10.244.0.0/24"\ncni_manifest = "net.yaml"\ncontrol_plane_endpoint = "10.0.0.5:6443"',
                cp='taints = ["node-role.kubernetes.io/control-plane:NoSchedule", "a.example.com/k=v_1.x:NoExecute"]',
                worker=f'taints = ["k:NoSchedule", "k:NoExecute", "k=v:PreferNoSchedule", "{"p" * 253}/{"n" * 63}='
                       f'{"v" * 63}:NoSchedule"]',
                tail='[cluster.controller_manager]\nextra_args = { "node-cidr-mask-size-ipv4" = "25", '
                     '"cluster-cidr" = "10.244.0.0/24", "service_cluster_ip_range" = "10.96.0.0/12", '
                     '"cluster-name" = "t" }\n'
                     '[cluster.kubelet]\nextra_args = { "v" = 4, "eviction-hard" = "memory.available<100Mi" }\n'
                     'config = { maxPods = 2147483647, syncFrequency = "1m30.5s", cgroupDriver = "systemd", '
                     'evictionHard = { "memory.available" = "100Mi" }, featureGates = { "A" = true }, '
                     'registerWithTaints = [{ key = "a", effect = "NoSchedule" }], '
                     'staticPodURLHeader = { "X" = ["a", "b"] }, logging = { format = "json" }, '
                     'memoryThrottlingFactor = 1 }\n'
                     '[cluster.kube_proxy]\nconfig = { mode = "iptables", conntrack = { maxPerCore = 0 } }\n')
    inv = load(tmp_path, good, {"net.yaml": flannel("10.244.0.0/24")})
    assert inv.hosts[1].taints[3].endswith(":NoSchedule")
    assert inv.cluster.kubelet.config["syncFrequency"] == "1m30.5s"


BAD_PLANS = [
    ("taints", text(worker='taints = ["a=1:NoSchedule", "a=2:NoSchedule"]'), {}),
    ("cni_manifest", text('cni_manifest = "missing.yaml"'), {}),
    ("kubelet config", text(tail='[cluster.kubelet]\nconfig = { maxPod = 110 }'), {}),
    ("cgroupDriver", text(tail='[cluster.kubelet]\nconfig = { cgroupDriver = "cgroupfs" }'), {}),
    ("image_repository", text("image_repository = 'registry.example/\"x'"), {}),
    ("extra_args value", text(tail='[cluster.apiserver]\nextra_args = { "audit-log-path" = "/var/log/${x}" }'), {}),
    ("mirror URL", text(tail='[mirrors.registries]\n"docker.io" = ["https://m.example/\\nx"]'), {}),
    ("capacity", text('pod_subnet = "10.244.0.0/24"'), {}),
]


@pytest.mark.parametrize("inventory_text,files", [b[1:] for b in BAD_PLANS], ids=[b[0] for b in BAD_PLANS])
def test_a_bad_inventory_plans_nothing_and_writes_no_state(tmp_path, inventory_text, files):
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "inventory.toml").write_text(inventory_text)
    state = tmp_path / "state"
    state.mkdir()
    run = invoke("cluster.plan", "-i", str(tmp_path / "inventory.toml"), "--state-dir", str(state))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "problem(s):" in run.stderr and "  - line " in run.stderr
    assert "Traceback" not in run.stdout + run.stderr and "templates/" not in run.stderr
    assert list(state.iterdir()) == []


# Every inventory string that reaches a rendered file, with each value the rendering refuses: a text template (TOML)
# takes no quote, backslash or control character, and no rendered file may hold what looks like an unfilled
# placeholder. On main each of these planned on until rendering, after the PKI was written, naming kubefab's template.
TOML_UNFIT, PLACEHOLDERS = ('a"b', "a\nb", "a\\b", "a\x01b"), ("a${x}", "a{{x}}")
REACHING = [
    ("image_repository", lambda v: text(f"image_repository = {toml_string(v)}"), TOML_UNFIT + PLACEHOLDERS),
    ("mirror", lambda v: text(tail=f'[mirrors.registries]\n"docker.io" = [{toml_string("https://m.example/" + v)}]'),
     TOML_UNFIT + PLACEHOLDERS),
    *((f"{table} extra_args", lambda v, t=table: text(tail=f"[cluster.{t}]\nextra_args = {{ x = {toml_string(v)} }}"),
       PLACEHOLDERS) for table in ("apiserver", "controller_manager", "scheduler", "kubelet")),
    ("kubelet config", lambda v: text(tail=f"[cluster.kubelet]\nconfig.featureGates.{toml_string(v)} = true"),
     PLACEHOLDERS),
    ("kube_proxy config", lambda v: text(tail=f"[cluster.kube_proxy]\nconfig.hostnameOverride = {toml_string(v)}"),
     PLACEHOLDERS),
]


def toml_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\x01", "\\u0001") + '"'


@pytest.mark.parametrize("what,make,values", REACHING, ids=[r[0] for r in REACHING])
def test_no_value_that_rendering_refuses_gets_past_the_load(tmp_path, what, make, values):
    for value in values:
        with pytest.raises(InventoryError, match=r"  - line 1?\d: \[") as err:
            load(tmp_path, make(value))
        assert "templates/" not in str(err.value), (what, value)
