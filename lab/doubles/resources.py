"""The API-server double's resource table, discovery documents, patch semantics and Tables."""

import copy
import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short: tuple = ()
    subresources: tuple = ()

    @property
    def group_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self):
        return f"/registry/{self.group + '/' if self.group else ''}{self.plural}/"

    def key(self, namespace, name):
        return self.prefix + (f"{namespace}/{name}" if self.namespaced else name)


R = Resource
BUILTIN = (
    R("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    R("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    R("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    R("", "v1", "secrets", "Secret", True),
    R("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    R("", "v1", "services", "Service", True, ("svc",), ("status",)),
    R("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    R("", "v1", "pods", "Pod", True, ("po",), ("status", "eviction")),
    R("", "v1", "events", "Event", True, ("ev",)),
    R("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",)),
    R("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    R("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    R("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",)),
    R("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    R("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    R("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status",)),
    R("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status",)),
    R("batch", "v1", "jobs", "Job", True, (), ("status",)),
    R("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    R("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    R("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    R("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    R("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False, ("csr",),
      ("status", "approval")),
    R("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
      ("crd", "crds"), ("status",)),
    R("coordination.k8s.io", "v1", "leases", "Lease", True),
    R("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    R("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    R("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    R("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    R("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    R("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    R("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    R("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
      "MutatingWebhookConfiguration", False),
    R("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
      "ValidatingWebhookConfiguration", False),
)
CRDS = BUILTIN[23]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def from_crd(crd):
    """The Resources a stored CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    namespaced = spec.get("scope") == "Namespaced"
    return [R(spec.get("group", ""), v["name"], names.get("plural", ""), names.get("kind", ""), namespaced,
              tuple(names.get("shortNames", ())), ("status",) if v.get("subresources", {}).get("status") is not None
              else ()) for v in spec.get("versions", []) if v.get("served", True)]


def resource_list(group_version, resources):
    out = []
    for r in resources:
        singular = r.kind.lower()
        out.append({"name": r.plural, "singularName": singular, "namespaced": r.namespaced, "kind": r.kind,
                    "verbs": VERBS, "shortNames": list(r.short)})
        for sub in r.subresources:
            if sub == "eviction":
                out.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                            "version": "v1", "kind": "Eviction", "verbs": ["create"]})
                continue
            out.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                        "kind": "Scale" if sub == "scale" else r.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out}


def group_list(resources):
    groups = {}
    for r in resources:
        if r.group:
            groups.setdefault(r.group, []).append(r.version)
    items = []
    for name, versions in groups.items():
        vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in dict.fromkeys(versions)]
        items.append({"name": name, "versions": vs, "preferredVersion": vs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def openapi_v3(resources, group_version_path, server_version):
    """Just enough OpenAPI v3 for kubectl: per group-version documents whose PATCH operations carry
    the GVK extension and the fieldValidation parameter, so kubectl leaves validation to the server
    instead of demanding the full schema (which this double does not have)."""
    by_path = {}
    for r in resources:
        path = f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
        by_path.setdefault(path, []).append(r)
    if not group_version_path:
        return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash=double"} for p in by_path}}
    paths = {}
    for r in by_path.get(group_version_path, []):
        ns = "namespaces/{namespace}/" if r.namespaced else ""
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        paths[f"/{group_version_path}/{ns}{r.plural}/{{name}}"] = {
            "patch": {"x-kubernetes-group-version-kind": gvk, "parameters": [param], "responses": {}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": server_version}, "paths": paths}


# ---- patches --------------------------------------------------------------------------------

MERGE_KEYS = ("name", "mountPath", "containerPort", "devicePath", "ip", "topologyKey")


def json_merge(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = json_merge(out.get(k), v)
    return out


def _merge_key(items):
    for key in MERGE_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def strategic_merge(target, patch):
    """Strategic merge patch, approximated: lists of objects merge by their usual key
    (name, mountPath, containerPort...), `$patch: delete|replace` and `$setElementOrder` honoured,
    other `$` directives dropped."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(out[k], v, patch.get(f"$setElementOrder/{k}"))
        else:
            out[k] = strategic_merge(out.get(k), v)
    return out


def _merge_list(current, patch, order):
    key = _merge_key(patch) or _merge_key(current)
    if key is None:
        return copy.deepcopy(patch)
    merged = {i.get(key): i for i in current if isinstance(i, dict)}
    for item in patch:
        if item.get("$patch") == "delete":
            merged.pop(item.get(key), None)
        else:
            merged[item.get(key)] = strategic_merge(merged.get(item.get(key)), item)
    if order:
        names = [o.get(key) for o in order]
        return [merged[n] for n in names if n in merged] + [v for n, v in merged.items() if n not in names]
    return list(merged.values())


def json_patch(target, ops):
    """RFC 6902 JSON patch (add, remove, replace, test)."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if op["op"] == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            parent.pop(int(last) if isinstance(parent, list) else last)
        elif op["op"] == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise ValueError(f"test operation failed at {op['path']}")
    return doc


# ---- Tables (what kubectl get asks for) ----------------------------------------------------

def age(timestamp):
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    s = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _node_row(obj):
    conds = {c.get("type"): c.get("status") for c in obj.get("status", {}).get("conditions", [])}
    status = "Ready" if conds.get("Ready") == "True" else "NotReady"
    if obj.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in obj["metadata"].get("labels", {}) if k.startswith(prefix)) or ["<none>"]
    version = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [("Status", status), ("Roles", ",".join(roles)), ("Age", _age(obj)), ("Version", version)]


def _pod_row(obj):
    statuses = obj.get("status", {}).get("containerStatuses", [])
    ready = sum(1 for s in statuses if s.get("ready"))
    total = len(obj.get("spec", {}).get("containers", []))
    return [("Ready", f"{ready}/{total}"), ("Status", obj.get("status", {}).get("phase", "Pending")),
            ("Restarts", sum(s.get("restartCount", 0) for s in statuses)), ("Age", _age(obj))]


def _ds_row(obj):
    st, selector = obj.get("status") or {}, obj["spec"]["template"].get("spec", {}).get("nodeSelector") or {}
    return [("Desired", st.get("desiredNumberScheduled", 0)), ("Current", st.get("currentNumberScheduled", 0)),
            ("Ready", st.get("numberReady", 0)), ("Up-to-date", st.get("updatedNumberScheduled", 0)),
            ("Available", st.get("numberAvailable", 0)),
            ("Node Selector", ",".join(f"{k}={v}" for k, v in selector.items()) or "<none>"), ("Age", _age(obj))]


def _cm_row(obj):
    return [("Data", len(obj.get("data", {})) + len(obj.get("binaryData", {}))), ("Age", _age(obj))]


def _default_row(obj):
    return [("Age", _age(obj))]


def _age(obj):
    return age(obj["metadata"].get("creationTimestamp"))


ROWS = {"Node": _node_row, "Pod": _pod_row, "ConfigMap": _cm_row, "DaemonSet": _ds_row}


def table(objects, kind, list_meta):
    """A meta.k8s.io/v1 Table, which is what `kubectl get` asks for (as=Table)."""
    row = ROWS.get(kind, _default_row)
    names = [n for n, _ in row(objects[0])] if objects else ["Age"]
    cols = [{"name": n, "type": "string", "format": "name" if n == "Name" else "", "description": n,
             "priority": 0} for n in ["Name", *names]]
    rows = []
    for obj in objects:
        partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": [obj["metadata"]["name"], *[v for _, v in row(obj)]], "object": partial})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": cols,
            "rows": rows}
