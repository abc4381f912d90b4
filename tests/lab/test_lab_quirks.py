"""Each lab quirk, seen over SSH the way an operator's tool sees it, on its host and not on a normal one."""

import socket
import time
from dataclasses import dataclass

import paramiko
import pytest

from lab import Lab
from lab.quirks import LOW_MEMORY_KIB, QUIRKS, SKEW_SECONDS, TAKEN_PORT

pytestmark = pytest.mark.lab


def ssh(lab, host, command):
    """Run `command` as root over SSH with strict host keys; 'refused' or 'timeout' when ssh cannot connect."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(lab.host(host).address, username="root", key_filename=str(lab.identity_file),
                       timeout=2, allow_agent=False, look_for_keys=False)
    except paramiko.ssh_exception.NoValidConnectionsError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    try:
        _, out, err = client.exec_command(command)
        return (out.read() + err.read()).decode().strip()
    finally:
        client.close()


@dataclass(frozen=True)
class Probe:
    command: str
    shows: object  # (output on the host, output on kf-cp1) -> True when the quirk is visible


PROBES = {
    "swap": Probe("swapon --show=NAME --noheadings", lambda out, _: out == "/swapfile"),
    "port-taken": Probe(f"ss -ltnH 'sport = :{TAKEN_PORT}'", lambda out, _: f":{TAKEN_PORT}" in out),
    "duplicate-machine-id": Probe("cat /etc/machine-id", lambda out, cp1: out == cp1),
    "duplicate-hostname": Probe("hostname", lambda out, cp1: out == cp1),
    "clock-skew": Probe("date +%s", lambda out, _: abs(int(out) - time.time() - SKEW_SECONDS) < 60),
    "low-memory": Probe("free -k | awk '/^Mem:/ {print $2}'", lambda out, _: int(out) == LOW_MEMORY_KIB),
    "kubernetes-configured": Probe("ls /etc/kubernetes/manifests", lambda out, _: "kube-apiserver.yaml" in out),
    "sshd-stopped": Probe("true", lambda out, _: out == "refused"),
    "network-cut": Probe("true", lambda out, _: out == "timeout"),
    "minimal": Probe("command -v gpg curl; echo end", lambda out, _: out == "end"),
    "disk-full": Probe("df -k --output=size / | tail -1; head -c 4M /dev/zero > /var/tmp/fill",
                       lambda out, _: int(out.split()[0]) <= 1024 and "No space left on device" in out),
}
QUIRKY = {f"kf-w{i}": name for i, name in enumerate(QUIRKS, start=1)}  # one quirk per worker
CONTROL = f"kf-w{len(QUIRKY) + 1}"  # a worker without quirks, probed the same way


@pytest.fixture(scope="module")
def quirky():
    with Lab.up(hosts=len(QUIRKY) + 2, quirks={host: [name] for host, name in QUIRKY.items()}) as lab:
        yield lab


def test_every_quirk_has_a_probe():
    assert set(PROBES) == set(QUIRKS)


@pytest.mark.parametrize("name", QUIRKS)
def test_quirk_is_visible_on_its_host_only(quirky, name):
    host = next(h for h, q in QUIRKY.items() if q == name)
    probe = PROBES[name]
    reference = ssh(quirky, "kf-cp1", probe.command)
    seen = ssh(quirky, host, probe.command)
    assert probe.shows(seen, reference), f"{QUIRKS[name].summary}: {host} shows {seen!r}"
    normal = ssh(quirky, CONTROL, probe.command)
    assert not probe.shows(normal, reference), f"{CONTROL}, without quirks, shows {normal!r}"


def test_a_host_can_be_cut_and_reconnected_mid_run(quirky):
    quirky.cut(CONTROL)
    try:
        assert ssh(quirky, CONTROL, "true") == "timeout"
    finally:
        quirky.connect(CONTROL)
    assert ssh(quirky, CONTROL, "hostname") == CONTROL
