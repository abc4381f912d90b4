"""The local tree `<state>/hosts/<host>/`: every host's files at their on-host paths and modes, nothing else.

`sync` writes what is due atomically (an unchanged file keeps its bytes and mtime) and removes what
no longer is: files, emptied directories and the trees of hosts gone from the inventory.
"""

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from kubefab import fsutil

DIR_MODE = 0o755


@dataclass(frozen=True)
class Due:
    """One file a host should have: on-host path, mode, bytes, and what it was made from."""

    host: str
    path: str
    mode: int
    data: bytes
    source: str               # the template, or the state-dir file it is a copy of
    phase: str                # the phase of cluster.up that pushes it: runtime or push


@dataclass(frozen=True)
class RenderedFile:
    """One file as it will land on a host, and its copy in the local tree."""

    host: str
    path: str                 # on the host
    mode: int
    size: int
    changed: bool             # this render wrote it (new content or mode)
    local: Path               # <state>/hosts/<host><path>
    source: str               # the template, or the state-dir file it was copied from
    phase: str                # the phase of cluster.up that pushes it
    sha256: str = ""          # of its bytes; "" for a large file checked by size and mtime (offline binaries)
    mtime: int = 0            # the local file's, in whole seconds: a push gives the host's copy the same


def hosts_dir(inv):
    return inv.state_dir / "hosts"


def local_path(inv, host_name, path):
    """Where the on-host `path` of host `host_name` sits in the local tree."""
    return hosts_dir(inv) / host_name / path.lstrip("/")


def sync(inv, due):
    """Write every file in `due` into the tree, prune the rest; the files as RenderedFile, in order."""
    made = set()
    written = tuple(_write(inv, d, made) for d in due)
    _prune(inv, due)
    return written


def _write(inv, due, made):
    local = local_path(inv, due.host, due.path)
    _make_dirs(hosts_dir(inv), local.parent, made)
    changed = fsutil.write_atomic(local, due.data, due.mode, DIR_MODE)
    return RenderedFile(due.host, due.path, due.mode, len(due.data), changed, local, due.source, due.phase,
                        hashlib.sha256(due.data).hexdigest(), int(local.stat().st_mtime))


def _make_dirs(top, target, made):
    """Dirs inside a host's tree get on-host modes; the tree of all hosts holds keys, so it stays private.
    Each dir is made once per sync (`made`): thousands of hosts share the top ones."""
    d, dirs = top, [top]
    for part in target.relative_to(top).parts:
        d = d / part
        dirs.append(d)
    for d in dirs:
        if d not in made:
            fsutil.ensure_dir(d, 0o700 if d == top else DIR_MODE)
            made.add(d)


def _prune(inv, due):
    """Remove files no host should get any more, emptied dirs, and trees of hosts gone from the inventory."""
    keep = {local_path(inv, d.host, d.path) for d in due}
    roots = {hosts_dir(inv) / h.name for h in inv.hosts}
    for entry in hosts_dir(inv).iterdir():
        if entry not in roots:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for root in roots:
        for path in sorted(root.rglob("*"), reverse=True):
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif path not in keep:
                path.unlink()
