"""The fact probe: run here under dash and busybox, parsed strictly, and refused with its tail when cut or garbled."""

import base64
import functools
import hashlib
import http.server
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from inventories import host_tables
from kubefab import facts, inventory
from kubefab.components import requirements
from kubefab.errors import KubefabError
from kubefab.facts import FactsError
from kubefab.pki import kubeconfig, x509
from kubefab.plan import render
from kubefab.state.tree import RenderedFile

DATA = Path(__file__).parent.parent / "data" / "facts"
READY = (DATA / "ready.txt").read_text()


def run_probe(shell, endpoint, path=None):
    env = {"PATH": path or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    sent = time.time()
    done = subprocess.run([*shell, "-s", "--", endpoint], input=facts.PROBE, capture_output=True, text=True,
                          env=env, timeout=30)
    return done, (sent, time.time())


@pytest.fixture
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


SHELLS = (pytest.param(("dash",), id="dash"),
          pytest.param(("busybox", "sh"), id="busybox", marks=pytest.mark.skipif(
              not shutil.which("busybox"), reason="busybox is not installed (apt-get install busybox)")))


@pytest.mark.parametrize("shell", SHELLS)
def test_the_probe_runs_in_a_posix_shell_and_parses(shell, listener, tmp_path):
    path = None
    if shell[0] == "busybox":  # busybox's own applets first: head, awk, sed, df, ip, date ...
        subprocess.run(["busybox", "--install", "-s", str(tmp_path)], check=True)
        path = f"{tmp_path}:/usr/sbin:/usr/bin:/sbin:/bin"
    done, window = run_probe(shell, listener, path)
    assert done.returncode == 0 and done.stderr == ""
    f = facts.parse("here", done.stdout, window)
    assert f.kernel == subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert f.cpus >= 1 and f.memory_kib > 0 and f.disk.size_kib > 0
    assert f.hostname == socket.gethostname()
    assert abs(f.skew()) < 1.5  # busybox's date has whole seconds only
    assert f.commands["mount"] and f.endpoint.state == "open" and f.endpoint.target == listener
    assert int(listener.split(":")[1]) in f.ports
    assert set(f.modules.values()) <= {"loaded", "builtin", "available", "missing"}
    assert "lo" in f.interface_names and {i.name for i in f.interfaces} <= set(f.interface_names)


def test_a_closed_port_on_the_endpoint_is_refused_and_no_endpoint_is_unchecked():
    done, _ = run_probe(("sh",), closed_port())
    assert facts.parse("here", done.stdout).endpoint.state == "refused"
    done, _ = run_probe(("sh",), "")
    assert facts.parse("here", done.stdout).endpoint == facts.Endpoint("", "unchecked", "")


def test_the_probe_is_filled_from_the_tables_and_covers_what_the_checks_read(tmp_path):
    assert not re.search(r"@[A-Z_]+@", facts.PROBE)
    assert facts.command("10.0.0.1:6443") == ("sh", "-s", "--", "10.0.0.1:6443")
    assert {*requirements.REQUIRED_COMMANDS, *requirements.WANTED_COMMANDS, "conntrack"} <= set(facts.COMMANDS)
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\n[cluster.kube_proxy]\nmode = "ipvs"\n' + host_tables(1, 1))
    assert set(render.kernel_modules(inventory.load(path))) <= set(facts.MODULES)
    assert {facts.KUBELET_CONF, facts.APISERVER_MANIFEST, facts.CA_CERT} <= set(facts.KUBE_FILES)


def test_a_ready_host_parses_into_typed_values():
    f = facts.parse("cp-1", READY, window=(1795960000.0, 1795960000.5))
    assert f.os == facts.Os("debian", "12", "", "Debian GNU/Linux 12 (bookworm)", "apt-get")
    assert (f.cpus, f.memory_mb, f.cgroup_version, f.ports) == (4, 7940, 2, frozenset({22}))
    assert f.interfaces == (facts.Interface("eth0", "52:54:00:6b:3c:01", ("10.0.0.11/24", "fd00::11/64")),)
    assert f.addresses == ("10.0.0.11", "fd00::11") and f.interface_names == ("eth0", "lo")
    assert f.disk == facts.Disk("/", 30787492, 24117248)
    assert f.versions["kubelet"] == "1.33.5" and f.modules["ip_vs"] == "available"
    assert f.cri_sockets == ("/run/containerd/containerd.sock",) and f.skew() == 0.0


def cut(text, keep):
    return "\n".join(text.splitlines()[:keep]) + "\n"


BAD = {
    "empty": ("", "does not start with 'kubefab-probe 1'"),
    "a login banner instead": ("Welcome to Ubuntu\nsudo: a password is required\n", "does not start with"),
    "cut short": (cut(READY, 30), "stops before its 'end' line"),
    "a stray line": (READY.replace("cpus=4\n", "cpus=4\nbash: warning: setlocale\n"), "unexpected line 14"),
    "an unknown key": (READY.replace("arch=x86_64", "archh=x86_64"), "unexpected line 8: 'archh=x86_64'"),
    "a key twice": (READY.replace("uid=0\n", "uid=0\nuid=0\n"), "repeats 'uid' on line 11"),
    "a key missing": (READY.replace("kernel=6.1.0-28-amd64\n", ""), "lacks kernel"),
    "not a number": (READY.replace("cpus=4", "cpus=four"), "cpus='four' is not a whole number"),
    "not a clock": (READY.replace("clock=1795960000.250000000", "clock=%s.%N"), "clock='%s.%N' is not a number"),
    "not a port": (READY.replace("tcp.listen=0016 ", "tcp.listen=0016 :22"), "port ':22' is not hexadecimal"),
    "a bad disk line": (READY.replace("disk=30787492 24117248 /", "disk=df: /var/lib: No such file"), "disk="),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_output_is_a_facts_error_showing_its_tail(name):
    text, says = BAD[name]
    with pytest.raises(FactsError) as e:
        facts.parse("kf-w3", text)
    message = str(e.value)
    assert isinstance(e.value, KubefabError) and message.startswith("kf-w3: the fact probe's output ")
    assert says in message
    tail = text.splitlines()[-facts.TAIL_LINES:]
    assert message.endswith("\n".join(f"    {line}" for line in tail) if tail else "    (no output)")


def test_a_ca_fingerprint_ignores_line_endings_and_wrapping():
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n"
    assert facts.ca_fingerprint(pem) == facts.ca_fingerprint(pem.replace(b"\n", b"\r\n"))
    assert facts.ca_fingerprint(pem) != facts.ca_fingerprint(pem.replace(b"AAAA", b"AAAB"))


def test_the_probe_reports_the_kubelet_client_certificate_expiry_and_never_its_key(tmp_path):
    key = x509.new_key("RSA-2048")
    cert = x509.issue(x509.Request("system:node:w-1", org="system:nodes", usages=(x509.CLIENT,), days=20), key)
    pem = tmp_path / "kubelet-client-current.pem"
    pem.write_bytes(cert + key.reveal())          # as the kubelet keeps them: one file, certificate and key
    probe = facts.PROBE.replace(facts.KUBELET_CLIENT, str(pem))
    done = subprocess.run(["dash", "-s"], input=probe, capture_output=True, text=True, timeout=30)
    sent = re.search(r"^kubelet\.client_cert=(.*)$", done.stdout, re.M).group(1)
    assert base64.b64decode(sent) == cert                                   # the certificate block, not the key
    assert facts.parse("w-1", done.stdout).kubelet_client_expiry == x509.view(cert).not_after
    assert facts.parse("w-1", READY).kubelet_client_expiry is None          # a host that is no node yet
    with pytest.raises(FactsError, match="kubelet.client_cert is not a certificate"):
        facts.parse("w-1", READY.replace("kubelet.client_cert=\n", "kubelet.client_cert=bm90IGEgY2VydA==\n"))


def test_the_probe_reports_each_kubeconfigs_server_in_the_same_round_trip(tmp_path):
    kubelet, admin = tmp_path / "kubelet.conf", tmp_path / "admin.conf"
    kubelet.write_text("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Zm9v\n"
                       "    server: https://10.0.0.100:8443\n  name: t\n")
    admin.write_text("kind: Config\n")                       # no server: line, so nothing is reported for it
    probe = (facts.PROBE.replace(kubeconfig.KUBELET_CONF, str(kubelet))
             .replace("/etc/kubernetes/admin.conf", str(admin)))
    done = subprocess.run(["dash", "-s"], input=probe, capture_output=True, text=True, timeout=30)
    assert dict(facts.parse("w-1", done.stdout).kube_servers) == {str(kubelet): "https://10.0.0.100:8443"}
    assert not facts.parse("w-1", READY).kube_servers


def test_the_probe_reports_the_files_and_links_it_is_asked_about(tmp_path):
    small, big = tmp_path / "small.conf", tmp_path / "big.bin"
    small.write_bytes(b"a=1\n")
    big.write_bytes(b"\0" * 5000)
    os.chmod(small, 0o640)
    os.utime(big, (1700000000, 1700000000))
    (tmp_path / "link").symlink_to(big)
    asked = (RenderedFile("h", str(small), 0o640, 4, False, small, "t", "push", hashlib.sha256(b"a=1\n").hexdigest()),
             RenderedFile("", str(big), 0o644, 5000, False, big, "offline:big.bin", "runtime", mtime=1700000000),
             RenderedFile("h", str(tmp_path / "absent"), 0o644, 1, False, small, "t", "push", "0" * 64))
    done = subprocess.run(["dash", "-s"], input=facts.script("", asked, (str(tmp_path / "link"), str(small))),
                          capture_output=True, text=True, timeout=30)
    f = facts.parse("here", done.stdout)
    me = os.getuid(), os.getgid()
    assert f.files[str(small)] == facts.FileState(0o640, *me, 4, int(small.stat().st_mtime), asked[0].sha256)
    assert f.files[str(big)] == facts.FileState(0o644, *me, 5000, 1700000000, "")   # large: not hashed
    assert str(tmp_path / "absent") not in f.files
    assert dict(f.links) == {str(tmp_path / "link"): str(big)}                         # a plain file is no link
    assert f.in_place(asked[0]) == f.in_place(asked[1]) == (me == (0, 0))             # root-owned when in place
    assert not f.in_place(replace(asked[0], sha256="1" * 64)) and not f.in_place(replace(asked[0], mode=0o600))
    assert not f.in_place(replace(asked[1], mtime=1700000001)) and not f.in_place(asked[2])
    with pytest.raises(ValueError, match="only plain path characters"):
        facts.script("", (), ("/usr/bin/kube adm",))


@pytest.fixture
def package_repository(tmp_path):
    """A flat apt repository's Packages index for v1.33, served over HTTP on 127.0.0.1: its base URL."""
    deb = tmp_path / "core:" / "stable:" / "v1.33" / "deb"
    deb.mkdir(parents=True)
    deb.joinpath("Packages").write_text("".join(f"Package: {p}\nVersion: {v}\nArchitecture: amd64\n\n" for p, v in (
        ("cri-tools", "1.33.0-1.1"), ("kubeadm", "1.33.4-1.1"), ("kubeadm", "1.33.5-1.1"), ("kubelet", "1.33.9-1.1"))))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_port}/core:/stable:"
        server.shutdown()


@pytest.mark.skipif(not shutil.which("apt-get"), reason="the probe reads a Packages index on apt hosts")
def test_the_probe_lists_the_kubeadm_versions_a_repository_holds_or_why_it_does_not_answer(package_repository):
    def repository(url):
        done = subprocess.run(["dash", "-s"], input=facts.script("", repository=url), capture_output=True, text=True,
                              timeout=30)
        return facts.parse("here", done.stdout).repository
    assert repository(f"{package_repository}/v1.33") == facts.Repository("ok", "", ("1.33.4-1.1", "1.33.5-1.1"))
    assert repository("") == facts.Repository("unchecked", "", ())
    gone = repository(f"http://{closed_port()}/core:/stable:/v1.33")
    assert gone.state == "failed" and "Failed to connect" in gone.detail, gone
