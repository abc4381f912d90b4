"""The lab itself: isolated hosts, strict SSH as root and sudo users, systemd node hosts, offline binaries."""

import ipaddress
import os
import re
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import paramiko
import pytest
import toml
from fabric import Config, Connection
from invoke.exceptions import AuthFailure

from conftest import invoke
from kubefab import inventory
from lab import LabError, kernel, spec
from lab.doubles import install_dir
from lab.doubles.hostfs import DEFAULT_VERSION
from lab.lab import BIN_MOUNT, port_open

pytestmark = pytest.mark.lab
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
ROOT = Path(__file__).resolve().parents[2]


def ssh(lab, host, user="root", known_hosts=None, password=None):
    """A fabric Connection that refuses any host key not in the lab's known_hosts."""
    c = Connection(lab.host(host).address, user=user, connect_timeout=5,
                   connect_kwargs={"key_filename": str(lab.identity_file), "allow_agent": False,
                                   "look_for_keys": False},
                   config=Config(overrides={"sudo": {"password": password}, "run": {"in_stream": False}}))
    c.client.load_host_keys(str(known_hosts or lab.known_hosts))
    c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return c


def machine(command):
    return subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout


def test_inventory_lists_every_host_and_kubefab_loads_it(lab):
    raw = toml.loads(lab.inventory.read_text())
    assert raw["ssh"] == {"user": "root", "port": 22, "identity_file": str(lab.identity_file), "sudo": False,
                          "known_hosts": "strict", "known_hosts_file": str(lab.known_hosts)}
    assert raw["hosts"] == {"kf-cp1": {"address": lab.host("kf-cp1").address, "roles": ["control-plane"]},
                            "kf-w1": {"address": lab.host("kf-w1").address, "roles": ["worker"]},
                            "kf-w2": {"address": lab.host("kf-w2").address, "roles": ["worker"]}}
    assert all(ipaddress.ip_address(h["address"]) in LAB_RANGE for h in raw["hosts"].values())
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) for name in raw["hosts"])
    assert os.stat(lab.identity_file).st_mode & 0o077 == 0
    loaded = inventory.load(lab.inventory)
    assert [h.name for h in loaded.control_planes] == ["kf-cp1"]


PROBE = ("cat /etc/kubefab-probe 2>/dev/null; ss -ltnH 'sport = :7777'; sysctl -n net.ipv4.ip_forward;"
         " iptables -S INPUT | grep kubefab-probe || true")


def test_a_file_port_sysctl_and_firewall_rule_stay_on_their_host(lab):
    elsewhere = {"kf-w2": lambda cmd: lab.run("kf-w2", cmd).stdout, "the machine": machine}
    before = {where: look(PROBE) for where, look in elsewhere.items()}
    flipped = "0" if lab.run("kf-w1", "sysctl -n net.ipv4.ip_forward").stdout.strip() == "1" else "1"
    listener = lab.run("kf-w1", f"echo probe > /etc/kubefab-probe; sysctl -qw net.ipv4.ip_forward={flipped};"
                                " iptables -A INPUT -p tcp --dport 7777 -j ACCEPT -m comment --comment kubefab-probe;"
                                " setsid socat TCP-LISTEN:7777,reuseaddr,fork OPEN:/dev/null"
                                " </dev/null >/dev/null 2>&1 &"
                                " echo $!; until ss -ltnH 'sport = :7777' | grep -q 7777; do sleep 0.05; done",
                       timeout=10).stdout.strip()
    try:
        changed = lab.run("kf-w1", PROBE).stdout
        assert "probe" in changed and ":7777" in changed and flipped in changed and "kubefab-probe" in changed
        assert lab.run("kf-cp1", f"socat -u OPEN:/dev/null TCP:{lab.host('kf-w1').address}:7777").returncode == 0
        assert {where: look(PROBE) for where, look in elsewhere.items()} == before
    finally:
        lab.run("kf-w1", f"kill {listener}; rm -f /etc/kubefab-probe;"
                         f" sysctl -qw net.ipv4.ip_forward={1 - int(flipped)};"
                         " iptables -D INPUT -p tcp --dport 7777 -j ACCEPT -m comment --comment kubefab-probe",
                check=False)


@pytest.mark.parametrize("key", ["kernel.pid_max", "vm.overcommit_memory"])
def test_kernel_and_vm_sysctls_are_read_only_in_a_host(lab, key):
    before = machine(f"sysctl -n {key}").strip()
    assert lab.run("kf-w1", f"sysctl -w {key}={before}", check=False).returncode != 0
    done = lab.run("kf-w1", f"echo {before} > /proc/sys/{key.replace('.', '/')}", check=False)
    assert done.returncode != 0 and "Read-only file system" in done.stderr
    assert machine(f"sysctl -n {key}").strip() == before


@pytest.mark.parametrize("user", ["root", "kfadmin"])
def test_ssh_with_strict_host_keys_and_passwordless_sudo(lab, user):
    with ssh(lab, "kf-w1", user) as c:
        assert c.run("id -un; hostname", hide=True).stdout.split() == [user, "kf-w1"]
        assert c.run("sudo -n id -un", hide=True).stdout.strip() == "root"


def test_a_host_key_that_does_not_match_known_hosts_is_refused(lab, tmp_path):
    keys = lab.known_hosts.read_text().splitlines()
    w1 = next(i for i, line in enumerate(keys) if line.startswith("kf-w1,"))
    w2 = next(i for i, line in enumerate(keys) if line.startswith("kf-w2,"))
    keys[w1] = keys[w1].split()[0] + " " + " ".join(keys[w2].split()[1:])  # kf-w1's address, kf-w2's key
    wrong = tmp_path / "known_hosts"
    wrong.write_text("\n".join(keys) + "\n")
    with pytest.raises(paramiko.BadHostKeyException):
        ssh(lab, "kf-w1", known_hosts=wrong).open()


def test_the_password_sudo_user_needs_the_lab_password(lab):
    with ssh(lab, "kf-w2", "kfpasswd") as c:
        refused = c.run("sudo -n true", hide=True, warn=True)
        assert refused.failed and "password is required" in refused.stderr
    with ssh(lab, "kf-w2", "kfpasswd", password=lab.sudo_password) as c:
        assert c.sudo("id -un", hide=True).stdout.strip() == "root"
    with ssh(lab, "kf-w2", "kfpasswd", password="not-" + lab.sudo_password) as c, pytest.raises(AuthFailure):
        c.sudo("id -un", hide=True)


def test_node_hosts_boot_systemd_and_run_containerd(lab):
    assert lab.run("kf-cp1", "ps -p 1 -o comm=").stdout.strip() == "systemd"
    assert lab.run("kf-cp1", "systemctl is-system-running", check=False).stdout.strip() == "running"
    assert lab.run("kf-cp1", "systemctl list-units --failed --plain --no-legend").stdout == ""
    try:
        lab.run("kf-cp1", "systemctl start containerd")
        assert "Server:" in lab.run("kf-cp1", "ctr version").stdout
        assert lab.run("kf-cp1", "findmnt -no FSTYPE /var/lib/containerd").stdout.strip() == "tmpfs"
    finally:
        lab.run("kf-cp1", "systemctl stop containerd", check=False)
    assert lab.run("kf-w1", "systemctl is-active containerd", check=False).stdout.strip() == "inactive"


def test_builtin_modules_load_with_modprobe(lab):
    for module in ("overlay", "br_netfilter", "nf_conntrack", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"):
        lab.run("kf-w1", f"modprobe {module}")
    assert lab.run("kf-w1", "modprobe no_such_module", check=False).returncode != 0


def test_labs_side_by_side_have_their_own_subnet_and_bridge(lab, new_lab):
    other = new_lab(hosts=2)
    ours = ipaddress.ip_network(f"{lab.bridge_address}/22", strict=False)
    theirs = ipaddress.ip_network(f"{other.bridge_address}/22", strict=False)
    assert not ours.overlaps(theirs) and theirs.subnet_of(LAB_RANGE)
    assert lab.state.bridge != other.state.bridge
    with ssh(other, "kf-w1") as c:
        assert c.run("hostname", hide=True).stdout.strip() == "kf-w1"
    unreachable = other.run("kf-w1", f"socat -u OPEN:/dev/null TCP:{lab.host('kf-w1').address}:22,connect-timeout=2",
                            check=False)
    assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr


def test_offline_binaries_are_mounted_read_only_and_not_on_path(new_lab, tmp_path):
    (tmp_path / "kubeadm").write_text("#!/bin/sh\necho kubeadm double\n")
    (tmp_path / "kubeadm").chmod(0o755)
    one = new_lab(hosts=1, bin_dir=tmp_path)
    assert one.run("kf-cp1", "/opt/kubefab-lab/bin/kubeadm").stdout == "kubeadm double\n"
    assert one.run("kf-cp1", "command -v kubeadm", check=False).returncode != 0
    assert one.run("kf-cp1", "touch /opt/kubefab-lab/bin/x", check=False).returncode != 0


def test_a_node_host_whose_sshd_stops_keeps_running(new_lab):
    one = new_lab(hosts=1, flavour="node")
    one.stop_sshd("kf-cp1")
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        ssh(one, "kf-cp1").open()
    assert one.run("kf-cp1", "systemctl is-active ssh", check=False).stdout.strip() == "inactive"


def test_a_control_plane_weighed_four_workers_gets_four_times_their_share_of_busy_cores(new_lab):
    """Lab.up(control_plane_weight=4): while both hosts keep every core busy, kf-cp1 gets about 4/5 of the CPU time
    and kf-w1 1/5 (equal weights: half each)."""
    pair = new_lab(hosts=2, flavour="node", control_plane_weight=4)
    cores = os.cpu_count() or 2
    spin = f"for i in $(seq {cores}); do timeout 3 sh -c 'while :; do :; done' & done; wait; times"

    def cpu(host, out):     # times' last line: the children's user and system time, e.g. '0m2.61s 0m0.00s'
        with ssh(pair, host) as c:      # over SSH, so in the host's cgroup (lab.run's nsenter stays in ours)
            user, system = c.run(spin, hide=True).stdout.splitlines()[-1].split()
        out[host] = sum(float(t.split("m")[0]) * 60 + float(t.split("m")[1].rstrip("s")) for t in (user, system))

    used = {}
    threads = [threading.Thread(target=cpu, args=(h, used)) for h in ("kf-cp1", "kf-w1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert used["kf-cp1"] > 2 * used["kf-w1"], used


def test_writes_inside_a_host_never_reach_the_machine(lab):
    lab.run("kf-w2", "echo lab > /usr/local/kubefab-probe; mkdir -p /var/lib/kubelet")
    try:
        assert not Path("/usr/local/kubefab-probe").exists()
        assert lab.run("kf-w1", "test -e /usr/local/kubefab-probe", check=False).returncode != 0
    finally:
        lab.run("kf-w2", "rm -f /usr/local/kubefab-probe; rmdir /var/lib/kubelet", check=False)


def venv_under(base):
    """A venv at `base`/venv whose packages are this interpreter's (a .pth line): where CI runners put them."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    site = next((base / "venv" / "lib").glob("python3*")) / "site-packages"
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (site / "outer.pth").write_text("".join(f"{p}\n" for p in sorted(paths)))
    return base / "venv" / "bin" / "python"


def test_doubles_installed_with_a_venv_under_tmp_run_inside_lab_hosts(new_lab, tmp_path):
    """Lab hosts mount their own /tmp: the venv's directories are bound into them at the same paths."""
    python = venv_under(tmp_path)
    assert str(python).startswith("/tmp/")
    bin_dir = install_dir(tmp_path / "bin", python=python)
    assert (bin_dir / "kubeadm").read_text().splitlines()[0] == f"#!{python}"
    lab = new_lab(hosts=1, control_planes=0, flavour="plain", bin_dir=bin_dir)
    done = lab.run("kf-w1", f"{BIN_MOUNT}/kubeadm version -o short")
    assert done.stdout.strip() == DEFAULT_VERSION


def test_a_lab_refuses_doubles_whose_interpreter_is_gone(new_lab, tmp_path):
    python = venv_under(tmp_path)
    bin_dir = install_dir(tmp_path / "bin", python=python)
    (python.parent.parent / "pyvenv.cfg").unlink()
    python.unlink()
    with pytest.raises(LabError, match=f"run with {python}, which no longer exists"):
        new_lab(hosts=1, control_planes=0, flavour="plain", bin_dir=bin_dir)


def test_lab_tasks_start_list_and_remove_a_lab():
    up = invoke("lab.up", "--hosts", "1", "--flavour", "plain", "--nat")
    assert up.returncode == 0, up.stderr
    inventory_path = up.stdout.strip()
    lab_id = Path(inventory_path).parent.name
    try:
        status = invoke("lab.status")
        assert f"lab {lab_id}: plain, 1/1 hosts running, detached" in status.stdout, status.stderr
        nat = spec.nat_netns_name(int(lab_id))
        assert nat in kernel.netns_list(), "--nat: the NAT adapters' peers have a namespace of their own"
    finally:
        down = invoke("lab.down", "--lab-id", lab_id)
    assert down.stdout.strip() == f"removed lab {lab_id}", down.stderr
    assert f"lab {lab_id}:" not in invoke("lab.status").stdout
    assert nat not in kernel.netns_list()


def test_an_ha_lab_reserves_a_vip_and_lab_tasks_cut_and_connect_a_hosts_link(new_lab):
    lab = new_lab(hosts=2, control_planes=1, flavour="plain", ha=True)
    ha = toml.loads(lab.inventory.read_text())["cluster"]["ha"]
    assert ha == {"vip": spec.vip_address(lab.id), "mode": "keepalived"}
    assert ipaddress.ip_address(ha["vip"]) in spec.subnet(lab.id)
    assert ha["vip"] not in {h.address for h in lab.hosts} | {lab.bridge_address, spec.repo_address(lab.id)}
    assert inventory.load(lab.inventory).endpoint == f"{ha['vip']}:8443"
    cut = invoke("lab.cut", "--host", "kf-w1", "--lab-id", str(lab.id))
    assert cut.stdout.strip() == f"lab {lab.id}: kf-w1's link is down", cut.stderr
    assert not port_open(lab.host("kf-w1").address, 22) and port_open(lab.host("kf-cp1").address, 22)
    back = invoke("lab.connect", "--host", "kf-w1", "--lab-id", str(lab.id))
    assert back.returncode == 0 and port_open(lab.host("kf-w1").address, 22), back.stderr
    unknown = invoke("lab.cut", "--host", "kf-w9", "--lab-id", str(lab.id))
    assert unknown.returncode == 2
    assert f"no lab {lab.id} has a host 'kf-w9' — hosts are kf-cp1, kf-w1" in unknown.stderr
