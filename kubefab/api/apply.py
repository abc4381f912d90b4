"""Apply a multi-document manifest idempotently, reporting created / configured / unchanged per object.

Each object is read first: a missing one is created, one whose live state already holds every field
of the manifest is left alone (no write at all), any other is sent as a server-side apply with
kubefab's field manager. Namespaces and CRDs go first so the objects that need them find them.
"""

from dataclasses import dataclass

import yaml

from kubefab.api import kube
from kubefab.errors import KubefabError

FIELD_MANAGER = "kubefab"
CREATED, CONFIGURED, UNCHANGED = "created", "configured", "unchanged"
FIRST = ("Namespace", "CustomResourceDefinition")


@dataclass(frozen=True)
class Applied:
    """What apply did to one object, worded as kubectl prints it."""

    kind: str
    group: str
    namespace: str
    name: str
    action: str

    def __str__(self):
        what = f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()
        return f"{what}/{self.name} {self.action}"


def documents(text, source):
    """The objects of a multi-document YAML manifest; empty documents skipped, each checked for its identity."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise KubefabError(f"{source}: not valid YAML: {e}") from None
    for number, doc in enumerate(docs, 1):
        missing = [k for k in ("apiVersion", "kind") if not (isinstance(doc, dict) and doc.get(k))]
        if not missing and not (doc.get("metadata") or {}).get("name"):
            missing = ["metadata.name"]
        if missing:
            raise KubefabError(f"{source}: document {number} has no {', '.join(missing)} — every object "
                               "needs apiVersion, kind and metadata.name")
    return docs


def ordered(docs):
    """Namespaces, then CRDs, then everything else in manifest order."""
    rank = {kind: i for i, kind in enumerate(FIRST)}
    return sorted(docs, key=lambda d: rank.get(d["kind"], len(FIRST)))


def holds(live, desired):
    """True when every field of `desired` has the same value in `live` (lists element by element)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and holds(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(holds, live, desired))
    return live == desired


def apply(api, text, source="manifest"):
    """Apply every object of manifest `text` through `api`; one Applied per object, in apply order."""
    return tuple(apply_object(api, obj) for obj in ordered(documents(text, source)))


def apply_object(api, obj, dry_run=False):
    """Create `obj`, leave it as it is, or server-side apply it; what happened, as an Applied (with `dry_run`, what
    would happen: only read)."""
    path, would, live, obj = _read(api, obj)
    if would.action != UNCHANGED and not dry_run:
        api.patch(path, obj, kube.APPLY, {"fieldManager": FIELD_MANAGER, "force": "true"})
    return would


def compare(api, text, source="manifest"):
    """What apply would do to each object of manifest `text`, reading only: (Applied, the live object or None,
    the object as it would be sent) each, in apply order."""
    return tuple(_read(api, obj)[1:] for obj in ordered(documents(text, source)))


def _read(api, obj):
    """(path, Applied of what apply would do, live object or None, `obj` with its namespace) of one object."""
    resource = api.resource(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    namespace = (meta.get("namespace") or "default") if resource.namespaced else ""
    obj = dict(obj, metadata=dict(meta, namespace=namespace) if namespace else meta)
    path = resource.path(namespace, meta["name"])
    live = api.find(path)
    action = UNCHANGED if live is not None and holds(live, obj) else CREATED if live is None else CONFIGURED
    return path, Applied(obj["kind"], obj["apiVersion"].rpartition("/")[0], namespace, meta["name"], action), live, obj
