"""The state directory is one cluster's, and kubefab stays inside it.

`check(inv)` runs before kubefab reads or writes the state dir and refuses, all problems at once:
a state dir path that is not a directory; a symbolic link anywhere inside (a write or a prune would
follow it out of the state dir); a file that is neither regular file nor directory, or a directory
where kubefab keeps a file and the reverse; a secret (a key under pki/, a kubeconfig, the bootstrap
token) readable by group or others; and a state dir that records another cluster, or CAs other than
the ones it was made with.

The record, `<state>/cluster.json`, holds the cluster's name and the fingerprint of each of its CAs
(facts.ca_fingerprint, the digest the fact probe reports for a host's ca.crt). `adopt` writes it
right after pki.ensure made or first kept the CAs, so an existing state dir without one adopts it once.
"""

import json
import os
import re
import shlex
import stat

from kubefab import facts, fsutil, pki
from kubefab.errors import KubefabError

RECORD = "cluster.json"
TOKEN = "bootstrap-token"
MODE = 0o600
# Where kubefab keeps a directory, and where a file (relative to the state dir; what hosts/ holds is tree.sync's).
DIRS = re.compile(r"pki(/etcd|/addons|/nodes(/[^/]+(/etcd)?)?)?|kubeconfigs(/nodes(/[^/]+)?)?|hosts")
FILES = re.compile(r"bootstrap-token|cluster\.json|hosts\.json|addons\.json|removed\.json|run\.lock"
                   r"|kubefab\.log(\.[0-9]+)?|\.__kubefab\.lock|(pki|kubeconfigs)/.+\.(crt|key|pub|conf)")
CAS = tuple(spec.name for spec in pki.CERTS if spec.is_ca)


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


def ca_fingerprint(inv, name="ca"):
    """facts.ca_fingerprint of CA `name` (default the cluster CA) in the state dir, "" before it exists."""
    crt = _ca_crt(inv, name)
    return facts.ca_fingerprint(crt.read_bytes()) if crt.is_file() else ""


def adopt(inv):
    """Record the cluster's name and its CAs' fingerprints when the state dir has no record yet (check() ran first)."""
    path = inv.state_dir / RECORD
    if not path.exists():
        record = {"cluster": inv.cluster.name, "ca_sha256": {name: ca_fingerprint(inv, name) for name in CAS}}
        fsutil.write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n", MODE)


def _ca_crt(inv, name):
    return pki.paths(inv, pki.BY_NAME[name])[0]


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
    path, shell = entry.path, shlex.quote(entry.path)
    rel = os.path.relpath(path, top)
    if entry.is_symlink():
        rendered = rel.split(os.sep)[0] == "hosts"          # kubefab renders hosts/ again; the rest is the only copy
        undo = f"`rm {shell}`" + ("" if rendered or not os.path.exists(path)
                                  else f" and put the real {'directory' if os.path.isdir(path) else 'file'} there "
                                       f"(`cp -a {shlex.quote(os.path.realpath(path))} {shell}`)")
        yield (f"{path}: is a symbolic link (to {os.readlink(path)}); kubefab never follows a link out of its state "
               f"dir, where a write or a clean-up would land elsewhere — {undo}")
    elif not (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)):
        yield f"{path}: is neither a file nor a directory — remove it (`rm {shell}`)"
    elif entry.is_dir(follow_symlinks=False) and FILES.fullmatch(rel):
        yield f"{path}: is a directory where kubefab keeps a file — remove it (`rm -r {shell}`)"
    elif entry.is_file(follow_symlinks=False) and DIRS.fullmatch(rel):
        yield f"{path}: is a file where kubefab keeps a directory — remove it (`rm {shell}`)"
    elif entry.is_file(follow_symlinks=False) and _secret(rel):
        mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
        if mode & 0o077:
            yield (f"{path}: holds a secret but is readable by {'others' if mode & 0o007 else 'its group'} "
                   f"(mode {mode:04o}) — `chmod 600 {shell}`, and replace the key if someone else may have read it")


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
            f"{inv.path} names the cluster {inv.cluster.name!r}: kubefab would take over the CA, admin.conf and "
            f"host files of {record['cluster']!r} — give --state-dir another directory for {inv.cluster.name!r} "
            f"(its default is .kubefab/{inv.cluster.name} beside the inventory), or set [cluster] name back to "
            f"{record['cluster']!r}")
    for name, want in record["ca_sha256"].items():
        crt, have = _ca_crt(inv, name), ca_fingerprint(inv, name)
        restore = (f"kubefab never makes a new CA for a cluster that has one: restore {crt.name} and its key from "
                   f"your backup of {crt.parent} (a control plane keeps them in /etc/kubernetes/pki)")
        if not have:
            raise KubefabError(f"{crt}: the {name} CA of cluster {record['cluster']!r} (sha256 {want}) is missing — "
                               f"{restore}; to start a new cluster in this state dir instead, delete {path}")
        if have != want:
            raise KubefabError(f"{crt}: is not the {name} CA cluster {record['cluster']!r} was made with (sha256 "
                               f"{have}, {RECORD} records {want}) — {restore}; if you replaced the CA on purpose, "
                               f"delete {path} and kubefab records the new one")


def _read_record(inv, path):
    try:
        record = json.loads(path.read_text())
        cas = record["ca_sha256"]
        if set(record) == {"cluster", "ca_sha256"} and isinstance(record["cluster"], str) and \
                set(cas) <= set(CAS) and all(isinstance(v, str) and v for v in cas.values()):
            return record
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError):
        pass
    raise KubefabError(f"{path}: is not kubefab's record of this state dir (a JSON object of 'cluster' and "
                       f"'ca_sha256', the fingerprint of each CA) — restore it from your backup; if this state dir "
                       f"belongs to cluster {inv.cluster.name!r}, delete it and kubefab records it again")
