"""Values that parse but are not what they seem: node addresses, trailing newlines, non-ASCII digits, versions,
SSH settings and numbers out of range. Each is refused with its line and its fix, or accepted when it is valid."""

import io
import subprocess
import sys

import pytest
from test_inventory import GOOD, ROOT, cluster, edit, load

from kubefab import facts, inventory, net
from kubefab.components import kubeadm
from kubefab.errors import InventoryError, KubefabError
from kubefab.facts import FactsError
from kubefab.inventory import vagrant
from kubefab.pki import token
from kubefab.remote import script, ssh
from kubefab.run import execute, session
from kubefab.steps import Command


def problems(tmp_path, text):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, text)
    return err.value.problems


def ssh_line(line):
    return edit('user = "ops"', line) if line.startswith("user =") else edit('sudo = true', f'sudo = true\n{line}')


def one_problem(tmp_path, text):
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


# -- node addresses -----------------------------------------------------------------------------------

NOT_A_NODE = [
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("::ffff:10.0.0.21", "IPv4-mapped"), ("2001:db8::21%eth0", "zone"),
]


@pytest.mark.parametrize("value,kind", NOT_A_NODE)
def test_an_address_that_cannot_be_a_node_is_refused_with_line_and_fix(tmp_path, value, kind):
    message = one_problem(tmp_path, edit('address = "10.0.0.21"', f'address = "{value}"'))
    assert message.startswith(f"line 14: [hosts.w-1] address '{value}' is ") and kind in message
    assert message.endswith("use the address sshd listens on")
    message = one_problem(tmp_path, edit('address = "10.0.0.21"', f'address = "10.0.0.21"\n'
                                                                  f'internal_address = "{value}"'))
    assert message.startswith(f"line 15: [hosts.w-1] internal_address '{value}' is ") and kind in message
    assert message.endswith("use the address other nodes reach this one on")


@pytest.mark.parametrize("value,kind", NOT_A_NODE + [("localhost", "loopback name"), ("api.localhost", "loopback")])
def test_a_control_plane_endpoint_that_no_node_can_dial_is_refused(tmp_path, value, kind):
    host = f"[{value}]" if ":" in value else value
    message = one_problem(tmp_path, cluster(f'control_plane_endpoint = "{host}:6443"'))
    assert message.startswith(f"line 4: [cluster] control_plane_endpoint '{host}:6443': '{value}' is ")
    assert kind in message and "use the address of a load balancer or VIP" in message


def test_an_empty_address_or_role_list_is_an_error_not_a_silent_default(tmp_path):
    assert one_problem(tmp_path, edit('address = "10.0.0.21"', 'address = ""')) == (
        "line 14: [hosts.w-1] address is empty — give the IP address sshd listens on")
    assert one_problem(tmp_path, edit('roles = ["worker"]', 'roles = []')) == (
        "line 15: [hosts.w-1] roles is empty — give ['control-plane', 'worker'] or one of them")
    assert one_problem(tmp_path, edit('roles = ["worker"]', 'roles = "worker"')).endswith(
        "roles must be a list of strings, not 'worker'")        # a wrong type is that, not also 'empty'


@pytest.mark.parametrize("value", ["10.0.0.21", "192.168.56.11", "fd00::21", "2001:db8::21", "100.64.0.21"])
def test_unicast_addresses_are_accepted(tmp_path, value):
    assert load(tmp_path, edit('address = "10.0.0.21"', f'address = "{value}"')).host("w-1").address == value


# -- full matches: `$` also matches before a trailing newline ------------------------------------------

NEWLINE = {
    "host name": edit("[hosts.w-1]", '[hosts."w-1\\n"]'),
    "address": edit('address = "10.0.0.21"', 'address = "10.0.0.21\\n"'),
    "internal_address": edit('address = "10.0.0.21"', 'address = "10.0.0.21"\ninternal_address = "10.0.0.9\\n"'),
    "label key": edit('zone = "a"', '"zone\\n" = "a"'),
    "label value": edit('zone = "a"', 'zone = "a\\n"'),
    "taint": edit('"dedicated=infra:NoSchedule"', '"dedicated=infra:NoSchedule\\n"'),
    "cert SAN": cluster('[cluster.apiserver]\ncert_sans = ["api.example.com\\n"]'),
    "cluster name": edit('name = "prod"', 'name = "prod\\n"'),
    "dns_domain": cluster('dns_domain = "cluster.local\\n"'),
    "token_ttl": cluster('token_ttl = "24h\\n"'),
    "kubernetes_version": edit('"1.33.5"', '"1.33.5\\n"'),
    "control_plane_endpoint": cluster('control_plane_endpoint = "api.example.com:6443\\n"'),
    "registry name": GOOD + '\n[mirrors.registries]\n"docker.io\\n" = ["https://m.example"]\n',
    "node mask": cluster('[cluster.controller_manager]\nextra_args = { "node-cidr-mask-size-ipv4" = "24\\n" }'),
    "ssh user": edit('user = "ops"', 'user = "ops\\n"'),
    "gateway": edit('sudo = true', 'sudo = true\ngateway = "ops@bastion:22\\n"'),
    "sudo_password_env": edit('sudo = true', 'sudo = true\nsudo_password_env = "SUDO_PW\\n"'),
}


@pytest.mark.parametrize("field", NEWLINE)
def test_a_trailing_newline_is_refused_in_every_pattern_checked_field(tmp_path, field):
    assert problems(tmp_path, NEWLINE[field])


def test_a_key_with_a_newline_is_shown_quoted_and_escaped(tmp_path):
    assert one_problem(tmp_path, NEWLINE["host name"]).startswith('line 13: [hosts."w-1\\n"] name ')


LONG_LABEL, LONG_NAME = "a" * 64, ".".join(["a" * 63] * 4)       # 64 characters; 255 characters


@pytest.mark.parametrize("text,says", [
    (cluster(f'[cluster.apiserver]\ncert_sans = ["{LONG_LABEL}.example.com"]'), "[cluster.apiserver] cert_sans entry"),
    (cluster(f'[cluster.apiserver]\ncert_sans = ["{LONG_NAME}"]'), "[cluster.apiserver] cert_sans entry"),
    (cluster(f'dns_domain = "{LONG_NAME}"'), "[cluster] dns_domain"),
    (cluster(f'control_plane_endpoint = "{LONG_LABEL}.example.com:6443"'), "[cluster] control_plane_endpoint"),
    (edit('zone = "a"', f'"{LONG_NAME}/zone" = "a"'), "[hosts.w-1] labels key"),
    (ssh_line(f'gateway = "ops@{LONG_LABEL}.example.com"'), "[ssh] gateway"),
])
def test_dns_names_keep_to_63_characters_a_label_and_253_in_all(tmp_path, text, says):
    assert any(says in m for m in problems(tmp_path, text))


# -- ASCII digits only ----------------------------------------------------------------------------------

NOT_ASCII = {
    "version": (edit('"1.33.5"', '"1.33.٥"'), "line 3: [cluster] kubernetes_version '1.33.٥' is not a version"),
    "endpoint port": (cluster('control_plane_endpoint = "api.example.com:¹"'),
                      "line 4: [cluster] control_plane_endpoint 'api.example.com:¹' has no valid port"),
    "endpoint port, Arabic": (cluster('control_plane_endpoint = "api.example.com:٦٤٤٣"'), "has no valid port"),
    "endpoint port, 5000 digits": (cluster(f'control_plane_endpoint = "api.example.com:{"6" * 5000}"'),
                                   "has no valid port"),
    "node mask": (cluster('[cluster.controller_manager]\nextra_args = { "node-cidr-mask-size-ipv4" = "²⁴" }'),
                  "line 5: [cluster.controller_manager] extra_args 'node-cidr-mask-size-ipv4' = '²⁴' is not"),
    "registry port": (GOOD + '\n[mirrors.registries]\n"registry.local:٥٠٠٠" = ["https://m.example"]\n',
                      "line 22: [mirrors.registries] registry.local:٥٠٠٠ must be a registry host"),
    "gateway port": (edit('sudo = true', 'sudo = true\ngateway = "ops@bastion:²²"'), "has no valid port"),
    "token_ttl": (cluster('token_ttl = "٢h"'), "line 4: [cluster] token_ttl '٢h' is not a duration"),
}


@pytest.mark.parametrize("name", NOT_ASCII)
def test_only_ascii_digits_are_numbers(tmp_path, name):
    text, says = NOT_ASCII[name]
    assert any(says in m for m in problems(tmp_path, text))


READY = (ROOT / "tests" / "data" / "facts" / "ready.txt").read_text()


@pytest.mark.parametrize("old,new,says", [("cpus=4", "cpus=٤", "cpus='٤' is not a whole number"),
                                           ("cpus=4", "cpus=¹", "cpus='¹' is not a whole number"),
                                           ("clock=1795960000.250000000", "clock=nan", "clock='nan' is not a number"),
                                           ("tcp.listen=0016 ", "tcp.listen=0016 ٢٢ ", "port '٢٢' is not hexadecimal"),
                                           ("tcp.listen=0016 ", "tcp.listen=0016 1_6 ", "port '1_6' is not hex")])
def test_a_hosts_probe_output_counts_in_ascii_digits_too(old, new, says):
    assert old in READY
    with pytest.raises(FactsError, match=says):
        facts.parse("kf-w3", READY.replace(old, new))


def test_a_step_report_with_other_digits_is_not_a_step():
    steps = (Command("one", "true"),)
    assert script.parse(steps, "@@n ٠ ok 0 1 2\n@@n end\n", "n")[0].detail.startswith("no report")


# -- kubernetes_version ------------------------------------------------------------------------------

def test_a_leading_v_is_accepted_and_kept_once(tmp_path):
    inv = load(tmp_path, edit('kubernetes_version = "1.33.5"', 'kubernetes_version = "v1.33.5"'))
    assert inv.cluster.kubernetes_version == "1.33.5" and inv.cluster.minor == 33
    assert "registry.k8s.io/kube-apiserver:v1.33.5" in kubeadm.images(inv)


@pytest.mark.parametrize("version,says", [("2.33.5", "'2.33.5' is not supported"),
                                          ("0.33.5", "'0.33.5' is not supported"),
                                          ("1.033.5", "'1.033.5' is not a version"),
                                          ("01.33.5", "'01.33.5' is not a version"),
                                          ("1.33.05", "'1.33.05' is not a version"),
                                          ("vv1.33.5", "'vv1.33.5' is not a version"),
                                          ("V1.33.5", "'V1.33.5' is not a version")])
def test_a_major_other_than_1_and_leading_zeros_are_refused(tmp_path, version, says):
    message = one_problem(tmp_path, edit('"1.33.5"', f'"{version}"'))
    assert message.startswith("line 3: [cluster] kubernetes_version ") and says in message


# -- SSH settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("line,says", [
    ('user = ""', "line 6: [ssh] user '' is not a login name"),
    ('user = "o ps"', "[ssh] user 'o ps' is not a login name"),
    ('gateway = "ops@bastion:0"', "line 8: [ssh] gateway 'ops@bastion:0' has no valid port (1-65535)"),
    ('gateway = "ops@bastion:65536"', "has no valid port"),
    ('gateway = "ops@bastion:"', "has no valid port"),
    ('gateway = "ops@[2001:db8::1"', "has no valid port"),
    ('gateway = "@bastion"', "gateway '@bastion' has the user '', which is not a login name"),
    ('gateway = "ops@bad host"', "has the host 'bad host', which is neither an IP address nor a DNS name"),
    ('connect_timeout = -1', "line 8: [ssh] connect_timeout is -1 — give seconds above 0 and at most 3600"),
    ('connect_timeout = 0', "connect_timeout is 0 —"),
    ('connect_timeout = nan', "connect_timeout is nan —"),
    ('connect_timeout = inf', "connect_timeout is inf —"),
    ('connect_timeout = 1e300', "connect_timeout is 1e+300 —"),
    ('sudo_password_env = "1PASSWORD"', "line 8: [ssh] sudo_password_env '1PASSWORD' is not an environment variable"),
    ('sudo_password_env = "$PW"', "sudo_password_env '$PW' is not an environment variable name"),
    ('sudo_password_env = "MY PW"', "sudo_password_env 'MY PW' is not an environment variable name"),
])
def test_bad_ssh_settings_are_refused_with_line_and_fix(tmp_path, line, says):
    assert any(says in m for m in problems(tmp_path, ssh_line(line))), problems(tmp_path, ssh_line(line))


@pytest.mark.parametrize("gateway,parts", [
    ("ops@[2001:db8::1]:22", ("ops", "2001:db8::1", 22)),
    ("[2001:db8::1]:2222", (None, "2001:db8::1", 2222)),
    ("2001:db8::1", (None, "2001:db8::1", 22)),
    ("ops@bastion.example.com", ("ops", "bastion.example.com", 22)),
    ("Bastion-1:2200", (None, "Bastion-1", 2200)),
    ("ops@10.0.0.1:22", ("ops", "10.0.0.1", 22)),
])
def test_valid_gateways_are_accepted_and_the_ssh_module_dials_what_they_say(tmp_path, gateway, parts):
    inv = load(tmp_path, ssh_line(f'gateway = "{gateway}"'))
    assert net.gateway_parts(inv.host("cp-1").ssh.gateway) == parts
    dialed = []
    hosts = ssh.Hosts()
    hosts._open = lambda via: dialed.append((via.ssh.user, via.address, via.ssh.port)) or object()
    hosts._gateway(inv.host("cp-1"))
    assert dialed == [(parts[0] or "ops", parts[1], parts[2])]


@pytest.mark.parametrize("ttl", ["24h", "1.5h", "1h30m", "90m", "2h45m30.5s", "300ms", "1500us", "1µs", "1μs", "10ns",
                                 ".5h", "1.h", "0", "0s", "+1h", "2562047h", "0000000000000000000000001h",
                                 pytest.param("1." + "9" * 5000 + "h", id="a 5000-digit fraction")])
def test_token_ttl_takes_every_go_duration(tmp_path, ttl):
    assert load(tmp_path, cluster(f'token_ttl = "{ttl}"')).cluster.token_ttl == ttl


@pytest.mark.parametrize("ttl,says", [("-1h", "is not a duration"), ("1.5", "is not a duration"),
                                      ("h", "is not a duration"), (".h", "is not a duration"),
                                      ("1d", "is not a duration"), ("1h 30m", "is not a duration"),
                                      ("", "is not a duration"), ("2562048h", "longer than a Go duration holds"),
                                      pytest.param("9" * 5000 + "h", "longer than a Go duration holds",
                                                   id="5000 digits")])
def test_token_ttl_refuses_what_go_or_kubeadm_would_misread(tmp_path, ttl, says):
    message = one_problem(tmp_path, cluster(f'token_ttl = "{ttl}"'))
    assert message.startswith(f"line 4: [cluster] token_ttl '{ttl}' ") and says in message


def test_a_missing_identity_file_stops_a_run_before_any_connection(tmp_path, monkeypatch):
    monkeypatch.setattr(ssh.Hosts, "_open", lambda self, host: pytest.fail(f"connected to {host.address}"))
    text = edit('user = "ops"', 'user = "ops"\nidentity_file = "keys/id"').replace(
        'ssh.user = "root"', 'ssh.user = "root"\nssh.identity_file = "/nonexistent/id_w1"')
    inv = load(tmp_path, text)                                # the plan needs no key: load and plan still work
    with pytest.raises(InventoryError) as err:
        execute.preflight(inv, session.Options(), console=io.StringIO())
    assert err.value.problems == (
        f"line 7: [ssh] identity_file {tmp_path.resolve() / 'keys' / 'id'} is not a file — give the path of the "
        "private key to log in with (a relative path is relative to the inventory)",
        "line 20: [hosts.w-1.ssh] identity_file /nonexistent/id_w1 is not a file — give the path of the private key "
        "to log in with (a relative path is relative to the inventory)")
    assert not token.path(inv).exists()                      # stopped before the state dir's lock and token


# -- numbers out of range -------------------------------------------------------------------------------

@pytest.mark.parametrize("lines,says", [
    ("cert_validity_days = 3000000", "line 4: [cluster] cert_validity_days is 3000000 — give 1 to 106751 days"),
    ("ca_validity_days = 106752", "line 4: [cluster] ca_validity_days is 106752 — give 1 to 106751 days"),
    ("cert_validity_days = 0", "cert_validity_days is 0 — give 1 to 106751"),
    ("ca_validity_days = 9223372036854775807", "ca_validity_days is 9223372036854775807 —"),
    ("ca_validity_days = 300\ncert_validity_days = 365",
     "line 4: [cluster] ca_validity_days (300) is shorter than cert_validity_days (365): a leaf would outlive its "
     "CA and stop verifying first — raise ca_validity_days or lower cert_validity_days"),
    ("worker_batch_size = 0", "line 4: [cluster] worker_batch_size must be at least 1, not 0"),
    ('control_plane_endpoint = "api.example.com:65536"', "control_plane_endpoint 'api.example.com:65536' has no "
                                                         "valid port"),
    ('control_plane_endpoint = "api.example.com:0"', "has no valid port"),
])
def test_numbers_out_of_range_are_errors_with_their_line(tmp_path, lines, says):
    assert says in one_problem(tmp_path, cluster(lines))


def test_the_longest_validity_renders_as_a_go_duration_kubeadm_reads(tmp_path):
    inv = load(tmp_path, cluster("cert_validity_days = 106751\nca_validity_days = 106751"))
    assert kubeadm._hours(inv.cluster.ca_validity_days) == "2562024h"          # Go's Duration ends at 2562047h


def test_the_cli_prints_no_traceback_for_a_huge_validity(tmp_path):
    bad = tmp_path / "inventory.toml"
    bad.write_text(cluster("cert_validity_days = 3000000\nca_validity_days = 3000000"))
    run = subprocess.run([sys.executable, "-m", "invoke", "cluster.plan", "-i", str(bad), "--state-dir",
                          str(tmp_path / "state")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr + run.stdout
    assert "line 4: [cluster] cert_validity_days is 3000000" in run.stderr
    assert not (tmp_path / "state").exists()


def test_inventory_check_identity_files_is_silent_when_keys_exist(tmp_path):
    (tmp_path / "id").write_text("key")
    inv = load(tmp_path, edit('user = "ops"', 'user = "ops"\nidentity_file = "id"'))
    inventory.check_identity_files(inv, inv.hosts)


# -- numbers given as options ------------------------------------------------------------------------

@pytest.mark.parametrize("task,option,value", [("cluster.plan", "--batch", "x"), ("cluster.plan", "--batch", "٢"),
                                               ("cluster.plan", "--batch", "-1"), ("pki.show", "--days", "³⁰"),
                                               ("cluster.up", "--workers", "0"), ("cluster.up", "--max-failed", "1.5")])
def test_a_number_option_takes_ascii_digits_or_exits_2_without_traceback(tmp_path, task, option, value):
    (tmp_path / "inventory.toml").write_text(GOOD)
    run = subprocess.run([sys.executable, "-m", "invoke", task, "-i", str(tmp_path / "inventory.toml"), "--state-dir",
                          str(tmp_path / "state"), option, value], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr + run.stdout
    assert f"error: {option} {value!r}: give a whole number of at least" in run.stderr


@pytest.mark.parametrize("count", ["٢", "²", "0"])
def test_the_vagrant_control_plane_count_is_ascii_digits(count):
    with pytest.raises(KubefabError, match="is not a whole number of at least 1"):
        vagrant.settings({vagrant.CONTROL_PLANES_VAR: count})
