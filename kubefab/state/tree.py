"""The local tree `<state>/hosts/<host>/`: every host's files at their on-host paths and modes, nothing else.

`sync` writes what is due atomically (an unchanged file keeps its bytes and mtime) and removes what
no longer is: files it wrote before, and the directories that leaves empty (a host gone from the
inventory loses its whole tree). It knows what it wrote from `<state>/hosts.json`, its list of the
files it keeps under hosts/: a file it did not write is never deleted, and no link is followed.
"""

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kubefab import fsutil
from kubefab.errors import KubefabError

DIR_MODE = 0o755
WRITTEN = "hosts.json"
_HOST = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


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
    """Write every file in `due` into the tree, prune what an earlier sync wrote and is no longer due; the files
    as RenderedFile, in order."""
    before, now = _written(inv), {(d.host, d.path) for d in due}
    if now - before:        # listed before they are written: an interrupted sync still knows them
        _keep_list(inv, before | now)
    made = set()
    written = tuple(_write(inv, d, made) for d in due)
    _prune(inv, before - now)
    if before - now:
        _keep_list(inv, now)
    return written


def _written(inv):
    """(host, on-host path) of every file an earlier sync left under hosts/."""
    file = inv.state_dir / WRITTEN
    if not file.exists():
        return set()
    try:
        listed = json.loads(file.read_text())
        found = {(host, path) for host, paths in listed.items() for path in paths}
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
        found = None
    if found is None or not all(isinstance(h, str) and _HOST.fullmatch(h) and _plain(p) for h, p in found):
        raise KubefabError(f"{file}: is not the list of files kubefab wrote under hosts/ (host names, each with its "
                           "absolute on-host paths) — restore it from your backup, or delete it: kubefab then "
                           "removes no file of an earlier run and lists what it writes from now on")
    return found


def _plain(path):
    """An absolute, normal POSIX path without a NUL: one that stays inside its host's tree."""
    return isinstance(path, str) and "\0" not in path and path.startswith("/") and \
        str(PurePosixPath(path)) == path and ".." not in PurePosixPath(path).parts


def _keep_list(inv, files):
    listed = {}
    for host, path in sorted(files):
        listed.setdefault(host, []).append(path)
    fsutil.write_atomic(inv.state_dir / WRITTEN, json.dumps(listed, indent=1) + "\n", 0o600)


def _write(inv, due, made):
    local = local_path(inv, due.host, due.path)
    try:
        _make_dirs(hosts_dir(inv), local.parent, made)
        changed = fsutil.write_atomic(local, due.data, due.mode, DIR_MODE)
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as e:
        host_tree = hosts_dir(inv) / due.host
        raise KubefabError(f"{local}: cannot be written ({e.strerror}): a file stands where the rendered tree needs a "
                           f"directory, or the reverse — remove {host_tree} (`rm -r {host_tree}`), kubefab renders "
                           "it again") from None
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


def _prune(inv, gone):
    """Remove the files of `gone` that are still regular files, then each directory that leaves empty, up to
    hosts/; never through a link (state.check refuses them; this holds without it)."""
    top = hosts_dir(inv)
    for host, path in sorted(gone):
        local = local_path(inv, host, path)
        between = [top, *reversed([p for p in local.parents if top in p.parents]), local]
        if any(os.path.islink(p) for p in between) or not os.path.lexists(local):
            continue
        if stat.S_ISREG(os.lstat(local).st_mode):
            local.unlink()
        for d in reversed(between[1:-1]):
            if any(d.iterdir()):
                break
            d.rmdir()
