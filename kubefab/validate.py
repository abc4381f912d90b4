"""Inventory validation: every problem found at once, each with its place and its fix."""

import difflib
import ipaddress
import re
from dataclasses import fields

from kubefab import versions

CONTROL_PLANE, WORKER = "control-plane", "worker"
ROLES = (CONTROL_PLANE, WORKER)
CNIS = ("flannel", "calico", "none")
ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
PROXY_MODES = ("iptables", "ipvs", "nftables")
KNOWN_HOSTS_POLICIES = ("strict", "accept-new", "off")
INSTALL_SOURCES = ("packages", "offline")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
API_PORT = 6443

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123 = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DURATION = re.compile(r"^(0|(\d+h)?(\d+m)?(\d+s)?)$")
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^({_LABEL}(\.{_LABEL})*/)?{_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")
_REGISTRY = re.compile(rf"^{_LABEL}(\.{_LABEL})*(:\d+)?$")
_TAINT = re.compile(r"^([A-Za-z0-9./_-]+)(=([A-Za-z0-9._-]*))?:([A-Za-z]+)$")



class Problems:
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


def did_you_mean(key, known):
    close = difflib.get_close_matches(key, known, n=1)
    return f" — did you mean {close[0]!r}?" if close else f" — known keys: {', '.join(sorted(known))}"


def typed(p, table, raw, spec, skip=()):
    """Values of table `raw` for dataclass `spec`; unknown keys and wrong types become problems."""
    known = {f.name: f.type for f in fields(spec) if f.name not in skip}
    values = {}
    for key, value in raw.items():
        if key not in known:
            p.add(table, key, f"is not a known key{did_you_mean(key, known)}")
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


def as_ip(value):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def as_network(value):
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None


def endpoint_parts(value):
    """(host, port) of 'host:port', '[v6]:port', 'host' or a bare IPv6 address; port None when not a number."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or str(API_PORT)
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, str(API_PORT)
    return host, int(port) if port.isdigit() else None


def join_endpoint(host, port):
    """'host:port', with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_cluster(p, c, endpoint_raw):
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
        host, port = endpoint_parts(endpoint_raw)
        if port is None or not 0 < port < 65536:
            p.add("cluster", "control_plane_endpoint", f"{endpoint_raw!r} has no valid port — write 'host:6443'")
        elif not (as_ip(host) or _DNS1123.match(host)):
            p.add("cluster", "control_plane_endpoint",
                  f"{endpoint_raw!r}: {host!r} is neither an IP address nor a lowercase DNS name")
    for key in ("pod_subnet", "service_subnet"):
        value = getattr(c, key)
        if as_network(value) is None:
            p.add("cluster", key, f"{value!r} is not a network in CIDR form with its host bits zero, e.g. '10.244.0.0/16'")
    service = as_network(c.service_subnet)
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
        if not (as_ip(san) or _DNS1123.match(san.removeprefix("*."))):
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


def check_ssh(p, table, s):
    if not 0 < s.port < 65536:
        p.add(table, "port", f"{s.port} is not a TCP port (1-65535)")
    _choice(p, table, "known_hosts", s.known_hosts, KNOWN_HOSTS_POLICIES)
    if s.sudo and s.user == "root":
        p.add(table, "sudo", "is true but user is 'root' — drop sudo or log in as a user with sudo rights")
    if s.gateway and not re.match(r"^([^@\s]+@)?[^@:\s]+(:\d+)?$", s.gateway):
        p.add(table, "gateway", f"{s.gateway!r} must look like 'user@bastion:22'")


def check_install(p, install):
    _choice(p, "install", "source", install.source, INSTALL_SOURCES)
    if install.source == "offline" and not install.directory:
        p.add("install", "source", "is 'offline' but no directory is given — add directory = \"PATH\": a local "
                                   "directory of kubeadm, kubelet, kubectl and the kubelet unit files")


def check_host(p, h):
    table = f"hosts.{h.name}"
    if not _DNS1123.match(h.name) or len(h.name) > 63:
        fix = re.sub(r"[^a-z0-9-]+", "-", h.name.lower()).strip("-")
        p.add(table, "", f"name {h.name!r} is not a lowercase RFC 1123 name (it becomes the node name) — "
                         f"rename it, e.g. {fix!r}")
    if not h.address:
        p.add(table, "address", "is missing — give the IP address sshd listens on")
    elif not as_ip(h.address):
        p.add(table, "address", f"{h.address!r} is not an IP address — use the address sshd listens on")
    if h.internal_address and not as_ip(h.internal_address):
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
        if not _LABEL_KEY.match(key) or len(key.rpartition("/")[2]) > 63:
            p.add(table, "labels", f"key {key!r} is not a Kubernetes label key: [prefix/]name, the name at most 63 "
                                   "of a-z, A-Z, 0-9, '-', '_', '.' starting and ending alphanumeric")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            p.add(table, "labels", f"{key!r} = {value!r}: a label value is a string of at most 63 a-z, A-Z, 0-9, "
                                   "'-', '_', '.' starting and ending alphanumeric (or empty)")


def _addresses(p, hosts):
    """Every host address once, mapped to its host; a shared address is a problem."""
    seen = {}
    for h in hosts:
        for key, addr in (("address", h.address), ("internal_address", h.internal_address)):
            ip = as_ip(addr) if isinstance(addr, str) else None
            if ip is None or (key == "internal_address" and addr == h.address):
                continue
            if ip in seen and seen[ip] != h.name:
                p.add(f"hosts.{h.name}", key, f"{addr} is also the address of [hosts.{seen[ip]}] — every host needs its own")
            seen.setdefault(ip, h.name)
    return seen


def check_whole(p, inv_hosts, cluster, mirrors):
    """Checks across tables; returns warnings (the run goes on) while problems go to `p`."""
    warnings = []
    if not any(h.is_control_plane for h in inv_hosts):
        p.add("hosts", "", "has no host with role 'control-plane' — give at least one host roles = ['control-plane']")
    seen = _addresses(p, inv_hosts)
    pods, services = as_network(cluster.pod_subnet), as_network(cluster.service_subnet)
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
    _check_mirrors(p, mirrors)
    return warnings


def _check_mirrors(p, mirrors):
    for registry, urls in mirrors.registries.items():
        if not _REGISTRY.match(registry):
            p.add("mirrors.registries", registry, "must be a registry host such as \"docker.io\" or "
                                                  "\"registry.local:5000\"")
        bad = [u for u in urls if not re.match(r"^https?://[^\s/]+", str(u))] if isinstance(urls, list) else [urls]
        if bad:
            p.add("mirrors.registries", registry, f"mirrors {bad!r} must be a list of http(s):// URLs")
    if not re.match(r"^(https?|file)://", mirrors.package_repository):
        p.add("mirrors", "package_repository", f"{mirrors.package_repository!r} must be an http(s):// or file:// URL")
