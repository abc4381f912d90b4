"""The Debian packages a lab needs on the machine, installed on first use."""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# invoke-rc.d asks this helper before starting a service; 101 means "no": installing sshd, etcd or
# containerd must not start them on the machine itself.
POLICY_RC = Path("/usr/sbin/policy-rc.d")


@dataclass(frozen=True)
class Package:
    name: str
    command: str  # present when the package is installed


PACKAGES = (
    Package("openssh-server", "sshd"),
    Package("sudo", "sudo"),
    Package("iproute2", "ip"),
    Package("kmod", "modprobe"),
    Package("procps", "ps"),
    Package("openssl", "openssl"),
    Package("systemd", "systemctl"),
    Package("dbus", "dbus-daemon"),  # systemd-logind in node hosts needs the system bus
    Package("containerd", "containerd"),
    Package("runc", "runc"),
    Package("etcd-server", "etcd"),
    Package("etcd-client", "etcdctl"),
    Package("iptables", "iptables"),
    Package("conntrack", "conntrack"),
    Package("ebtables", "ebtables"),
    Package("socat", "socat"),
    Package("ethtool", "ethtool"),
    Package("apt-utils", "apt-ftparchive"),  # indexes the lab's apt repository (repo.py)
    Package("gnupg", "gpg"),  # signs it with a key the lab makes
    Package("rpm", "rpmbuild"),  # builds and signs its rpm packages
    Package("createrepo-c", "createrepo_c"),  # indexes its rpm repository
    Package("dnf", "dnf"),  # installs from it in a lab host (tests/lab/test_lab_packages.py)
    Package("busybox", "busybox"),  # tests/unit/test_facts.py runs the fact probe under busybox's shell and tools
    Package("keepalived", "keepalived"),  # holds an HA cluster's virtual IP by VRRP among the control planes
    Package("haproxy", "haproxy"),  # balances the virtual IP's port over every control plane's API server
)


def which(command):
    """The absolute path of `command` on the machine's system PATH, or None."""
    return shutil.which(command, path=SYSTEM_PATH)


def missing():
    return tuple(p.name for p in PACKAGES if which(p.command) is None)


APT_ARCHIVES = Path("/var/cache/apt/archives")
BALANCER = ("keepalived", "haproxy", "socat")  # what an HA inventory's offline directory holds as .debs


def download_debs(directory):
    """The .debs of BALANCER in `directory`, as `apt-get download` names them: copied from apt's cache (the lab
    installed them on the machine), else downloaded. The lab's hosts already have their dependencies."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in BALANCER:
        cached = sorted(APT_ARCHIVES.glob(f"{name}_*.deb"))
        if cached:
            shutil.copy2(cached[-1], directory / cached[-1].name)
            continue
        done = subprocess.run(["apt-get", "download", "-q", name], cwd=directory, capture_output=True, text=True,
                              env=dict(os.environ, PATH=SYSTEM_PATH))
        if done.returncode:
            raise LabError(f"apt-get download {name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def ensure():
    """apt-get install whatever the lab needs and the machine lacks; nothing when all are there."""
    return install(missing())


def install(names):
    """apt-get install the Debian packages `names` (after apt-get update), starting none of their services."""
    if not names:
        return ()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", PATH=SYSTEM_PATH)
    own_policy = not POLICY_RC.exists()
    if own_policy:
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
    try:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *names]
        for argv in (["apt-get", "update", "-q"], install):
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if done.returncode:
                raise LabError(f"{' '.join(argv)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
                               f"\ninstall these packages by hand: {' '.join(names)}")
    finally:
        if own_policy:
            POLICY_RC.unlink()
    return names
