"""`state.export` and `state.import`: the state dir's only copies (CAs, keys, kubeconfigs, the bootstrap token, the
cluster record) as one file sealed with a passphrase, and back.

The passphrase comes from an environment variable the user names, never from the command line. What the archive
holds is the files state.check knows, nothing else (not the rendered hosts/ tree, which cluster.plan writes again,
nor logs, locks or backups). An import decrypts and checks the whole archive before it writes anything, refuses a
state dir that holds another CA or records another cluster, and writes each file atomically (temp file, fsync,
rename), so no file is ever half written.
"""

import io
import json
import os
import re
import tarfile
from pathlib import Path

from kubefab import facts, fsutil
from kubefab.errors import KubefabError
from kubefab.pki import x509
from kubefab.secret import Secret
from kubefab.state import RECORD, TOKEN, ca_fingerprint, check

KEPT = re.compile(rf"{re.escape(RECORD)}|{re.escape(TOKEN)}|(pki|kubeconfigs)/[A-Za-z0-9._/@-]+\.(crt|key|pub|conf)")
CA = "pki/ca.crt"
MIN_PASSPHRASE = 12
PASSPHRASE_ENV = "KUBEFAB_STATE_PASSPHRASE"


def passphrase(name, new=False):
    """The passphrase in environment variable `name`, as a Secret; KubefabError when it is unset, empty or (for a
    new export) shorter than MIN_PASSPHRASE."""
    value = os.environ.get(name, "")
    if not value:
        raise KubefabError(f"${name} is not set: export the passphrase in it (it is never taken from the command "
                           f"line, where other users and the shell history would see it)")
    if new and len(value) < MIN_PASSPHRASE:
        raise KubefabError(f"${name} holds {len(value)} characters: give a passphrase of at least {MIN_PASSPHRASE}")
    return Secret(value)


def export(inv, output, secret):
    """Seal `inv`'s state dir into `output` (mode 0600, written atomically); the relative paths it holds."""
    check(inv)
    top = inv.state_dir
    kept = sorted(p.relative_to(top).as_posix() for p in top.rglob("*")
                  if p.is_file() and KEPT.fullmatch(p.relative_to(top).as_posix()))
    if CA not in kept:
        raise KubefabError(f"{top}: holds no cluster CA ({CA}) — nothing worth exporting; run `invoke cluster.plan` "
                           "to make the PKI first")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for rel in kept:
            data = (top / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), (top / rel).stat().st_mode & 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    output = Path(output)
    if not output.parent.is_dir():
        raise KubefabError(f"{output.parent}: no such directory — create it, or give --output a path in one")
    fsutil.write_atomic(output, x509.seal(buffer.getvalue(), secret), 0o600, dir_mode=None)
    return tuple(kept)


def read(source, secret):
    """{relative path: (bytes, mode)} of an exported archive; KubefabError for a wrong passphrase or a file that is
    not such an archive."""
    try:
        blob = Path(source).read_bytes()
    except OSError as e:
        raise KubefabError(f"{source}: cannot be read: {e.strerror or e}") from None
    try:
        files = {}
        with tarfile.open(fileobj=io.BytesIO(x509.unseal(blob, secret)), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not (member.isfile() and KEPT.fullmatch(member.name) and ".." not in member.name.split("/")):
                    raise ValueError(f"it holds {member.name!r}, which is no file of a state dir")
                files[member.name] = (tar.extractfile(member).read(), member.mode & 0o644)
    except (ValueError, tarfile.TarError, EOFError, OSError) as e:
        raise KubefabError(f"{source}: not imported: {e}") from None
    if CA not in files:
        raise KubefabError(f"{source}: not imported: it holds no cluster CA ({CA})")
    return files


def import_(inv, source, secret):
    """Write the archive `source` into `inv`'s state dir (which may not exist yet); the relative paths written.
    Refused, with nothing written, when the state dir holds another CA or the archive another cluster's record."""
    files = read(source, secret)
    theirs, ours = facts.ca_fingerprint(files[CA][0]), ca_fingerprint(inv)
    if ours and ours != theirs:
        raise KubefabError(f"{source}: not imported: {inv.state_dir} holds another cluster CA (sha256 {ours}, the "
                           f"archive's is {theirs}) — import into a new --state-dir; kubefab never replaces a CA")
    if RECORD in files and _cluster(files[RECORD][0]) != inv.cluster.name:
        raise KubefabError(f"{source}: not imported: its {RECORD} records another cluster than "
                           f"{inv.cluster.name!r}, the one {inv.path.name} names")
    fsutil.ensure_dir(inv.state_dir)
    for rel, (data, mode) in sorted(files.items()):
        secret_file = rel == TOKEN or rel.endswith((".key", ".conf"))
        fsutil.write_atomic(inv.state_dir / rel, data, 0o600 if secret_file else mode or 0o644)
    check(inv)
    return tuple(sorted(files))


def _cluster(record):
    try:
        return json.loads(record).get("cluster")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
