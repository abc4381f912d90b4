"""The kubeconfigs kubeadm's `kubeconfig` phase would write, declared once as a table.

Each embeds exactly the bytes of pki/ca.crt (kubeadm compares them byte for byte) and a client
certificate signed by the cluster CA. Local layout: `kubeconfigs/<file>` for the shared ones,
`kubeconfigs/nodes/<host>/<file>` for those that point at one node's own API server; all 0600.
kubelet.conf is not made here: TLS bootstrap writes it on every node.
"""

import base64
from dataclasses import dataclass
from typing import Callable

import yaml

from kubefab import fsutil, net, paths, pki
from kubefab.errors import KubefabError
from kubefab.pki import x509
from kubefab.pki.x509 import CLIENT
from kubefab.secret import Secret

MODE = 0o600


def control_plane_endpoint(inv, host):
    """https://<controlPlaneEndpoint>: what admin.conf (and so cluster-info) publishes."""
    return f"https://{inv.endpoint}"


def local_endpoint(inv, host):
    """https://<advertise address>:6443 of that node: kubeadm's local API endpoint."""
    return f"https://{net.join_endpoint(host.internal_address)}"


@dataclass(frozen=True)
class KubeconfigSpec:
    """One kubeconfig of kubeadm's `kubeconfig` phase (reference §3)."""

    file: str
    cn: str
    org: str
    server: Callable              # (inventory, host) -> server URL
    per_node: bool = False        # one per control-plane node (local endpoint) rather than one shared
    first_only: bool = False      # pushed to the first control-plane node only

    @property
    def name(self):
        return self.file


KUBECONFIGS = (
    KubeconfigSpec("admin.conf", "kubernetes-admin", "kubeadm:cluster-admins", control_plane_endpoint),
    KubeconfigSpec("super-admin.conf", "kubernetes-super-admin", "system:masters", control_plane_endpoint,
                   first_only=True),
    KubeconfigSpec("controller-manager.conf", "system:kube-controller-manager", "", local_endpoint, per_node=True),
    KubeconfigSpec("scheduler.conf", "system:kube-scheduler", "", local_endpoint, per_node=True),
)
BY_FILE = {s.file: s for s in KUBECONFIGS}
KUBELET_CONF = paths.kubeconfig("kubelet.conf")     # written by the kubelet's TLS bootstrap, not by kubefab


def servers(inv, host):
    """{on-host kubeconfig: the servers it may name} on `host`, as kubeadm's getKubeConfigSpecsBase writes them:
    admin.conf, super-admin.conf and kubelet.conf at the endpoint, controller-manager.conf and scheduler.conf at the
    node's own API server. A control plane's kubelet.conf may also name its own API server: kubeadm's
    ControlPlaneKubeletLocalMode (on by default since 1.33) writes that on `join --control-plane` and on upgrade."""
    want = {paths.kubeconfig(spec.file): (spec.server(inv, host),) for spec in KUBECONFIGS if host.is_control_plane
            and (not spec.first_only or host.name == inv.first_control_plane.name)}
    local = (local_endpoint(inv, host),) if host.is_control_plane else ()
    return {**want, KUBELET_CONF: (control_plane_endpoint(inv, host), *local)}


def misdirected(inv, host, found):
    """A line per kubeconfig of `host` that is missing or names another server than `servers` allows; `found` is
    {on-host path: its server}, as the fact probe read them."""
    lines = []
    for file, allowed in servers(inv, host).items():
        have = found.get(file)
        if have not in allowed:
            lines.append(f"{host.name}: {file} " + (f"points at {have}, not {' or '.join(allowed)}" if have else
                                                    "is missing or names no server"))
    return tuple(lines)


@dataclass(frozen=True)
class Parsed:
    """What kubefab checks in an existing kubeconfig (its current context)."""

    cluster: str
    server: str
    ca: bytes
    cert: bytes
    key: Secret


def path(inv, spec, host=None):
    base = inv.state_dir / "kubeconfigs"
    return base / "nodes" / host.name / spec.file if spec.per_node else base / spec.file


def targets(inv):
    """(spec, host) for every kubeconfig; host is None for the shared ones."""
    return pki.targets(inv, KUBECONFIGS)


def ensure(inv, renew=()):
    """Create missing kubeconfigs, reissue those that no longer fit, keep the rest (as pki.ensure)."""
    unknown = [n for n in renew if n not in BY_FILE]
    if unknown:
        raise KubefabError(f"cannot renew {', '.join(unknown)}: kubeconfigs are {', '.join(BY_FILE)}")
    at = x509.now()
    ca = pki.ca_pair(inv)
    pki.private_dirs(inv, [path(inv, spec, host) for spec, host in targets(inv)])
    return tuple(_ensure_one(inv, spec, host, ca, at, spec.file in renew) for spec, host in targets(inv))


def due(inv, days, at=None):
    """The kubeconfig files whose client certificate expires within `days` days (all of them when `days` is 0)."""
    at = at or x509.now()
    names = []
    for spec, host in targets(inv):
        file = path(inv, spec, host)
        if spec.file not in names and (not days or not file.is_file() or
                                       (x509.view(parse(file.read_bytes()).cert).not_after - at).days < days):
            names.append(spec.file)
    return tuple(names)


def _request(inv, spec):
    return x509.Request(cn=spec.cn, org=spec.org, usages=(CLIENT,), days=inv.cluster.cert_validity_days)


def _ensure_one(inv, spec, host, ca, at, renew):
    file = path(inv, spec, host)
    server = spec.server(inv, host)
    reason = "renewal requested" if renew else _problem(inv, spec, file, server, ca[0], at)
    node = host.name if host else None
    if reason is None:
        return pki.Action(spec.file, node, pki.KEPT, pki.expiry_note(parse(file.read_bytes()).cert, at) or "valid")
    key = x509.new_key(inv.cluster.encryption_algorithm)
    cert = x509.issue(_request(inv, spec), key, ca, at)
    fsutil.write_atomic(file, dump(inv.cluster.name, spec.cn, server, ca[0], cert, key), MODE, pki.DIR_MODE)
    return pki.Action(spec.file, node, pki.CREATED if reason == pki.NEW else pki.REISSUED, reason)


def _problem(inv, spec, file, server, ca_pem, at):
    if not file.exists():
        return pki.NEW
    try:
        have = parse(file.read_bytes())
    except (ValueError, KeyError, TypeError, IndexError, StopIteration, yaml.YAMLError) as e:
        return f"cannot be read ({type(e).__name__}: {e})"
    if have.ca != ca_pem:
        return "embedded CA differs from pki/ca.crt"
    if have.server != server:
        return f"server is {have.server}, the inventory needs {server}"
    if have.cluster != inv.cluster.name:
        return f"cluster name is {have.cluster!r}, the inventory needs {inv.cluster.name!r}"
    return pki.check_leaf(have.cert, have.key, ca_pem, _request(inv, spec), at)


def dump(cluster, user, server, ca_pem, cert_pem, key):
    """The kubeconfig YAML kubeadm writes: one cluster, user and context, everything embedded."""
    context = f"{user}@{cluster}"
    doc = {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}, "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert_pem),
                                          "client-key-data": _b64(key.reveal())}}],
    }
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def parse(text):
    """The current context's cluster, server, CA, client cert and key; raises on anything missing."""
    doc = yaml.safe_load(text)
    context = _named(doc["contexts"], doc["current-context"])["context"]
    cluster = _named(doc["clusters"], context["cluster"])["cluster"]
    user = _named(doc["users"], context["user"])["user"]
    return Parsed(cluster=context["cluster"], server=cluster["server"],
                  ca=base64.b64decode(cluster["certificate-authority-data"], validate=True),
                  cert=base64.b64decode(user["client-certificate-data"], validate=True),
                  key=Secret(base64.b64decode(user["client-key-data"], validate=True)))


def _named(entries, name):
    return next(e for e in entries if e["name"] == name)


def _b64(data):
    return base64.b64encode(data).decode()


def client_certs(inv):
    """(path, client cert PEM, "") of every kubeconfig in the state dir; (path, b"", why) of one that cannot be read."""
    for file in sorted((inv.state_dir / "kubeconfigs").rglob("*.conf")):
        try:
            yield file, parse(file.read_bytes()).cert, ""
        except OSError as e:
            yield file, b"", f"cannot be read ({e.strerror})"
        except (ValueError, KeyError, TypeError, IndexError, StopIteration, yaml.YAMLError):
            yield file, b"", "is not a kubeconfig with a client certificate"
