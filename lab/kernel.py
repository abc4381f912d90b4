"""The machine-side kernel objects of a lab: bridge, netns, veths, host processes, cgroups, mounts.

Everything is created under a lab prefix and recorded, so teardown can find it again from a state
file or, when a run died before writing one, from the names alone.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .packages import SYSTEM_PATH, which
from .spec import NAT_LINK, PREFIX, lab_link

NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
HOST_ENV = {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}  # for commands in hosts


def ip_batch(lines, ignore_errors=False, netns=None):
    """Run many `ip` commands in one process (a fork per command is what makes big labs slow), in `netns`."""
    argv = ["ip", *(["-n", netns] if netns else []), *(["-force"] if ignore_errors else []), "-batch", "-"]
    done = subprocess.run(argv, input="".join(line + "\n" for line in lines), capture_output=True, text=True)
    if done.returncode and not ignore_errors:
        raise LabError(f"ip -batch failed: {done.stderr.strip()}")


def network_up(bridge, bridge_cidr, hosts, nat_netns=None, servers=()):
    """The bridge and each host's namespace with its link to it; with `nat_netns`, first a NAT adapter per host
    (spec.NAT_LINK) whose peer is in `nat_netns`, so it is the host's first interface, as in a VirtualBox VM.
    `servers` (the package repository) get their namespace and link only, never a NAT adapter."""
    lines = [f"link add {bridge} type bridge", f"addr add {bridge_cidr} dev {bridge}", f"link set {bridge} up"]
    lines += [f"netns add {nat_netns}"] if nat_netns else []
    for h in hosts:
        lines += [f"netns add {h.netns}"]
        lines += [f"link add {NAT_LINK} netns {h.netns} type veth peer name h{h.index} netns {nat_netns}"] \
            if nat_netns else []
        lines += [f"link add {h.veth} type veth peer name {lab_link(bool(nat_netns))} netns {h.netns}",
                  f"link set {h.veth} master {bridge} up"]
    for s in servers:
        lines += [f"netns add {s.netns}", f"link add {s.veth} type veth peer name {lab_link(False)} netns {s.netns}",
                  f"link set {s.veth} master {bridge} up"]
    ip_batch(lines)
    if nat_netns:       # the peers up, so the adapters have a carrier; no address, no route: nothing goes on
        ip_batch([f"link set h{h.index} up" for h in hosts], netns=nat_netns)


def network_down(bridge, netns_names, veths):
    """Delete the veths, namespaces and bridge; what is already gone is skipped.

    The veths go first and explicitly: a namespace is freed asynchronously, and a veth still
    waiting for that would collide with the next lab that reuses its name.
    """
    links = set(link_list())
    existing = set(netns_list())
    ip_batch([f"link del {v}" for v in veths if v in links]
             + [f"netns del {n}" for n in netns_names if n in existing]
             + ([f"link del {bridge}"] if bridge in links else []), ignore_errors=True)


def set_link(name, up):
    ip_batch([f"link set {name} {'up' if up else 'down'}"])


def netns_list(prefix=PREFIX):
    return sorted(p.name for p in NETNS_DIR.glob(f"{prefix}*")) if NETNS_DIR.is_dir() else []


def link_list(prefix=PREFIX):
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix))


def netns_inode(name):
    try:
        return (NETNS_DIR / name).stat().st_ino
    except FileNotFoundError:
        return None


def pids_in_netns(names):
    """Processes in any of the lab network namespaces `names`: only the lab starts processes there."""
    inodes = {i for i in map(netns_inode, names) if i is not None}
    found = []
    for entry in Path("/proc").iterdir() if inodes else ():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns/net").st_ino in inodes:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def started_by_lab(pid, marker):
    """True when `pid` still runs with the lab's `marker` in its environment (not a recycled pid)."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def start_host(argv, env, log, cgroups=()):
    """Start a host's `unshare` in a session of its own, so it outlives the caller; returns the Popen."""
    def enter_cgroups():
        for cg in cgroups:
            Path(cg, "cgroup.procs").write_text("0")
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, preexec_fn=enter_cgroups if cgroups else None)


def child_of(pid):
    """The first child of `pid` (a host's PID 1 is the only child of its `unshare`)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    return int(children[0]) if children else None


def kill(pids, timeout=10.0):
    """SIGKILL `pids` and wait until they are gone (reaped by us or by whoever adopted them)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while alive(pid):
            if time.monotonic() > deadline:
                raise LabError(f"process {pid} did not end within {timeout:.0f} s of SIGKILL")
            time.sleep(0.01)


def alive(pid):
    """True while `pid` exists and is not a zombie we could reap."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z" or not reap(pid)


def reap(pid):
    """Reap `pid` if it is our zombie child; True when it was ours."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


@dataclass(frozen=True)
class Hierarchy:
    """One cgroup hierarchy mounted on the machine, as a node host re-mounts it inside its cgroup namespace."""

    mountpoint: str  # relative to /sys/fs/cgroup ('.' when it is /sys/fs/cgroup itself)
    fstype: str
    options: str
    own: str  # the caller's cgroup in it

    def path(self, name=""):
        return CGROUP_ROOT / self.mountpoint / self.own.lstrip("/") / name


def hierarchies():
    """The machine's cgroup hierarchies, with this process's cgroup in each (v1, v2 or hybrid)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[frozenset(controllers.split(",")) - {""}] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, super_opts = line.split(" - ")[0].split(), line.split(" - ")[1].split()
        fstype, mountpoint = super_opts[0], Path(fields[4])
        if fstype not in ("cgroup", "cgroup2") or CGROUP_ROOT not in (mountpoint, *mountpoint.parents):
            continue
        options = super_opts[2].split(",")
        key = frozenset() if fstype == "cgroup2" else frozenset(o for o in options if o not in ("rw", "ro"))
        path = next((p for k, p in own.items() if k and k <= key), None) if key else own.get(frozenset())
        found.append(Hierarchy(str(mountpoint.relative_to(CGROUP_ROOT)), fstype, ",".join(options), path or "/"))
    return tuple(found)


def mount_specs(hier):
    """'mountpoint:fstype:options' lines for init.sh: a tmpfs to hold v1 hierarchies, then each hierarchy."""
    root = () if any(h.mountpoint == "." for h in hier) else (".:tmpfs:mode=755",)
    return root + tuple(f"{h.mountpoint}:{h.fstype}:{h.options}" for h in hier)


def make_cgroups(hier, name):
    """Create the host's cgroup `name` under the caller's own in every hierarchy; returns the paths."""
    paths = []
    for h in hier:
        path = h.path(name)
        path.mkdir(exist_ok=True)
        for inherited in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: a new cgroup starts empty
            if (path / inherited).exists():
                (path / inherited).write_text((path.parent / inherited).read_text())
        paths.append(str(path))
    return paths


def weigh_cgroups(paths, weight):
    """Give the cgroups `paths` (one host's, see make_cgroups) `weight` times the default CPU share: cpu.shares
    1024 x weight (v1), cpu.weight 100 x weight (v2, at most 10000). Shares count only while the cores are
    contended; what a cgroup does not use goes to the others."""
    for path in map(Path, paths):
        if (path / "cpu.shares").exists():
            (path / "cpu.shares").write_text(str(1024 * weight))
        elif (path / "cpu.weight").exists():
            (path / "cpu.weight").write_text(str(min(10000, 100 * weight)))


def remove_cgroups(paths, timeout=5.0):
    """rmdir each cgroup tree bottom-up (systemd in a node host makes sub-cgroups)."""
    deadline = time.monotonic() + timeout
    for top in paths:
        if not os.path.isdir(top):
            continue
        for current, dirs, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            while True:
                try:
                    os.rmdir(current)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LabError(f"cannot remove cgroup {current}: processes are still in it")
                    time.sleep(0.05)


def leftover_cgroups(prefix=PREFIX):
    """Lab cgroups anywhere in the machine's hierarchies (a run killed before it recorded them)."""
    found = []
    for top in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else ():
        for current, dirs, _ in os.walk(top):
            hits = [d for d in dirs if d.startswith(prefix)]
            found += [os.path.join(current, d) for d in hits]
            dirs[:] = [d for d in dirs if d not in hits]
    return found


def mounts_under(path):
    """Mount points at or below `path`, deepest first."""
    path = os.path.realpath(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == path or point.startswith(path + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def mount_tmpfs(path, name, size):
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", name, str(path)], check=True)


def unmount(points):
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True)


def nsenter_argv(pid, systemd):
    """argv prefix that runs a command inside the host whose PID 1 is `pid`, in its root."""
    flags = ["-m", "-u", "-i", "-n", "-p", *(["-C"] if systemd else []), "-r", "-w"]
    return [which("nsenter") or "nsenter", "-t", str(pid), *flags]

