"""Inventory validation: every problem found at once, each with its place and its fix."""

import math
import re
import string
from urllib.parse import quote, urlsplit

from kubefab import net, versions
from kubefab.digits import GO_DURATION_MAX_NS, go_duration_ns, whole
from kubefab.pki import x509
from kubefab.pki.x509 import ALGORITHMS

CONTROL_PLANE, WORKER = "control-plane", "worker"
ROLES = (CONTROL_PLANE, WORKER)
CNIS = ("flannel", "calico", "none")
PROXY_MODES = ("iptables", "ipvs", "nftables")
KNOWN_HOSTS_POLICIES = ("strict", "accept-new", "off")
INSTALL_SOURCES = ("packages", "offline")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
UIS = ("headlamp", "none")
GATEWAYS = ("envoy-gateway", "none")
NODE_PORTS = (30000, 32767)             # kube-apiserver's default --service-node-port-range

# kubeadm's limits (cmd/kubeadm/app/constants, apis/kubeadm/validation)
SERVICE_SUBNET_MAX_BITS = 20            # host bits of a service subnet: /12 for IPv4, /108 for IPv6
SERVICE_SUBNET_MIN_ADDRESSES = 16       # the DNS Service takes the 10th address
POD_SUBNET_MIN_ADDRESSES = 14
NODE_MASKS = {4: 24, 6: 64}             # kube-controller-manager's default per-node range of the pod subnet
NODE_MASK_MAX_DIFF = 16                 # pod subnet and per-node mask may differ by this many bits at most
NODE_MASK_FLAG = "node-cidr-mask-size"  # single-stack only; kubeadm itself reads the per-family flags

# Limits of numbers: what the component reading them can represent.
MAX_VALIDITY_DAYS = 106751              # kubeadm reads '<days*24>h' as a Go time.Duration: at most 2562047h
MAX_PORT = 65535
MAX_CONNECT_TIMEOUT = 3600              # seconds: no SSH handshake takes an hour; 1e300 overflows a socket timeout

# Every pattern is used with fullmatch (`$` also matches before a trailing newline) and spells digits [0-9]
# (`\d` takes any Unicode digit).
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"                # an RFC 1123 label: at most 63 characters
_DNS1123 = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")    # a DNS name: at most 253
_HOSTNAME = re.compile(_DNS1123.pattern, re.IGNORECASE)
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"({_LABEL}(\.{_LABEL})*/)?{_NAME}")
_LABEL_VALUE = re.compile(rf"({_NAME})?")
_REGISTRY = re.compile(rf"{_LABEL}(\.{_LABEL})*(:[0-9]{{1,5}})?")
# RFC 3986's unreserved and reserved characters and '%' (for escapes), without the quote "'": what a URL may hold
_URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&()*+,;=%")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")            # POSIX: a name the shell can export
_LOGIN = re.compile(r"[^\s\x00-\x1f\x7f@:]+")                    # an SSH user name: no space, control, '@' or ':'


# -- [cluster] --------------------------------------------------------------------------------------

def check_cluster(p, c):
    minor = _check_version(p, c.kubernetes_version)
    if not _DNS1123.fullmatch(c.name) or len(c.name) > 63:
        p.add("cluster", "name", f"{c.name!r} must be a lowercase RFC 1123 name (a-z, 0-9, '-'), e.g. 'prod-1'")
    if c.control_plane_endpoint:
        _check_endpoint(p, c.control_plane_endpoint)
    _check_subnets(p, c)
    if not _DNS1123.fullmatch(c.dns_domain):
        p.add("cluster", "dns_domain", f"{c.dns_domain!r} is not a lowercase DNS domain, e.g. 'cluster.local'")
    if not c.image_repository or "://" in c.image_repository:
        p.add("cluster", "image_repository",
              f"{c.image_repository!r} must be a registry path without a scheme, e.g. 'registry.k8s.io'")
    _choice(p, "cluster", "cni", c.cni, CNIS)
    _choice(p, "cluster", "encryption_algorithm", c.encryption_algorithm, ALGORITHMS)
    if c.encryption_algorithm == "ECDSA-P384" and minor is not None and minor < 34:
        p.add("cluster", "encryption_algorithm", "'ECDSA-P384' needs Kubernetes 1.34 or later — use 'ECDSA-P256'")
    _check_validity(p, c)
    if c.worker_batch_size < 1:
        p.add("cluster", "worker_batch_size", f"must be at least 1, not {c.worker_batch_size}")
    _check_token_ttl(p, c.token_ttl)
    for san in c.apiserver.cert_sans:
        if not is_san(san):
            p.add("cluster.apiserver", "cert_sans", f"entry {san!r} is neither an IP address nor a DNS name")
    _choice(p, "cluster.kube_proxy", "mode", c.kube_proxy.mode, PROXY_MODES)


def is_san(name):
    """True if `name` may stand in the apiserver certificate's SANs: an IP address or a DNS name, '*.' allowed."""
    return bool(net.as_ip(name) or _DNS1123.fullmatch(name.removeprefix("*.")))


def _check_version(p, version):
    """The minor release of a 1.x `version` (None otherwise); an unsupported or malformed one is a problem."""
    try:
        major, minor, _ = versions.parse(version)
    except ValueError:
        p.add("cluster", "kubernetes_version", f"{version!r} is not a version — write it as 'X.Y.Z' in ASCII digits "
                                               f"without leading zeros (a leading 'v' is fine), e.g. "
                                               f"'{versions.DEFAULT_VERSION}'")
        return None
    if major != 1 or minor not in versions.RELEASES:
        p.add("cluster", "kubernetes_version", f"{version!r} is not supported — kubefab supports {versions.SUPPORTED}")
    return minor if major == 1 else None


def _check_endpoint(p, value):
    host, port = net.endpoint_parts(value)
    ip = net.as_ip(host)
    if port is None or not 0 < port <= MAX_PORT:
        p.add("cluster", "control_plane_endpoint", f"{value!r} has no valid port — write 'host:6443'")
    elif not (ip or _DNS1123.fullmatch(host)):
        p.add("cluster", "control_plane_endpoint",
              f"{value!r}: {host!r} is neither an IP address nor a lowercase DNS name")
    elif (ip and net.not_a_node_address(ip)) or host == "localhost" or host.endswith(".localhost"):
        why = net.not_a_node_address(ip) if ip else "is a loopback name (every node would dial itself)"
        p.add("cluster", "control_plane_endpoint", f"{value!r}: {host!r} {why} — use the address of a load "
                                                   "balancer or VIP, or of a control-plane node, that every node "
                                                   "reaches")


def _check_validity(p, c):
    """Certificate lifetimes: what kubeadm's Go duration holds, and never a leaf beyond its CA."""
    in_range = True
    for key in ("cert_validity_days", "ca_validity_days"):
        days = getattr(c, key)
        if not 1 <= days <= MAX_VALIDITY_DAYS:
            in_range = False
            p.add("cluster", key, f"is {days} — give 1 to {MAX_VALIDITY_DAYS} days (kubeadm reads it as a Go "
                                  "duration of at most 2562047h, about 292 years)")
    if in_range and c.ca_validity_days < c.cert_validity_days:
        p.add("cluster", "ca_validity_days",
              f"({c.ca_validity_days}) is shorter than cert_validity_days ({c.cert_validity_days}): a leaf would "
              "outlive its CA and stop verifying first — raise ca_validity_days or lower cert_validity_days")


def _check_token_ttl(p, ttl):
    """A bootstrap token's ttl as kubeadm reads it: a Go duration ('0' never expires); kubeadm takes a negative
    one for 'never expires' too, so a sign other than '+' is refused."""
    ns = None if ttl.startswith("-") else go_duration_ns(ttl)
    if ns is None:
        p.add("cluster", "token_ttl", f"{ttl!r} is not a duration — write a Go duration such as '24h', '1h30m', "
                                      "'1.5h' or '90m', or '0' (never expires)")
    elif ns > GO_DURATION_MAX_NS:
        p.add("cluster", "token_ttl", f"{ttl!r} is longer than a Go duration holds (2562047h) — use a shorter "
                                      "ttl, or '0' for a token that never expires")


def _choice(p, table, key, value, allowed):
    if value not in allowed:
        p.add(table, key, f"is {value!r} — choose one of {', '.join(repr(a) for a in allowed)}")


# -- [addons] ---------------------------------------------------------------------------------------

def check_addons(p, a, tls_keys):
    if a.ui == "dashboard":
        p.add("addons", "ui", "is 'dashboard': the Kubernetes Dashboard was archived in January 2026 — use "
                              "'headlamp' (Kubernetes SIG UI), its recommended replacement")
    else:
        _choice(p, "addons", "ui", a.ui, UIS)
    if a.ui_node_port and not NODE_PORTS[0] <= a.ui_node_port <= NODE_PORTS[1]:
        p.add("addons", "ui_node_port", f"is {a.ui_node_port} — a NodePort must be in {NODE_PORTS[0]}-"
                                        f"{NODE_PORTS[1]}, the API server's default --service-node-port-range")
    elif a.ui_node_port and a.ui == "none":
        p.add("addons", "ui_node_port", "is set but ui is 'none' — set ui = \"headlamp\" or remove ui_node_port")
    if a.gateway == "ingress-nginx":
        p.add("addons", "gateway", "is 'ingress-nginx': it reached end of life in March 2026 — use "
                                   "'envoy-gateway' (a Gateway API implementation)")
    else:
        _choice(p, "addons", "gateway", a.gateway, GATEWAYS)
    if a.gateway == "none":
        for key in tls_keys:
            p.add(("addons", "tls"), key, "is for the gateway, which is 'none' — set gateway = \"envoy-gateway\" "
                                          "or remove it")
        return
    _check_tls(p, a.tls, bool(tls_keys))


def _check_tls(p, tls, given):
    where = ("addons", "tls")
    if not given or not (tls.cert or tls.key or tls.issue):
        p.add("addons", "gateway", "needs [addons.tls] for its HTTPS listener — give cert and key (your "
                                   "certificate) or issue = [\"web.example.com\"] (names for one from kubefab's "
                                   "add-on CA)")
    elif tls.issue and (tls.cert or tls.key):
        p.add(where, "issue", "and cert/key are exclusive — keep your certificate or names to issue one for")
    elif tls.issue:
        for i, name in enumerate(tls.issue):
            if not is_san(name):
                p.add(where, "issue", f"holds {name!r}, neither a DNS name nor an IP address", at=(i,))
    elif not (tls.cert and tls.key):
        p.add(where, "cert" if tls.cert else "key", f"is set without {'key' if tls.cert else 'cert'} — give both "
                                                    "the certificate and its private key")
    else:
        problem = x509.user_pair_problem(_read(tls.cert), _read(tls.key))
        if problem:
            p.add(where, problem[0], f"{tls.cert if problem[0] == 'cert' else tls.key}: {problem[1]}")


def _read(path):
    """The file's bytes, or the OSError's words."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return e


# -- networks ---------------------------------------------------------------------------------------

def _check_subnets(p, c):
    """kubeadm's networking rules: one CIDR or a dual-stack pair each, service range size, pod range per node."""
    services = _subnets(p, "service_subnet", c.service_subnet)
    for s in services:
        largest = s.max_prefixlen - SERVICE_SUBNET_MAX_BITS
        if s.prefixlen < largest:
            p.add("cluster", "service_subnet", f"{str(s)!r} is larger than kubeadm allows: /{largest} at most for "
                                               f"IPv{s.version}")
        elif s.num_addresses < SERVICE_SUBNET_MIN_ADDRESSES:
            p.add("cluster", "service_subnet", f"{str(s)!r} is too small: the DNS service takes its 10th address")
    pods = _subnets(p, "pod_subnet", c.pod_subnet)
    args = c.controller_manager.extra_args
    if len(pods) == 2 and NODE_MASK_FLAG in args:
        p.add("cluster.controller_manager", "extra_args",
              f"sets {NODE_MASK_FLAG!r}, which kube-controller-manager refuses with a dual-stack pod_subnet — set "
              f"'{NODE_MASK_FLAG}-ipv4' and '{NODE_MASK_FLAG}-ipv6' instead", at=(NODE_MASK_FLAG,))
    for pod in pods:
        _check_node_mask(p, pod, args, single_stack=len(pods) == 1)


def _subnets(p, key, value):
    """The networks of subnet `key` when it is one CIDR or an IPv4,IPv6 pair; () after adding a problem."""
    nets = net.networks(value)
    if nets is None:
        p.add("cluster", key, f"{value!r} is not a network in CIDR form with its host bits zero, e.g. "
                              "'10.244.0.0/16' (dual-stack: an IPv4 and an IPv6 network, comma-separated)")
        return ()
    if len(nets) > 2 or len({n.version for n in nets}) != len(nets):
        p.add("cluster", key, f"{value!r} must be one network, or two for dual-stack: one IPv4 and one IPv6, "
                              "e.g. '10.244.0.0/16,fd00:10:244::/56'")
        return ()
    return nets


def _check_node_mask(p, pods, args, single_stack):
    """kube-controller-manager cuts a /mask per node out of the pod subnet; kubeadm checks the family's mask."""
    family = f"{NODE_MASK_FLAG}-ipv{pods.version}"
    if family in args:
        masks = [(_mask_arg(p, args, family), family, f"[cluster.controller_manager] extra_args {family!r}")]
    else:
        ignored = f"; kubeadm reads {family!r}, not {NODE_MASK_FLAG!r}" if NODE_MASK_FLAG in args else ""
        masks = [(NODE_MASKS[pods.version], family, f"the IPv{pods.version} default{ignored}")]
    if single_stack and NODE_MASK_FLAG in args:
        masks.append((_mask_arg(p, args, NODE_MASK_FLAG), NODE_MASK_FLAG,
                      f"[cluster.controller_manager] extra_args {NODE_MASK_FLAG!r}"))
    for mask, flag, origin in masks:
        if mask is None:
            continue
        if pods.prefixlen > mask:
            p.add("cluster", "pod_subnet", f"{str(pods)!r} is smaller than the /{mask} each node gets from it "
                                           f"({origin}) — use a /{mask} or larger pod subnet, or set {flag!r} to "
                                           f"{pods.prefixlen} or more in [cluster.controller_manager] extra_args")
        elif mask - pods.prefixlen > NODE_MASK_MAX_DIFF:
            p.add("cluster", "pod_subnet", f"{str(pods)!r} holds more than 2^{NODE_MASK_MAX_DIFF} node ranges of "
                                           f"/{mask} ({origin}), which kubeadm refuses — use a pod subnet of "
                                           f"/{mask - NODE_MASK_MAX_DIFF} or smaller, or set {flag!r} to at most "
                                           f"{pods.prefixlen + NODE_MASK_MAX_DIFF}")
    if pods.num_addresses < POD_SUBNET_MIN_ADDRESSES:
        p.add("cluster", "pod_subnet", f"{str(pods)!r} is too small: kubeadm needs at least "
                                       f"{POD_SUBNET_MIN_ADDRESSES} addresses")


def _mask_arg(p, args, flag):
    """The whole number given for controller-manager flag `flag`, or None after adding a problem."""
    value = args[flag]
    number = None if isinstance(value, bool) else value if isinstance(value, int) else whole(value, most=3)
    if number is None:
        p.add("cluster.controller_manager", "extra_args", f"{flag!r} = {value!r} is not a whole number",
              at=(flag,))
    return number


# -- [ssh] and [hosts.*] ----------------------------------------------------------------------------

def check_ssh(p, table, s):
    if not _LOGIN.fullmatch(s.user):
        p.add(table, "user", f"{s.user!r} is not a login name — give the user kubefab logs in as, e.g. 'root' or "
                             "'admin' (no spaces, '@' or ':')")
    if not 0 < s.port <= MAX_PORT:
        p.add(table, "port", f"{s.port} is not a TCP port (1-65535)")
    _choice(p, table, "known_hosts", s.known_hosts, KNOWN_HOSTS_POLICIES)
    if s.sudo and s.user == "root":
        p.add(table, "sudo", "is true but user is 'root' — drop sudo or log in as a user with sudo rights")
    if s.sudo_password_env and not _ENV_NAME.fullmatch(s.sudo_password_env):
        p.add(table, "sudo_password_env", f"{s.sudo_password_env!r} is not an environment variable name — give "
                                          "the name only (letters, digits, '_'; not starting with a digit), "
                                          "e.g. 'KUBEFAB_SUDO_PASSWORD'")
    if s.gateway:
        _check_gateway(p, table, s.gateway)
    if not (math.isfinite(s.connect_timeout) and 0 < s.connect_timeout <= MAX_CONNECT_TIMEOUT):
        p.add(table, "connect_timeout", f"is {s.connect_timeout} — give seconds above 0 and at most "
                                        f"{MAX_CONNECT_TIMEOUT}, e.g. 10")


def _check_gateway(p, table, value):
    user, host, port = net.gateway_parts(value)
    if user is not None and not _LOGIN.fullmatch(user):
        problem = f"has the user {user!r}, which is not a login name"
    elif not (net.as_ip(host) or _HOSTNAME.fullmatch(host)):
        problem = f"has the host {host!r}, which is neither an IP address nor a DNS name"
    elif port is None or not 0 < port <= MAX_PORT:
        problem = "has no valid port (1-65535)"
    else:
        return
    p.add(table, "gateway", f"{value!r} {problem} — write '[user@]host[:port]', e.g. 'ops@bastion.example.com:22' "
                            "or 'ops@[2001:db8::1]:22'")


def check_install(p, install):
    _choice(p, "install", "source", install.source, INSTALL_SOURCES)
    if install.source == "offline" and not install.directory:
        p.add("install", "source", "is 'offline' but no directory is given — add directory = \"PATH\": a local "
                                   "directory of kubeadm, kubelet, kubectl and the kubelet unit files")


def check_host(p, h, given, typed):
    """Checks of one host; `given` names the keys its table set, `typed` those of them of the right type (a key
    with a wrong type is neither 'missing' nor 'empty')."""
    table = ("hosts", h.name)
    if not _DNS1123.fullmatch(h.name) or len(h.name) > 63:
        fix = re.sub(r"[^a-z0-9-]+", "-", h.name.lower()).strip("-")
        p.add(table, "", f"name {h.name!r} is not a lowercase RFC 1123 name (it becomes the node name) — "
                         f"rename it, e.g. {fix!r}")
    if not h.address:
        if "address" not in given:
            p.add(table, "address", "is missing — give the IP address sshd listens on")
        elif "address" in typed:
            p.add(table, "address", "is empty — give the IP address sshd listens on")
    else:
        _check_address(p, table, "address", h.address, "use the address sshd listens on")
    if h.internal_address:
        _check_address(p, table, "internal_address", h.internal_address,
                       "use the address other nodes reach this one on")
    if not h.roles and ("roles" not in given or "roles" in typed):
        p.add(table, "roles", f"is {'empty' if 'roles' in given else 'missing'} — give "
                              f"[{', '.join(repr(r) for r in ROLES)}] or one of them")
    for role in h.roles:
        if role not in ROLES:
            p.add(table, "roles", f"has {role!r} — roles are {', '.join(repr(r) for r in ROLES)}")
    for key, value in h.labels.items():
        prefix, _, name = key.rpartition("/")
        if not _LABEL_KEY.fullmatch(key) or len(name) > 63 or len(prefix) > 253:
            p.add(table, "labels", f"key {key!r} is not a Kubernetes label key: [prefix/]name, the name at most 63 "
                                   "of a-z, A-Z, 0-9, '-', '_', '.' starting and ending alphanumeric", at=(key,))
        if not is_label_value(value):
            p.add(table, "labels", f"{key!r} = {value!r}: a label value is a string of at most 63 a-z, A-Z, 0-9, "
                                   "'-', '_', '.' starting and ending alphanumeric (or empty)", at=(key,))


def is_label_value(value):
    """A Kubernetes label value (IsValidLabelValue, also a taint's value): empty, or at most 63 of a-z, A-Z, 0-9,
    '-', '_', '.' starting and ending alphanumeric."""
    return bool(_LABEL_VALUE.fullmatch(value))


def _check_address(p, table, key, value, fix):
    ip = net.as_ip(value)
    if ip is None:
        p.add(table, key, f"{value!r} is not an IP address — {fix}")
    elif net.not_a_node_address(ip):
        p.add(table, key, f"{value!r} {net.not_a_node_address(ip)} — {fix}")


# -- across tables ----------------------------------------------------------------------------------

def _addresses(p, hosts):
    """Every host address once, mapped to its host; a shared address is a problem."""
    seen = {}
    for h in hosts:
        for key, addr in (("address", h.address), ("internal_address", h.internal_address)):
            ip = net.as_ip(addr)
            if ip is None or (key == "internal_address" and addr == h.address):
                continue
            if ip in seen and seen[ip] != h.name:
                p.add(("hosts", h.name), key, f"{addr} is also the address of [hosts.{seen[ip]}] — every host "
                                              "needs its own")
            seen.setdefault(ip, h.name)
    return seen


def check_whole(p, inv_hosts, cluster, mirrors):
    """Checks across tables; returns warnings (the run goes on) while problems go to `p`."""
    warnings = []
    if not any(h.is_control_plane for h in inv_hosts):
        p.add("hosts", "", "has no host with role 'control-plane' — give at least one host roles = ['control-plane']")
    seen = _addresses(p, inv_hosts)
    pods, services = net.networks(cluster.pod_subnet) or (), net.networks(cluster.service_subnet) or ()
    for pod in pods:
        for service in services:
            if pod.overlaps(service):
                p.add("cluster", "pod_subnet", f"{pod} overlaps service_subnet {service} — pick disjoint ranges")
    for ip, name in seen.items():
        for key, nets in (("pod_subnet", pods), ("service_subnet", services)):
            for n in nets:
                if ip.version == n.version and ip in n:
                    p.add(("hosts", name), "address", f"{ip} lies inside {key} {n} — move the {key} "
                                                      "away from the host network")
    if services:
        _check_advertise_family(p, inv_hosts, services)
    count = sum(h.is_control_plane for h in inv_hosts)
    if count and count % 2 == 0:
        warnings.append(f"{count} control-plane nodes: etcd tolerates no more failures than with {count - 1} — "
                        "use an odd number")
    if count > 1 and not cluster.control_plane_endpoint and not cluster.ha.vip:
        warnings.append("several control-plane nodes but no [cluster] control_plane_endpoint: the first "
                        "control-plane node's address is used, so it stays a single point of failure — "
                        "put a load balancer or VIP in front and name it there, or give [cluster.ha] a vip")
    _check_mirrors(p, mirrors)
    return warnings


def _check_advertise_family(p, hosts, services):
    """kube-apiserver refuses an advertise address outside the family of the first service subnet."""
    first = services[0]
    for h in hosts:
        ip = net.as_ip(h.internal_address)
        if not (h.is_control_plane and ip and ip.version != first.version):
            continue
        other = [s for s in services if s.version == ip.version]
        fix = (f"list {other[0]} first in service_subnet" if other else
               f"give it an IPv{first.version} internal_address, or use an IPv{ip.version} service_subnet")
        key = "internal_address" if h.internal_address != h.address else "address"
        p.add(("hosts", h.name), key, f"{ip} is IPv{ip.version} but the (first) service_subnet {first} is "
                                      f"IPv{first.version}: kube-apiserver advertises this address and needs both "
                                      f"in one family — {fix}")


def _check_mirrors(p, mirrors):
    for registry, urls in mirrors.registries.items():
        if not _REGISTRY.fullmatch(registry):
            p.add("mirrors.registries", registry, "must be a registry host such as \"docker.io\" or "
                                                  "\"registry.local:5000\"")
        for url in urls:
            problem = _url_problem(url, ("http", "https"))
            if problem:
                p.add("mirrors.registries", registry, f"mirror {url!r} {problem} — list http(s):// URLs of "
                                                      "registry hosts, e.g. \"https://mirror.example:5000\"")
    problem = _url_problem(mirrors.package_repository, ("http", "https", "file"))
    if problem:
        p.add("mirrors", "package_repository", f"{mirrors.package_repository!r} {problem} — give the base of the "
                                               "package repositories as an http(s):// or file:// URL, e.g. "
                                               "\"https://pkgs.k8s.io/core:/stable:\"")


def _url_problem(url, schemes):
    """Why `url` is not a URL with one of `schemes` that can travel to a host (a host for http(s), only the
    characters RFC 3986 allows, no quote, no query or fragment); None when it is."""
    bad = sorted({c for c in url if c not in _URL_CHARACTERS})
    if bad:
        return f"holds {', '.join(f'{_shown(c)} (write {quote(c)})' for c in bad)}, which a URL may not"
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError as e:
        return f"cannot be read as a URL ({e})"
    if parts.scheme not in schemes:
        named = [f"{s}://" for s in schemes]
        return f"is not an {', '.join(named[:-1])} or {named[-1]} URL"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "has a query or fragment, which a base URL may not"
    if parts.scheme in ("http", "https") and not parts.hostname:
        return "names no host"
    if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        return "must be file:///absolute/path, on the hosts"
    return None


def _shown(character):
    return "a space" if character == " " else repr(character)
