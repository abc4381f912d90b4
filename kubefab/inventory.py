"""inventory.toml: read once, validated all at once, resolved into frozen objects."""

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import toml

from kubefab import versions
from kubefab.errors import InventoryError, KubefabError

CONTROL_PLANE, WORKER = "control-plane", "worker"
ROLES = (CONTROL_PLANE, WORKER)
CNIS = ("flannel", "calico", "none")
ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
PROXY_MODES = ("iptables", "ipvs", "nftables")
KNOWN_HOSTS_POLICIES = ("strict", "accept-new", "off")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
API_PORT = 6443

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123 = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DURATION = re.compile(r"^(0|(\d+h)?(\d+m)?(\d+s)?)$")
_TAINT = re.compile(r"^([A-Za-z0-9./_-]+)(=([A-Za-z0-9._-]*))?:([A-Za-z]+)$")


@dataclass(frozen=True)
class Component:
    """Settings users customise for one control-plane component."""

    extra_args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ApiServer(Component):
    cert_sans: tuple = ()


@dataclass(frozen=True)
class Kubelet:
    extra_args: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class KubeProxy:
    mode: str = "iptables"
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    name: str = "kubernetes"
    kubernetes_version: str = versions.DEFAULT_VERSION
    control_plane_endpoint: str = ""
    pod_subnet: str = "10.244.0.0/16"
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"
    image_repository: str = "registry.k8s.io"
    cni: str = "flannel"
    encryption_algorithm: str = "RSA-2048"
    cert_validity_days: int = 365
    ca_validity_days: int = 3650
    worker_batch_size: int = 1
    token_ttl: str = "24h"
    apiserver: ApiServer = ApiServer()
    controller_manager: Component = Component()
    scheduler: Component = Component()
    kubelet: Kubelet = Kubelet()
    kube_proxy: KubeProxy = KubeProxy()

    @property
    def minor(self):
        return versions.parse(self.kubernetes_version)[1]

    @property
    def release(self):
        return versions.release(self.kubernetes_version)


@dataclass(frozen=True)
class SSH:
    user: str = "root"
    port: int = 22
    identity_file: str = ""
    sudo: bool = False
    sudo_password_env: str = ""
    known_hosts: str = "accept-new"
    known_hosts_file: str = "~/.ssh/known_hosts"
    gateway: str = ""
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class Mirrors:
    package_repository: str = "https://pkgs.k8s.io/core:/stable:"
    registries: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple
    internal_address: str = ""
    labels: dict = field(default_factory=dict)
    taints: tuple = ()
    ssh: SSH = SSH()

    @property
    def is_control_plane(self):
        return CONTROL_PLANE in self.roles

    @property
    def is_worker(self):
        return WORKER in self.roles


@dataclass(frozen=True)
class Inventory:
    path: Path
    cluster: Cluster
    ssh: SSH
    hosts: tuple
    mirrors: Mirrors
    state_dir: Path
    warnings: tuple = ()

    @property
    def control_planes(self):
        return tuple(h for h in self.hosts if h.is_control_plane)

    @property
    def workers(self):
        return tuple(h for h in self.hosts if not h.is_control_plane)

    @property
    def first_control_plane(self):
        return self.control_planes[0]

    @property
    def endpoint(self):
        """The control-plane endpoint 'host:port' every node and kubeconfig uses."""
        return self.cluster.control_plane_endpoint

    def host(self, name):
        """The host called `name`; a clear error naming close matches otherwise."""
        for h in self.hosts:
            if h.name == name:
                return h
        names = [h.name for h in self.hosts]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"hosts are: {', '.join(names)}"
        raise KubefabError(f"{self.path}: no host named {name!r} in [hosts] — {hint}")

    def select(self, names):
        """Hosts named in `names` (all hosts when empty), in inventory order."""
        if not names:
            return self.hosts
        wanted = {self.host(n).name for n in names}
        return tuple(h for h in self.hosts if h.name in wanted)


# --- validation --------------------------------------------------------------------------------


class _Problems:
    """Collects every problem with its location, so all are reported at once."""

    def __init__(self, path, text):
        self.path, self.items = path, []
        self._lines = text.splitlines()

    def add(self, table, key, message):
        where = f"[{table}] {key}" if key else f"[{table}]"
        line = self._locate(table, key)
        prefix = f"line {line}: " if line else ""
        self.items.append(f"{prefix}{where} {message}")

    def _locate(self, table, key):
        current = ""
        for number, raw in enumerate(self._lines, 1):
            line = raw.split("#", 1)[0].strip()
            header = re.match(r"^\[+\s*([^\]]+?)\s*\]+$", line)
            if header:
                current = header.group(1).replace('"', "")
                if not key and current == table:
                    return number
            elif key and current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
                return number
        return None


def _did_you_mean(key, known):
    close = difflib.get_close_matches(key, known, n=1)
    return f" — did you mean {close[0]!r}?" if close else f" — known keys: {', '.join(sorted(known))}"


def _typed(p, table, raw, spec, skip=()):
    """Values of table `raw` for dataclass `spec`; unknown keys and wrong types become problems."""
    known = {f.name: f.type for f in fields(spec) if f.name not in skip}
    values = {}
    for key, value in raw.items():
        if key not in known:
            p.add(table, key, f"is not a known key{_did_you_mean(key, known)}")
        elif known[key] in _TYPE_NAMES and not _is(value, known[key]):
            p.add(table, key, f"must be {_TYPE_NAMES[known[key]]}, not {value!r}")
        else:
            values[key] = tuple(value) if isinstance(value, list) else value
    return values


_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false", float: "a number",
               tuple: "a list", dict: "a table"}


def _is(value, expected):
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is tuple:
        return isinstance(value, list)
    return isinstance(value, expected)


def _ip(value):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _network(value):
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None


def _endpoint_parts(value):
    host, sep, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not sep:
        return value, API_PORT
    return host, int(port) if port.isdigit() else None


def _check_cluster(p, c, endpoint_raw):
    try:
        minor = versions.parse(c.kubernetes_version)[1]
        if minor not in versions.RELEASES:
            p.add("cluster", "kubernetes_version",
                  f"{c.kubernetes_version!r} is not supported — kubefab supports {versions.SUPPORTED}")
    except ValueError:
        minor = None
        p.add("cluster", "kubernetes_version",
              f"{c.kubernetes_version!r} is not a version — write it as 'X.Y.Z', e.g. '{versions.DEFAULT_VERSION}'")
    if not _DNS1123.match(c.name) or len(c.name) > 63:
        p.add("cluster", "name", f"{c.name!r} must be a lowercase RFC 1123 name (a-z, 0-9, '-'), e.g. 'prod-1'")
    if endpoint_raw:
        host, port = _endpoint_parts(endpoint_raw)
        if port is None or not 0 < port < 65536:
            p.add("cluster", "control_plane_endpoint", f"{endpoint_raw!r} has no valid port — write 'host:6443'")
        elif not (_ip(host) or _DNS1123.match(host)):
            p.add("cluster", "control_plane_endpoint",
                  f"{endpoint_raw!r}: {host!r} is neither an IP address nor a lowercase DNS name")
    for key in ("pod_subnet", "service_subnet"):
        value = getattr(c, key)
        if _network(value) is None:
            p.add("cluster", key, f"{value!r} is not a network in CIDR form with its host bits zero, e.g. '10.244.0.0/16'")
    service = _network(c.service_subnet)
    if service and service.version == 4 and service.prefixlen < 12:
        p.add("cluster", "service_subnet", f"{c.service_subnet!r} is larger than kubeadm allows (/12 at most)")
    if service and service.num_addresses < 16:
        p.add("cluster", "service_subnet", f"{c.service_subnet!r} is too small: the DNS service takes its 10th address")
    if not _DNS1123.match(c.dns_domain):
        p.add("cluster", "dns_domain", f"{c.dns_domain!r} is not a lowercase DNS domain, e.g. 'cluster.local'")
    if not c.image_repository or "://" in c.image_repository:
        p.add("cluster", "image_repository",
              f"{c.image_repository!r} must be a registry path without a scheme, e.g. 'registry.k8s.io'")
    _choice(p, "cluster", "cni", c.cni, CNIS)
    _choice(p, "cluster", "encryption_algorithm", c.encryption_algorithm, ALGORITHMS)
    if c.encryption_algorithm == "ECDSA-P384" and minor is not None and minor < 34:
        p.add("cluster", "encryption_algorithm", "'ECDSA-P384' needs Kubernetes 1.34 or later — use 'ECDSA-P256'")
    for key in ("cert_validity_days", "ca_validity_days", "worker_batch_size"):
        if getattr(c, key) < 1:
            p.add("cluster", key, f"must be at least 1, not {getattr(c, key)}")
    if c.ca_validity_days < c.cert_validity_days:
        p.add("cluster", "ca_validity_days",
              f"({c.ca_validity_days}) is shorter than cert_validity_days ({c.cert_validity_days}): leaves would outlive their CA")
    if not _DURATION.match(c.token_ttl) or c.token_ttl == "":
        p.add("cluster", "token_ttl", f"{c.token_ttl!r} is not a duration like '24h', '1h30m' or '0' (never expires)")
    for san in c.apiserver.cert_sans:
        if not (_ip(san) or _DNS1123.match(san.removeprefix("*."))):
            p.add("cluster.apiserver", "cert_sans", f"entry {san!r} is neither an IP address nor a DNS name")
    _choice(p, "cluster.kube_proxy", "mode", c.kube_proxy.mode, PROXY_MODES)
    for table, component in (("apiserver", c.apiserver), ("controller_manager", c.controller_manager),
                             ("scheduler", c.scheduler), ("kubelet", c.kubelet)):
        for name, value in component.extra_args.items():
            if not isinstance(value, (str, int, bool)) or name.startswith("-"):
                p.add(f"cluster.{table}", "extra_args",
                      f"entry {name!r} = {value!r}: write flag names without '--' and values as strings")


def _choice(p, table, key, value, allowed):
    if value not in allowed:
        p.add(table, key, f"is {value!r} — choose one of {', '.join(repr(a) for a in allowed)}")


def _check_ssh(p, table, s):
    if not 0 < s.port < 65536:
        p.add(table, "port", f"{s.port} is not a TCP port (1-65535)")
    _choice(p, table, "known_hosts", s.known_hosts, KNOWN_HOSTS_POLICIES)
    if s.sudo and s.user == "root":
        p.add(table, "sudo", "is true but user is 'root' — drop sudo or log in as a user with sudo rights")
    if s.gateway and not re.match(r"^([^@\s]+@)?[^@:\s]+(:\d+)?$", s.gateway):
        p.add(table, "gateway", f"{s.gateway!r} must look like 'user@bastion:22'")


def _check_host(p, h):
    table = f"hosts.{h.name}"
    if not _DNS1123.match(h.name) or len(h.name) > 63:
        fix = re.sub(r"[^a-z0-9-]+", "-", h.name.lower()).strip("-")
        p.add(table, "", f"name {h.name!r} is not a lowercase RFC 1123 name (it becomes the node name) — "
                         f"rename it, e.g. {fix!r}")
    if not h.address:
        p.add(table, "address", "is missing — give the IP address sshd listens on")
    elif not _ip(h.address):
        p.add(table, "address", f"{h.address!r} is not an IP address — use the address sshd listens on")
    if h.internal_address and not _ip(h.internal_address):
        p.add(table, "internal_address", f"{h.internal_address!r} is not an IP address — "
                                         "use the address other nodes reach this one on")
    if not h.roles:
        p.add(table, "roles", f"is missing — give [{', '.join(repr(r) for r in ROLES)}] or one of them")
    for role in h.roles:
        if role not in ROLES:
            p.add(table, "roles", f"has {role!r} — roles are {', '.join(repr(r) for r in ROLES)}")
    for taint in h.taints:
        m = _TAINT.match(taint) if isinstance(taint, str) else None
        if not m or m.group(4) not in TAINT_EFFECTS:
            p.add(table, "taints", f"entry {taint!r} must be 'key=value:Effect' with Effect one of "
                                   f"{', '.join(TAINT_EFFECTS)}")
    for key, value in h.labels.items():
        if not isinstance(value, str):
            p.add(table, "labels", f"{key!r} = {value!r}: label values are strings")


def _check_whole(p, inv_hosts, cluster, mirrors):
    warnings = []
    if not any(h.is_control_plane for h in inv_hosts):
        p.add("hosts", "", "has no host with role 'control-plane' — give at least one host roles = ['control-plane']")
    seen = {}
    for h in inv_hosts:
        for key, addr in (("address", h.address), ("internal_address", h.internal_address)):
            ip = _ip(addr) if isinstance(addr, str) else None
            if ip is None or (key == "internal_address" and addr == h.address):
                continue
            if ip in seen and seen[ip] != h.name:
                p.add(f"hosts.{h.name}", key, f"{addr} is also the address of [hosts.{seen[ip]}] — every host needs its own")
            seen.setdefault(ip, h.name)
    pods, services = _network(cluster.pod_subnet), _network(cluster.service_subnet)
    if pods and services and pods.overlaps(services):
        p.add("cluster", "pod_subnet", f"{pods} overlaps service_subnet {services} — pick disjoint ranges")
    for ip, name in seen.items():
        for key, net in (("pod_subnet", pods), ("service_subnet", services)):
            if net and ip.version == net.version and ip in net:
                p.add(f"hosts.{name}", "address", f"{ip} lies inside {key} {net} — move the {key} "
                                                  "away from the host network")
    count = sum(h.is_control_plane for h in inv_hosts)
    if count and count % 2 == 0:
        warnings.append(f"{count} control-plane nodes: etcd tolerates no more failures than with {count - 1} — "
                        "use an odd number")
    if count > 1 and not cluster.control_plane_endpoint:
        warnings.append("several control-plane nodes but no [cluster] control_plane_endpoint: the first "
                        "control-plane node's address is used, so it stays a single point of failure — "
                        "put a load balancer or VIP in front and name it there")
    for registry, urls in mirrors.registries.items():
        bad = [u for u in urls if not re.match(r"^https?://[^\s/]+", str(u))] if isinstance(urls, list) else [urls]
        if bad:
            p.add("mirrors.registries", registry, f"mirrors {bad!r} must be a list of http(s):// URLs")
    if not re.match(r"^(https?|file)://", mirrors.package_repository):
        p.add("mirrors", "package_repository", f"{mirrors.package_repository!r} must be an http(s):// or file:// URL")
    return warnings


# --- loading -----------------------------------------------------------------------------------


def _read(path):
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise KubefabError(f"{path}: no such inventory — pass -i PATH or create inventory.toml") from None
    try:
        return text, toml.loads(text)
    except toml.TomlDecodeError as e:
        raise InventoryError(path, [f"line {e.lineno}, column {e.colno}: TOML syntax error: {e.msg}"]) from None


def _table(p, raw, key, where):
    value = raw.get(key, {})
    if not isinstance(value, dict):
        p.add(where, "", f"must be a table, not {value!r}")
        return {}
    return value


def _resolve_cluster(p, raw):
    nested = {"apiserver": ApiServer, "controller_manager": Component, "scheduler": Component,
              "kubelet": Kubelet, "kube_proxy": KubeProxy}
    flat = {k: v for k, v in raw.items() if k not in nested}
    values = _typed(p, "cluster", flat, Cluster)
    for key, spec in nested.items():
        sub = _table(p, raw, key, f"cluster.{key}")
        values[key] = spec(**_typed(p, f"cluster.{key}", sub, spec))
    return Cluster(**values)


def _resolve_hosts(p, raw_hosts, ssh_defaults):
    hosts = []
    for name, raw in raw_hosts.items():
        if not isinstance(raw, dict):
            p.add(f"hosts.{name}", "", "must be a table with address and roles")
            continue
        raw = dict(raw)
        ssh_raw = raw.pop("ssh", {})
        values = _typed(p, f"hosts.{name}", raw, Host, skip=("name", "ssh"))
        values.setdefault("address", "")
        values.setdefault("roles", ())
        ssh = replace(ssh_defaults, **_typed(p, f"hosts.{name}.ssh", ssh_raw, SSH)) if ssh_raw else ssh_defaults
        host = Host(name=name, ssh=ssh, **values)
        _check_host(p, host)
        if ssh_raw:
            _check_ssh(p, f"hosts.{name}.ssh", ssh)
        hosts.append(replace(host, internal_address=host.internal_address or host.address))
    return tuple(hosts)


def _absolute(path, base):
    if not path:
        return path
    expanded = Path(os.path.expanduser(path))
    return str(expanded if expanded.is_absolute() else (base / expanded))


def _with_paths(ssh, base):
    return replace(ssh, identity_file=_absolute(ssh.identity_file, base),
                   known_hosts_file=_absolute(ssh.known_hosts_file, base))


def load(path="inventory.toml", state_dir=None):
    """Read and validate `path`; raise InventoryError listing every problem."""
    path = Path(path)
    text, raw = _read(path)
    p = _Problems(path, text)
    for key in raw:
        if key not in ("cluster", "ssh", "hosts", "mirrors"):
            p.add(key, "", f"is not a known table{_did_you_mean(key, ['cluster', 'ssh', 'hosts', 'mirrors'])}")
    cluster_raw = _table(p, raw, "cluster", "cluster")
    cluster = _resolve_cluster(p, cluster_raw)
    ssh = SSH(**_typed(p, "ssh", _table(p, raw, "ssh", "ssh"), SSH))
    _check_ssh(p, "ssh", ssh)
    hosts = _resolve_hosts(p, _table(p, raw, "hosts", "hosts"), ssh)
    mirrors = Mirrors(**_typed(p, "mirrors", _table(p, raw, "mirrors", "mirrors"), Mirrors))
    _check_cluster(p, cluster, cluster_raw.get("control_plane_endpoint", ""))
    warnings = _check_whole(p, hosts, cluster, mirrors)
    if p.items:
        raise InventoryError(path, p.items)
    base = path.resolve().parent
    hosts = tuple(replace(h, ssh=_with_paths(h.ssh, base)) for h in hosts)
    if not cluster.control_plane_endpoint:
        cluster = replace(cluster, control_plane_endpoint=f"{_first_control_plane(hosts).internal_address}:{API_PORT}")
    elif _endpoint_parts(cluster.control_plane_endpoint)[0] == cluster.control_plane_endpoint:
        cluster = replace(cluster, control_plane_endpoint=f"{cluster.control_plane_endpoint}:{API_PORT}")
    state = Path(state_dir) if state_dir else base / ".kubefab" / cluster.name
    return Inventory(path=path, cluster=cluster, ssh=_with_paths(ssh, base), hosts=hosts, mirrors=mirrors,
                     state_dir=state.resolve(), warnings=tuple(warnings))


def _first_control_plane(hosts):
    return next(h for h in hosts if h.is_control_plane)
