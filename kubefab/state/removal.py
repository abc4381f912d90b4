"""Hosts node.remove took out of the cluster, kept in `<state>/removed.json` until they are nodes again.

The inventory is the user's file and kubefab does not edit it: while it still lists a removed host, the plan of a
`cluster.up` says that the run would join that host again. The record goes when the host's node is Ready again
(node.join, or a cluster.up that joined it).
"""

import datetime
import json
import threading

from kubefab import fsutil
from kubefab.errors import KubefabError

FILE = "removed.json"
MODE = 0o600
_LOCK = threading.Lock()        # the verify phase forgets hosts from several threads at once


def read(inv):
    """{host name: when it was removed (UTC, ISO 8601)} of the state dir; empty before any removal."""
    path = inv.state_dir / FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise KubefabError(f"{path}: not the JSON kubefab wrote ({e}) — delete it: it only records removed "
                           "hosts") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record(inv, name):
    """Note that host `name` was removed now."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _LOCK:
        _write(inv, {**read(inv), name: now})


def forget(inv, name):
    """Host `name` is a node again; True when it had been recorded as removed."""
    with _LOCK:
        removed = read(inv)
        if name not in removed:
            return False
        del removed[name]
        _write(inv, removed)
        return True


def _write(inv, removed):
    path = inv.state_dir / FILE
    if removed:
        fsutil.write_atomic(path, json.dumps(removed, indent=2, sort_keys=True) + "\n", MODE)
    else:
        path.unlink(missing_ok=True)
