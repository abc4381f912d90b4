"""The local PKI: kubeadm's cert tree declared once as a table, then kept or (re)issued.

Layout under the state dir: `pki/` in kubeadm's layout for the three CAs, sa.key/sa.pub and the
shared leaves; `pki/nodes/<host>/` for the leaves that carry a node's name and address
(apiserver, etcd/server, etcd/peer), under the same relative names. Dirs 0700, keys 0600, certs 0644.
An existing CA is always loaded, never regenerated. The kubeconfigs build on this module (its
`Action`, `check_leaf` and layout helpers); `bundle` says which host receives which file.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Callable, Optional

from kubefab import fsutil, net
from kubefab.errors import KubefabError
from kubefab.pki import x509
from kubefab.pki.x509 import CLIENT, SERVER
from kubefab.secret import Secret

WARN_DAYS = 30
CERT_MODE, KEY_MODE, DIR_MODE = 0o644, 0o600, 0o700
CREATED, KEPT, REISSUED = "created", "kept", "reissued"
NEW = "did not exist"
SA = "sa"


def no_sans(inv, host):
    return (), ()


def apiserver_sans(inv, host):
    """kubeadm's GetAPIServerAltNames: node name, service names and VIP, advertise IP, endpoint, certSANs."""
    c = inv.cluster
    dns = [host.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{c.dns_domain}"]
    ips = [net.service_ip(c.service_subnet), host.internal_address]
    for name in (inv.endpoint_host, *c.apiserver.cert_sans):
        (ips if net.as_ip(name) else dns).append(name)
    return _unique(dns), _unique(_canonical(i) for i in ips)


def etcd_sans(inv, host):
    """kubeadm's etcd server/peer SANs: node name, localhost, advertise IP, 127.0.0.1, ::1."""
    return (host.name, "localhost"), _unique(_canonical(i) for i in (host.internal_address, "127.0.0.1", "::1"))


@dataclass(frozen=True)
class CertSpec:
    """One certificate of kubeadm's tree (reference §1.1)."""

    name: str                           # path under pki/ without extension, as kubeadm names it
    ca: Optional[str]                   # name of the signing CA; None for a (self-signed) CA
    cn: str                             # "{node}" stands for the node name
    org: str = ""
    usages: tuple = ()
    sans: Callable = no_sans            # (inventory, host) -> (dns names, ip addresses); pure
    per_node: bool = False              # one per control-plane node rather than one shared

    @property
    def is_ca(self):
        return self.ca is None


CERTS = (
    CertSpec("ca", None, "kubernetes"),
    CertSpec("apiserver", "ca", "kube-apiserver", usages=(SERVER,), sans=apiserver_sans, per_node=True),
    CertSpec("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", org="kubeadm:cluster-admins",
             usages=(CLIENT,)),
    CertSpec("front-proxy-ca", None, "front-proxy-ca"),
    CertSpec("front-proxy-client", "front-proxy-ca", "front-proxy-client", usages=(CLIENT,)),
    CertSpec("etcd/ca", None, "etcd-ca"),
    CertSpec("etcd/server", "etcd/ca", "{node}", usages=(SERVER, CLIENT), sans=etcd_sans, per_node=True),
    CertSpec("etcd/peer", "etcd/ca", "{node}", usages=(SERVER, CLIENT), sans=etcd_sans, per_node=True),
    CertSpec("etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client", usages=(CLIENT,)),
    CertSpec("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client", usages=(CLIENT,)),
)
BY_NAME = {s.name: s for s in CERTS}


@dataclass(frozen=True)
class Action:
    """What ensure() did to one file: created, kept or reissued, and why."""

    name: str
    node: Optional[str]
    what: str
    reason: str


# -- layout ---------------------------------------------------------------------------------------

def pki_dir(inv):
    return inv.state_dir / "pki"


def paths(inv, spec, host=None):
    """Local (cert, key) paths of `spec`, for `host` when the spec is per node."""
    base = pki_dir(inv) / "nodes" / host.name if spec.per_node else pki_dir(inv)
    return base / f"{spec.name}.crt", base / f"{spec.name}.key"


def sa_paths(inv):
    return pki_dir(inv) / "sa.key", pki_dir(inv) / "sa.pub"


def ca_pair(inv, name="ca"):
    """The (cert PEM, key Secret) of CA `name`, as ensure() left it."""
    crt, key = paths(inv, BY_NAME[name])
    if not (crt.is_file() and key.is_file()):
        raise KubefabError(f"{crt}: the cluster CA is missing — run `invoke cluster.plan` to create the PKI first")
    return crt.read_bytes(), Secret(key.read_bytes())


def targets(inv, specs=CERTS):
    """(spec, host) for every certificate the inventory needs; host is None for shared ones."""
    for spec in specs:
        for host in (inv.control_planes if spec.per_node else (None,)):
            yield spec, host


# -- ensure ---------------------------------------------------------------------------------------

def ensure(inv, renew=()):
    """Create what is missing, reissue leaves that no longer fit the inventory, keep the rest.

    `renew` names leaves to reissue regardless (day-2 renewal); a CA cannot be renewed here.
    """
    bad = [n for n in renew if n not in BY_NAME or BY_NAME[n].is_ca]
    if bad:
        raise KubefabError(f"cannot renew {', '.join(bad)}: renewable certificates are "
                           f"{', '.join(s.name for s in CERTS if not s.is_ca)}")
    at = x509.now()
    cas = [spec for spec in CERTS if spec.is_ca]
    for spec in cas:            # all of them before anything is written
        check_ca(*paths(inv, spec))
        check_ca_dates(inv, paths(inv, spec)[0], at)
    private_dirs(inv, [paths(inv, spec, host)[0] for spec, host in targets(inv)])
    actions = [ensure_ca(inv, spec, at) for spec in cas]
    actions.append(_ensure_sa(inv))
    actions += [_ensure_leaf(inv, spec, host, at, spec.name in renew)
                for spec, host in targets(inv) if not spec.is_ca]
    return tuple(actions)


def due(inv, days, at=None):
    """The names of the leaves (CERTS) that expire within `days` days on any node, or all of them when `days` is 0:
    what `pki.renew` reissues through ensure(renew=...), from the same CAs."""
    at = at or x509.now()
    names = []
    for spec, host in targets(inv):
        crt = paths(inv, spec, host)[0]
        if not spec.is_ca and spec.name not in names and (
                not days or not crt.is_file() or (x509.view(crt.read_bytes()).not_after - at).days < days):
            names.append(spec.name)
    return tuple(names)


def request(inv, spec, host=None):
    """The x509.Request for `spec` on `host`, from the inventory."""
    dns, ips = spec.sans(inv, host)
    c = inv.cluster
    return x509.Request(cn=spec.cn.format(node=host.name) if host else spec.cn, org=spec.org,
                        usages=spec.usages, dns=dns, ips=ips, is_ca=spec.is_ca,
                        days=c.ca_validity_days if spec.is_ca else c.cert_validity_days)


def ensure_ca(inv, spec, at):
    crt, key = paths(inv, spec)
    if not crt.exists() and not key.exists():
        key_pem = x509.new_key(inv.cluster.encryption_algorithm)
        write_pair(crt, x509.issue(request(inv, spec), key_pem, at=at), key, key_pem)
        return Action(spec.name, None, CREATED, "new CA")
    return Action(spec.name, None, KEPT, expiry_note(crt.read_bytes(), at) or "existing CA, never replaced")


def check_ca(crt, key):
    """Raise a KubefabError unless `crt`/`key` are a usable CA pair or both absent; a CA is never regenerated."""
    if not crt.exists() and not key.exists():
        return
    fix = "kubefab never replaces a CA: restore the pair from your backup, or, if no cluster uses it yet, " \
          "delete the leftover file to have a new CA generated"
    if not key.exists():
        raise KubefabError(f"{crt}: CA certificate without its key {key.name} — {fix}")
    if not crt.exists():
        raise KubefabError(f"{key}: CA key without its certificate {crt.name} — {fix}")
    cert_pem = crt.read_bytes()
    try:
        ok = x509.is_ca(cert_pem)
    except ValueError:
        raise KubefabError(f"{crt}: is not a PEM certificate — {fix}") from None
    if not ok:
        raise KubefabError(f"{crt}: is not a CA certificate (BasicConstraints CA:FALSE) — {fix}")
    if not x509.key_matches(cert_pem, Secret(key.read_bytes()), thorough=True):
        raise KubefabError(f"{key}: does not belong to {crt.name} (or is not a PEM key) — {fix}")


def check_ca_dates(inv, crt, at):
    """An existing CA must outlive every leaf issued now: kubefab never regenerates a CA, the user decides."""
    if not crt.exists():
        return
    not_after, days = x509.view(crt.read_bytes()).not_after, inv.cluster.cert_validity_days
    by_hand = ("replace the CA by hand (Kubernetes' \"Manual Rotation of CA Certificates\"), put the new pair in "
               f"{crt.parent} and run again")
    if not_after <= at:
        raise KubefabError(f"{crt}: the CA expired on {not_after:%Y-%m-%d %H:%M} UTC and kubefab never makes a new "
                           f"one: {by_hand}; or build a new cluster in a new state dir")
    if not_after < at + datetime.timedelta(days=days):
        left = (not_after - at).days
        shorter = f"set cert_validity_days to at most {left} in {inv.path}, or " if left else ""
        raise KubefabError(f"{crt}: the CA expires on {not_after:%Y-%m-%d %H:%M} UTC (in {left} days), before a "
                           f"certificate issued now with cert_validity_days = {days} would — {shorter}{by_hand}")


def _ensure_sa(inv):
    key, pub = sa_paths(inv)
    if not key.exists():
        if pub.exists():
            raise KubefabError(f"{pub}: service-account public key without its private key {key.name} — restore "
                               f"{key.name} from your backup, or, if no cluster uses it yet, delete {pub.name}")
        key_pem = x509.new_key(inv.cluster.encryption_algorithm)
        fsutil.write_atomic(key, key_pem.reveal(), KEY_MODE, DIR_MODE)
        fsutil.write_atomic(pub, x509.public_pem(key_pem), KEY_MODE, DIR_MODE)
        return Action(SA, None, CREATED, "new service-account key pair")
    try:
        public = x509.public_pem(Secret(key.read_bytes()))
    except ValueError:
        raise KubefabError(f"{key}: is not a PEM private key — restore it from your backup") from None
    if fsutil.write_atomic(pub, public, KEY_MODE, DIR_MODE):
        return Action(SA, None, REISSUED, f"{pub.name} was missing or did not match {key.name}")
    return Action(SA, None, KEPT, "existing key pair, never replaced")


def _ensure_leaf(inv, spec, host, at, renew=False):
    crt, key = paths(inv, spec, host)
    ca_pem, ca_key = ca_pair(inv, spec.ca)
    want = request(inv, spec, host)
    reason = "renewal requested" if renew else leaf_problem(crt, key, ca_pem, want, at)
    node = host.name if host else None
    if reason is None:
        return Action(spec.name, node, KEPT, expiry_note(crt.read_bytes(), at) or "valid")
    key_pem = x509.new_key(inv.cluster.encryption_algorithm)
    write_pair(crt, x509.issue(want, key_pem, (ca_pem, ca_key), at), key, key_pem)
    return Action(spec.name, node, CREATED if reason == NEW else REISSUED, reason)


def leaf_problem(crt, key, ca_pem, want, at):
    if not crt.exists() and not key.exists():
        return NEW
    if not crt.exists() or not key.exists():
        return f"{'key' if crt.exists() else 'certificate'} was missing"
    return check_leaf(crt.read_bytes(), Secret(key.read_bytes()), ca_pem, want, at)


def check_leaf(cert_pem, key, ca_pem, want, at=None):
    """Why an issued cert no longer fits (chain, key, SANs, subject), or None when it does."""
    problem = x509.problem(cert_pem, ca_pem, at)
    if problem:
        return f"certificate {problem}"
    if not x509.key_matches(cert_pem, key):
        return "key does not match the certificate"
    missing = x509.not_valid_for(cert_pem, want.dns + want.ips)
    if missing:
        return f"SANs no longer match the inventory: missing {', '.join(missing)}"
    v = x509.view(cert_pem)
    if (v.cn, v.org) != (want.cn, want.org):
        return f"subject is {subject(v.cn, v.org)}, the inventory needs {subject(want.cn, want.org)}"
    return None


def private_dirs(inv, files):
    """Create every directory from the state dir down to each file's parent, all 0700.

    (mkdir -p would give the intermediate levels the umask's mode, e.g. pki/nodes 0755.)
    """
    fsutil.ensure_dir(inv.state_dir, DIR_MODE)
    for file in files:
        for level in reversed(file.relative_to(inv.state_dir).parents[:-1]):
            fsutil.ensure_dir(inv.state_dir / level, DIR_MODE)


def write_pair(crt, cert_pem, key, key_pem):
    """Write key then cert atomically: an interrupted run leaves a mismatch that the next run reissues."""
    fsutil.write_atomic(key, key_pem.reveal(), KEY_MODE, DIR_MODE)
    fsutil.write_atomic(crt, cert_pem, CERT_MODE, DIR_MODE)


def expiry_note(cert_pem, at, warn_days=WARN_DAYS):
    """'expires in N days …' when under `warn_days`, else None. Renewal is a separate, explicit step."""
    days = (x509.view(cert_pem).not_after - at).days
    return f"expires in {days} days — renew it (not done automatically)" if days < warn_days else None


# -- SAN helpers ----------------------------------------------------------------------------------

def _canonical(ip):
    return str(ipaddress.ip_address(ip))


def _unique(items):
    return tuple(dict.fromkeys(items))


def subject(cn, org=""):
    return f"CN={cn}, O={org}" if org else f"CN={cn}"
