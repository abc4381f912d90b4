"""keepalived's VRRP virtual router id and password for one cluster: made once, kept 0600 in the state dir.

Two clusters on one network segment must not share a virtual router id, so each state dir draws its own; the
password (VRRP's PASS authentication holds at most 8 characters) keeps a stray router out of the election.
"""

import re
import secrets
import string

from kubefab import fsutil, pki
from kubefab.errors import KubefabError
from kubefab.secret import Secret

FORMAT = re.compile(r"([0-9]{1,3}) ([A-Za-z0-9]{8})")
_ALPHABET = string.ascii_letters + string.digits


def path(inv):
    return inv.state_dir / "vrrp"


def credentials(inv):
    """(virtual router id 1–255, Secret password) of the cluster: drawn on first use, reused on every run."""
    file = path(inv)
    if not file.exists():
        router_id, password = 1 + secrets.randbelow(255), "".join(secrets.choice(_ALPHABET) for _ in range(8))
        fsutil.write_atomic(file, f"{router_id} {password}\n", 0o600, pki.DIR_MODE)
        return router_id, Secret(password)
    m = FORMAT.fullmatch(file.read_bytes().decode(errors="replace").strip())
    if not m or not 1 <= int(m.group(1)) <= 255:
        raise KubefabError(f"{file}: is not a VRRP router id and password (want a number 1–255, a space and 8 "
                           "letters or digits, e.g. '51 Xk3v9Qa2') — fix it, or delete it to draw new ones (then "
                           "every control plane gets the new pair on the next cluster.up)")
    return int(m.group(1)), Secret(m.group(2))
