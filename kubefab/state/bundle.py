"""The bundle of certificates and kubeconfigs: which host receives which file, and what `pki.show` lists.

(The bootstrap token reaches the hosts inside the kubeadm configs, see `kubeadm`.)
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from kubefab import paths, pki, state
from kubefab.pki import kubeconfig, x509


@dataclass(frozen=True)
class HostFile:
    """A local file and where, with which mode, it lands on a host."""

    path_on_host: str
    local_source: Path
    mode: int


@dataclass(frozen=True)
class CertInfo:
    """One certificate for `pki.show`."""

    file: str                 # relative to the state dir
    subject: str
    issuer: str
    sans: tuple
    not_after: datetime.datetime
    days_left: int
    expiring: bool


def host_files(inv, host):
    """Every PKI file and kubeconfig `host` gets; workers get none (kubeadm join writes their own)."""
    if not host.is_control_plane:
        return ()
    return _certs(inv, host) + _kubeconfigs(inv, host)


def _certs(inv, host):
    """The whole cert tree, this node's own leaves for the per-node ones, and the service-account pair."""
    files = []
    for spec in pki.CERTS:
        crt, key = pki.paths(inv, spec, host)
        files += [HostFile(paths.in_pki(f"{spec.name}.crt"), crt, pki.CERT_MODE),
                  HostFile(paths.in_pki(f"{spec.name}.key"), key, pki.KEY_MODE)]
    files += [HostFile(paths.in_pki(p.name), p, pki.KEY_MODE) for p in pki.sa_paths(inv)]
    return tuple(files)


def _kubeconfigs(inv, host):
    """A control-plane node's kubeconfigs: the shared ones, its own per-node ones, super-admin.conf on the first."""
    return tuple(HostFile(paths.kubeconfig(spec.file), kubeconfig.path(inv, spec, target), kubeconfig.MODE)
                 for spec, target in kubeconfig.targets(inv) if _goes_to(inv, spec, target, host))


def _goes_to(inv, spec, target, host):
    if spec.per_node:
        return target.name == host.name
    return host.name == inv.first_control_plane.name if spec.first_only else True


@dataclass(frozen=True)
class Unreadable:
    """A certificate file `pki.show` cannot read: which, why, and what to do."""

    file: str                 # relative to the state dir
    why: str
    fix: str


def certificates(inv, warn_days=pki.WARN_DAYS):
    """Every certificate in the state dir that can be read (kubeconfig client certs too), soonest expiry first."""
    return survey(inv, warn_days)[0]


def survey(inv, warn_days=pki.WARN_DAYS):
    """(certificates(), an Unreadable for each certificate file that cannot be read): one bad file hides no other."""
    state.check(inv)
    at = x509.now()
    infos, unreadable = [], []
    for path, pem, why in (*map(_read_pem, sorted(pki.pki_dir(inv).rglob("*.crt"))), *kubeconfig.client_certs(inv)):
        if not why:
            try:
                infos.append(_info(inv, path, pem, at, warn_days))
                continue
            except ValueError:
                why = "is not a PEM certificate"
        unreadable.append(Unreadable(str(path.relative_to(inv.state_dir)), why, _fix(inv, path)))
    return tuple(sorted(infos, key=lambda i: (i.not_after, i.file))), tuple(unreadable)


def _read_pem(path):
    try:
        return path, path.read_bytes(), ""
    except OSError as e:
        return path, b"", f"cannot be read ({e.strerror})"


def _fix(inv, path):
    spec = pki.BY_NAME.get(path.relative_to(pki.pki_dir(inv)).with_suffix("").as_posix()) \
        if pki.pki_dir(inv) in path.parents else None
    if spec and spec.is_ca:
        return "restore it from your backup: kubefab never replaces a CA"
    return "restore it from your backup, or let `invoke cluster.plan` issue it again"


def _info(inv, path, pem, at, warn_days):
    v = x509.view(pem)
    days = (v.not_after - at).days
    return CertInfo(file=str(path.relative_to(inv.state_dir)), subject=pki.subject(v.cn, v.org), issuer=v.issuer_cn,
                    sans=v.sans, not_after=v.not_after, days_left=days, expiring=days < warn_days)
