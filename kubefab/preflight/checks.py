"""The preflight checks as one table of specs: kubeadm's own (by kubeadm's names) and kubefab's whole-cluster ones.

Each check is a pure function of a Subject (inventory, host, that host's facts, every host's facts, this
machine's CA) returning None when it passes or an Outcome saying why not and what to do.
"""

import ipaddress
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable

from kubefab import facts as probe, pki, state
from kubefab.components import requirements as req
from kubefab.components.requirements import ERROR, WARNING
from kubefab.plan import render

OK, DONE, FIX = "ok", "done", "fix"
MIN_CPUS, MIN_MEMORY_MB = 2, 1700                # kubeadm's ControlPlaneNumCPU and ControlPlaneMem
SKEW_ERROR, SKEW_WARNING = 10.0, 1.0             # seconds between a host's clock and this machine's
DISK_ERROR_MIB, DISK_WARNING_MIB = 100, 2048     # free under /var/lib: images, etcd, kubelet state
MIN_KERNEL = (4, 19)                             # kubeadm's system validators (k8s.io/system-validators)
CGROUP_CONTROLLERS = {1: ("cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"),
                      2: ("cpu", "cpuset", "memory", "pids")}
CONTAINERD_SOCKET = probe.CRI_SOCKETS[0]
NOT_NODE, THIS_CLUSTER, OTHER_CLUSTER, OTHER_ROLE = "", "this", "other", "role"
RESET = "`kubeadm reset -f` on the host (it wipes /etc/kubernetes and /var/lib/etcd), or leave it out of the inventory"

ROLES = {
    "all": lambda inv, host: True,
    "control-plane": lambda inv, host: host.is_control_plane,
    "worker": lambda inv, host: not host.is_control_plane,
    "joining": lambda inv, host: host.name != inv.first_control_plane.name,  # kubeadm join, not init
}


@dataclass(frozen=True)
class Outcome:
    """A failed check: why, and what the user can do. status "" means the check's own severity."""

    reason: str
    fix: str = ""
    status: str = ""


@dataclass(frozen=True)
class Subject:
    """What a check sees: the inventory, one host and its facts, every probed host's facts, this machine's CA."""

    inv: object
    host: object
    facts: probe.Facts
    everyone: MappingProxyType     # host name -> Facts, for every host probed
    ca_sha256: str                 # facts.ca_fingerprint of this cluster's CA, "" before it exists
    member: str                    # NOT_NODE | THIS_CLUSTER | OTHER_CLUSTER | OTHER_ROLE


@dataclass(frozen=True)
class Check:
    name: str                      # as kubeadm spells it where kubeadm has the check
    severity: str                  # ERROR or WARNING: what a failure is
    roles: str                     # a key of ROLES
    test: Callable                 # Subject -> Outcome | None
    runtime: str = ""              # what the runtime phase does about a failure: then it is FIX, not blocking
    node_fails: bool = False       # a node of this cluster fails it by being one: DONE there
    kubeadm: bool = True           # kubeadm has a check of this name (for --ignore-preflight-errors)
    not_ignorable: str = ""        # why --ignore cannot let its error pass, when it cannot
    relied: bool = False           # the plan relies on it: `cluster.plan --live`, which runs no preflight, refuses
                                   # its error too
    when: Callable = lambda inv: True


# -- membership ------------------------------------------------------------------------------------

def membership(inv, host, f, ca_sha256):
    """NOT_NODE, or whether `host` is a node of this cluster in its inventory role, of another cluster, or in
    another role: judged by kubelet.conf, the CA's fingerprint and the API server's manifest."""
    if probe.KUBELET_CONF not in f.kube_files:
        return NOT_NODE
    if not ca_sha256 or f.ca_sha256 != ca_sha256:
        return OTHER_CLUSTER
    return THIS_CLUSTER if (probe.APISERVER_MANIFEST in f.kube_files) == host.is_control_plane else OTHER_ROLE


def _member_of(s, host):
    f = s.everyone.get(host.name)
    return membership(s.inv, host, f, s.ca_sha256) if f else NOT_NODE


# -- per-host checks (kubeadm's) ------------------------------------------------------------------

def _reachable(s):
    return None  # a host with facts was reached; evaluate() reports the others


def _privileged(s):
    if s.facts.uid != 0:
        return Outcome(f"the probe ran as uid {s.facts.uid}, not root", "log in as root or set sudo = true in [ssh]")


def _num_cpu(s):
    if s.facts.cpus < MIN_CPUS:
        return Outcome(f"{s.facts.cpus} CPU, a control plane needs {MIN_CPUS}", "give it 2 or more CPUs")


def _mem(s):
    mb = s.facts.memory_mb
    if mb >= MIN_MEMORY_MB:
        return None
    if s.host.is_control_plane:
        return Outcome(f"{mb} MB of memory, a control plane needs {MIN_MEMORY_MB} MB", "give it 2 GB of memory or more")
    return Outcome(f"{mb} MB of memory leaves little for pods (a control plane needs {MIN_MEMORY_MB} MB)",
                   "give it 2 GB of memory or more", WARNING)


def _swap(s):
    on = ", ".join(name for name, _ in s.facts.swaps)
    if req.swap_allowed(s.inv):
        # kubeadm's own Swap check only warns, whatever the kubelet's configuration
        if on:
            return Outcome(f"swap is on ({on}); the kubelet runs with it (failSwapOn = false)",
                           "none needed; for kubefab to turn swap off, drop failSwapOn = false from [cluster.kubelet]",
                           WARNING)
        return None
    if s.facts.swaps:
        return Outcome(f"swap is on ({on}): the kubelet will not start",
                       "swapoff -a and remove the swap lines from /etc/fstab")
    if s.facts.fstab_swaps:
        return Outcome(f"/etc/fstab turns swap on at boot ({', '.join(s.facts.fstab_swaps)}): the kubelet fails after "
                       "a reboot", "comment out the swap lines in /etc/fstab")


def _file_existing(command):
    def test(s):
        if not s.facts.commands[command]:
            return Outcome(f"{command} not found in PATH", f"install {command} with the host's package manager")
    return test


def _sysctl(key):
    why = " (br_netfilter is not loaded)" if key.startswith("net.bridge.") else ""

    def test(s):
        value = s.facts.sysctls[key]
        if value != "1":
            shown = f"is {value}" if value else f"does not exist{why}"
            return Outcome(f"/proc/sys/{key.replace('.', '/')} {shown}, it must be 1", f"sysctl -w {key}=1")
    return test


def _port(port):
    def test(s):
        if port in s.facts.ports:
            return Outcome(f"port {port} is in use", f"stop what listens on it (ss -ltnp 'sport = :{port}')")
    return test


def _file_available(path):
    def test(s):
        if path in s.facts.kube_files:
            return Outcome(f"{path} already exists", RESET)
    return test


def _etcd_dir(s):
    if s.facts.etcd_data == "nonempty":
        return Outcome("/var/lib/etcd is not empty", RESET)


def _cri(s):
    others = [sock for sock in s.facts.cri_sockets if sock != CONTAINERD_SOCKET]
    if others:
        return Outcome(f"other container runtimes listen at {', '.join(others)}; kubefab configures containerd",
                       "remove the other runtimes", WARNING)
    if CONTAINERD_SOCKET in s.facts.cri_sockets:
        return None
    if s.facts.versions["containerd"]:
        return Outcome(f"containerd {s.facts.versions['containerd']} is installed but not running",
                       "systemctl enable --now containerd")
    return Outcome("no container runtime is installed", "install containerd")


def _release(version):
    """'1.33.5' of '1.33.5', 'v1.33.5-1.1' or '1.33.5+k3s1'; "" when there is none."""
    found = re.match(r"v?([0-9]+\.[0-9]+\.[0-9]+)", version)
    return found.group(1) if found else ""


def _kubelet_version(s):
    want, have = s.inv.cluster.kubernetes_version, s.facts.versions["kubelet"]
    if not have:
        return Outcome("the kubelet is not installed", f"install kubelet {want}")
    if _release(have) == want:
        return None
    if s.member == THIS_CLUSTER:
        return Outcome(f"a node of this cluster runs kubelet {have}, the inventory asks for {want}; cluster.up does not "
                       "upgrade running nodes", f"run `invoke cluster.upgrade` to move the cluster to {want} node by "
                       f"node, or set kubernetes_version back to {have}", ERROR)
    return Outcome(f"kubelet {have} is installed, the inventory asks for {want}", f"install kubelet {want}")


def _kubeadm_version(s):
    want, have = s.inv.cluster.kubernetes_version, s.facts.versions["kubeadm"]
    if not have:
        return Outcome("kubeadm is not installed", f"install kubeadm {want}")
    if _release(have) != want:
        return Outcome(f"kubeadm {have} is installed, the inventory asks for {want}", f"install kubeadm {want}")


def _repository(s):
    """Does the package repository answer this host, and does it hold the inventory's version?"""
    repo, want = s.facts.repository, s.inv.cluster.kubernetes_version
    installed = all(_release(s.facts.versions[p]) == want for p in probe.PACKAGES)
    if repo.state == "unchecked" or installed:
        return None
    url = f"{s.inv.mirrors.package_repository.rstrip('/')}/v1.{s.inv.cluster.minor}"
    if repo.state != "ok":
        return Outcome(f"the package repository {url} does not answer: {repo.detail or repo.state}",
                       "check [mirrors] package_repository and this host's network (and proxy)")
    if repo.versions is not None and not any(v.startswith(f"{want}-") for v in repo.versions):
        held = ", ".join(repo.versions[-5:]) or "no kubeadm"
        return Outcome(f"the package repository {url} holds {held}, not kubeadm {want}",
                       "check kubernetes_version for a typo, or bring the mirror up to date")


def _service_kubelet(s):
    state = s.facts.kubelet_service
    if s.facts.versions["kubelet"] and s.facts.init == "systemd" and state != "enabled":
        return Outcome(f"the kubelet service is {state or 'missing'}", "systemctl enable kubelet")


def _hostname(s):
    if s.facts.hostname != s.host.name:
        return Outcome(f"the hostname is {s.facts.hostname!r}, the node is {s.host.name!r}",
                       f"hostnamectl set-hostname {s.host.name}, and list every node in /etc/hosts")


def _firewalld(s):
    if s.facts.firewalld == "active":
        return Outcome("firewalld is active and blocks the Kubernetes ports",
                       "open 6443, 2379-2380, 10250, 10257, 10259 (or stop firewalld)")


def _selinux(s):
    if s.facts.selinux == "enforcing":
        return Outcome("SELinux is enforcing", "setenforce 0, and SELINUX=permissive in /etc/selinux/config")


def _system(s):
    f, problems, status = s.facts, [], WARNING
    kernel = tuple(int(n) for n in re.findall(r"[0-9]+", f.kernel)[:2])
    if kernel < MIN_KERNEL:
        problems.append(f"kernel {f.kernel} is older than {'.'.join(map(str, MIN_KERNEL))}")
        status = WARNING if s.inv.cluster.minor >= 34 else ERROR  # kubeadm 1.34 only warns (k/k #131919)
    if f.cgroup_version == 0:
        problems.append("no cgroup filesystem is mounted")
        status = ERROR
    else:
        missing = [c for c in CGROUP_CONTROLLERS[f.cgroup_version] if c not in f.cgroup_controllers]
        if missing:
            problems.append(f"cgroup controllers {', '.join(missing)} are not enabled")
            status = ERROR
        if f.cgroup_version == 1:
            problems.append("cgroup v1 is in maintenance mode (the kubelet refuses it from 1.35)")
    if problems:
        return Outcome("; ".join(problems), "use a kernel of 5.8 or later with cgroup v2 (systemd.unified_cgroup_"
                                            "hierarchy=1)", status)


# -- kubefab's own per-host checks ----------------------------------------------------------------

def _init_system(s):
    if s.facts.init != "systemd":
        return Outcome(f"PID 1 is {s.facts.init or 'unknown'}, not systemd: the kubelet runs as a systemd service",
                       "use a distribution booted with systemd")


def _modules(s):
    needed = render.kernel_modules(s.inv)
    missing = [m for m in needed if s.facts.modules[m] == "missing"]
    if missing:
        return Outcome(f"the kernel has no module {', '.join(missing)}", "install the kernel's extra modules package",
                       ERROR)
    unloaded = [m for m in needed if s.facts.modules[m] == "available"]
    if unloaded:
        return Outcome(f"module {', '.join(unloaded)} is not loaded",
                       f"modprobe -a {' '.join(unloaded)}, and list them in /etc/modules-load.d/")


def _cgroup_driver(s):
    if s.facts.containerd_config and s.facts.containerd_systemd_cgroup != "true":
        return Outcome("containerd's /etc/containerd/config.toml uses the cgroupfs driver, the kubelet systemd",
                       "set SystemdCgroup = true in it and restart containerd")


def _disk(s):
    free = s.facts.disk.free_kib // 1024
    where = f"{free} MiB free under /var/lib (on {s.facts.disk.mount})"
    if free < DISK_ERROR_MIB:
        return Outcome(f"{where}: images and etcd will not fit", "free disk space or grow the filesystem")
    if free < DISK_WARNING_MIB:
        return Outcome(f"{where}: the kubelet evicts pods when it runs low", "free disk space or grow the filesystem",
                       WARNING)


def _internal_address(s):
    if s.facts.interfaces and s.host.internal_address not in s.facts.addresses:
        return Outcome(f"internal_address {s.host.internal_address} is not on the host (it has "
                       f"{', '.join(s.facts.addresses)})", "set internal_address to the host's own address")


def _endpoint(s):
    e, want = s.facts.endpoint, s.inv.endpoint
    if e.state == "unchecked" or e.target != want:
        return Outcome(f"the probe did not try {want}", "run the probe with the endpoint", WARNING)
    if s.inv.ha and s.inv.ha.mode != "external":
        return _own_vip(s, e, want)
    if e.state == "open":
        return None
    if e.state == "refused":
        serving = [h for h in s.inv.control_planes if _member_of(s, h) == THIS_CLUSTER]
        if not serving:
            return None  # the address answers; nothing listens before kubeadm init
        return Outcome(f"nothing listens at {want}, though {serving[0].name} is a control plane already",
                       f"check the API server on {serving[0].name} (crictl ps; journalctl -u kubelet)")
    if e.state == "unknown":
        return Outcome(f"could not try {want}: {e.detail}", "install bash or socat on the host", WARNING)
    return Outcome(f"{want} is not reachable from here ({e.state}{': ' + e.detail if e.detail else ''})",
                   "fix the route or firewall between this host and the endpoint")


def vip_holders(s):
    """The control planes whose probed addresses hold the inventory's VIP."""
    return [h.name for h in s.inv.control_planes
            if h.name in s.everyone and s.inv.ha.vip in s.everyone[h.name].addresses]


def _own_vip(s, e, want):
    """The VIP is kubefab's to bring up: before that nothing may answer at it, afterwards a control plane holds it
    (one not probed may: node.join probes only the joining hosts)."""
    holders = vip_holders(s)
    serving = [h for h in s.inv.control_planes if _member_of(s, h) == THIS_CLUSTER]
    unseen = [h for h in s.inv.control_planes if h.name not in s.everyone]
    if not holders and not unseen and e.state in ("open", "refused"):
        return Outcome(f"{s.inv.ha.vip} already answers ({e.state}) but no control plane holds it: another machine "
                       "has that address", "give [cluster.ha] vip an unused address of the control planes' subnet")
    if serving and e.state != "open":
        return Outcome(f"{want} does not answer, though {serving[0].name} is a control plane already "
                       f"({e.state}{': ' + e.detail if e.detail else ''})",
                       f"check keepalived and haproxy on the control planes (systemctl status keepalived haproxy); "
                       f"{', '.join(holders) or 'none'} holds {s.inv.ha.vip}")
    return None


def _vip_subnet(s):
    on = [a for i in s.facts.interfaces for a in i.addresses if a.split("/")[0] == s.host.internal_address]
    if not on:
        return None     # InternalAddress reports it
    network = ipaddress.ip_interface(on[0]).network
    if ipaddress.ip_address(s.inv.ha.vip) not in network:
        return Outcome(f"{s.inv.ha.vip} is outside {network}, the subnet of {s.host.internal_address}: VRRP "
                       "moves an address only within the control planes' own segment",
                       f"give [cluster.ha] vip an unused address of {network}")


def _vip_interface(s):
    """kube-vip mode: the interface kube-vip puts the VIP on is one of this control plane's."""
    wanted, have = s.inv.ha.interface, s.facts.interface_names
    if wanted in have:
        return None
    carrying = [i.name for i in s.facts.interfaces
                if s.host.internal_address in (a.split("/")[0] for a in i.addresses)]
    hint = f" ({s.host.name} has {s.host.internal_address} on {carrying[0]})" if carrying else ""
    return Outcome(f"no interface {wanted!r}, where kube-vip is to hold {s.inv.ha.vip}: this host has "
                   f"{', '.join(have) or 'none'}",
                   f"set [cluster.ha] interface to the control planes' interface that carries the VIP's subnet{hint}; "
                   "every control plane needs one of that name")


def _balancer_port(s):
    """keepalived mode: haproxy's port is free on a control plane before the runtime phase starts haproxy there, or
    held by kubefab's haproxy already (its admin socket lists this inventory's API servers)."""
    port = s.inv.ha.port
    ours = {h.name for h in s.inv.control_planes}
    if port in s.facts.ports and set(s.facts.haproxy_servers) != ours:
        return Outcome(f"port {port}, where haproxy is to listen for the endpoint, is in use by something else",
                       f"stop what listens on it (ss -ltnp 'sport = :{port}') or give [cluster.ha] port a free one")


def _cluster_member(s):
    if s.member == THIS_CLUSTER:
        return Outcome("already a node of this cluster", status=DONE)
    if s.member == OTHER_CLUSTER:
        return Outcome(f"/etc/kubernetes/kubelet.conf exists and {probe.CA_CERT} is not this cluster's CA: a node "
                       "of another cluster", RESET)
    if s.member == OTHER_ROLE:
        role = "control plane" if not s.host.is_control_plane else "worker"
        return Outcome(f"a node of this cluster, but as a {role}; kubefab does not change a node's role", RESET)


def _cluster_ca(s):
    theirs, ours = s.facts.ca_sha256, s.ca_sha256
    if theirs and ours and theirs != ours:
        home = s.inv.state_dir
        return Outcome(f"{probe.CA_CERT} on the host is another CA (sha256 {theirs}) than this state dir's "
                       f"{pki.paths(s.inv, pki.BY_NAME['ca'])[0]} (sha256 {ours}): the host belongs to another "
                       "cluster, or this cluster's state dir was lost",
                       "if it is this cluster, give --state-dir its state dir (the default, .kubefab/<cluster name>, "
                       f"moves when the cluster is renamed), or restore it: copy your backup of {pki.pki_dir(s.inv)} "
                       f"(and {home / state.RECORD}) back into {home}, or without a backup the CA files of a control "
                       "plane's /etc/kubernetes/pki, then run again (kubefab never gives a cluster a new CA); if the "
                       f"host is to leave that other cluster: {RESET}")


# -- whole-cluster checks -------------------------------------------------------------------------

def _shared(s, value):
    """Other probed hosts whose `value(facts)` equals this host's (non-empty) one."""
    mine = value(s.facts)
    return [name for name, f in s.everyone.items() if name != s.host.name and mine and value(f) == mine]


def _unique(what, value, fix):
    def test(s):
        twins = _shared(s, value)
        if twins:
            return Outcome(f"{what} {value(s.facts)} is shared with {', '.join(twins)}", fix)
    return test


def _machine_id(s):
    if not s.facts.machine_id:
        return Outcome("/etc/machine-id is empty or missing", "systemd-machine-id-setup", WARNING)
    return _unique("machine-id", lambda f: f.machine_id,
                   "on a cloned machine: rm /etc/machine-id && systemd-machine-id-setup, then reboot")(s)


def _macs(s):
    mine = {i.mac: i.name for i in s.facts.interfaces if i.mac}
    for name, f in s.everyone.items():
        shared = sorted(set(mine) & {i.mac for i in f.interfaces}) if name != s.host.name else ()
        if shared:
            return Outcome(f"MAC {shared[0]} ({mine[shared[0]]}) is also on {name}",
                           "give the cloned machine's interfaces new MAC addresses")


def _clock(s):
    skew = s.facts.skew()
    if skew is None:
        return Outcome("the clock was not compared with this machine's", "probe with a time window", WARNING)
    if abs(skew) <= SKEW_WARNING:
        return None
    how = f"the clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} this machine's"
    fix = "sync both with NTP (chrony): certificates made here are not yet valid on a host ahead of them"
    return Outcome(how, fix, ERROR if abs(skew) > SKEW_ERROR else WARNING)


# how a requirement's check judges it, by the row's kind
TESTS = {req.SWAP: lambda r: _swap, req.COMMAND: lambda r: _file_existing(r.subject),
         req.MODULE: lambda r: _modules, req.SYSCTL: lambda r: _sysctl(r.subject), req.PORT: lambda r: _port(r.subject),
         req.FILE: lambda r: _file_available(r.subject), req.DIR: lambda r: _etcd_dir}


def _requirement(r):
    return Check(r.check, r.severity, r.roles, TESTS[r.kind](r), runtime=r.fix, node_fails=r.node_fails,
                 kubeadm=r.kubeadm, when=r.when)


def _checks():
    return (
        Check("Reachable", ERROR, "all", _reachable, kubeadm=False),
        Check("IsPrivilegedUser", ERROR, "all", _privileged),
        Check("ClusterMember", ERROR, "all", _cluster_member, kubeadm=False),
        Check("ClusterCA", ERROR, "all", _cluster_ca, kubeadm=False,
              not_ignorable="the push phase would overwrite that CA with this state dir's, and the nodes of that "
                            "cluster would no longer trust each other"),
        Check("NumCPU", ERROR, "control-plane", _num_cpu),
        Check("Mem", ERROR, "all", _mem),
        Check("SystemVerification", ERROR, "all", _system),
        Check("InitSystem", ERROR, "all", _init_system, kubeadm=False),
        *(_requirement(r) for r in req.REQUIREMENTS),
        Check("CRI", ERROR, "all", _cri, runtime="installs containerd and starts it"),
        Check("CgroupDriver", ERROR, "all", _cgroup_driver, kubeadm=False,
              runtime="replaces /etc/containerd/config.toml (SystemdCgroup = true)"),
        Check("KubernetesVersion", WARNING, "all", _kubeadm_version,
              runtime="installs kubeadm at the inventory's version"),
        Check("KubeletVersion", ERROR, "all", _kubelet_version, relied=True,
              runtime="installs the kubelet at the inventory's version",
              not_ignorable="on a node of this cluster the runtime phase would install the new kubelet outside any "
                            "drain; `invoke cluster.upgrade` upgrades node by node"),
        Check("PackageRepository", ERROR, "all", _repository, kubeadm=False,
              when=lambda inv: inv.install.source == "packages"),
        Check("Service-Kubelet", WARNING, "all", _service_kubelet, runtime="enables the kubelet"),
        Check("Hostname", WARNING, "all", _hostname, runtime="sets the hostname and lists every node in /etc/hosts"),
        Check("Firewalld", WARNING, "all", _firewalld, runtime="opens the Kubernetes ports in firewalld"),
        Check("SELinux", WARNING, "all", _selinux, kubeadm=False, runtime="sets SELinux permissive"),
        Check("DiskSpace", ERROR, "all", _disk, kubeadm=False),
        Check("InternalAddress", ERROR, "all", _internal_address, kubeadm=False),
        Check("EndpointReachable", ERROR, "all", _endpoint, kubeadm=False),
        Check("VirtualIPSubnet", ERROR, "control-plane", _vip_subnet, kubeadm=False,
              when=lambda inv: bool(inv.ha) and inv.ha.mode != "external"),
        Check("VirtualIPInterface", ERROR, "control-plane", _vip_interface, kubeadm=False, relied=True,
              when=lambda inv: bool(inv.ha) and inv.ha.mode == "kube-vip"),
        Check("Port-HAProxy", ERROR, "control-plane", _balancer_port, kubeadm=False, node_fails=True,
              when=lambda inv: bool(inv.ha) and inv.ha.mode == "keepalived"),
        Check("HostnameUnique", WARNING, "all", _unique("hostname", lambda f: f.hostname,
                                                        "give each host its own hostname"),
              kubeadm=False, runtime="sets each host's hostname to its node name"),
        Check("MachineIDUnique", ERROR, "all", _machine_id, kubeadm=False),
        Check("ProductUUIDUnique", ERROR, "all", _unique("product_uuid", lambda f: f.product_uuid,
                                                         "give the cloned VM a new UUID in its hypervisor"),
              kubeadm=False),
        Check("MACUnique", ERROR, "all", _macs, kubeadm=False),
        Check("ClockSkew", ERROR, "all", _clock, kubeadm=False),
    )


CHECKS = _checks()
NAMES = tuple(c.name for c in CHECKS)
