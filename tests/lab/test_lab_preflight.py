"""The fact probe over real SSH on lab hosts: each lab quirk is caught by its named preflight check.

Until kubefab has its SSH layer, the probe goes through paramiko the way the runner will send it:
`sh -s -- ENDPOINT` with the script on stdin, host keys checked against the lab's known_hosts.
"""

import shlex
import socket
import time

import paramiko
import pytest

from kubefab import facts, inventory, preflight, state
from kubefab.facts import FactsError
from kubefab.preflight.checks import ERROR, FIX, OK
from lab import Lab
from lab.quirks import QUIRKS, SKEW_SECONDS

pytestmark = pytest.mark.lab

QUIRK_CHECKS = {  # quirk: (the check that catches it, its status on the quirky host)
    "swap": ("Swap", FIX),
    "port-taken": ("Port-6443", ERROR),
    "duplicate-machine-id": ("MachineIDUnique", ERROR),
    "duplicate-hostname": ("HostnameUnique", FIX),
    "clock-skew": ("ClockSkew", ERROR),
    "low-memory": ("Mem", ERROR),
    "kubernetes-configured": ("FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml", ERROR),
    "sshd-stopped": ("Reachable", ERROR),
    "network-cut": ("Reachable", ERROR),
    "disk-full": ("DiskSpace", ERROR),
}
NOT_FAULTS = {"minimal"}  # kubefab's install needs neither gpg nor curl: no check fails (test_lab_packages.py)
# kf-cp1 has no quirk (the twin others copy their hostname or machine-id from); one quirk per host after
# it; the last host has none. All are control planes, so the control-plane checks (ports, memory) apply.
QUIRKY = {f"kf-cp{i}": name for i, name in enumerate(QUIRKS, start=2)}
CLEAN = f"kf-cp{len(QUIRKY) + 2}"


def probe(lab, name, endpoint, user="root", sudo=False, password=None):
    """(Facts, or why there are none; seconds the probe took; bytes it printed) for lab host `name`.

    sudo: through `sudo -n`; with a password, `sudo -S` reads it as the first line of the probe's stdin.
    """
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(lab.host(name).address, username=user, key_filename=str(lab.identity_file), timeout=2,
                       allow_agent=False, look_for_keys=False)
    except paramiko.ssh_exception.NoValidConnectionsError:
        return "connection refused", 0, 0
    except (socket.timeout, TimeoutError):
        return "connection timed out", 0, 0
    try:
        argv = facts.command(endpoint)
        if sudo:
            argv = ("sudo", "-S", "-p", "", *argv) if password else ("sudo", "-n", *argv)
        sent = time.time()
        stdin, stdout, _ = client.exec_command(shlex.join(argv))
        stdin.write(f"{password}\n{facts.PROBE}" if password else facts.PROBE)
        stdin.channel.shutdown_write()
        out = stdout.read().decode()
        received = time.time()
    finally:
        client.close()
    try:
        return facts.parse(name, out, window=(sent, received)), received - sent, len(out)
    except FactsError as e:
        return str(e), received - sent, len(out)


@pytest.fixture(scope="module")
def quirky():
    hosts = len(QUIRKY) + 2
    with Lab.up(hosts=hosts, control_planes=hosts, quirks={h: [q] for h, q in QUIRKY.items()}) as lab:
        yield lab


@pytest.fixture(scope="module")
def probed(quirky):
    inv = inventory.load(quirky.inventory)
    results = {h.name: probe(quirky, h.name, inv.endpoint) for h in inv.hosts}
    for name, (got, seconds, size) in results.items():
        print(f"{name}: {seconds * 1000:.0f} ms, {size} bytes" if size else f"{name}: {got}")
    return inv, results


@pytest.fixture(scope="module")
def found(probed):
    inv, results = probed
    gathered = {name: got for name, (got, _, _) in results.items() if isinstance(got, facts.Facts)}
    failures = {name: got for name, (got, _, _) in results.items() if isinstance(got, str)}
    got = preflight.evaluate(inv, gathered, failures=failures, ca_sha256=state.ca_fingerprint(inv))
    print(preflight.table(got))
    return {(f.host, f.check): f for f in got}


def test_every_quirk_is_mapped_to_a_check():
    assert set(QUIRK_CHECKS) == set(QUIRKS) - NOT_FAULTS
    assert {check for check, _ in QUIRK_CHECKS.values()} <= set(preflight.NAMES)


@pytest.mark.parametrize("quirk", QUIRK_CHECKS)
def test_a_quirk_is_caught_by_its_check(found, quirk):
    host = next(h for h, q in QUIRKY.items() if q == quirk)
    check, status = QUIRK_CHECKS[quirk]
    assert found[(host, check)].status == status, found[(host, check)]
    assert found[(CLEAN, check)].status != status, found[(CLEAN, check)]


def test_the_facts_are_those_of_the_lab_hosts(quirky, probed):
    inv, results = probed
    clean, skewed = results[CLEAN][0], results[next(h for h, q in QUIRKY.items() if q == "clock-skew")][0]
    assert clean.hostname == CLEAN and clean.uid == 0 and clean.init == "sshd"
    assert clean.addresses == (quirky.host(CLEAN).address,)
    assert clean.endpoint == facts.Endpoint(inv.endpoint, "refused", clean.endpoint.detail)
    assert abs(skewed.skew() - SKEW_SECONDS) < 5 and abs(clean.skew()) < 1
    assert 22 in clean.ports and clean.modules["br_netfilter"] in ("builtin", "loaded")


def test_the_endpoint_is_open_refused_or_unreachable(quirky):
    taken = next(h for h, q in QUIRKY.items() if q == "port-taken")
    cut = next(h for h, q in QUIRKY.items() if q == "network-cut")
    states = {target: probe(quirky, CLEAN, f"{quirky.host(target).address}:6443")[0].endpoint.state
              for target in (taken, "kf-cp1", cut)}
    assert states[taken] == "open" and states["kf-cp1"] == "refused" and states[cut] in ("timeout", "unreachable")


def test_a_sudo_user_probes_as_root_only_through_sudo(quirky):
    plain = probe(quirky, CLEAN, "", user="kfadmin")[0]
    raised = probe(quirky, CLEAN, "", user="kfadmin", sudo=True)[0]
    asked = probe(quirky, CLEAN, "", user="kfpasswd", sudo=True, password=quirky.sudo_password)[0]
    assert (plain.uid, raised.uid, asked.uid) == (2001, 0, 0)
    found = {f.check: f for f in preflight.evaluate(inventory.load(quirky.inventory), {CLEAN: plain})}
    assert found["IsPrivilegedUser"].status == ERROR


def test_a_node_host_with_containerd_running_passes_the_runtime_checks(lab):
    lab.run("kf-w1", "systemctl start containerd")
    try:
        inv = inventory.load(lab.inventory)
        got, seconds, size = probe(lab, "kf-w1", inv.endpoint)
    finally:
        lab.run("kf-w1", "systemctl stop containerd", check=False)
    print(f"node host kf-w1: {seconds * 1000:.0f} ms, {size} bytes")
    assert got.init == "systemd" and facts.CRI_SOCKETS[0] in got.cri_sockets and got.versions["containerd"]
    assert got.cgroup_version in (1, 2) and got.kubelet_service == ""
    found = {f.check: f for f in preflight.evaluate(inv, {"kf-w1": got}) if f.host == "kf-w1"}
    assert {name: found[name].status for name in ("CRI", "InitSystem", "Reachable", "IsPrivilegedUser")} == {
        "CRI": OK, "InitSystem": OK, "Reachable": OK, "IsPrivilegedUser": OK}
