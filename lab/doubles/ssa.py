"""Server-side apply for the API-server double: field sets per manager, as metadata.managedFields records them.

What the real field manager (sigs.k8s.io/structured-merge-diff) does, reduced to what the doubles need:
- a manager's field set is every leaf of its applied configuration, in FieldsV1 form: `f:<field>` for map keys,
  `k:{"name":"x"}` for an item of a list of objects keyed by its merge key (name, containerPort...), `.` for the
  item itself; a list without such a key is atomic (one leaf);
- a field this manager applied before and applies no more is removed from the object, unless another manager
  owns it too;
- a field another manager owns with a different value is a conflict (409, the server's wording) unless `force`;
  with `force` the field changes hands;
- an apply that changes nothing writes nothing: the resourceVersion stays (what `cluster.up` run twice relies on).
apiVersion, kind, metadata.name/namespace and, on resources with a status subresource, status are not tracked.
"""

import copy
import datetime
import json

from .resources import MERGE_KEYS

IGNORED_META = ("name", "namespace", "managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


def _key(items):
    for key in MERGE_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def leaves(obj, status=False):
    """The set of field paths (tuples of FieldsV1 keys) an applied configuration sets."""
    top = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind") and (status or k != "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in IGNORED_META}
    if meta:
        top["metadata"] = meta
    else:
        top.pop("metadata", None)
    return set(_walk(top, ()))


def _walk(node, path):
    for k, v in node.items():
        p = path + (f"f:{k}",)
        if isinstance(v, dict) and v:
            yield from _walk(v, p)
        elif isinstance(v, list) and _key(v):
            key = _key(v)
            for item in v:
                ip = p + ("k:" + json.dumps({key: item[key]}, separators=(",", ":")),)
                yield ip + (".",)
                yield from _walk(item, ip)
        else:
            yield p


def to_fields_v1(paths):
    out = {}
    for path in sorted(paths):
        node = out
        for part in path:
            node = node.setdefault(part, {})
    return out


def from_fields_v1(tree, path=()):
    paths = set()
    for k, v in (tree or {}).items():
        if k == "." or not v:
            paths.add(path + (k,))
        if v:
            paths |= from_fields_v1(v, path + (k,))
    return paths


def _value(obj, path):
    """(found, value) at `path` in `obj`."""
    node = obj
    for part in path:
        if part == ".":
            return True, node
        if part.startswith("f:") and isinstance(node, dict) and part[2:] in node:
            node = node[part[2:]]
        elif part.startswith("k:") and isinstance(node, list):
            want = json.loads(part[2:])
            found = [i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())]
            if not found:
                return False, None
            node = found[0]
        else:
            return False, None
    return True, node


def _remove(obj, path):
    node = obj
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if part.startswith("f:") and isinstance(node, dict):
            if last:
                node.pop(part[2:], None)
                return
            node = node.get(part[2:])
        elif part.startswith("k:") and isinstance(node, list):
            want = json.loads(part[2:])
            match = [x for x in node if isinstance(x, dict) and all(x.get(k) == v for k, v in want.items())]
            if not match:
                return
            if path[i + 1:] == (".",):
                node.remove(match[0])
                return
            node = match[0]
        else:
            return


def merge(target, config):
    """The applied configuration over the live object: maps merged, keyed lists merged by key, other lists
    replaced."""
    if not isinstance(config, dict) or not isinstance(target, dict):
        return copy.deepcopy(config)
    out = dict(target)
    for k, v in config.items():
        current = out.get(k)
        if isinstance(v, list) and isinstance(current, list) and _key(v):
            key = _key(v)
            merged = {i.get(key): i for i in current if isinstance(i, dict)}
            for item in v:
                merged[item[key]] = merge(merged.get(item[key]), item)
            out[k] = list(merged.values())
        else:
            out[k] = merge(current, v)
    return out


def conflicts(live, config_paths, config, managers, manager):
    """[(other manager, apiVersion, path)] of fields another manager owns with a value the config changes."""
    found = []
    for entry in managers:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        for path in sorted(from_fields_v1(entry.get("fieldsV1")) & config_paths):
            if path[-1] == "." or _value(live, path) != _value(config, path):
                found.append((entry.get("manager"), entry.get("apiVersion"), path))
    return found


def dotted(path):
    return "".join("" if p == "." else f".{p[2:]}" if p.startswith("f:") else f"[{p[2:]}]" for p in path)


def conflict_message(found):
    managers = sorted({m for m, _, _ in found})
    if len(found) == 1:
        m, version, path = found[0]
        return f'Apply failed with 1 conflict: conflict with "{m}" using {version}: {dotted(path)}'
    lines = "\n".join(f"- {dotted(p)}" for _, _, p in found)
    who = ", ".join(f'"{m}"' for m in managers)
    return f"Apply failed with {len(found)} conflicts: conflicts with {who}:\n{lines}"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply(live, config, manager, force, status_sub):
    """(new object, conflicts): `config` applied by `manager` over `live` (None when the object is new)."""
    live = copy.deepcopy(live) if live else {}
    managers = [dict(e) for e in (live.get("metadata") or {}).get("managedFields") or []]
    mine = next((e for e in managers if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    before = from_fields_v1(mine.get("fieldsV1")) if mine else set()
    wanted = leaves(config, status=not status_sub)
    found = conflicts(live, wanted, config, managers, manager)
    if found and not force:
        return None, found
    for entry in managers:
        if entry is not mine:
            kept = from_fields_v1(entry.get("fieldsV1")) - wanted
            entry["fieldsV1"] = to_fields_v1(kept)
    others = set().union(*(from_fields_v1(e.get("fieldsV1")) for e in managers if e is not mine))
    new = copy.deepcopy(live)
    # a dropped list item goes whole first (its key field must still match it); then the fields of kept ones
    for path in sorted(before - wanted - others, key=lambda p: (p[-1] != ".", len(p), p)):
        _remove(new, path)
    body = {k: v for k, v in config.items() if not (status_sub and k == "status")}
    new = merge(new, body)
    entry = {"manager": manager, "operation": "Apply", "apiVersion": config.get("apiVersion"), "time": now(),
             "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(wanted)}
    if mine and {k: v for k, v in mine.items() if k != "time"} == {k: v for k, v in entry.items() if k != "time"}:
        entry["time"] = mine["time"]
    new.setdefault("metadata", {})["managedFields"] = [entry if e is mine else e for e in managers
                                                      if e is mine or e.get("fieldsV1")] + ([entry] if not mine else [])
    return new, []
