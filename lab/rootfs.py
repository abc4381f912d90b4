"""The files a lab puts over the machine's own root: one layer for the whole lab, one per host.

A layer is a directory used as an overlayfs lower dir, so every path in it must be the machine's
real path (/usr/lib/modules, not /lib/modules: a directory over the machine's /lib symlink would
hide /lib) and every directory takes the machine's owner and mode (the upper-most layer's win).
"""

import os
import platform
import re
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .spec import ROOT, USERS

# kubeadm's preflight and kubefab's install run `modprobe` for these; the machine's kernel has them
# built in, and modprobe succeeds as a no-op for a module listed in modules.builtin.
BUILTIN_MODULES = (
    "kernel/fs/overlayfs/overlay.ko",
    "kernel/net/bridge/br_netfilter.ko",
    "kernel/net/netfilter/nf_conntrack.ko",
    "kernel/net/netfilter/ipvs/ip_vs.ko",
    "kernel/net/netfilter/ipvs/ip_vs_rr.ko",
    "kernel/net/netfilter/ipvs/ip_vs_wrr.ko",
    "kernel/net/netfilter/ipvs/ip_vs_sh.ko",
)
SSHD_CONFIG = """\
# kubefab lab: key-only logins, fast fan-out.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 1000
MaxSessions 100
PrintLastLog no
"""
# The machine's root profile starts pyenv, ~100 ms per remote command.
LIGHT_PROFILE = "# kubefab lab: a light shell\n"
# Units that would act on the whole machine (clock, consoles, devices, binfmt) or fail without
# hardware; masked so a node host boots to 'running'.
MASKED_UNITS = (
    "systemd-timesyncd.service", "getty@.service", "console-getty.service", "serial-getty@.service",
    "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
    "systemd-modules-load.service", "systemd-pstore.service", "systemd-remount-fs.service",
    "systemd-hwdb-update.service", "systemd-journald-audit.socket", "systemd-firstboot.service",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount", "dev-hugepages.mount", "dev-mqueue.mount",
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
)
SYSTEM_UNITS = Path("/lib/systemd/system")
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


class Layer:
    """A directory written as an overlay lower layer."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def dir(self, path, owner=None, mode=None):
        """Create `path` in the layer; each new directory copies the machine's, or is root's 0755."""
        target = self.root
        for part in Path(path).relative_to("/").parts:
            target = target / part
            if not target.exists():
                target.mkdir()
                machine = Path("/", target.relative_to(self.root))
                st = machine.stat() if machine.is_dir() else None
                os.chown(target, st.st_uid if st else 0, st.st_gid if st else 0)
                os.chmod(target, (st.st_mode & 0o7777) if st else 0o755)
        if owner is not None:
            os.chown(target, owner, owner)
        if mode is not None:
            os.chmod(target, mode)
        return target

    def file(self, path, content, mode=0o644, owner=0):
        target = self.dir(Path(path).parent) / Path(path).name
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chown(target, owner, owner)
        os.chmod(target, mode)

    def link(self, path, to):
        os.symlink(to, self.dir(Path(path).parent) / Path(path).name)

    def whiteout(self, path):
        """Hide the machine's file or directory at `path`."""
        os.mknod(self.dir(Path(path).parent) / Path(path).name, 0o020000, os.makedev(0, 0))

    def opaque(self, path):
        """Hide the machine's directory at `path`: only what this layer puts there is seen."""
        os.setxattr(self.dir(path), "trusted.overlay.opaque", b"y")


def ed25519_pair():
    """(OpenSSH private key text, 'ssh-ed25519 AAAA...' public key) of a new key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def password_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True,
                          text=True, check=True).stdout.strip()


def lab_layer(root, *, hosts, client_public_key, password, systemd, mount_points):
    """Write the layer every host of a lab shares: users and keys, sshd, /etc/hosts, modules."""
    layer = Layer(root)
    write_users(layer, client_public_key, password_hash(password))
    layer.file("/etc/ssh/sshd_config.d/kubefab-lab.conf", SSHD_CONFIG)
    # pam_loginuid refuses the login wherever the audit login uid cannot be written (set immutable, or
    # no CAP_AUDIT_CONTROL); nothing a lab host runs needs it.
    pam = re.sub(r"^session\s+required\s+pam_loginuid\.so", "session optional pam_loginuid.so",
                 Path("/etc/pam.d/sshd").read_text(), flags=re.M)
    layer.file("/etc/pam.d/sshd", pam)
    layer.file("/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               + "".join(f"{h.address}\t{h.name}\n" for h in hosts))
    builtin_modules(layer)
    for path in mount_points:
        layer.dir(path)
    if systemd:
        systemd_units(layer)
    return layer


def builtin_modules(layer):
    """modules.builtin and the indexes depmod makes from it (modprobe reads only the indexes)."""
    modules = Path(os.path.realpath("/lib/modules"))  # /usr/lib/modules on a merged-/usr system
    layer.file(modules / platform.release() / "modules.builtin", "".join(m + "\n" for m in BUILTIN_MODULES))
    base = layer.root / modules.parent.parent.relative_to("/")  # depmod -b BASE reads BASE/lib/modules
    subprocess.run(["depmod", "-b", str(base), platform.release()], check=True, capture_output=True)


def write_users(layer, public_key, hashed_password):
    etc = {name: Path("/etc", name).read_text() for name in ("passwd", "shadow", "group", "gshadow")}
    lab_users = [u for u in USERS if u is not ROOT]
    etc["passwd"] += "".join(f"{u.name}:x:{u.uid}:{u.uid}:kubefab lab:{u.home}:/bin/bash\n" for u in lab_users)
    etc["group"] += "".join(f"{u.name}:x:{u.uid}:\n" for u in lab_users)
    etc["gshadow"] += "".join(f"{u.name}:!::\n" for u in lab_users)
    # Key-only logins; the hash only lets sudo check the password user's password.
    etc["shadow"] += "".join(f"{u.name}:{hashed_password if u.password else '*'}:19000:0:99999:7:::\n"
                             for u in lab_users)
    for name, text in etc.items():
        layer.file(f"/etc/{name}", text, mode=0o640 if "shadow" in name else 0o644)
    layer.file("/etc/sudoers.d/kubefab-lab", "".join(f"{u.name} {u.sudoers}\n" for u in lab_users), mode=0o440)
    layer.whiteout("/root/.kube")  # the machine's kubeconfig: a fresh node has none
    for u in USERS:
        layer.dir(u.home, owner=u.uid, mode=0o700)
        layer.dir(f"{u.home}/.ssh", owner=u.uid, mode=0o700)
        layer.file(f"{u.home}/.ssh/authorized_keys", public_key + "\n", mode=0o600, owner=u.uid)
        for profile in (".profile", ".bashrc"):
            layer.file(f"{u.home}/{profile}", LIGHT_PROFILE, owner=u.uid)


def systemd_units(layer):
    """A fresh node's /etc/systemd/system: boots to multi-user with only ssh enabled, machine-wide units masked.

    The machine's own enablements (postgresql, etcd, containerd, timers) stay hidden, as on a
    freshly installed host: kubefab's install enables what a node needs.
    """
    units = "/etc/systemd/system"
    layer.opaque(units)
    layer.link(f"{units}/default.target", str(SYSTEM_UNITS / "multi-user.target"))
    layer.link(f"{units}/multi-user.target.wants/ssh.service", str(SYSTEM_UNITS / "ssh.service"))
    layer.link(f"{units}/sshd.service", str(SYSTEM_UNITS / "ssh.service"))
    for unit in MASKED_UNITS:
        layer.link(f"{units}/{unit}", "/dev/null")


def dev_template(root):
    """The nodes and links every host's private /dev starts with (never the machine's /dev)."""
    root = Path(root)
    root.mkdir(parents=True)
    for name, major, minor in DEV_NODES:
        os.mknod(root / name, 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(root / name, 0o666)
    for name, to in DEV_LINKS:
        os.symlink(to, root / name)
    for name in ("pts", "shm"):
        (root / name).mkdir()
    return root


def host_layer(root, *, hostname, machine_id, host_key, files, hidden=()):
    """Write one host's own layer: hostname, machine-id, sshd host key and its quirks' files (and hidden ones)."""
    layer = Layer(root)
    layer.file("/etc/hostname", hostname + "\n")
    layer.file("/etc/machine-id", machine_id + "\n", mode=0o444)
    layer.file("/etc/ssh/ssh_host_ed25519_key", host_key, mode=0o600)
    for path, (content, mode) in files.items():
        layer.file(path, content, mode=mode)
    for path in hidden:
        layer.whiteout(path)
    return layer


def apt_sources_only(layer):
    """Hide the machine's apt sources and package lists: apt in a host knows only the sources kubefab adds
    (the lab's repository; Debian's packages, containerd among them, are those the machine has installed)."""
    layer.opaque("/etc/apt/sources.list.d")
    layer.opaque("/var/lib/apt/lists")
    layer.dir("/var/lib/apt/lists/partial")
    if Path("/etc/apt/sources.list").exists():
        layer.whiteout("/etc/apt/sources.list")
