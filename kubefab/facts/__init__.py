"""Facts: what one probe script, piped to `sh -s` on a host, reports; parsed strictly into a frozen value.

The runner executes `command(inv.endpoint)` with `script(...)` as its standard input, as root: prefixed with
`sudo -n` when the login is not root, or `sudo -S -p ''` with the password as the first line of stdin.
`script` puts the endpoint and the paths kubefab's steps manage on that host in front of `PROBE`: their
state (mode, owner, size, mtime, sha256 of the small ones, link targets) tells which steps are already done.
It notes this machine's time.time() just before sending and just after the output is read, and passes
`parse(host, stdout, window=(sent, received))`: the window is what ClockSkew compares the host's clock
with. The probe only reads, needs no Python on the host, and ends within TIMEOUT seconds.
"""

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Optional

from kubefab import paths
from kubefab.components import requirements
from kubefab.digits import whole
from kubefab.errors import KubefabError
from kubefab.pki import kubeconfig, x509
from kubefab.steps import q

HEADER, END = "kubefab-probe 1", "end"
ENDPOINT_TIMEOUT = 3  # seconds the probe waits for a TCP connection to the control-plane endpoint
TIMEOUT = 20  # seconds a runner should allow the whole probe: its slow commands are bounded at 5 s each
# What the requirements table reads (kubeadm's FileExisting-* commands and those its runtime steps run, modules,
# sysctls), and the commands kubefab's other steps run.
COMMANDS = (*requirements.probed("command"), "crictl", "ctr", "systemctl", "etcdctl")
MODULES = requirements.probed("module")
SYSCTLS = requirements.probed("sysctl")
CRI_SOCKETS = ("/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/var/run/cri-dockerd.sock")
CA_CERT = paths.in_pki("ca.crt")
KUBELET_CLIENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"    # the kubelet's rotated client certificate
KUBE_FILES = requirements.subjects(requirements.FILE)  # kubeadm writes them; their presence tells a node
# the kubeconfigs whose server verify checks: kubefab's table and the kubelet's
KUBECONFIG_FILES = (*(paths.kubeconfig(s.file) for s in kubeconfig.KUBECONFIGS), kubeconfig.KUBELET_CONF)
KUBELET_CONF, APISERVER_MANIFEST = "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/manifests/kube-apiserver.yaml"
VERSIONED = ("kubeadm", "kubelet", "kubectl", "containerd", "runc")
PACKAGES = ("kubeadm", "kubelet", "kubectl")   # what the packages source installs and holds
TAIL_LINES = 12

# Keys that occur exactly once, and those that may repeat (one item each).
SINGLE = ("os.id", "os.version", "os.like", "os.name", "os.package_manager", "kernel", "arch", "init", "uid",
          "cgroup.version", "cgroup.controllers", "cpus", "memory_kib", "hostname", "machine_id", "product_uuid",
          "net.interfaces", "clock", *(f"command.{c}" for c in COMMANDS), *(f"module.{m}" for m in MODULES),
          *(f"sysctl.{s}" for s in SYSCTLS), "tcp.listen", "disk", "containerd.systemd_cgroup", "containerd.config",
          "selinux", "selinux.config", "firewalld", "kubelet.service", "containerd.service", "containerd.active",
          *(f"version.{v}" for v in VERSIONED), "kube.etcd", "kube.ca_sha256", "kubelet.client_cert",
          "endpoint.target", "endpoint.state", "endpoint.detail", "hostname.file", "hosts.block", "packages.held", "repo.state", "repo.detail",
          "repo.versions")
REPEATED = ("swap", "fstab.swap", "iface", "cri", "kube.file", "kube.server", "haproxy.server", "image", "file", "sha256", "link")
_KNOWN = frozenset(SINGLE + REPEATED)


def _script():
    text = resources.files(__name__).joinpath("probe.sh").read_text()
    sysctls = " ".join(f"{key}=/proc/sys/{key.replace('.', '/')}" for key in SYSCTLS)
    fills = {"COMMANDS": " ".join(COMMANDS), "MODULES": " ".join(MODULES), "SYSCTLS": sysctls,
             "CRI_SOCKETS": " ".join(CRI_SOCKETS), "KUBE_FILES": " ".join(KUBE_FILES), "CA_CERT": CA_CERT,
             "KUBECONFIG_FILES": " ".join(KUBECONFIG_FILES),
             "HAPROXY_SOCKET": paths.HAPROXY_SOCKET,
             "KUBELET_CLIENT": KUBELET_CLIENT, "ENDPOINT_TIMEOUT": str(ENDPOINT_TIMEOUT), "HOSTS_BEGIN": paths.HOSTS_BEGIN,
             "HOSTS_END": paths.HOSTS_END, "PACKAGES": " ".join(PACKAGES)}
    for name, value in fills.items():
        text = text.replace(f"@{name}@", value)
    return text


PROBE = _script()


def command(endpoint=""):
    """The argv that runs PROBE (sent on stdin): `sh -s -- ENDPOINT`; prefix sudo when the login is not root."""
    return ("sh", "-s", "--", endpoint)


def script(endpoint="", files=(), links=(), repository="", hashed=()):
    """The probe as one host gets it: `endpoint` as $1, then the state of `files` (tree.RenderedFile: those with
    a sha256 are hashed on the host too) and of the paths `hashed` (with their sha256), where each of `links`
    points, and whether package `repository` (the URL of one minor's repository, "" for none) answers and which
    kubeadm versions it holds."""
    def words(items):
        return q(" ".join(paths.plain(p, "probe") for p in items))
    return (f"set -- {q(endpoint)}\nkf_files={words([*(f.path for f in files), *hashed])}\n"
            f"kf_hashed={words([*(f.path for f in files if f.sha256), *hashed])}\nkf_links={words(list(links))}\n"
            f"kf_repo={q(repository)}\n{PROBE}")


def ca_fingerprint(pem):
    """The digest the probe reports for a CA file: sha256 of its bytes with all whitespace removed."""
    return hashlib.sha256(pem.translate(None, b" \t\r\n")).hexdigest()


class FactsError(KubefabError):
    """A host's probe output that cannot be read; shows the end of what it printed."""

    def __init__(self, host, problem, output):
        self.host, self.problem = host, problem
        self.tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        shown = "\n".join(f"    {line}" for line in self.tail.splitlines()) or "    (no output)"
        super().__init__(f"{host}: the fact probe's output {problem}; it ended with:\n{shown}")


@dataclass(frozen=True)
class Os:
    id: str                   # os-release ID: debian, ubuntu, rhel, rocky, ...
    version: str              # VERSION_ID
    like: str                 # ID_LIKE
    name: str                 # PRETTY_NAME
    package_manager: str      # apt-get | dnf | yum | zypper | apk | ""


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    addresses: tuple          # "198.18.0.2/22", ...: global-scope addresses with their prefix


@dataclass(frozen=True)
class Disk:
    mount: str                # the filesystem holding /var/lib
    size_kib: int
    free_kib: int


@dataclass(frozen=True)
class Endpoint:
    target: str               # the "host:port" the probe tried, "" when none was given
    state: str                # open | refused | timeout | unreachable | unresolved | unknown | unchecked
    detail: str


@dataclass(frozen=True)
class Repository:
    """The package repository kubefab would install from, as the host reaches it."""

    state: str                # ok | failed | unchecked (kubefab installs no packages)
    detail: str               # the fetcher's last words when it failed
    versions: Optional[tuple]  # kubeadm versions it holds ("1.33.5-1.1", ...); None when it has no plain index


@dataclass(frozen=True)
class FileState:
    """A managed path as the host has it."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    sha256: str               # "" unless it was asked for


@dataclass(frozen=True)
class Facts:
    """Everything one probe reported about one host. `window` is this machine's clock around the probe."""

    host: str
    os: Os
    kernel: str
    arch: str
    init: str                 # the command name of PID 1: systemd, init, sshd, ...
    uid: int                  # who ran the probe: 0 unless sudo failed to apply
    cgroup_version: int       # 2, 1, or 0 when no cgroup filesystem is mounted
    cgroup_controllers: frozenset
    cpus: int
    memory_kib: int
    swaps: tuple              # (device or file, size KiB) for each active swap area
    fstab_swaps: tuple        # devices /etc/fstab turns on as swap at boot
    hostname: str
    etc_hostname: str         # the first line of /etc/hostname
    hosts_block: str          # sha256 of kubefab's block in /etc/hosts, its marker lines included
    machine_id: str
    product_uuid: str         # "" when the host has no DMI (or it was unreadable)
    interfaces: tuple         # Interface, for each interface with a global address
    interface_names: tuple    # every network interface's name, with an address or not (/sys/class/net)
    clock: float              # the host's epoch time while the probe ran
    window: Optional[tuple]   # (sent, received): this machine's epoch time around the probe, or None
    commands: MappingProxyType  # command -> path, "" when missing
    modules: MappingProxyType   # module -> loaded | builtin | available | missing
    sysctls: MappingProxyType   # key -> value, "" when the key does not exist
    ports: frozenset          # listening TCP ports
    disk: Disk
    cri_sockets: tuple
    containerd_config: bool   # /etc/containerd/config.toml exists
    containerd_systemd_cgroup: str  # its last SystemdCgroup value: "true", "false" or ""
    selinux: str              # enforcing | permissive | disabled
    selinux_config: str       # /etc/selinux/config: enforcing | other | absent
    firewalld: str            # systemctl is-active: active, inactive, ...; "" without systemd
    kubelet_service: str      # systemctl is-enabled: enabled, disabled, ...; "" without systemd or unit
    containerd_service: str   # systemctl is-enabled containerd
    containerd_active: str    # systemctl is-active containerd
    images: frozenset         # image references in containerd's k8s.io namespace
    versions: MappingProxyType  # kubeadm, kubelet, kubectl, containerd, runc -> version, "" when missing
    kube_files: frozenset     # which of KUBE_FILES exist
    kube_servers: MappingProxyType  # each of KUBECONFIG_FILES that names a server -> that server (its first)
    haproxy_servers: MappingProxyType  # HA: each API server haproxy balances over -> its status (UP, DOWN 1/3, ...)
    etcd_data: str            # /var/lib/etcd: absent | empty | nonempty
    ca_sha256: str            # ca_fingerprint of /etc/kubernetes/pki/ca.crt, "" when absent
    kubelet_client_expiry: object  # when the kubelet's client certificate expires (UTC), None without one
    endpoint: Endpoint
    files: MappingProxyType   # managed path -> FileState, for those that exist
    links: MappingProxyType   # managed link -> its target, for those that are links
    held: frozenset           # which of PACKAGES dpkg holds, installed (apt-mark hold)
    repository: Repository

    def in_place(self, f):
        """True when rendered or offline file `f` (tree.RenderedFile) is on the host as a push would leave it:
        same mode, owned by root, and the same sha256 (or, for a large file, the same size and mtime)."""
        have = self.files.get(f.path)
        if have is None or (have.mode, have.uid, have.gid) != (f.mode, 0, 0):
            return False
        return have.sha256 == f.sha256 if f.sha256 else (have.size, have.mtime) == (f.size, f.mtime)

    @property
    def memory_mb(self):
        """MemTotal in MB as kubeadm counts it (KiB // 1024)."""
        return self.memory_kib // 1024

    @property
    def addresses(self):
        """Every global address of the host, without its prefix length."""
        return tuple(a.split("/")[0] for i in self.interfaces for a in i.addresses)

    def skew(self):
        """Seconds the host's clock is ahead (+) or behind (-) this machine's; None without a window."""
        if self.window is None:
            return None
        sent, received = self.window
        if self.clock > received:
            return self.clock - received
        return min(0.0, self.clock - sent)


def parse(host, stdout, window=None):
    """The Facts in probe output `stdout` from `host`; FactsError, with the output's tail, if it is not whole."""
    lines = stdout.splitlines()
    if not lines or lines[0] != HEADER:
        raise FactsError(host, f"does not start with {HEADER!r} (did `sh -s` run the probe?)", stdout)
    if lines[-1] != END:
        raise FactsError(host, f"stops before its {END!r} line (the probe was cut short)", stdout)
    single, repeated = {}, {key: [] for key in REPEATED}
    for number, line in enumerate(lines[1:-1], start=2):
        key, sep, value = line.partition("=")
        if not sep or key not in _KNOWN:
            raise FactsError(host, f"has an unexpected line {number}: {line[:120]!r}", stdout)
        if key in repeated:
            repeated[key].append(value)
        elif key in single:
            raise FactsError(host, f"repeats {key!r} on line {number}", stdout)
        else:
            single[key] = value
    missing = [key for key in SINGLE if key not in single]
    if missing:
        raise FactsError(host, f"lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", stdout)
    try:
        return _build(host, single, repeated, window)
    except ValueError as e:
        raise FactsError(host, f"has a bad value: {e}", stdout) from None


def _build(host, v, r, window):
    return Facts(
        host=host,
        os=Os(v["os.id"], v["os.version"], v["os.like"], v["os.name"], v["os.package_manager"]),
        kernel=v["kernel"], arch=v["arch"], init=v["init"], uid=_int(v, "uid"),
        cgroup_version=_int(v, "cgroup.version"), cgroup_controllers=frozenset(v["cgroup.controllers"].split()),
        cpus=_int(v, "cpus"), memory_kib=_int(v, "memory_kib"),
        swaps=tuple(_swap(s) for s in r["swap"]), fstab_swaps=tuple(r["fstab.swap"]),
        hostname=v["hostname"], etc_hostname=v["hostname.file"], hosts_block=v["hosts.block"],
        machine_id=v["machine_id"], product_uuid=v["product_uuid"].lower(),
        interfaces=tuple(_interface(i) for i in r["iface"]), interface_names=tuple(v["net.interfaces"].split()),
        clock=_float(v, "clock"), window=window,
        commands=_family(v, "command", COMMANDS), modules=_family(v, "module", MODULES),
        sysctls=_family(v, "sysctl", SYSCTLS),
        ports=frozenset(_port(p) for p in v["tcp.listen"].split()),
        disk=_disk(v["disk"]), cri_sockets=tuple(r["cri"]),
        containerd_config=v["containerd.config"] == "present",
        containerd_systemd_cgroup=v["containerd.systemd_cgroup"],
        selinux=v["selinux"], selinux_config=v["selinux.config"], firewalld=v["firewalld"],
        kubelet_service=v["kubelet.service"], containerd_service=v["containerd.service"],
        containerd_active=v["containerd.active"], images=frozenset(r["image"]),
        versions=_family(v, "version", VERSIONED),
        kube_files=frozenset(r["kube.file"]),
        kube_servers=MappingProxyType(dict(_pair("kube.server", x) for x in r["kube.server"])),
        haproxy_servers=MappingProxyType(dict(_pair("haproxy.server", x) for x in r["haproxy.server"])),
        etcd_data=v["kube.etcd"], ca_sha256=v["kube.ca_sha256"],
        kubelet_client_expiry=_expiry(v["kubelet.client_cert"]),
        endpoint=Endpoint(v["endpoint.target"], v["endpoint.state"], v["endpoint.detail"].strip()[:200]),
        files=_files(r["file"], r["sha256"]), links=MappingProxyType(dict(_link(x) for x in r["link"])),
        held=frozenset(v["packages.held"].split()),
        repository=Repository(v["repo.state"], v["repo.detail"].strip()[:200],
                              None if v["repo.versions"] == "?" else tuple(v["repo.versions"].split())),
    )


def _pair(key, text):
    """(name, value) of a 'NAME VALUE' line."""
    path, sep, value = text.partition(" ")
    if not sep or not value:
        raise ValueError(f"{key}={text!r} is not 'NAME VALUE'")
    return path, value


def _expiry(encoded):
    """The notAfter of the certificate in `encoded` (base64 of its PEM), None when it is empty."""
    if not encoded:
        return None
    try:
        return x509.view(base64.b64decode(encoded, validate=True)).not_after
    except (ValueError, TypeError) as e:
        raise ValueError(f"kubelet.client_cert is not a certificate ({e})") from None


def _files(stats, sums):
    hashes = {}
    for text in sums:
        digest, _, path = text.partition(" ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not path:
            raise ValueError(f"sha256={text!r} is not 'SHA256 PATH'")
        hashes[path] = digest
    states = {}
    for text in stats:
        parts = text.split(" ", 5)
        if len(parts) != 6 or any(whole(p) is None for p in parts[1:5]) or not re.fullmatch(r"[0-7]{1,4}", parts[0]):
            raise ValueError(f"file={text!r} is not 'MODE UID GID SIZE MTIME PATH'")
        mode, uid, gid, size, mtime, path = parts
        states[path] = FileState(int(mode, 8), int(uid), int(gid), int(size), int(mtime), hashes.get(path, ""))
    return MappingProxyType(states)


def _link(text):
    path, sep, target = text.partition(" ")
    if not sep:
        raise ValueError(f"link={text!r} is not 'PATH TARGET'")
    return path, target


def _family(v, prefix, names):
    return MappingProxyType({name: v[f"{prefix}.{name}"] for name in names})


def _int(v, key):
    number = whole(v[key])
    if number is None:
        raise ValueError(f"{key}={v[key]!r} is not a whole number")
    return number


def _float(v, key):
    if not re.fullmatch(r"[0-9]{1,18}(\.[0-9]{1,18})?", v[key]):       # float() also takes '٤', 'nan' and '1e9'
        raise ValueError(f"{key}={v[key]!r} is not a number")
    return float(v[key])


def _port(text):
    if not re.fullmatch(r"[0-9A-Fa-f]{1,4}", text):          # int(text, 16) also takes '٢' and '1_6'
        raise ValueError(f"tcp.listen port {text!r} is not hexadecimal")
    return int(text, 16)


def _swap(text):
    name, _, size = text.rpartition(" ")
    if not name or whole(size) is None:
        raise ValueError(f"swap={text!r} is not 'NAME SIZE_KIB'")
    return name, int(size)


def _interface(text):
    parts = text.split()
    if len(parts) < 2:
        raise ValueError(f"iface={text!r} is not 'NAME MAC ADDRESS...'")
    mac = "" if parts[1] == "-" else parts[1].lower()  # "-": no link-layer address (tun, wireguard)
    return Interface(parts[0], mac, tuple(parts[2:]))


def _disk(text):
    parts = text.split(" ", 2)
    if len(parts) != 3 or whole(parts[0]) is None or whole(parts[1]) is None:
        raise ValueError(f"disk={text!r} is not 'SIZE_KIB FREE_KIB MOUNT' (df -Pk /var/lib)")
    return Disk(parts[2], int(parts[0]), int(parts[1]))
