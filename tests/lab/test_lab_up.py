"""cluster.up's parallel half on real SSH hosts: facts, preflight, runtime and push, as a user runs them."""

import base64
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import toml

from kubefab import inventory, paths
from kubefab.remote import runner, script, ssh
from kubefab.run import execute, logs
from kubefab.run.session import Options
from kubefab.state.tree import RenderedFile
from kubefab.steps import Command, Push
from test_lab_preflight import QUIRK_CHECKS

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
PLAIN_HOSTS = 50
PASSWORD_ENV = "KUBEFAB_TEST_SUDO_PASSWORD"
CLEAN = "kf-w20"
# plain lab hosts run sshd as PID 1 with no cgroups: tests of SSH itself ignore what that fails
PLAIN = ("InitSystem", "SystemVerification")
QUIRKY = {"kf-cp1": "port-taken", "kf-cp2": "low-memory", "kf-w1": "swap", "kf-w2": "duplicate-machine-id",
          "kf-w3": "duplicate-hostname", "kf-w4": "clock-skew", "kf-cp3": "kubernetes-configured",
          "kf-w6": "sshd-stopped", "kf-w7": "network-cut"}


def edit_inventory(lab, **ssh_keys):
    raw = toml.loads(lab.inventory.read_text())
    raw["ssh"].update(ssh_keys)
    lab.inventory.write_text(toml.dumps(raw))


def run(lab, tmp_path, action="up", **options):
    """Run cluster.up (or .preflight) on the lab: (exit code, console text, results)."""
    code, text, r = run_of(lab, tmp_path, action, **options)
    return code, text, {(x.host, x.phase): x for x in r.results}


def run_of(lab, tmp_path, action="up", **options):
    """Run cluster.up (or .preflight, .join, .reset) on the lab: (exit code, console text, its execute.Outcome)."""
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    console = io.StringIO()
    r = getattr(execute, action)(inv, Options(**options), console=console)
    return r.code, console.getvalue(), r


def test_facts_and_preflight_on_many_hosts_report_each_quirk_by_its_check(new_lab, tmp_path):
    lab = new_lab(hosts=PLAIN_HOSTS, control_planes=3, flavour="plain", quirks={h: [q] for h, q in QUIRKY.items()})
    edit_inventory(lab, connect_timeout=3)
    run(lab, tmp_path, "preflight")  # the first run also makes the PKI: time the second
    cpu, wall = time.process_time(), time.monotonic()
    code, text, r = run_of(lab, tmp_path, "preflight")
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    results = {(x.host, x.phase): x for x in r.results}
    found = {(f.host, f.check): f for f in r.findings}
    print(f"\nfacts + preflight on {PLAIN_HOSTS} plain hosts (one cut off: 3 s timeout): {wall:.2f} s wall, client "
          f"CPU {cpu:.2f} s ({cpu / PLAIN_HOSTS * 1000:.1f} ms per host)")
    assert code == 1
    assert "refused" in results["kf-w6", "facts"].detail and "is sshd running" in results["kf-w6", "facts"].detail
    # a link that is down: the connection times out, or the address's ARP lookup gives up first (3 s as well)
    assert re.search(r"timed out after 3 s|No route to host", results["kf-w7", "facts"].detail), results["kf-w7", "facts"]
    failed = {h for (h, phase), r in results.items() if phase == "facts" and r.failed}
    assert failed == {"kf-w6", "kf-w7"}
    for host, quirk in QUIRKY.items():
        check, status = QUIRK_CHECKS[quirk]
        assert found[(host, check)].status == status, f"{quirk} on {host}: {found[(host, check)]}"
        if (CLEAN, check) in found:
            assert found[(CLEAN, check)].status != status, found[(CLEAN, check)]
    assert text.count(f"preflight: {PLAIN_HOSTS} hosts, ") == 1, text


def host_file(lab, host, path):
    return lab.run(host, f"stat -c '%a %U' {path} && cat {path}", check=False).stdout


def test_runtime_and_push_as_a_sudo_user_with_a_password_then_a_second_run_changes_nothing(
        new_lab, tmp_path, monkeypatch):
    lab = new_lab(hosts=2, flavour="node", ssh_user="kfpasswd")
    edit_inventory(lab, sudo_password_env=PASSWORD_ENV)
    monkeypatch.setenv(PASSWORD_ENV, lab.sudo_password)
    lab.run("kf-w1", "echo '/swap.img none swap sw 0 0' >> /etc/fstab")
    first_at = time.monotonic()
    code, first, results = run(lab, tmp_path, only=("facts", "preflight", "runtime", "push"), yes=True, verbose=True)
    first_s = time.monotonic() - first_at
    assert code == 0, first
    first_push = max(results[h.name, "push"].seconds for h in lab.hosts)
    assert {r.status for (h, phase), r in results.items() if phase in ("runtime", "push")} == {"changed"}
    assert lab.run("kf-w1", "systemctl is-enabled kubelet; systemctl is-active containerd").stdout.split() == \
        ["enabled", "active"]
    assert lab.run("kf-w1", "readlink /usr/bin/kubeadm; kubeadm version -o short").stdout.split() == \
        ["/opt/kubefab/offline/kubeadm", "v1.33.5"]
    assert "# /swap.img none swap sw 0 0" in lab.run("kf-w1", "cat /etc/fstab").stdout
    assert host_file(lab, "kf-cp1", "/etc/kubernetes/pki/ca.key").startswith("600 root\n-----BEGIN")
    assert lab.run("kf-w1", "ls /etc/kubernetes; ls /etc/kubernetes/kubefab").stdout.split() == \
        ["kubefab", "join.yaml", "kubeadm-flags.env"]
    assert lab.run("kf-w1", "find / -xdev -name '*.kubefab-new' | wc -l").stdout.strip() == "0"
    nodes = "".join(f"{h.address} {h.name}\n" for h in lab.hosts)
    assert f"\n{paths.HOSTS_BEGIN}\n{nodes}{paths.HOSTS_END}\n" in lab.run("kf-w1", "cat /etc/hosts").stdout

    again_at = time.monotonic()
    code, again, results = run(lab, tmp_path, only=("facts", "preflight", "runtime", "push"), yes=True, verbose=True)
    again_s = time.monotonic() - again_at
    assert code == 0, again
    steps = [(h, s.name, s.status) for (h, phase), r in results.items() if phase in ("runtime", "push") for s in r.steps]
    assert len(steps) > 20 and {status for _, _, status in steps} == {"unchanged"}, steps
    print(f"\nruntime + push on 2 node hosts: first run {first_s:.1f} s (facts and preflight too), "
          f"second run {again_s:.1f} s (facts and preflight too), push phase {first_push:.2f} s")

    token_secret = (tmp_path / "state" / "bootstrap-token").read_text().strip().split(".")[1]
    key_body = (tmp_path / "state" / "pki" / "ca.key").read_text().splitlines()[1]
    log_text = (tmp_path / "state" / logs.FILE).read_text()
    for secret in (token_secret, key_body, lab.sudo_password):
        for where, text in (("console", first + again), ("log", log_text)):
            assert secret not in text, f"a secret reached the {where}"
    assert "runtime kf-w1 swap off: changed" in log_text


def test_runtime_leaves_swap_on_for_a_kubelet_with_failswapon_false(new_lab, tmp_path):
    lab = new_lab(hosts=2, flavour="node", quirks={"kf-w1": ["swap"]})
    raw = toml.loads(lab.inventory.read_text())
    raw["cluster"]["kubelet"] = {"config": {"failSwapOn": False}}
    lab.inventory.write_text(toml.dumps(raw))
    lab.run("kf-w1", "echo '/swap.img none swap sw 0 0' >> /etc/fstab")
    code, text, r = run_of(lab, tmp_path, only=("facts", "preflight", "runtime"), yes=True)
    assert code == 0, text
    found = {(f.host, f.check): f for f in r.findings}
    assert found[("kf-w1", "Swap")].status == "warning" and found[("kf-cp1", "Swap")].status == "ok"
    ran = {s.name for x in r.results if x.host == "kf-w1" and x.phase == "runtime" for s in x.steps}
    assert "sysctls" in ran and "swap off" not in ran
    assert "/swapfile" in lab.run("kf-w1", "cat /proc/swaps").stdout
    assert "\n/swap.img none swap sw 0 0" in lab.run("kf-w1", "cat /etc/fstab").stdout


def test_sudo_as_a_passwordless_user_and_a_wrong_or_missing_password(new_lab, tmp_path, monkeypatch):
    lab = new_lab(hosts=2, flavour="plain", ssh_user="kfadmin")
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "a")
    hosts = ssh.Hosts()
    try:
        assert hosts.run(inv.host("kf-w1"), b"id -un; echo $SUDO_USER", 30).stdout.split() == ["root", "kfadmin"]
    finally:
        hosts.close()
    edit_inventory(lab, user="kfpasswd", sudo_password_env=PASSWORD_ENV)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(Exception, match=rf"names \${PASSWORD_ENV}, which is not set"):
        run(lab, tmp_path, "preflight")
    monkeypatch.setenv(PASSWORD_ENV, "not-" + lab.sudo_password)
    code, text, results = run(lab, tmp_path, "preflight")
    assert code == 1 and "incorrect password" in results["kf-w1", "facts"].detail
    assert lab.sudo_password not in text
    monkeypatch.setenv(PASSWORD_ENV, lab.sudo_password)
    code, text, results = run(lab, tmp_path, "preflight")
    # the probe ran as root through sudo (plain hosts still fail the systemd checks: not what is tested here)
    assert all(results[h, "facts"].status == "ok" for h in ("kf-cp1", "kf-w1")), text
    assert "IsPrivilegedUser" not in text and lab.sudo_password not in text


def sha256_fingerprint(line):
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(line.split()[2])).digest()).decode().rstrip("=")


def test_host_keys_changed_refused_with_both_fingerprints_unknown_per_policy(new_lab, tmp_path):
    lab = new_lab(hosts=3, flavour="plain")
    lines = lab.known_hosts.read_text().splitlines()
    w1 = next(i for i, line in enumerate(lines) if line.startswith("kf-w1,"))
    w2 = next(line for line in lines if line.startswith("kf-w2,"))
    real, wrong = lines[w1], lines[w1].split()[0] + " " + " ".join(w2.split()[1:])
    lab.known_hosts.write_text("\n".join(lines[:w1] + [wrong] + lines[w1 + 1:]) + "\n")
    code, _, results = run(lab, tmp_path, "preflight")
    cause = results["kf-w1", "facts"].detail
    assert code == 1 and results["kf-w2", "facts"].status == "ok"
    assert sha256_fingerprint(real) in cause and sha256_fingerprint(wrong) in cause
    assert f"ssh-keygen -R {lab.host('kf-w1').address} -f {lab.known_hosts}" in cause

    lab.known_hosts.write_text("")
    code, _, results = run(lab, tmp_path, "preflight")
    assert code == 1 and "is not in" in results["kf-w1", "facts"].detail and "'strict'" in results["kf-w1", "facts"].detail
    edit_inventory(lab, known_hosts="accept-new")
    code, text, _ = run(lab, tmp_path, "preflight", ignore=PLAIN)
    assert code == 0, text
    recorded = lab.known_hosts.read_text()
    assert all(f"{h.address} ssh-ed25519 " in recorded for h in lab.hosts)
    assert sorted(line.split()[2] for line in recorded.splitlines()) == sorted(line.split()[2] for line in lines)


def test_an_unreachable_host_fails_with_its_cause_while_the_others_finish(new_lab, tmp_path):
    lab = new_lab(hosts=4, flavour="plain")
    edit_inventory(lab, connect_timeout=2)
    lab.cut("kf-w2")
    code, text, results = run(lab, tmp_path, "preflight")
    assert code == 1
    assert "timed out after 2 s" in results["kf-w2", "facts"].detail
    assert all(results[h, "facts"].status == "ok" for h in ("kf-cp1", "kf-w1", "kf-w3"))
    assert re.search(r"kf-w2 +failed", text) and re.search(r"FAILED kf-w2 facts: connection to .* timed out", text)


def test_a_session_a_busy_sshd_opens_late_is_waited_for_within_the_scripts_own_time(new_lab, tmp_path):
    """The host's sshd, stopped for 3 s as a loaded host's is slow, opens the session later than connect_timeout:
    kubefab waits for it as OpenSSH's client does, and says there was no answer only once the script's time is up."""
    lab = new_lab(hosts=1, flavour="plain")
    edit_inventory(lab, connect_timeout=1)
    host = inventory.load(lab.inventory, state_dir=tmp_path / "state").host("kf-cp1")
    sessions = "pkill -{} -f '^sshd: [a-z]'"    # the sshd processes of kubefab's connection, not the listener
    hosts = ssh.Hosts()
    try:
        assert hosts.run(host, b"echo first", 10).stdout == "first\n"
        lab.run("kf-cp1", sessions.format("STOP"))
        resumed = threading.Timer(3, lambda: lab.run("kf-cp1", sessions.format("CONT")))
        resumed.start()
        try:
            late = hosts.run(host, b"echo late", 20)
        finally:
            resumed.join()
        assert late.stdout == "late\n" and late.seconds >= 2.5
        lab.run("kf-cp1", sessions.format("STOP"))
        try:
            with pytest.raises(ssh.Unreachable, match=r"no answer from \S+ within 2 s: its sshd did not open a session"):
                hosts.run(host, b"echo never", 2)
        finally:
            lab.run("kf-cp1", sessions.format("CONT"))
    finally:
        hosts.close()


def test_a_push_cut_off_mid_way_leaves_every_file_old_or_new(new_lab, tmp_path):
    lab = new_lab(hosts=1, flavour="plain")
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    host = inv.host("kf-cp1")
    big, small = os.urandom(32 * 2 ** 20), b"small\n"
    files = []
    for name, data in (("big.bin", big), ("small.conf", small)):
        (tmp_path / name).write_bytes(data)
        files.append(RenderedFile("kf-cp1", f"/etc/kubefab-test/{name}", 0o600, len(data), True, tmp_path / name,
                                  "test", "push"))
    hosts = ssh.Hosts()

    def cut_while(steps, ready):
        built = script.build(steps)
        errors = []
        t = threading.Thread(target=lambda: errors.append(_run_catching(hosts, host, built)))
        t.start()
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        hosts.connection(host).transport.sock.close()
        t.join(30)
        return errors[0]

    try:
        sending = cut_while((Push("files", tuple(files)),),
                            lambda: lab.run("kf-cp1", "find /tmp -name 'tmp.*.d' -size +1M", check=False).stdout.strip())
        assert isinstance(sending, ssh.Unreachable)
        time.sleep(1)
        assert lab.run("kf-cp1", "ls -A /etc/kubefab-test 2>/dev/null | wc -l").stdout.strip() == "0"
        assert no_temp_files(lab), "the script and the part of its payload that arrived stay in /tmp"
        hosts.close()
        running = cut_while((Command("wait", "sleep 2"), Push("files", tuple(files))),
                            lambda: lab.run("kf-cp1", "pgrep -x sleep", check=False).stdout.strip())
        assert isinstance(running, ssh.Unreachable)
        deadline, seen = time.monotonic() + 120, set()   # generous: a loaded CI machine syncs 32 MB slowly
        while time.monotonic() < deadline and len(seen) < 2:  # the script goes on without its connection
            sizes = lab.run("kf-cp1", "stat -c '%n %s' /etc/kubefab-test/*", check=False).stdout.split("\n")
            for line in filter(None, sizes):
                name, size = line.rsplit(" ", 1)
                if name.endswith(".kubefab-new"):  # the copy beside its target, renamed over it once whole
                    continue
                assert int(size) == {"big.bin": len(big), "small.conf": len(small)}[name.rsplit("/", 1)[1]]
                seen.add(name)
            time.sleep(0.1)
        assert len(seen) == 2, "the push did not finish after its connection was cut: " + lab.run(
            "kf-cp1", "ps -ef; ls -la /tmp /etc/kubefab-test", check=False).stdout
        got = lab.run("kf-cp1", "sha256sum /etc/kubefab-test/*; ls -A /etc/kubefab-test").stdout
        assert hashlib.sha256(big).hexdigest() in got and hashlib.sha256(small).hexdigest() in got
        assert "kubefab-new" not in got
    finally:
        hosts.close()


def test_a_push_lands_byte_for_byte_with_mode_and_mtime_and_a_file_grown_since_the_plan_fails_it(new_lab, tmp_path):
    lab = new_lab(hosts=1, flavour="plain")
    host = inventory.load(lab.inventory, state_dir=tmp_path / "state").host("kf-cp1")
    big, small = os.urandom(3 * script.CHUNK + 7), b"small\n"     # big: several chunks, and a padded last block
    files = []
    for name, data, mode, mtime in (("big.bin", big, 0o755, 1_600_000_000), ("small.conf", small, 0o640, 1_650_000_000)):
        (tmp_path / name).write_bytes(data)
        os.utime(tmp_path / name, (mtime, mtime))
        files.append(RenderedFile("kf-cp1", f"/etc/kubefab-test/{name}", mode, len(data), True, tmp_path / name,
                                  "test", "push"))
    hosts = ssh.Hosts()
    try:
        steps = (Push("files", tuple(files)),)
        built = script.build(steps)
        out = hosts.run(host, built.text, 60, built.payload)
        assert [r.status for r in script.parse(steps, out.stdout, built.nonce)] == ["changed"], out.stdout
        got = lab.run("kf-cp1", "cd /etc/kubefab-test && sha256sum big.bin small.conf && "
                                "stat -c '%n %a %u %Y' big.bin small.conf").stdout.splitlines()
        assert got == [f"{hashlib.sha256(big).hexdigest()}  big.bin", f"{hashlib.sha256(small).hexdigest()}  small.conf",
                       "big.bin 755 0 1600000000", "small.conf 640 0 1650000000"]

        steps = (Command("mark", "touch /etc/kubefab-test/ran"), Push("files", tuple(files)))
        built = script.build(steps)
        with open(tmp_path / "small.conf", "ab") as f:
            f.write(b"grown after the plan\n")
        with pytest.raises(script.PayloadError, match=re.escape(f"cannot push {tmp_path / 'small.conf'}: it has 27 bytes")):
            hosts.run(host, built.text, 60, built.payload)
        assert no_temp_files(lab), "the script and the part of its payload that arrived stay in /tmp"
        assert lab.run("kf-cp1", "ls -A /etc/kubefab-test; cat /etc/kubefab-test/small.conf").stdout.split() == [
            "big.bin", "small.conf", "small"]
        assert hosts.run(host, b"echo still connected", 10).stdout == "still connected\n"
    finally:
        hosts.close()


def no_temp_files(lab, seconds=10):
    """Whether the wrapper's temp files (script and payload) leave kf-cp1's /tmp within `seconds`."""
    deadline = time.monotonic() + seconds
    while lab.run("kf-cp1", "ls /tmp | grep '^tmp\\.'", check=False).stdout:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _run_catching(hosts, host, built):
    try:
        return hosts.run(host, built.text, 60, built.payload)
    except ssh.Unreachable as e:
        return e


def test_the_runner_bounds_its_pool():
    with pytest.raises(ValueError):
        runner.Runner(workers=0)


def cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_up_without_a_terminal_asks_for_yes_instead_of_waiting_and_changes_nothing(new_lab, tmp_path):
    lab = new_lab(hosts=1, flavour="plain")
    p = cli("cluster.up", "-i", str(lab.inventory), "--state-dir", str(tmp_path / "state"), "--only", "runtime")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "no terminal to ask on — pass --yes" in err, out + err
    assert "kubefab" not in lab.run("kf-cp1", "cat /etc/hosts").stdout


def test_ctrl_c_lets_running_hosts_finish_then_exits_130_with_the_summary(new_lab, tmp_path):
    lab = new_lab(hosts=3, flavour="plain")
    # kf-w2 drops every packet to sshd, so its connection waits out the timeout: 45 s, longer than the 30 s the
    # test waits for the others' facts however busy the machine (a link cut would fail in 3 s, when ARP gives up)
    edit_inventory(lab, connect_timeout=45)
    lab.run("kf-w2", "iptables -A INPUT -p tcp --dport 22 -j DROP")
    p = cli("cluster.preflight", "-i", str(lab.inventory), "--state-dir", str(tmp_path / "state"))
    log = tmp_path / "state" / logs.FILE
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and all(f"facts {h}: exit" in log.read_text()
                                                                     for h in ("kf-cp1", "kf-w1"))):
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)    # the two reachable hosts are done, kf-w2 is still connecting
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, out + err
    assert re.search(r"kf-w1 +ok", out) and re.search(r"kf-w2 +failed", out), out
    assert "interrupted" in out and "Traceback" not in err


def test_a_host_behind_a_gateway_is_reached_through_it(new_lab, tmp_path):
    lab = new_lab(hosts=2, flavour="plain")
    raw = toml.loads(lab.inventory.read_text())
    raw["hosts"]["kf-w1"]["ssh"] = {"gateway": f"root@{lab.host('kf-cp1').address}:22"}
    lab.inventory.write_text(toml.dumps(raw))
    lab.run("kf-w1", f"iptables -A INPUT -p tcp --dport 22 ! -s {lab.host('kf-cp1').address} -j REJECT")
    code, text, results = run(lab, tmp_path, "preflight", ignore=PLAIN)
    assert code == 0, text
    assert results["kf-w1", "facts"].status == "ok"


def test_join_and_reset_dry_runs_print_their_plans_and_change_nothing(new_lab, tmp_path):
    lab = new_lab(hosts=2, flavour="node")
    lab.run("kf-w1", "mkdir -p /etc/kubernetes && echo kept > /etc/kubernetes/kept")
    before = lab.run("kf-w1", "systemctl is-enabled kubelet; cat /etc/hosts; ls /etc/kubernetes", check=False).stdout
    state = ("-i", str(lab.inventory), "--state-dir", str(tmp_path / "state"))
    p = cli("node.join", *state, "--host", "kf-w1", "--dry-run")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, out + err
    assert "facts: Gather facts from every host (one probe per host) — from the facts gathered" in out, out
    phases = re.findall(r"^\d+\. ([a-z-]+): ", out, re.M)
    assert phases == ["load-balancers", "runtime", "push", "join", "verify"], out     # no HA: the first, no hosts
    assert re.search(r"^1\. load-balancers: .*\n   \(no hosts\)$", out, re.M), out
    assert "kubeadm join --config <its join config, with a fresh token>" in out and "kf-cp1 (" not in out, out
    assert "dry run: nothing was changed" in out + err

    p = cli("cluster.reset", *state, "--dry-run")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, out + err
    assert re.findall(r"^\d+\. ([a-z-]+): ", out, re.M) == ["reset-workers", "reset-control-planes",
                                                          "reset-leader"], out
    assert out.index("   kf-w1 (") < out.index("   kf-cp1 (") and "$ kubeadm reset -f" in out, out
    assert "built offline" not in out, out
    after = lab.run("kf-w1", "systemctl is-enabled kubelet; cat /etc/hosts; ls /etc/kubernetes", check=False).stdout
    assert after == before and "kept" in after
    assert not re.search(r"^(runtime|push|join|reset-\w+) kf-", (tmp_path / "state" / logs.FILE).read_text(), re.M)
