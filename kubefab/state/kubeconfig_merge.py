"""The admin kubeconfig for the user: written to a file, or merged into ~/.kube/config.

Merging adds one cluster, user and context named after the cluster (or --context) and makes it the
current context, as k3sup does. Every other entry is kept byte for byte in meaning; an entry of the
same name that belongs to another cluster (other server or CA) is never overwritten — the user picks
another name. The file is written atomically, 0600, in a directory whose mode is left as it was.
"""

import os
from pathlib import Path

import yaml

from kubefab import fsutil
from kubefab.errors import KubefabError

MODE = 0o600
ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"


def default_path(env=None):
    """Where kubectl writes new entries: KUBECONFIG's only file, else its first existing one, else its
    last; ~/.kube/config without KUBECONFIG (client-go's PathOptions.GetDefaultFilename)."""
    env = os.environ if env is None else env
    files = [f for f in env.get("KUBECONFIG", "").split(os.pathsep) if f]
    if not files:
        return Path(env.get("HOME", "~")).expanduser() / ".kube" / "config"
    if len(files) == 1:
        return Path(files[0])
    return next((Path(f) for f in files if Path(f).exists()), Path(files[-1]))


def renamed(admin, name):
    """`admin` (kubeconfig dict with one cluster, user and context) with all three named for `name`."""
    cluster, user = admin["clusters"][0]["cluster"], admin["users"][0]["user"]
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": name,
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": f"{name}-admin", "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}]}


def merge(existing, admin, name, where):
    """(merged config, what happened) adding `admin` as `name` to config dict `existing`."""
    new = renamed(admin, name)
    out = dict(existing or {})
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Config")
    out.setdefault("preferences", {})
    for section in ("clusters", "users", "contexts"):
        out[section] = list(out.get(section) or [])
    _refuse_foreign(out, new, name, where)
    changed = False
    for section in ("clusters", "users", "contexts"):
        entry = new[section][0]
        index = next((i for i, e in enumerate(out[section]) if e.get("name") == entry["name"]), None)
        if index is None:
            out[section].append(entry)
            changed = True
        elif out[section][index] != entry:
            out[section][index] = entry
            changed = True
    had = any(e.get("name") == name for e in (existing or {}).get("contexts") or ())
    switched = out.get("current-context") != name
    out["current-context"] = name
    return out, (UNCHANGED if not (changed or switched) else UPDATED if had else ADDED)


def _refuse_foreign(config, new, name, where):
    """An existing cluster entry called `name` for another server or CA belongs to someone else."""
    for entry in config["clusters"]:
        if entry.get("name") != name:
            continue
        have, want = entry.get("cluster") or {}, new["clusters"][0]["cluster"]
        if (have.get("server"), have.get("certificate-authority-data")) != \
                (want["server"], want["certificate-authority-data"]):
            raise KubefabError(f"{where}: a cluster named {name!r} already points at {have.get('server')} with "
                               "another CA — pass --context NAME to add this one under another name")


def write(path, config):
    """Write kubeconfig `config` to `path` atomically, 0600; the directory keeps its mode (new: 0700)."""
    path = Path(path)
    dir_mode = (path.parent.stat().st_mode & 0o7777) if path.parent.is_dir() else 0o700
    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    return fsutil.write_atomic(path, text, MODE, dir_mode)


def merge_into(path, admin_text, name):
    """Merge admin kubeconfig text into the file at `path` (created if missing); ADDED, UPDATED or UNCHANGED."""
    path = Path(path)
    try:
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
    except yaml.YAMLError as e:
        raise KubefabError(f"{path}: not valid YAML ({e}) — fix it or merge into another file "
                           "with KUBECONFIG=...") from None
    if existing is not None and not isinstance(existing, dict):
        raise KubefabError(f"{path}: not a kubeconfig (its top level is not a mapping)")
    merged, what = merge(existing, yaml.safe_load(admin_text), name, path)
    write(path, merged)
    return what


def export(path, admin_text, name=None):
    """Write the admin kubeconfig to `path` (renamed to `name` when given); True when the file changed."""
    config = yaml.safe_load(admin_text)
    return write(path, renamed(config, name) if name else config)
