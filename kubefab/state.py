"""The state directory is one cluster's, and kubefab stays inside it.

`check(inv)` runs before kubefab reads or writes the state dir and refuses, all problems at once:
a state dir path that is not a directory; a symbolic link anywhere inside (a write or a prune would
follow it out of the state dir) or a file that is neither regular file nor directory; a secret (a key
under pki/, a kubeconfig, the bootstrap token) readable by group or others; and a state dir that
records another cluster, or a CA other than the one it was made with.

The record, `<state>/cluster.json`, holds the cluster's name and its CA's fingerprint
(facts.ca_fingerprint, the digest the fact probe reports for a host's ca.crt). `adopt` writes it
right after pki.ensure made or first kept the CA, so an existing state dir without one adopts it once.
"""

import json
import os
import stat

from kubefab import facts, fsutil, pki
from kubefab.errors import KubefabError

RECORD = "cluster.json"
TOKEN = "bootstrap-token"
MODE = 0o600
REPLACE_CA = ("kubefab never makes a new CA for a cluster that has one: restore pki/ca.crt and pki/ca.key from your "
              "backup (a control plane keeps them in /etc/kubernetes/pki)")


def check(inv):
    """Raise a KubefabError listing every reason kubefab must not use `inv`'s state dir; a missing one passes."""
    top = inv.state_dir
    if not os.path.lexists(top):
        _check_parent(top)
        return
    if not top.is_dir():
        raise KubefabError(f"{top}: the state dir is not a directory — move that file away, or pass --state-dir "
                           "a directory of its own for this cluster")
    problems = [p for entry in _entries(top) for p in _entry_problems(top, entry)]
    if problems:
        raise KubefabError("the state dir cannot be used as it is:\n" + "\n".join(f"  {p}" for p in problems))
    _check_record(inv)


def ca_fingerprint(inv):
    """facts.ca_fingerprint of the cluster CA in the state dir, "" before it exists."""
    crt = _ca_crt(inv)
    return facts.ca_fingerprint(crt.read_bytes()) if crt.is_file() else ""


def adopt(inv):
    """Record the cluster's name and CA fingerprint when the state dir has no record yet (check() ran first)."""
    path = inv.state_dir / RECORD
    if not path.exists():
        record = {"cluster": inv.cluster.name, "ca_sha256": ca_fingerprint(inv)}
        fsutil.write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n", MODE)


def _ca_crt(inv):
    return pki.paths(inv, pki.BY_NAME["ca"])[0]


def _check_parent(top):
    for parent in top.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise KubefabError(f"{top}: the state dir cannot be made: {parent} is not a directory — pass "
                                   "--state-dir a path under a directory")
            return


def _entries(top):
    """Every entry under `top`, directories entered without following a link."""
    pending = [top]
    while pending:
        with os.scandir(pending.pop()) as found:
            for entry in found:
                yield entry
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)


def _entry_problems(top, entry):
    path = entry.path
    rel = os.path.relpath(path, top)
    if entry.is_symlink():
        target = os.readlink(path)
        undo = f"`rm {path}`" + ("" if rel.startswith("hosts" + os.sep) or not os.path.exists(path)
                                 else f" and put the real {'directory' if os.path.isdir(path) else 'file'} there "
                                      f"(`cp -a {os.path.realpath(path)} {path}`)")
        yield (f"{path}: is a symbolic link (to {target}); kubefab never follows a link out of its state dir, where a "
               f"write or a clean-up would land elsewhere — {undo}")
    elif not (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)):
        yield f"{path}: is neither a file nor a directory — remove it (`rm {path}`)"
    elif entry.is_file(follow_symlinks=False) and _secret(rel):
        mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
        if mode & 0o077:
            yield (f"{path}: holds a secret but is readable by {'others' if mode & 0o007 else 'its group'} "
                   f"(mode {mode:04o}) — `chmod 600 {path}`, and replace the key if someone else may have read it")


def _secret(rel):
    first, _, rest = rel.partition(os.sep)
    return rel == TOKEN or (first == "pki" and rel.endswith(".key")) or (first == "kubeconfigs" and bool(rest))


def _check_record(inv):
    path = inv.state_dir / RECORD
    if not path.exists():
        return
    record = _read_record(inv, path)
    if record["cluster"] != inv.cluster.name:
        raise KubefabError(
            f"{inv.state_dir}: this state dir belongs to cluster {record['cluster']!r} ({RECORD} says so), but "
            f"{inv.path} names the cluster {inv.cluster.name!r}: kubefab would take over the CA, admin.conf and host files of "
            f"{record['cluster']!r} — give --state-dir another directory for {inv.cluster.name!r} (its "
            f"default is .kubefab/{inv.cluster.name} beside the inventory), or set [cluster] name back to "
            f"{record['cluster']!r}")
    have, want = ca_fingerprint(inv), record["ca_sha256"]
    start_over = f"to start a new cluster in this state dir instead, delete {path}"
    if want and not have:
        raise KubefabError(f"{_ca_crt(inv)}: the CA of cluster {record['cluster']!r} (sha256 {want}) is missing — "
                           f"{REPLACE_CA}; {start_over}")
    if want and have != want:
        raise KubefabError(f"{_ca_crt(inv)}: is not the CA cluster {record['cluster']!r} was made with (sha256 "
                           f"{have}, {RECORD} records {want}) — {REPLACE_CA}; if you replaced the CA on purpose, "
                           f"delete {path} and kubefab records the new one")


def _read_record(inv, path):
    try:
        record = json.loads(path.read_text())
        if isinstance(record, dict) and set(record) == {"cluster", "ca_sha256"} and \
                all(isinstance(v, str) for v in record.values()):
            return record
    except (ValueError, UnicodeDecodeError):
        pass
    raise KubefabError(f"{path}: is not kubefab's record of this state dir (a JSON object with 'cluster' and "
                       f"'ca_sha256') — restore it from your backup; if this state dir is cluster "
                       f"{inv.cluster.name!r}'s, delete it and kubefab records it again")
