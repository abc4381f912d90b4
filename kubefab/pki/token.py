"""The bootstrap token joining nodes use, and the CA pin they check the API server with."""

import re
import secrets
import string

from kubefab import fsutil, pki
from kubefab.errors import KubefabError
from kubefab.pki import x509
from kubefab.secret import Secret

FORMAT = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
_ALPHABET = string.ascii_lowercase + string.digits


def path(inv):
    return inv.state_dir / "bootstrap-token"


def generate():
    """A new token in kubeadm's `[a-z0-9]{6}.[a-z0-9]{16}` format."""
    return Secret(f"{_random(6)}.{_random(16)}")


def _random(length):
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def bootstrap_token(inv):
    """The cluster's bootstrap token: made once, stored 0600 in the state dir, reused on every run."""
    file = path(inv)
    if not file.exists():
        token = generate()
        fsutil.write_atomic(file, token.reveal() + "\n", 0o600, pki.DIR_MODE)
        return token
    value = file.read_bytes().decode(errors="replace").strip()
    if not FORMAT.fullmatch(value):
        raise KubefabError(f"{file}: is not a bootstrap token (want 6 then 16 characters of a-z0-9, "
                           "joined by '.', e.g. abcdef.0123456789abcdef) — fix it, or delete it to have "
                           "a new one generated")
    return Secret(value)


def ca_cert_hash(inv):
    """`sha256:<hex>` over ca.crt's SubjectPublicKeyInfo: kubeadm's --discovery-token-ca-cert-hash."""
    crt, _ = pki.paths(inv, pki.BY_NAME["ca"])
    if not crt.is_file():
        raise KubefabError(f"{crt}: the cluster CA is missing — run `invoke cluster.plan` to create the PKI first")
    return f"sha256:{x509.spki_sha256(crt.read_bytes())}"
