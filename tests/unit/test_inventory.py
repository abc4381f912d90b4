"""inventory.toml: what a user sees for good and bad input."""

import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from kubefab import inventory
from kubefab.errors import InventoryError, KubefabError
from kubefab.inventory import locate

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
[cluster]
name = "prod"
kubernetes_version = "1.33.5"

[ssh]
user = "ops"
sudo = true

[hosts.cp-1]
address = "10.0.0.11"
roles = ["control-plane"]

[hosts.w-1]
address = "10.0.0.21"
roles = ["worker"]
labels = { zone = "a", "topology.kubernetes.io/zone" = "eu-1a", "empty" = "" }
taints = ["dedicated=infra:NoSchedule"]
ssh.user = "root"
ssh.sudo = false
"""


def load(tmp_path, text, **kw):
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return inventory.load(path, **kw)


def test_good_inventory_resolves_defaults_once(tmp_path):
    inv = load(tmp_path, GOOD)
    assert inv.cluster.service_subnet == "10.96.0.0/12"
    assert inv.endpoint == "10.0.0.11:6443"
    assert inv.state_dir == (tmp_path / ".kubefab" / "prod").resolve()
    cp, w = inv.hosts
    assert cp.ssh.user == "ops" and cp.ssh.sudo
    assert w.ssh.user == "root" and not w.ssh.sudo
    assert w.internal_address == "10.0.0.21"
    assert [h.name for h in inv.control_planes] == ["cp-1"]
    assert [h.name for h in inv.non_control_planes] == ["w-1"]
    assert w.labels == {"zone": "a", "topology.kubernetes.io/zone": "eu-1a", "empty": ""}
    assert w.taints == ("dedicated=infra:NoSchedule",) and w.roles == ("worker",)
    with pytest.raises(FrozenInstanceError):
        inv.cluster.name = "other"


def test_committed_inventory_is_the_vagrant_lab():
    inv = inventory.load(ROOT / "inventory.toml")
    assert [(h.name, h.address, h.roles) for h in inv.hosts] == [
        ("k8s-master", "192.168.56.10", ("control-plane",)),
        ("k8s-s2", "192.168.56.11", ("worker",)),
        ("k8s-s3", "192.168.56.12", ("worker",)),
    ]
    assert not inv.warnings


@pytest.mark.parametrize("given,endpoint,host", [
    ("", "10.0.0.11:6443", "10.0.0.11"),
    ("api.prod.internal", "api.prod.internal:6443", "api.prod.internal"),
    ("10.0.0.5:8443", "10.0.0.5:8443", "10.0.0.5"),
    ("fd00::5", "[fd00::5]:6443", "fd00::5"),
    ("[fd00::5]:8443", "[fd00::5]:8443", "fd00::5"),
])
def test_control_plane_endpoint_resolves_to_host_and_port(tmp_path, given, endpoint, host):
    text = edit('name = "prod"', f'name = "prod"\ncontrol_plane_endpoint = "{given}"') if given else GOOD
    inv = load(tmp_path, text)
    assert (inv.endpoint, inv.endpoint_host) == (endpoint, host)


def test_state_dir_override(tmp_path):
    inv = load(tmp_path, GOOD, state_dir=tmp_path / "elsewhere")
    assert inv.state_dir == (tmp_path / "elsewhere").resolve()


def test_relative_ssh_paths_resolve_next_to_the_inventory(tmp_path):
    inv = load(tmp_path, GOOD.replace('user = "ops"', 'user = "ops"\nidentity_file = "keys/id"'))
    assert inv.hosts[0].ssh.identity_file == str(tmp_path.resolve() / "keys" / "id")


def edit(old, new):
    assert old in GOOD, old
    return GOOD.replace(old, new)


BAD = [
    # (inventory text, substrings the error must contain)
    (edit('name = "prod"', 'name = "prod'), ["line 2", "column", "TOML syntax error"]),
    (edit('name = "prod"', 'name = "prod"\nkubernetes_versoin = "1.33.5"'),
     ["line 3", "[cluster] kubernetes_versoin is not a known key", "did you mean 'kubernetes_version'"]),
    (edit('[ssh]', '[shh]'), ["[shh] is not a known table", "did you mean 'ssh'"]),
    (edit('address = "10.0.0.21"', 'address = "10.0.0.11"'),
     ["[hosts.w-1] address", "10.0.0.11 is also the address of [hosts.cp-1]"]),
    (edit('[hosts.w-1]', '[hosts.W_1]'), ["[hosts.W_1]", "not a lowercase RFC 1123 name", "'w-1'"]),
    (edit('address = "10.0.0.21"', 'address = "10.0.0"'),
     ["line 14", "[hosts.w-1] address '10.0.0' is not an IP address", "use the address sshd listens on"]),
    (edit('roles = ["control-plane"]', 'roles = ["worker"]'), ["line 9: [hosts] has no host with role 'control-plane'"]),
    (edit('kubernetes_version = "1.33.5"', 'kubernetes_version = "1.33.5"\npod_subnet = "10.96.0.0/16"'),
     ["pod_subnet", "overlaps service_subnet 10.96.0.0/12"]),
    (edit('kubernetes_version = "1.33.5"', 'kubernetes_version = "1.33.5"\npod_subnet = "10.0.0.0/16"'),
     ["[hosts.cp-1] address", "10.0.0.11 lies inside pod_subnet 10.0.0.0/16"]),
    (edit('kubernetes_version = "1.33.5"', 'kubernetes_version = "1.29.0"'),
     ["'1.29.0' is not supported", "1.31 to 1.34"]),
    (edit('kubernetes_version = "1.33.5"', 'kubernetes_version = "latest"'), ["'latest' is not a version"]),
    (edit('roles = ["worker"]', 'roles = ["wroker"]'), ["[hosts.w-1] roles has 'wroker'"]),
    (edit('taints = ["dedicated=infra:NoSchedule"]', 'taints = ["dedicated=infra:Never"]'),
     ["[hosts.w-1] taints", "'dedicated=infra:Never'", "NoSchedule"]),
    (edit('name = "prod"', 'name = "prod"\ncni = "weave"'), ["[cluster] cni is 'weave'", "'flannel'"]),
    (edit('name = "prod"', 'name = "prod"\nencryption_algorithm = "ECDSA-P384"'), ["'ECDSA-P384' needs Kubernetes 1.34"]),
    (edit('name = "prod"', 'name = "prod"\nservice_subnet = "10.96.0.1/12"'), ["service_subnet", "host bits zero"]),
    (edit('name = "prod"', 'name = "prod"\nservice_subnet = "10.0.0.0/8"'), ["larger than kubeadm allows"]),
    (edit('name = "prod"', 'name = "prod"\ncontrol_plane_endpoint = "api:http"'), ["control_plane_endpoint", "no valid port"]),
    (edit('name = "prod"', 'name = "prod"\nworker_batch_size = "2"'), ["worker_batch_size must be a whole number"]),
    (edit('name = "prod"', 'name = "prod"\ntoken_ttl = "1 day"'), ["token_ttl", "'24h'"]),
    (edit('sudo = true', 'sudo = true\nknown_hosts = "yes"'), ["[ssh] known_hosts is 'yes'", "'accept-new'"]),
    (edit('ssh.sudo = false', 'ssh.sudo = false\nssh.port = 0'), ["line 20: [hosts.w-1.ssh] port", "not a TCP port"]),
    (edit('ssh.sudo = false', 'ssh.sudo = true'), ["[hosts.w-1.ssh] sudo is true but user is 'root'"]),
    (edit('name = "prod"', 'name = "prod"\n[cluster.apiserver]\ncert_sans = ["api example"]'),
     ["[cluster.apiserver] cert_sans", "'api example'"]),
    (GOOD + '\n[mirrors]\npackage_repository = "https://mirror.example/k8s stable"\n',
     ["[mirrors] package_repository", "holds a space (write %20), which a URL may not"]),
    (GOOD + '\n[mirrors]\npackage_repository = "https:/mirror.example/core:/stable:"\n',
     ["[mirrors] package_repository", "'https:/mirror.example/core:/stable:' names no host"]),
    (GOOD + '\n[mirrors.registries]\n"docker.io" = ["mirror.example"]\n', ["[mirrors.registries] docker.io", "http(s)://"]),
    (GOOD + '\n[mirrors.registries]\n"_default" = ["https://m.example"]\n', ["[mirrors.registries] _default",
                                                                             "must be a registry host"]),
    (edit('zone = "a", ', '"zone rack" = "a", '), ["[hosts.w-1] labels", "'zone rack'",
                                                                          "not a Kubernetes label key"]),
    (edit('zone = "a", ', 'zone = "a b", '), ["[hosts.w-1] labels", "'zone' = 'a b'"]),
]


def cluster(extra):
    """GOOD with `extra` lines at the end of [cluster] (from line 4 on)."""
    return edit('kubernetes_version = "1.33.5"\n', f'kubernetes_version = "1.33.5"\n{extra}\n')


# Every list and table element has its type checked (TOML 1.0 allows mixed arrays), with its line.
BAD += [
    (cluster('[cluster.apiserver]\ncert_sans = [1, 2]'),
     ["line 5: [cluster.apiserver] cert_sans must be a list of strings: item 1 is 1"]),
    (cluster('[cluster.apiserver]\ncert_sans = ["api.example.com", 1.5]'),
     ["line 5: [cluster.apiserver] cert_sans must be a list of strings: item 2 is 1.5"]),
    (edit('zone = "a", ', 'zone = 1, '), ["line 16: [hosts.w-1] labels must be a table of strings: 'zone' is 1"]),
    (edit('taints = ["dedicated=infra:NoSchedule"]', 'taints = [true]'),
     ["line 17: [hosts.w-1] taints must be a list of strings: item 1 is True"]),
    (edit('roles = ["worker"]', 'roles = [["worker"]]'),
     ["line 15: [hosts.w-1] roles must be a list of strings: item 1 is ['worker']"]),
    (edit('roles = ["worker"]', 'roles = "worker"'), ["line 15: [hosts.w-1] roles must be a list of strings, "
                                                      "not 'worker'"]),
    (GOOD + '\n[mirrors.registries]\n"docker.io" = ["https://m.example", 5]\n',
     ["line 22: [mirrors] registries must be a table of lists of strings: 'docker.io' item 2 is 5"]),
    (cluster('[cluster.scheduler]\nextra_args = { "v" = 1.5 }'),
     ["line 5: [cluster.scheduler] extra_args must be a table of strings, whole numbers or true/false values: "
      "'v' is 1.5"]),
    (cluster('control_plane_endpoint = 6443'), ["line 4: [cluster] control_plane_endpoint must be a string"]),
    (edit('ssh.user = "root"\nssh.sudo = false', 'ssh = 5'), ["line 18: [hosts.w-1.ssh] must be a table"]),
]

# Networks as kubeadm checks them: sizes per family, dual-stack pairs, the pod subnet against the per-node mask.
BAD += [
    (cluster('service_subnet = "fd00::/64"'),
     ["line 4: [cluster] service_subnet 'fd00::/64' is larger than kubeadm allows: /108 at most for IPv6"]),
    (cluster('service_subnet = "10.96.0.0/12,fd00::/64"'), ["'fd00::/64' is larger than kubeadm allows"]),
    (cluster('service_subnet = "10.96.0.0/12,10.112.0.0/12"'),
     ["[cluster] service_subnet '10.96.0.0/12,10.112.0.0/12' must be one network, or two for dual-stack: one "
      "IPv4 and one IPv6"]),
    (cluster('pod_subnet = "10.244.0.0/16,fd00:1::/56,fd00:2::/56"'), ["pod_subnet", "two for dual-stack"]),
    (cluster('pod_subnet = "10.244.0.0/16, fd00:1::/56"'), ["pod_subnet", "not a network in CIDR form"]),
    (cluster('pod_subnet = "10.244.0.0/25"'),
     ["line 4: [cluster] pod_subnet '10.244.0.0/25' is smaller than the /24 each node gets from it (the IPv4 "
      "default)"]),
    (cluster('pod_subnet = "10.244.0.0/16,fd00:10:244::/72"'),
     ["'fd00:10:244::/72' is smaller than the /64 each node gets from it (the IPv6 default)"]),
    (cluster('pod_subnet = "10.244.0.0/20"\n[cluster.controller_manager]\n'
             'extra_args = { "node-cidr-mask-size-ipv4" = "19" }'),
     ["[cluster] pod_subnet '10.244.0.0/20' is smaller than the /19 each node gets from it "
      "([cluster.controller_manager] extra_args 'node-cidr-mask-size-ipv4')"]),
    (cluster('pod_subnet = "10.244.0.0/16"\n[cluster.controller_manager]\nextra_args = { "node-cidr-mask-size" = 12 }'),
     ["'10.244.0.0/16' is smaller than the /12 each node gets from it ([cluster.controller_manager] extra_args "
      "'node-cidr-mask-size')"]),
    (cluster('pod_subnet = "10.244.0.0/25"\n[cluster.controller_manager]\n'
             'extra_args = { "node-cidr-mask-size" = "26" }'),
     ["smaller than the /24 each node gets from it (the IPv4 default; kubeadm reads 'node-cidr-mask-size-ipv4', "
      "not 'node-cidr-mask-size')"]),
    (cluster('pod_subnet = "10.244.0.0/16,fd00:10:244::/56"\n[cluster.controller_manager]\n'
             'extra_args = { "node-cidr-mask-size" = "24" }'),
     ["line 6: [cluster.controller_manager] extra_args sets 'node-cidr-mask-size', which kube-controller-manager "
      "refuses with a dual-stack pod_subnet"]),
    (cluster('[cluster.controller_manager]\nextra_args = { "node-cidr-mask-size-ipv4" = "big" }'),
     ["[cluster.controller_manager] extra_args 'node-cidr-mask-size-ipv4' = 'big' is not a whole number"]),
    (cluster('pod_subnet = "12.0.0.0/7"'), ["'12.0.0.0/7' holds more than 2^16 node ranges of /24"]),
    (cluster('service_subnet = "fd00:10:96::/112"'),
     ["line 11: [hosts.cp-1] address 10.0.0.11 is IPv4 but the (first) service_subnet fd00:10:96::/112 is IPv6",
      "give it an IPv6 internal_address, or use an IPv4 service_subnet"]),
    (cluster('pod_subnet = "10.244.0.0/16,fd00:10:244::/56"\nservice_subnet = "fd00:10:96::/112,10.96.0.0/12"'),
     ["[hosts.cp-1] address 10.0.0.11 is IPv4", "list 10.96.0.0/12 first in service_subnet"]),
    (cluster('pod_subnet = "10.244.0.0/16,fd00:10:96::/56"\nservice_subnet = "10.96.0.0/12,fd00:10:96::/112"'),
     ["pod_subnet fd00:10:96::/56 overlaps service_subnet fd00:10:96::/112"]),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[e[0] for _, e in BAD])
def test_bad_inventory_names_file_place_and_fix(tmp_path, text, expected):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, text)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "inventory.toml"))
    for part in expected:
        assert part in message


@pytest.mark.parametrize("subnets,nodes", [
    ('pod_subnet = "10.244.0.0/16,fd00:10:244::/56"\nservice_subnet = "10.96.0.0/12,fd00:10:96::/112"', ""),
    ('pod_subnet = "10.244.0.0/25"', '"node-cidr-mask-size-ipv4" = "26"'),
    ('pod_subnet = "fd00:10:244::/56"\nservice_subnet = "10.96.0.0/12,fd00:10:96::/108"', ""),
    ('pod_subnet = "10.244.0.0/25"', '"node-cidr-mask-size-ipv4" = 26, "node-cidr-mask-size" = 27'),
])
def test_networks_kubeadm_accepts(tmp_path, subnets, nodes):
    text = cluster('cni = "none"\n' + subnets + (f'\n[cluster.controller_manager]\nextra_args = {{ {nodes} }}' if nodes else ""))
    inv = load(tmp_path, text)
    assert (inv.cluster.pod_subnet, inv.cluster.service_subnet) == tuple(
        dict(line.split(" = ") for line in subnets.splitlines()).get(k, d).strip('"')
        for k, d in (("pod_subnet", "10.244.0.0/16"), ("service_subnet", "10.96.0.0/12")))


def test_toml_1_0_is_read(tmp_path):
    """Whitespace around a dotted key's dots is TOML 1.0 (the old `toml` reader took it for a key 'ssh ')."""
    inv = load(tmp_path, edit('ssh.user = "root"', 'ssh . port = 2222\n"ssh".user = "root"'))
    assert (inv.host("w-1").ssh.port, inv.host("w-1").ssh.user) == (2222, "root")


def test_problems_in_inline_tables_and_dotted_headers_keep_their_line(tmp_path):
    text = GOOD + ('\n[hosts."w-2"]\naddress = "10.0.0.22"\nroles = ["worker"]\n'
                   'ssh = { user = "root", sudo = true }\n[hosts.w-3]\nroles = ["worker"]\n')
    with pytest.raises(InventoryError) as err:
        load(tmp_path, text)
    assert err.value.problems == (
        "line 24: [hosts.w-2.ssh] sudo is true but user is 'root' — drop sudo or log in as a user with sudo rights",
        "line 25: [hosts.w-3] address is missing — give the IP address sshd listens on")


def test_the_locator_skips_values_that_look_like_keys():
    text = '[a]\ns = """\nb = 1\n"""\narr = [\n  { c = 1 },  # x = 1\n]\n"q\\"k" . x = 2\nlast = { d.e = 3 }\n'
    found = locate.lines(text)
    assert (found[("a", "s")], found[("a", 'q"k', "x")], found[("a", "last", "d", "e")]) == (2, 8, 9)
    assert not {("a", "b"), ("a", "c"), ("c",), ("a", "x"), ("x",)} & set(found)


def test_every_problem_is_reported_at_once(tmp_path):
    text = edit('address = "10.0.0.21"', 'address = "nope"').replace(
        'name = "prod"', 'name = "prod"\ncni = "weave"\ndns_domain = "Cluster.Local"')
    with pytest.raises(InventoryError) as err:
        load(tmp_path, text)
    assert len(err.value.problems) == 3
    assert "[hosts.w-1] address" in str(err.value) and "cni" in str(err.value) and "dns_domain" in str(err.value)


def test_even_number_of_control_planes_is_a_warning(tmp_path):
    inv = load(tmp_path, edit('roles = ["worker"]', 'roles = ["control-plane"]'))
    assert any("2 control-plane nodes" in w and "odd" in w for w in inv.warnings)
    assert any("control_plane_endpoint" in w for w in inv.warnings)


def test_unknown_host_suggests_close_names(tmp_path):
    inv = load(tmp_path, GOOD)
    with pytest.raises(KubefabError, match=r"no host named 'w1'.*did you mean 'w-1'"):
        inv.host("w1")
    with pytest.raises(KubefabError, match=r"hosts are: cp-1, w-1"):
        inv.select(["zzz"])
    assert [h.name for h in inv.select(["w-1"])] == ["w-1"]


def test_missing_inventory_file_is_a_clear_error(tmp_path):
    with pytest.raises(KubefabError, match="no such inventory"):
        inventory.load(tmp_path / "absent.toml")


def test_cli_reports_problems_without_traceback(tmp_path):
    bad = tmp_path / "inventory.toml"
    bad.write_text(edit('address = "10.0.0.21"', 'address = "10.0.0"'))
    run = subprocess.run([sys.executable, "-m", "invoke", "cluster.plan", "-i", str(bad)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0
    assert "is not an IP address" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
