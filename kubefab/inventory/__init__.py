"""inventory.toml: read once, validated all at once, resolved into frozen objects."""

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from kubefab import net, versions
from kubefab.errors import InventoryError, KubefabError
from kubefab.inventory import ha as ha_checks, reliance, schema, validate
from kubefab.inventory.validate import CONTROL_PLANE, WORKER

FlagValues = dict[str, str | int | bool]         # component flags: name without "--" -> value


@dataclass(frozen=True)
class Component:
    """Settings users customise for one control-plane component."""

    extra_args: FlagValues = field(default_factory=dict)


@dataclass(frozen=True)
class ApiServer(Component):
    cert_sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kubelet:
    extra_args: FlagValues = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class KubeProxy:
    mode: str = "iptables"
    config: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class HA:
    """`[cluster.ha]`: the control planes behind one virtual IP; an empty vip means no such table."""

    vip: str = ""
    mode: str = "keepalived"    # keepalived | kube-vip | external
    port: int = 0               # 0: the mode's own (ha.DEFAULT_PORTS)
    interface: str = ""         # kube-vip: the control planes' interface that carries the VIP's subnet


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
    cni_manifest: str = ""                  # a manifest file to apply instead of kubefab's (relative: to the inventory)
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
    ha: HA = HA()

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
    registries: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Install:
    """Where kubeadm, kubelet, kubectl and the runtime come from: package repositories or a local directory."""

    source: str = "packages"        # packages | offline
    directory: str = ""             # offline: binaries and kubelet unit files; relative to the inventory


@dataclass(frozen=True)
class AddonsTls:
    """The gateway's TLS secret: a user certificate and key, or names for one from kubefab's add-on CA."""

    cert: str = ""
    key: str = ""
    issue: tuple[str, ...] = ()


@dataclass(frozen=True)
class Addons:
    """What cluster.up installs after the pod network (kubefab.components.addons)."""

    ui: str = "none"                # headlamp | none
    ui_node_port: int = 0           # 0: the UI's Service is a ClusterIP, reached with kubectl port-forward
    gateway: str = "none"
    metrics: bool = False           # metrics-server
    tls: AddonsTls = AddonsTls()


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...]
    internal_address: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()
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
    install: Install = Install()
    addons: Addons = Addons()

    @cached_property            # asked for once per host and file: a fleet of thousands must not rescan it each time
    def control_planes(self):
        return tuple(h for h in self.hosts if h.is_control_plane)

    @cached_property
    def non_control_planes(self):
        """Hosts without the control-plane role: they join with a plain `kubeadm join`."""
        return tuple(h for h in self.hosts if not h.is_control_plane)

    @property
    def first_control_plane(self):
        return self.control_planes[0]

    @property
    def ha(self):
        """`[cluster.ha]` when the inventory has it (the endpoint is then its vip:port), else None."""
        return self.cluster.ha if self.cluster.ha.vip else None

    @property
    def endpoint(self):
        """The control-plane endpoint 'host:port' every node and kubeconfig uses."""
        return self.cluster.control_plane_endpoint

    @property
    def endpoint_host(self):
        """The host part of the endpoint: an IP address or a DNS name."""
        return net.endpoint_parts(self.endpoint)[0]

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


# The host sets files and phases are for, by name: one table for the render table and the phase table.
HOST_SETS = {
    "all": lambda inv: inv.hosts,
    "control-planes": lambda inv: inv.control_planes,
    "first-control-plane": lambda inv: (inv.first_control_plane,),
    "other-control-planes": lambda inv: inv.control_planes[1:],
    "non-control-planes": lambda inv: inv.non_control_planes,
}


def _read(path):
    try:
        text = Path(path).read_bytes().decode()
    except FileNotFoundError:
        raise KubefabError(f"{path}: no such inventory — pass -i PATH or create inventory.toml") from None
    except UnicodeDecodeError as e:
        raise InventoryError(path, [f"byte {e.start}: not UTF-8 text, which TOML requires"]) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InventoryError(path, [_syntax_error(str(e))]) from None


def _syntax_error(message):
    """tomllib's 'Expected ... (at line 3, column 7)' as 'line 3, column 7: TOML syntax error: Expected ...'."""
    m = re.fullmatch(r"(.*) \(at line ([0-9]+), column ([0-9]+)\)", message, re.DOTALL)
    if m:
        return f"line {m.group(2)}, column {m.group(3)}: TOML syntax error: {m.group(1)}"
    return f"TOML syntax error: {message.replace(' (at end of document)', ' at the end of the file')}"


def _table(p, raw, key, where):
    value = raw.get(key, {})
    if not isinstance(value, dict):
        p.add(where, "", f"must be a table, not {value!r}")
        return {}
    return value


def _resolve_cluster(p, raw):
    nested = {"apiserver": ApiServer, "controller_manager": Component, "scheduler": Component,
              "kubelet": Kubelet, "kube_proxy": KubeProxy, "ha": HA}
    flat = {k: v for k, v in raw.items() if k not in nested}
    values = schema.typed(p, "cluster", flat, Cluster)
    for key, spec in nested.items():
        sub = _table(p, raw, key, f"cluster.{key}")
        values[key] = spec(**schema.typed(p, f"cluster.{key}", sub, spec))
    return Cluster(**values)


def _resolve_addons(p, raw, base):
    flat = {k: v for k, v in raw.items() if k != "tls"}
    given = _table(p, raw, "tls", "addons.tls")
    tls = AddonsTls(**schema.typed(p, "addons.tls", given, AddonsTls))
    tls = replace(tls, cert=_absolute(tls.cert, base), key=_absolute(tls.key, base))
    addons = Addons(**schema.typed(p, "addons", flat, Addons, skip=("tls",)), tls=tls)
    validate.check_addons(p, addons, tls_keys=tuple(given))
    return addons


def _resolve_hosts(p, raw_hosts, ssh_defaults):
    hosts = []
    for name, raw in raw_hosts.items():
        if not isinstance(raw, dict):
            p.add(("hosts", name), "", "must be a table with address and roles")
            continue
        raw = dict(raw)
        ssh_raw = _table(p, raw, "ssh", ("hosts", name, "ssh"))
        raw.pop("ssh", None)
        values = schema.typed(p, ("hosts", name), raw, Host, skip=("name", "ssh"))
        typed = frozenset(values)
        values.setdefault("address", "")
        values.setdefault("roles", ())
        ssh = replace(ssh_defaults, **schema.typed(p, ("hosts", name, "ssh"), ssh_raw, SSH)) if ssh_raw else ssh_defaults
        host = Host(name=name, ssh=ssh, **values)
        validate.check_host(p, host, given=set(raw), typed=typed)
        if ssh_raw:
            validate.check_ssh(p, ("hosts", name, "ssh"), ssh)
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
    p = schema.Problems(path, text)
    tables = ["cluster", "ssh", "hosts", "mirrors", "install", "addons"]
    for key in raw:
        if key not in tables:
            p.add((key,), "", f"is not a known table{schema.did_you_mean(key, tables)}")
    cluster_raw = _table(p, raw, "cluster", "cluster")
    cluster = _resolve_cluster(p, cluster_raw)
    ssh = SSH(**schema.typed(p, "ssh", _table(p, raw, "ssh", "ssh"), SSH))
    validate.check_ssh(p, "ssh", ssh)
    hosts = _resolve_hosts(p, _table(p, raw, "hosts", "hosts"), ssh)
    mirrors = Mirrors(**schema.typed(p, "mirrors", _table(p, raw, "mirrors", "mirrors"), Mirrors))
    install = Install(**schema.typed(p, "install", _table(p, raw, "install", "install"), Install))
    validate.check_install(p, install)
    addons = _resolve_addons(p, _table(p, raw, "addons", "addons"), path.resolve().parent)
    validate.check_cluster(p, cluster)
    ha_checks.check(p, cluster, hosts, given="ha" in cluster_raw)
    warnings = validate.check_whole(p, hosts, cluster, mirrors)
    reliance.check(p, hosts, cluster, mirrors)
    if p.items:
        raise InventoryError(path, p.items)
    base = path.resolve().parent
    hosts = tuple(replace(h, ssh=_with_paths(h.ssh, base)) for h in hosts)
    if cluster.ha.vip:
        cluster = replace(cluster, ha=replace(cluster.ha, port=ha_checks.port(cluster.ha)),
                          control_plane_endpoint=net.join_endpoint(cluster.ha.vip, ha_checks.port(cluster.ha)))
    host, port = net.endpoint_parts(cluster.control_plane_endpoint or _first_control_plane(hosts).internal_address)
    cluster = replace(cluster, control_plane_endpoint=net.join_endpoint(host, port),
                      kubernetes_version=versions.bare(cluster.kubernetes_version))
    state = Path(state_dir) if state_dir else base / ".kubefab" / cluster.name
    return Inventory(path=path, cluster=cluster, ssh=_with_paths(ssh, base), hosts=hosts, mirrors=mirrors,
                     state_dir=state.resolve(), warnings=tuple(warnings),
                     install=replace(install, directory=_absolute(install.directory, base)), addons=addons)


def check_identity_files(inv, hosts):
    """Before a run logs in anywhere: every identity file `hosts` use is a file; InventoryError otherwise.

    `cluster.plan` does not need the keys (Vagrant makes the committed inventory's on `vagrant up`), so this is
    checked by the tasks that connect, before the first connection, not by `load`.
    """
    p = schema.Problems(inv.path, inv.path.read_text())
    reported = set()
    for h in hosts:
        key = h.ssh.identity_file
        if not key or key in reported or Path(key).is_file():
            continue
        reported.add(key)
        table = "ssh" if key == inv.ssh.identity_file else ("hosts", h.name, "ssh")
        p.add(table, "identity_file", f"{key} is not a file — give the path of the private key to log in with "
                                      "(a relative path is relative to the inventory)")
    if p.items:
        raise InventoryError(inv.path, p.items)


def _first_control_plane(hosts):
    return next(h for h in hosts if h.is_control_plane)
