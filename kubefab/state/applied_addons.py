"""`<state>/addons.json`: what kubefab applied for each add-on, so `addons.remove` deletes exactly that.

{add-on name: [[apiVersion, kind, namespace ("" when cluster-scoped), name], ...]}, in apply order. An add-on's
objects are recorded before they are applied (an interrupted apply leaves nothing unrecorded) and added to what
was recorded before, so an object a newer manifest dropped is still removed with the add-on.
"""

import json

from kubefab import fsutil
from kubefab.errors import KubefabError

RECORD = "addons.json"
MODE = 0o600


def path(inv):
    return inv.state_dir / RECORD


def read(inv):
    """The record, {} before kubefab applied any add-on."""
    try:
        data = json.loads(path(inv).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as e:
        raise KubefabError(f"{path(inv)}: not the add-on record kubefab writes ({e}) — restore it from a backup; "
                           "without it `addons.remove` cannot know what to delete") from None
    return {name: [tuple(o) for o in objects] for name, objects in data.items()}


def record(inv, name, objects):
    """Add `objects` (apiVersion, kind, namespace, name) to add-on `name`'s record; True when the file changed."""
    data = read(inv)
    known = data.get(name, [])
    data[name] = known + [tuple(o) for o in objects if tuple(o) not in known]
    return _write(inv, data)


def forget(inv, name):
    data = read(inv)
    data.pop(name, None)
    return _write(inv, data)


def _write(inv, data):
    text = json.dumps({k: [list(o) for o in v] for k, v in data.items()}, indent=2, sort_keys=True) + "\n"
    return fsutil.write_atomic(path(inv), text, MODE)
