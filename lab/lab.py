"""A lab: real SSH hosts in network namespaces on this machine, with an inventory for kubefab.

    with Lab.up(hosts=3, flavour="node", quirks={"kf-w2": ["swap"]}) as lab:
        lab.run("kf-w2", "swapon --show")
        subprocess.run(["invoke", "cluster.up", "-i", str(lab.inventory)])

`down()` removes everything the lab made; `down_labs()` also cleans labs whose runner was killed.
"""

import atexit
import hashlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import toml

from . import doubles, kernel, packages, quirks as quirk_table, repo, rootfs, spec, state
from .doubles import INTERPRETER
from .doubles.hostfs import DEFAULT_VERSION
from .errors import LabError

INIT = Path(__file__).resolve().parent / "init.sh"
KUBERNETES_VERSION = DEFAULT_VERSION.removeprefix("v")  # the version the doubles report
BIN_MOUNT = "/opt/kubefab-lab/bin"  # where bin_dir appears in every host; not on PATH
# What init.sh mounts afresh in every host: the machine's files under these are not seen there.
HOST_MOUNTS = ("/dev", "/proc", "/run", "/sys", "/tmp")
SSH_PORT = 22
INSTALLS = ("offline", "packages")  # kubefab's install sources a lab serves
RELEASE_EPOCH = 1756684800  # 2025-09-01: the offline doubles' mtime, one day later per version (release_time)
_live = set()  # labs of this process that go down when it exits


class Lab:
    """A running lab. Build one with `Lab.up(...)`; its hosts, files and password are attributes."""

    def __init__(self, record, hosts, flavour, ssh_user, install="offline", nat=False, ha=False,
                 version=KUBERNETES_VERSION, kubelet_status_seconds=None, control_plane_weight=1):
        self.state = record
        self.id = record.lab_id
        self.dir = Path(record.dir)
        self.hosts = hosts
        self.flavour = flavour
        self.ssh_user = ssh_user
        self.nat = nat  # every host has a NAT adapter first, as a VirtualBox VM (spec.NAT_ADDRESS)
        self.vip = spec.vip_address(record.lab_id) if ha else None  # the inventory's [cluster.ha] vip
        self.inventory = self.dir / "inventory.toml"
        self.known_hosts = self.dir / "known_hosts"
        self.identity_file = self.dir / "id_ed25519"
        self.sudo_password_file = self.dir / "sudo_password"
        self.version = version  # the inventory's kubernetes_version
        self.kubelet_status_seconds = kubelet_status_seconds
        self.control_plane_weight = control_plane_weight
        self.offline_root = self.dir / "offline"  # kubefab's offline install sources, one directory per version
        self.install = install
        self.repository = spec.repo_host(record.lab_id) if install == "packages" else None
        self.sudo_password = secrets.token_urlsafe(12)  # kfpasswd's; never printed, kept 0600 in sudo_password_file
        self.bridge_address = str(spec.subnet(self.id)[1])
        self._bin_dir = None
        self._binds = ()
        self._hierarchies = ()
        self._cgroups = {}
        self._procs = {}
        self._init_pids = {}
        self._stopped = set()

    def __repr__(self):
        return f"<Lab {self.id}: {len(self.hosts)} {self.flavour.name} hosts, inventory {self.inventory}>"

    @classmethod
    def up(cls, hosts=3, control_planes=1, flavour="plain", quirks=None, ssh_user="root", bin_dir=None,
           root=None, detach=False, timeout=None, install="offline", nat=False, ha=False,
           version=KUBERNETES_VERSION, kubelet_status_seconds=None, control_plane_weight=1):
        """Build and boot a lab of `hosts` hosts, the first `control_planes` of them control planes.

        quirks: {host name: [quirk name, ...]} (see quirks.QUIRKS); ssh_user: the inventory's user
        (root, kfadmin with passwordless sudo, or kfpasswd whose sudo asks for `lab.sudo_password`);
        bin_dir: a directory of executables bound read-only at /opt/kubefab-lab/bin in every host;
        detach: keep the lab after this process exits (for `invoke lab.up`); install: the inventory's install
        source, "offline" (a directory of the doubles) or "packages" (the lab's signed apt repository, served
        over HTTP from a network namespace of its own, the hosts' only apt source; see repo.py);
        nat: give every host VirtualBox's NAT adapter first (eth0, spec.NAT_ADDRESS on every host, the default
        route through spec.NAT_GATEWAY, traffic going nowhere); the lab network is then eth1;
        ha: the inventory gets `[cluster.ha]` with the address the lab reserves for a virtual IP (spec.vip_address),
        held by keepalived and served by haproxy on the control planes (Debian's, installed by packages.ensure()).
        version: the inventory's kubernetes_version, one of repo.VERSIONS (every one is served, for upgrades).
        kubelet_status_seconds: how often each kubelet double syncs its pods and posts its node status (default the
        double's 2 s, which keeps tests quick); a large lab takes the real kubelet's 10 s (nodeStatusUpdateFrequency),
        through /etc/default/kubelet, the kubelet unit's environment file.
        control_plane_weight: each control plane's CPU share, in workers' (node hosts: their cgroups' cpu.shares or
        cpu.weight). All hosts share the machine's cores, where real control planes have cores of their own: while
        a hundred hosts run at once, an equal share leaves the API server a hundredth of the cores.
        """
        kind, login, by_host = spec.flavour(flavour), spec.user(ssh_user), quirk_table.resolve(quirks)
        names = spec.host_names(hosts, control_planes, by_host)
        if ha and not control_planes:
            raise LabError("an HA lab needs control planes to hold its virtual IP: give --control-planes")
        if bin_dir is not None and not Path(bin_dir).is_dir():
            raise LabError(f"bin_dir {bin_dir} is not a directory")
        if install not in INSTALLS:
            raise LabError(f"unknown install source {install!r} — choose one of: {', '.join(INSTALLS)}")
        if version not in repo.VERSIONS:
            raise LabError(f"a lab serves Kubernetes {', '.join(repo.VERSIONS)}, not {version!r}")
        require_namespaces()
        packages.ensure()
        lab_id, lab_dir = state.allocate(state.root_dir(root))
        planned = spec.hosts(lab_id, names, by_host)
        linked = planned + ((spec.repo_host(lab_id),) if install == "packages" else ())
        namespaces = [h.netns for h in linked] + ([spec.nat_netns_name(lab_id)] if nat else [])
        record = state.State(lab_id, str(lab_dir), kind.name, spec.bridge_name(lab_id), namespaces,
                             [h.veth for h in linked], os.getpid(), detached=detach,
                             links={h.name: h.veth for h in planned})
        record.save()
        lab = cls(record, planned, kind, login, install, nat, ha, version, kubelet_status_seconds,
                  control_plane_weight)
        try:
            lab._build(bin_dir and Path(bin_dir).resolve())
            lab._boot()
            lab._serve_repository()
            lab._wait(timeout or 30 + len(planned) * (5 if kind.systemd else 0.2))
            lab._check_interpreter()
            for h in planned:
                for q in h.quirks:
                    if q.after_up:
                        getattr(lab, q.after_up)(h.name)
        except BaseException:
            lab.down()
            raise
        if not detach:
            _live.add(lab)
        return lab

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in lab {self.id} — hosts are {', '.join(h.name for h in self.hosts)}")

    def _host_dir(self, name):
        return self.dir / "fs" / "hosts" / name

    def _build(self, bin_dir):
        fs = self.dir / "fs"
        fs.mkdir()
        (self.dir / "logs").mkdir()
        kernel.mount_tmpfs(fs, f"{spec.PREFIX}{self.id}-fs", "64m")
        client_key, client_public = rootfs.ed25519_pair()
        write_private(self.identity_file, client_key)
        write_private(self.sudo_password_file, self.sudo_password + "\n")
        self.identity_file.with_suffix(".pub").write_text(client_public + "\n")
        layer = rootfs.lab_layer(fs / "layer", hosts=self.hosts, client_public_key=client_public,
                                 password=self.sudo_password, systemd=self.flavour.systemd,
                                 mount_points=self.flavour.tmpfs + ((BIN_MOUNT,) if bin_dir else ()))
        if self.repository:
            rootfs.apt_sources_only(layer)
        rootfs.dev_template(fs / "dev")
        self._bin_dir = bin_dir
        self._write_offline_dir()
        # the doubles, pushed by kubefab from the offline dir or bound from bin_dir, run with the interpreter
        # that installed them: what it needs is bound into every host
        self._binds = tuple(dict.fromkeys(path for d in self._doubles_dirs()
                                          for path in interpreter_binds(d, HOST_MOUNTS + self.flavour.tmpfs)))
        known = [self._host_layer(h) for h in self.hosts]
        self.known_hosts.write_text("".join(f"{h.name},{h.address} {key}\n" for h, key in zip(self.hosts, known)))
        self.inventory.write_text(toml.dumps(self.inventory_data()))
        if self.flavour.systemd:
            self._hierarchies = kernel.hierarchies()
            self._cgroups = {h.name: kernel.make_cgroups(self._hierarchies, spec.cgroup_name(self.id, h.index))
                             for h in self.hosts}
            for h in self.hosts:
                if "control-plane" in h.roles and self.control_plane_weight != 1:
                    kernel.weigh_cgroups(self._cgroups[h.name], self.control_plane_weight)
            self.state.cgroups = [p for paths in self._cgroups.values() for p in paths]
            self.state.save()
        kernel.network_up(self.state.bridge, f"{self.bridge_address}/{spec.LAB_PREFIX}", self.hosts,
                          spec.nat_netns_name(self.id) if self.nat else None,
                          (self.repository,) if self.repository else ())

    def _host_layer(self, h):
        """Write host `h`'s layer and fake /proc files; returns its public host key."""
        host_key, public = rootfs.ed25519_pair()
        files = {path: spec_ for q in h.quirks for path, spec_ in q.files.items()}
        if self.kubelet_status_seconds:
            files["/etc/default/kubelet"] = (f"KUBEFAB_DOUBLE_STATUS_SECONDS={self.kubelet_status_seconds:g}\n", 0o644)
        rootfs.host_layer(self._host_dir(h.name) / "layer",
                          hostname=self._twin(h, "hostname").name,
                          machine_id=self._machine_id(self._twin(h, "machine-id")),
                          host_key=host_key, files=files, hidden=[p for q in h.quirks for p in q.hidden])
        (self._host_dir(h.name) / "proc").mkdir()
        (self._host_dir(h.name) / "run").mkdir()
        for q in h.quirks:
            for name, content in q.proc.items():
                text = content(Path("/proc", name).read_text()) if callable(content) else content
                (self._host_dir(h.name) / "proc" / name).write_text(text)
        return public

    def _machine_id(self, h):
        return hashlib.sha256(f"{self.dir}:{self.state.owner_pid}:{h.name}".encode()).hexdigest()[:32]

    def _write_offline_dir(self):
        for version in repo.VERSIONS:
            directory = self.offline_dir_for(version)
            doubles.install_dir(directory, version=f"v{version}")
            doubles.install_cni_plugins(directory / "cni")   # the CNI plugins release, as kubernetes-cni brings
            for path, text in doubles.unit_files().items():
                (directory / Path(path).name).write_text(text)
            if self.vip:  # [cluster.ha] keepalived installs keepalived, haproxy and socat from the offline dir
                packages.download_debs(directory / "debs")
            release_time(directory, version)

    def offline_dir_for(self, version):
        """The offline install source of Kubernetes `version` (one of repo.VERSIONS): its doubles report it."""
        return self.offline_root / version

    @property
    def offline_dir(self):
        """The offline install source the inventory names: the doubles of the lab's version."""
        return self.offline_dir_for(self.version)

    def write_inventory(self, version):
        """Rewrite `inventory` for Kubernetes `version`, as a user edits it before `cluster.upgrade`."""
        self.version = version
        self.inventory.write_text(toml.dumps(self.inventory_data()))

    def inventory_data(self):
        """kubefab's inventory of this lab, as written to `inventory`."""
        ha = {"ha": {"vip": self.vip, "mode": "keepalived"}} if self.vip else {}
        return {
            "cluster": {"name": "lab", "kubernetes_version": self.version, **ha},
            "ssh": {"user": self.ssh_user.name, "port": SSH_PORT, "identity_file": str(self.identity_file),
                    "sudo": self.ssh_user is not spec.ROOT, "known_hosts": "strict",
                    "known_hosts_file": str(self.known_hosts)},
            "hosts": {h.name: {"address": h.address, "roles": list(h.roles)} for h in self.hosts},
            **({"install": {"source": "packages"}, "mirrors": {"package_repository": self.repository_url}}
               if self.repository else {"install": {"source": "offline", "directory": str(self.offline_dir)}}),
        }

    @property
    def repository_url(self):
        """The base URL of the lab's package repository, as `[mirrors] package_repository` takes it."""
        return f"http://{self.repository.address}/core:/stable:"

    def _serve_repository(self):
        """Serve the cached repository (built first when needed) from the repository's namespace on port 80."""
        if not self.repository:
            return
        root = repo.ensure()
        r = self.repository
        kernel.ip_batch([f"addr add {r.address}/{spec.LAB_PREFIX} dev eth0", "link set eth0 up", "link set lo up"],
                        netns=r.netns)
        argv = [packages.which("nsenter"), f"--net={kernel.NETNS_DIR / r.netns}", sys.executable, "-m",
                "http.server", "--bind", r.address, "--directory", str(root), "80"]
        self._procs[r.name] = kernel.start_host(argv, dict(kernel.HOST_ENV), self._log(r.name))
        deadline = time.monotonic() + 10
        while not port_open(r.address, 80):
            if self._procs[r.name].poll() is not None or time.monotonic() > deadline:
                raise LabError(f"the lab's package repository did not answer on {r.address}:80; its log "
                               f"{self._log(r.name)} ends:\n{tail(self._log(r.name))}")
            time.sleep(0.05)

    def _boot(self):
        unshare = [packages.which("unshare"), "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
                   *(["--cgroup"] if self.flavour.systemd else []), "/bin/sh", str(INIT), *self.flavour.pid1]
        for h in self.hosts:
            argv = [packages.which("nsenter"), f"--net={kernel.NETNS_DIR / h.netns}", *unshare]
            self._procs[h.name] = kernel.start_host(argv, self._init_env(h), self._log(h.name),
                                                    self._cgroups.get(h.name, ()))
        self.state.pids = {name: p.pid for name, p in self._procs.items()}
        self.state.save()

    def _init_env(self, h):
        """init.sh's inputs for host `h` (described at the top of init.sh)."""
        host_dir = self._host_dir(h.name)
        return dict(kernel.HOST_ENV, **dict(self.flavour.env),
                    KFL_HOST=str(host_dir), KFL_LOWER=f"{host_dir}/layer:{self.dir}/fs/layer:/",
                    KFL_DISK=next((q.disk for q in h.quirks if q.disk), self.flavour.disk),
                    KFL_LINK=spec.lab_link(self.nat), KFL_ADDRESS=f"{h.address}/{spec.LAB_PREFIX}",
                    KFL_NAT=f"{spec.NAT_ADDRESS}/{spec.NAT_PREFIX} {spec.NAT_GATEWAY}" if self.nat else "",
                    KFL_HOSTNAME=self._twin(h, "hostname").name,
                    KFL_DEV=f"{self.dir}/fs/dev", KFL_TMPFS=" ".join(self.flavour.tmpfs),
                    KFL_BIN=str(self._bin_dir or ""), KFL_BIN_AT=BIN_MOUNT, KFL_BINDS=" ".join(self._binds),
                    KFL_CGROUPS=" ".join(kernel.mount_specs(self._hierarchies)) if self._hierarchies else "",
                    KFL_BOOT="; ".join(q.boot for q in h.quirks if q.boot))

    def _doubles_dirs(self):
        return (*(self.offline_dir_for(v) for v in repo.VERSIONS), *((self._bin_dir,) if self._bin_dir else ()))

    def _check_interpreter(self):
        """LabError naming the interpreter when a host cannot run the doubles (offline dir or bin_dir)."""
        for d in self._doubles_dirs():
            if not (d / INTERPRETER).exists():
                continue
            python = (d / INTERPRETER).read_text().splitlines()[0]
            done = self.run(self.hosts[0].name, f"{shlex.quote(python)} -c 'import cryptography, yaml'", check=False)
            if done.returncode:
                raise LabError(f"lab hosts cannot run the doubles' interpreter {python} (exit {done.returncode}: "
                               f"{done.stderr.strip()[-300:]}) — install the doubles with an interpreter whose "
                               f"files the hosts can see, or check the directories in {d / INTERPRETER}")

    def _twin(self, h, what):
        """The host whose `what` ('hostname' or 'machine-id') host `h` shows: another one with the quirk."""
        if len(self.hosts) == 1 or not any(q.twin == what for q in h.quirks):
            return h
        return self.hosts[1] if h is self.hosts[0] else self.hosts[0]

    def _log(self, name):
        return self.dir / "logs" / f"{name}.log"

    def _wait(self, timeout):
        """Wait until every host accepts TCP on port 22 (and, with systemd, has finished booting)."""
        deadline = time.monotonic() + timeout
        pending = list(self.hosts)
        while pending:
            for h in list(pending):
                if port_open(h.address, SSH_PORT):
                    pending.remove(h)
                elif self._procs[h.name].poll() is not None:
                    raise LabError(f"lab host {h.name} stopped while booting (exit {self._procs[h.name].returncode});"
                                   f" its log {self._log(h.name)} ends:\n{tail(self._log(h.name))}")
            if pending and time.monotonic() > deadline:
                names = ", ".join(h.name for h in pending[:10])
                raise LabError(f"lab hosts {names} did not open port {SSH_PORT} within {timeout:.0f} s; "
                               f"see their logs in {self.dir / 'logs'}")
            if pending:
                time.sleep(0.02)
        if self.flavour.systemd:
            for h in self.hosts:
                left = max(1.0, deadline - time.monotonic())
                self.run(h.name, "systemctl is-system-running --wait >/dev/null || true", timeout=left)

    def init_pid(self, name):
        """PID (on the machine) of host `name`'s PID 1; LabError when the host is down."""
        self.host(name)
        if name in self._stopped:
            raise LabError(f"lab host {name} is down: its sshd was stopped, and with it the host")
        if name not in self._init_pids:
            pid = kernel.child_of(self._procs[name].pid)
            if pid is None:
                raise LabError(f"lab host {name} is not running; its log {self._log(name)} ends:\n"
                               f"{tail(self._log(name))}")
            self._init_pids[name] = pid
        return self._init_pids[name]

    def run(self, name, command, check=True, input=None, timeout=120):
        """Run shell `command` as root inside host `name` (its namespaces and root, no SSH).

        Returns the CompletedProcess with text stdout/stderr; with check, a non-zero exit raises
        LabError showing the host, command and stderr.
        """
        argv = [*kernel.nsenter_argv(self.init_pid(name), self.flavour.systemd), "/bin/sh", "-c", command]
        done = subprocess.run(argv, env=kernel.HOST_ENV, input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise LabError(f"on lab host {name}: `{command}` exited {done.returncode}: {done.stderr.strip()}")
        return done

    def cut(self, name):
        """Cut host `name` off the network: its link goes down, connections to it time out."""
        kernel.set_link(self.host(name).veth, up=False)

    def connect(self, name):
        """Undo `cut`: host `name` is reachable again."""
        kernel.set_link(self.host(name).veth, up=True)

    def stop_sshd(self, name):
        """Stop sshd on host `name`, so connections are refused.

        On a node host systemd stops ssh.service and the host keeps running; on a plain host sshd is
        PID 1, so the host ends with it (its address still answers, refusing connections).
        """
        if self.flavour.systemd:
            self.run(name, "systemctl stop ssh.service")
        else:
            kernel.kill([self._procs[self.host(name).name].pid])
            self._stopped.add(name)

    def down(self):
        """Stop every host and remove everything the lab made; safe to call twice."""
        _live.discard(self)
        teardown(self.state)
        for p in self._procs.values():
            p.poll()


def interpreter_binds(bin_dir, host_mounts):
    """Directories the doubles' interpreter needs that lab hosts would not see through the overlay of the
    machine's root: those under a path each host mounts afresh (a venv in /tmp) or on another filesystem.
    LabError when the interpreter itself is gone."""
    listing = Path(bin_dir, INTERPRETER)
    if not listing.exists():
        return ()
    python, *dirs = listing.read_text().splitlines()
    if not os.path.exists(python):
        raise LabError(f"the doubles in {bin_dir} run with {python}, which no longer exists — "
                       "install them again with lab.doubles.install_dir")
    root_dev = os.stat("/").st_dev
    hidden = [d for d in dirs if os.path.isdir(d) and (
        os.stat(d).st_dev != root_dev or any(d == m or d.startswith(m + "/") for m in host_mounts))]
    outermost = [d for d in hidden if not any(d.startswith(other + "/") for other in hidden)]
    spaced = [d for d in outermost if any(c.isspace() for c in d)]
    if spaced:
        raise LabError(f"the doubles' interpreter needs {spaced[0]!r}, a path with a space, which lab hosts "
                       "cannot bind — use a venv whose path has none")
    return tuple(outermost)


def release_time(directory, version):
    """Give every file under `directory` the mtime of `version`'s release, a day apart per version: the doubles of
    two versions have the same sizes, and kubefab knows an offline binary in place by its size and mtime, as it
    may for real releases, whose binaries differ in both."""
    stamp = RELEASE_EPOCH + repo.VERSIONS.index(version) * 86400
    for path in (directory, *directory.rglob("*")):
        os.utime(path, (stamp, stamp), follow_symlinks=False)


def require_namespaces():
    """LabError unless this process is root on a machine with network namespaces."""
    if os.geteuid() != 0:
        raise LabError("a lab needs root (it creates network namespaces, mounts and cgroups)")
    if not os.path.exists("/proc/self/ns/net"):
        raise LabError("this kernel has no network namespaces; a lab cannot run here")


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def port_open(address, port, timeout=0.5):
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def tail(path, lines=20):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def teardown(record):
    """Remove one lab from its state record: processes, network, cgroups, mounts, then its directory."""
    lab_dir = Path(record.dir)
    ours = [pid for name, pid in record.pids.items()
            if kernel.started_by_lab(pid, f"KFL_HOST={lab_dir}/fs/hosts/{name}")]
    kernel.kill(ours)
    kernel.kill(kernel.pids_in_netns(record.netns))
    kernel.network_down(record.bridge, record.netns, record.veths)
    kernel.remove_cgroups(record.cgroups)
    kernel.unmount(kernel.mounts_under(lab_dir))
    shutil.rmtree(lab_dir, ignore_errors=True)


def leftovers(lab_id, root):
    """A state record for lab `lab_id` rebuilt from kernel object names (its own record was lost)."""
    prefix = spec.netns_name(lab_id, "")
    return state.State(lab_id, str(root / str(lab_id)), "unknown", spec.bridge_name(lab_id),
                       kernel.netns_list(prefix), kernel.link_list(spec.veth_name(lab_id, "")), 0,
                       cgroups=kernel.leftover_cgroups(prefix))


def stale(record):
    """True for a lab whose runner is gone without detaching it (a killed test run)."""
    return not record.detached and orphaned(record)


def orphaned(record):
    """True for a lab whose starting process is gone: a killed run, or a lab left running by `invoke lab.up`."""
    return not os.path.exists(f"/proc/{record.owner_pid}")


SCOPES = {"stale": stale, "orphaned": orphaned, "all": lambda record: True}


def down_labs(ids=None, root=None, scope="stale"):
    """Tear down labs `ids`, or every lab under `root` that `scope` picks, with any lab's kernel objects left
    without a directory. scope: "stale" (runs killed before they tore down their labs: what a new test run
    cleans), "orphaned" (also labs detached by `invoke lab.up`), "all". Returns the ids removed."""
    root = state.root_dir(root)
    dirs = {int(p.name): p for p in state.lab_dirs(root)}
    named = {int(n[len(spec.PREFIX):].split("-")[0]) for n in kernel.netns_list()}
    named |= {int(n[len(spec.PREFIX) + 2:]) for n in kernel.link_list(spec.PREFIX + "br")}
    picks = SCOPES["all" if ids is not None else scope]
    done = []
    for lab_id in sorted(set(dirs) | named if ids is None else ids):
        record = (state.load(dirs[lab_id]) if lab_id in dirs else None) or leftovers(lab_id, root)
        if picks(record):
            teardown(record)
            done.append(lab_id)
    return done


def set_link(name, up, lab_id=None, root=None):
    """Take host `name`'s link down (up=False: it is cut off) or up again, in lab `lab_id` or else the one lab that
    has such a host; returns the lab's id. Works on any lab with a record, also one `invoke lab.up` detached."""
    root = state.root_dir(root)
    records = [r for r in map(state.load, state.lab_dirs(root)) if r is not None
               and (lab_id is None or r.lab_id == lab_id)]
    having = [r for r in records if name in r.links]
    if not having:
        hosts = sorted({h for r in records for h in r.links})
        raise LabError(f"no lab{'' if lab_id is None else f' {lab_id}'} has a host {name!r}"
                       + (f" — hosts are {', '.join(hosts)}" if hosts else ""))
    if len(having) > 1:
        raise LabError(f"labs {', '.join(str(r.lab_id) for r in having)} all have a host {name!r}: give --lab-id")
    kernel.set_link(having[0].links[name], up)
    return having[0].lab_id


def status(root=None):
    """One line per lab under `root`: id, flavour, hosts running, runner, inventory."""
    lines = []
    for lab_dir in state.lab_dirs(state.root_dir(root)):
        record = state.load(lab_dir)
        if record is None:
            lines.append(f"lab {lab_dir.name}: no state (a run killed while starting) — `invoke lab.down` cleans it")
            continue
        running = sum(kernel.started_by_lab(pid, f"KFL_HOST={lab_dir}/fs/hosts/{name}")
                      for name, pid in record.pids.items())
        runner = "detached" if record.detached else "runner gone: leftover" if stale(record) else "runner alive"
        lines.append(f"lab {record.lab_id}: {record.flavour}, {running}/{len(record.veths)} hosts running, "
                     f"{runner}, bridge {record.bridge}, inventory {lab_dir / 'inventory.toml'}")
    return lines


@atexit.register
def _down_live_labs():
    for lab in list(_live):
        lab.down()


def down_on_termination(signals=(signal.SIGTERM, signal.SIGHUP)):
    """On these signals tear down this process's labs, then die of the signal as before.

    Raising KeyboardInterrupt instead would not do: invoke catches it to forward Ctrl-C to a
    remote command and goes on waiting for it.
    """
    def handler(signum, frame):
        _down_live_labs()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in signals:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, handler)
