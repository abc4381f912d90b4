"""kube-apiserver double: HTTPS on the manifest's advertise address and secure port, serving the
pushed apiserver certificate, authenticating client certificates signed by --client-ca-file,
bootstrap tokens (--enable-bootstrap-token-auth) and anonymous requests, storing objects in real
etcd (--etcd-servers with the --etcd-* client certificate). See README.md for what it enforces.
"""

import base64
import copy
import datetime
import json
import os
import re
import secrets
import ssl
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

from . import apiserver_checks as startup
from . import eviction
from . import flags as flagparse
from . import flagsets
from . import resources as res
from . import satokens, ssa
from . import tlsserving
from .hostfs import DoubleError, host, version
from .store import Conflict, EtcdStore, StoreError

REQUIRED_FLAGS = ("tls-cert-file", "tls-private-key-file", "client-ca-file", "etcd-servers",
                  "service-account-key-file", "service-account-issuer")
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ANONYMOUS = ("system:anonymous", ("system:unauthenticated",))
HEALTH_PATHS = ("/livez", "/readyz", "/healthz", "/version")
# The controller-manager's controllers run as these ServiceAccounts (--use-service-account-credentials);
# their system:controller:* ClusterRoles are reduced here to full access.
CONTROLLER_ACCOUNTS = {f"system:serviceaccount:kube-system:{n}" for n in (
    "bootstrap-signer", "token-cleaner", "certificate-controller", "node-controller", "daemon-set-controller",
    "deployment-controller", "disruption-controller", "generic-garbage-collector")}
# ClusterRoles of the API server's bootstrap policy that kubeadm binds for bootstrap tokens.
BOOTSTRAP_POLICY = {"system:node-bootstrapper": [{"apiGroups": ["certificates.k8s.io"],
                                                  "resources": ["certificatesigningrequests"],
                                                  "verbs": ["create", "get", "list", "watch"]}]}


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def qualified(r):
    return f"{r.plural}.{r.group}" if r.group else r.plural


def not_found(r, name):
    return ApiError(404, "NotFound", f'{qualified(r)} "{name}" not found', {"name": name, "kind": r.plural})


def timestamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- authentication and authorization ------------------------------------------------------

class Auth:
    """Who is asking, and may they (reference §4.3 roles, reduced to what kubeadm sets up)."""

    def __init__(self, store, bootstrap_tokens, sa_keys=(), issuer=""):
        self.store, self.bootstrap_tokens = store, bootstrap_tokens
        self.sa_keys, self.issuer = list(sa_keys), issuer

    def user(self, peercert, authorization):
        if peercert:
            subject = dict(x[0] for x in peercert.get("subject", ()))
            orgs = [x[0][1] for x in peercert.get("subject", ()) if x[0][0] == "organizationName"]
            return subject.get("commonName", ""), tuple(orgs) + ("system:authenticated",)
        if authorization.startswith("Bearer "):
            return self._token_user(authorization[7:].strip())
        return ANONYMOUS

    def _token_user(self, token):
        match = TOKEN_RE.match(token)
        if not match and token.count(".") == 2:
            found = satokens.verify(token, self.sa_keys, self.issuer)
            if found is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            ns, name = found
            return f"system:serviceaccount:{ns}:{name}", ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                                         "system:authenticated")
        if not (self.bootstrap_tokens and match):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        found = self.store.get(f"/registry/secrets/kube-system/bootstrap-token-{match.group(1)}")
        data = {k: base64.b64decode(v).decode() for k, v in (found[0].get("data", {}) if found else {}).items()}
        expiry = data.get("expiration")
        if (not found or found[0].get("type") != "bootstrap.kubernetes.io/token"
                or data.get("token-secret") != match.group(2) or data.get("usage-bootstrap-authentication") != "true"
                or (expiry and expiry < timestamp())):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        extra = [g for g in data.get("auth-extra-groups", "").split(",") if g]
        return f"system:bootstrap:{match.group(1)}", ("system:bootstrappers", *extra, "system:authenticated")

    def cluster_admin(self, name, groups, consistent):
        if "system:masters" in groups or name in ("system:kube-controller-manager", "system:kube-scheduler") \
                or name in CONTROLLER_ACCOUNTS:
            return True
        bindings, _ = self.store.list("/registry/rbac.authorization.k8s.io/clusterrolebindings/",
                                      consistent=consistent)
        for crb, _ in bindings:
            if crb.get("roleRef", {}).get("name") != "cluster-admin":
                continue
            if any(subject_matches(s, name, groups) for s in crb.get("subjects") or []):
                return True
        return False

    def allowed(self, user, verb, r, namespace, name, sub):
        """As the real authorizers answer, from the watch cache as it is (their informers); a refusal is checked
        again against etcd's current state, so a binding written a moment ago is never missed here."""
        return self.decide(user, verb, r, namespace, name, sub, consistent=False) or \
            self.decide(user, verb, r, namespace, name, sub, consistent=True)

    def decide(self, user, verb, r, namespace, name, sub, consistent):
        who, groups = user
        if self.cluster_admin(who, groups, consistent):
            return True
        if r.plural == "configmaps" and verb == "get" and namespace == "kube-public" and name == "cluster-info":
            return True
        if r.plural == "selfsubjectreviews" and verb == "create" and user != ANONYMOUS:
            return True             # system:basic-user
        if "system:nodes" in groups:
            kubeadm_cms = {("kube-system", "kubeadm-config"), ("kube-system", "kubelet-config")}
            if r.plural == "configmaps" and verb == "get" and (namespace, name) in kubeadm_cms:
                return True
            if r.plural == "certificatesigningrequests" and verb in ("create", "get", "list", "watch"):
                return True
        if "system:nodes" in groups and who.startswith("system:node:"):
            node = who[len("system:node:"):]
            if r.plural == "nodes":
                # NodeRestriction: a node may create (checked in on_create) and change only itself
                return verb in ("get", "list", "watch", "create") or (verb in ("update", "patch") and name == node)
            if r.plural in ("pods", "events", "leases"):
                return True
            if r.plural == "configmaps" and verb == "get" and self.pod_uses(node, namespace, name, configmaps_of,
                                                                             consistent):
                return True
            if r.plural == "secrets" and verb == "get" and self.pod_uses(node, namespace, name, secrets_of, consistent):
                return True
        return self.rbac(user, verb, r, namespace, name, sub, consistent)

    def pod_uses(self, node, namespace, name, refs, consistent):
        """The Node authorizer's graph: a pod bound to `node` refers to the ConfigMap (`refs` configmaps_of: volume,
        env, envFrom) or the Secret (secrets_of: volume)."""
        pods, _ = self.store.list(f"/registry/pods/{namespace}/", lambda pod: pod.get("spec", {}).get("nodeName")
                                  == node and name in refs(pod["spec"]), consistent)
        return bool(pods)

    def rbac(self, user, verb, r, namespace, name, sub, consistent):
        """RBAC for everyone else (bootstrap tokens above all): a binding of theirs must grant the request."""
        who, groups = user
        bindings = [b for b, _ in self.store.list("/registry/rbac.authorization.k8s.io/clusterrolebindings/",
                                                  consistent=consistent)[0]]
        if namespace:
            bindings += [b for b, _ in self.store.list(
                f"/registry/rbac.authorization.k8s.io/rolebindings/{namespace}/", consistent=consistent)[0]]
        for b in bindings:
            if any(subject_matches(s, who, groups) for s in b.get("subjects") or []):
                if any(rule_allows(rule, verb, r, name, sub) for rule in self.role_rules(b)):
                    return True
        return False

    def role_rules(self, binding):
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and ref.get("name") in BOOTSTRAP_POLICY:
            return BOOTSTRAP_POLICY[ref["name"]]
        key = (f"/registry/rbac.authorization.k8s.io/clusterroles/{ref.get('name')}" if ref.get("kind") ==
               "ClusterRole" else f"/registry/rbac.authorization.k8s.io/roles/"
                                  f"{binding['metadata'].get('namespace')}/{ref.get('name')}")
        found = self.store.get(key)
        return (found[0].get("rules") or []) if found else []


def subject_matches(subject, who, groups):
    """An RBAC subject names this user: a Group it is in, the User itself, or its ServiceAccount."""
    kind, name = subject.get("kind"), subject.get("name")
    return (kind == "Group" and name in groups) or (kind == "User" and name == who) or \
        (kind == "ServiceAccount" and who == f"system:serviceaccount:{subject.get('namespace')}:{name}")


def configmaps_of(spec):
    names = {v["configMap"].get("name") for v in spec.get("volumes") or [] if "configMap" in v}
    names |= {s["configMap"].get("name") for v in spec.get("volumes") or [] for s in
              (v.get("projected") or {}).get("sources") or [] if "configMap" in s}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        names |= {e["configMapRef"].get("name") for e in c.get("envFrom") or [] if "configMapRef" in e}
        names |= {(e.get("valueFrom") or {})["configMapKeyRef"].get("name") for e in c.get("env") or []
                  if "configMapKeyRef" in (e.get("valueFrom") or {})}
    return names


def secrets_of(spec):
    return {v["secret"].get("secretName") for v in spec.get("volumes") or [] if "secret" in v}


def rule_allows(rule, verb, r, name, sub=None):
    """RBAC's rule match; a subresource is its own resource (`gateways/status`), as the real authorizer has it."""
    def has(values, value):
        return "*" in (values or []) or value in (values or [])
    resource = f"{r.plural}/{sub}" if sub else r.plural
    return (has(rule.get("apiGroups"), r.group) and has(rule.get("resources"), resource)
            and has(rule.get("verbs"), verb) and (not rule.get("resourceNames") or name in rule["resourceNames"]))


# ---- the server ---------------------------------------------------------------------------

class ApiServer:
    def __init__(self, flags):
        self.flags = flags
        self.address = flags.get("advertise-address") or "0.0.0.0"
        self.bind = flags.get("bind-address") or self.address
        self.port = int(flags.get("secure-port", "6443"))
        endpoint = flags["etcd-servers"].split(",")[0]
        self.store = EtcdStore(endpoint, host(flags.get("etcd-cafile", "")), host(flags.get("etcd-certfile", "")),
                               host(flags.get("etcd-keyfile", "")), flags.get("watch-cache", "true") != "false")
        self.sa_keys = startup.public_keys(flags["service-account-key-file"])
        self.signing_key = startup.signing_key(flags["service-account-signing-key-file"]) \
            if flags.get("service-account-signing-key-file") else None
        self.issuer = flags["service-account-issuer"]
        self.auth = Auth(self.store, flags.get("enable-bootstrap-token-auth") == "true", self.sa_keys, self.issuer)
        self.anonymous = flags.get("anonymous-auth", "true") == "true"

    # resources known now: built-ins plus served CRD versions
    def resources(self, consistent=True):
        items = list(res.BUILTIN)
        for crd, _ in self.store.list(res.CRDS.prefix, consistent=consistent)[0]:
            items += res.from_crd(crd)
        return items

    def find(self, group, version_, plural):
        """The resource, from the watch cache as it is, or from etcd's current state before a 404."""
        for consistent in (False, True):
            for r in self.resources(consistent):
                if r.group == group and r.version == version_ and r.plural == plural:
                    return r
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def ensure_namespaces(self):
        """The system namespaces and kube-system/extension-apiserver-authentication, as the real server makes them."""
        me = ("system:apiserver", ("system:masters",))
        for name in res.SYSTEM_NAMESPACES:
            try:
                self.create(res.BUILTIN[0], None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                            me)
            except ApiError:
                pass
        data = {"client-ca-file": host(self.flags["client-ca-file"]).read_text()}
        if self.flags.get("requestheader-client-ca-file"):
            data.update({"requestheader-client-ca-file": host(self.flags["requestheader-client-ca-file"]).read_text(),
                         "requestheader-allowed-names": json.dumps(
                             self.flags.get("requestheader-allowed-names", "").split(","))})
        try:
            self.create(self.find("", "v1", "configmaps"), "kube-system", {
                "apiVersion": "v1", "kind": "ConfigMap", "data": data,
                "metadata": {"name": "extension-apiserver-authentication"}}, me)
        except ApiError:
            pass

    # ---- CRUD -----------------------------------------------------------------------------
    def read(self, r, namespace, name):
        found = self.store.get(r.key(namespace, name))
        if not found:
            raise not_found(r, name)
        return with_rv(*found)

    def list(self, r, namespace, query):
        prefix = r.prefix + (f"{namespace}/" if (r.namespaced and namespace) else "")
        labels, fields = query.get("labelSelector", [""])[0], query.get("fieldSelector", [""])[0]
        items, revision = self.store.list(prefix, lambda o: matches(o, labels, fields))
        return [with_rv(o, rv) for o, rv in items], str(revision)

    def create(self, r, namespace, obj, user, dry_run=False):
        meta = obj.setdefault("metadata", {})
        check_kind(r, obj)
        if r.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            meta["namespace"] = namespace
            if r.plural != "namespaces" and not self.store.get(f"/registry/namespaces/{namespace}"):
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", f"{r.kind}.{r.group or 'core'} \"\" is invalid: metadata.name: "
                                               "Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        meta.pop("resourceVersion", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=timestamp())
        if "spec" in obj:
            meta["generation"] = 1
        on_create(r, obj, user)
        if dry_run:
            return obj
        try:
            rv = self.store.create(r.key(namespace, meta["name"]), obj)
        except Conflict:
            raise ApiError(409, "AlreadyExists", f'{qualified(r)} "{meta["name"]}" already exists',
                           {"name": meta["name"], "kind": r.plural})
        return with_rv(obj, rv)

    def replace(self, r, namespace, name, new, old, sub):
        """Store `new` over `old` (both full objects) with optimistic concurrency."""
        expected = new.get("metadata", {}).get("resourceVersion") or old["metadata"]["resourceVersion"]
        if r is res.CRDS and sub != "status":
            check_crd(new)
        if expected != old["metadata"]["resourceVersion"]:
            raise conflict(r, name)
        merged = dict(old, status=new.get("status", old.get("status"))) if sub == "status" else new
        if sub != "status" and "status" in r.subresources and "status" in old:
            merged["status"] = old["status"]
        meta = merged.setdefault("metadata", {})
        for keep in ("uid", "creationTimestamp", "name", "namespace"):
            if keep in old["metadata"]:
                meta[keep] = old["metadata"][keep]
        if old.get("spec") != merged.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 0) + 1
        meta.pop("resourceVersion", None)
        try:
            rv = self.store.update(r.key(namespace, name), merged, expected)
        except Conflict:
            raise conflict(r, name)
        return with_rv(merged, rv)

    def swap(self, r, namespace, name, new, old, sub):
        """replace() inside a read-change-write: losing the race to another writer is StaleWrite, to read again."""
        try:
            return self.replace(r, namespace, name, new, old, sub)
        except ApiError as e:
            if e.code != 409:
                raise
            raise StaleWrite from e

    def patch(self, r, namespace, name, ctype, body, user, sub, query):
        if ctype.startswith("application/apply-patch"):
            return self.apply(r, namespace, name, decode(body), user, sub, query)
        if "force" in query:
            raise invalid_patch_options("force", "Forbidden", "may not be specified for non-apply patch")
        patch = json.loads(body or b"null")

        def attempt():
            old = self.read(r, namespace, name)
            if ctype.startswith("application/json-patch"):
                new = res.json_patch(old, patch)
            elif ctype.startswith("application/merge-patch"):
                new = res.json_merge(old, patch)
            else:
                new = res.strategic_merge(old, patch)
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
            return 200, self.swap(r, namespace, name, new, old, sub)
        return retry_on_conflict(r, name, attempt)

    def apply(self, r, namespace, name, config, user, sub, query):
        """Server-side apply (ssa.py) under ?fieldManager=, creating the object when it does not exist."""
        manager = query.get("fieldManager", [""])[0]
        if not manager:
            raise invalid_patch_options("fieldManager", "Required", "is required for apply patch")
        if not isinstance(config, dict):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized (must be of type Patch)")
        check_kind(r, config)
        given = (config.get("metadata") or {}).get("name")
        if given != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({given}) does not match the name on the "
                                              f"URL ({name})")
        force = query.get("force", ["false"])[0] == "true"

        def attempt():
            try:
                old = self.read(r, namespace, name)
            except ApiError as e:
                if e.code != 404:
                    raise
                old = None
            new, found = ssa.apply(old, config, manager, force, "status" in r.subresources and sub != "status")
            if found:
                raise ApiError(409, "Conflict", ssa.conflict_message(found), {
                    "name": name, "group": r.group, "kind": r.plural, "causes": [
                        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}',
                         "field": ssa.dotted(p)} for m, v, p in found]})
            if old is None:
                return 201, self.create(r, namespace, new, user, "All" in query.get("dryRun", []))
            if new == old or "All" in query.get("dryRun", []):
                return 200, new
            return 200, self.swap(r, namespace, name, new, old, sub)
        return retry_on_conflict(r, name, attempt)

    def bind_pod(self, namespace, name, binding):
        """pods/binding: the scheduler's assignment of a pod to a node, once."""
        r = self.find("", "v1", "pods")
        target = ((binding or {}).get("target") or {}).get("name", "")

        def attempt():
            pod = self.read(r, namespace, name)
            bound = pod["spec"].get("nodeName")
            if bound:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                                                f'is already assigned to node "{bound}"',
                               {"name": name, "kind": "pods"})
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = target
            self.swap(r, namespace, name, new, pod, None)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        return retry_on_conflict(r, name, attempt)

    def token_request(self, namespace, name, request):
        """TokenRequest: a JWT for an existing ServiceAccount, signed with sa.key."""
        self.read(self.find("", "v1", "serviceaccounts"), namespace, name)
        if self.signing_key is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        spec = (request or {}).get("spec") or {}
        token, expiry = satokens.sign(self.signing_key, self.issuer, namespace, name,
                                      spec.get("audiences") or [self.issuer], int(spec.get("expirationSeconds") or 3600))
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"name": name,
                                                                                             "namespace": namespace},
                "spec": spec, "status": {"token": token, "expirationTimestamp": datetime.datetime.fromtimestamp(
                    expiry, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def delete(self, r, namespace, name):
        obj = self.read(r, namespace, name)
        if r is res.CRDS:       # its custom resources go with it (the CRD's cleanup finalizer)
            for served in {s.prefix: s for s in res.from_crd(obj)}.values():
                for item, _ in self.store.list(served.prefix)[0]:
                    self.store.delete(served.key(item["metadata"].get("namespace", ""), item["metadata"]["name"]))
        self.store.delete(r.key(namespace, name))
        if r.plural == "namespaces":
            for other in self.resources():
                if other.namespaced:
                    for item, _ in self.store.list(f"{other.prefix}{name}/")[0]:
                        self.store.delete(other.key(name, item["metadata"]["name"]))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": r.plural, "uid": obj["metadata"].get("uid")}}


def with_rv(obj, rv):
    obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
    return obj


class StaleWrite(Exception):
    """A read-change-write whose object another writer changed in between."""


def retry_on_conflict(r, name, attempt):
    """attempt() again, five times at most, while it loses its write to another writer (client-go's RetryOnConflict)."""
    for _ in range(5):
        try:
            return attempt()
        except StaleWrite:
            continue
    raise conflict(r, name)


def conflict(r, name):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(r)} "{name}": the object has '
                                     "been modified; please apply your changes to the latest version and try again",
                    {"name": name, "kind": r.plural})


def invalid_patch_options(field, kind, message):
    """422 for PatchOptions, as metav1 validation.ValidatePatchOptions words it."""
    words = {"Required": ("FieldValueRequired", "Required value"), "Forbidden": ("FieldValueForbidden", "Forbidden")}
    reason, prefix = words[kind]
    return ApiError(422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {field}: {prefix}: {message}',
                    {"group": "meta.k8s.io", "kind": "PatchOptions",
                     "causes": [{"reason": reason, "message": f"{prefix}: {message}", "field": field}]})


def check_kind(r, obj):
    if obj.get("kind") and obj["kind"] != r.kind:
        raise ApiError(400, "BadRequest", f"the API version in the data ({obj.get('apiVersion')}) does not match "
                                          f"the expected API version ({r.group_version})" if obj.get("apiVersion")
                       != r.group_version else f"kind {obj['kind']} does not match resource {r.plural}")
    obj.setdefault("kind", r.kind)
    obj.setdefault("apiVersion", r.group_version)


def on_create(r, obj, user):
    """What the real server or its admission plugins fill in at creation."""
    if r.plural == "certificatesigningrequests":
        obj.setdefault("spec", {}).update(username=user[0], groups=list(user[1]))
        obj["status"] = {}
    elif r.plural == "namespaces":
        obj["status"] = {"phase": "Active"}
    elif r is res.CRDS:
        check_crd(obj)
        obj["status"] = {"acceptedNames": obj["spec"]["names"], "storedVersions": [
            v["name"] for v in obj["spec"]["versions"] if v.get("storage")], "conditions": [
            {"type": t, "status": "True", "reason": reason, "message": message, "lastTransitionTime": timestamp()}
            for t, reason, message in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                       ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}
    elif r.plural == "nodes" and user[0].startswith("system:node:") and \
            user[0] != f"system:node:{obj['metadata']['name']}":
        raise ApiError(403, "Forbidden", f'nodes "{obj["metadata"]["name"]}" is forbidden: node '
                                         f'"{user[0][12:]}" is not allowed to modify node "{obj["metadata"]["name"]}"')


def check_crd(crd):
    """apiextensions validation as far as kubefab's CRDs meet it: the name, one storage version, and a structural
    schema per version (every node typed, unless it keeps unknown fields or is int-or-string), in its words."""
    spec, name = crd.get("spec") or {}, crd["metadata"]["name"]
    names, errors = spec.get("names") or {}, []
    if name != f"{names.get('plural')}.{spec.get('group')}":
        errors.append(f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        errors.append("spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must have "
                      "exactly one version marked as storage version")
    for i, v in enumerate(versions):
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        where = f"spec.versions[{i}].schema.openAPIV3Schema"
        if schema is None:
            errors.append(f"{where}: Required value: schemas are required")
            continue
        if schema.get("type") != "object":
            errors.append(f'{where}.type: Invalid value: "{schema.get("type", "")}": must be object at the root')
        errors += _unstructural(schema, where)
    if errors:
        raise ApiError(422, "Invalid", f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: '
                       + ", ".join(errors), {"name": name, "group": "apiextensions.k8s.io",
                                             "kind": "CustomResourceDefinition"})


def _unstructural(schema, where):
    out = []
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{where}.properties[{key}]"
        if not sub.get("type") and not (sub.get("x-kubernetes-preserve-unknown-fields")
                                         or sub.get("x-kubernetes-int-or-string")):
            out.append(f"{path}.type: Required value: must not be empty for specified object fields")
        out += _unstructural(sub, path)
    if isinstance(schema.get("items"), dict):
        out += _unstructural(schema["items"], f"{where}.items")
    return out


def _label_ok(labels, term):
    term = term.strip()
    if not term:
        return True
    for op in ("!=", "==", "="):
        if op in term:
            k, v = (x.strip() for x in term.split(op, 1))
            return (labels.get(k) != v) if op == "!=" else (labels.get(k) == v)
    m = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
    if m:
        values = [v.strip() for v in m.group(3).split(",")]
        return (labels.get(m.group(1)) in values) == (m.group(2) == "in")
    return (term[1:] not in labels) if term.startswith("!") else (term in labels)


def matches(obj, label_selector, field_selector):
    labels = obj["metadata"].get("labels", {}) or {}
    terms = re.split(r",(?![^(]*\))", label_selector) if label_selector else []
    if not all(_label_ok(labels, t) for t in terms):
        return False
    for term in filter(None, field_selector.split(",")):
        neg = "!=" in term
        path, value = term.split("!=" if neg else "=", 1)
        cur = obj
        for part in path.lstrip("=").split("."):
            cur = cur.get(part, "") if isinstance(cur, dict) else ""
        if (str(cur) == value.lstrip("=")) == neg:
            return False
    return True


# ---- HTTP -----------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-double"
    # the headers and the body go out as two writes: with Nagle's algorithm the body waits for the client's delayed
    # ACK of the headers, ~40 ms a request on a kept connection (Go's net/http sets TCP_NODELAY on every connection)
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.api.flags.get("v", "0") >= "4":
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def send_json(self, code, body, ctype="application/json"):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self, method):
        api = self.server.api
        url = urlparse(self.path)
        query = parse_qs(url.query)
        try:
            self.request_body = self.body()
            peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
            if peer and tlsserving.expired(peer):
                print(f'E authentication.go: "Unable to authenticate the request" err="[{tlsserving.expired(peer)}]"',
                      file=sys.stderr, flush=True)
                raise ApiError(401, "Unauthorized", "Unauthorized")
            user = api.auth.user(peer, self.headers.get("Authorization", ""))
            if peer:
                self.server.serials.record(user[0], peer["serialNumber"])
            if user == ANONYMOUS and not api.anonymous:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self.route(api, method, url.path.rstrip("/") or "/", query, user)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except StoreError as e:
            self.send_json(500, ApiError(500, "InternalError", f"etcdserver: {e}").status())
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as e:
            self.send_json(400, ApiError(400, "BadRequest", f"the request could not be decoded: {e}").status())

    def route(self, api, method, path, query, user):
        if path in HEALTH_PATHS or path.startswith(("/livez/", "/readyz/", "/healthz/")):
            return self.health(api, path)
        parts = path.strip("/").split("/")
        is_resource = parts[0] in ("api", "apis") and len(parts) > (2 if parts[0] == "api" else 3)
        if user == ANONYMOUS and not is_resource:
            # discovery is bound to system:authenticated only (ClusterRole system:discovery)
            raise ApiError(403, "Forbidden", f'forbidden: User "system:anonymous" cannot get path "{path}"')
        if parts[0] == "api":
            if len(parts) == 1:
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{api.address}:{api.port}"}]})
            return self.resource(api, method, "", parts[1], parts[2:], query, user)
        if parts[0] == "apis":
            if len(parts) == 1:
                return self.send_json(200, res.group_list(api.resources()))
            if len(parts) == 2:
                groups = [g for g in res.group_list(api.resources())["groups"] if g["name"] == parts[1]]
                if not groups:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self.send_json(200, dict(groups[0], kind="APIGroup", apiVersion="v1"))
            return self.resource(api, method, parts[1], parts[2], parts[3:], query, user)
        if parts[:2] == ["openapi", "v3"]:
            return self.send_json(200, res.openapi_v3(api.resources(), "/".join(parts[2:]), version()))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def health(self, api, path):
        if path == "/version":
            v = version()
            major, minor = v.lstrip("v").split(".")[:2]
            return self.send_json(200, {"major": major, "minor": minor, "gitVersion": v, "gitCommit": "double",
                                        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                                        "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"})
        try:
            api.store.get("/registry/health")
        except StoreError as e:
            data = f"[-]etcd failed: {e}\n{path[1:]} check failed".encode()
            code = 500
        else:
            data, code = b"ok", 200
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def resource(self, api, method, group, version_, rest, query, user):
        if not rest:
            items = [r for r in api.resources() if r.group == group and r.version == version_]
            if not items:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self.send_json(200, res.resource_list(f"{group}/{version_}" if group else version_, items))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        r = api.find(group, version_, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (not r.namespaced and namespace) or (r.namespaced and namespace is None and method != "GET"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = self.verb(method, name, query)
        if not api.auth.allowed(user, verb, r, namespace, name, sub):
            raise forbidden(user, verb, r, namespace, name)
        self.serve(api, verb, r, namespace, name, sub, query, user)

    @staticmethod
    def verb(method, name, query):
        if method == "GET":
            if query.get("watch", ["false"])[0] in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[method]

    def serve(self, api, verb, r, namespace, name, sub, query, user):
        dry_run = "All" in query.get("dryRun", [])
        if verb == "get":
            return self.send_object(api.read(r, namespace, name))
        if verb == "list":
            objs, revision = api.list(r, namespace, query)
            return self.send_list(r, objs, revision)
        if verb == "watch":
            return self.watch(api, r, namespace, name, query)
        if verb == "create" and r.plural == "pods" and sub == "eviction":
            return self.send_json(*eviction.evict(api, namespace, name, decode(self.request_body), dry_run))
        if verb == "create" and r.plural == "serviceaccounts" and sub == "token":
            return self.send_json(201, api.token_request(namespace, name, decode(self.request_body)))
        if verb == "create" and r.plural == "selfsubjectreviews":
            return self.send_json(201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                                        "metadata": {"creationTimestamp": timestamp()},
                                        "status": {"userInfo": {"username": user[0], "groups": list(user[1])}}})
        if verb == "create" and r.plural == "pods" and sub == "binding":
            return self.send_json(201, api.bind_pod(namespace, name, decode(self.request_body)))
        if verb == "create":
            obj = api.create(r, namespace, decode(self.request_body), user, dry_run)
            return self.send_json(201, obj)
        if verb == "update":
            old = api.read(r, namespace, name)
            new = decode(self.request_body)
            if r.plural == "certificatesigningrequests" and sub == "approval":
                sub = "status"
            return self.send_json(200, api.replace(r, namespace, name, new, old, sub))
        if verb == "patch":
            code, obj = api.patch(r, namespace, name, self.headers.get("Content-Type", ""), self.request_body,
                                  user, sub, query)
            return self.send_json(code, obj)
        if verb == "delete":
            return self.send_json(200, api.delete(r, namespace, name))
        objs, _ = api.list(r, namespace, query)
        for o in objs:
            api.delete(r, namespace, o["metadata"]["name"])
        return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def send_object(self, obj):
        if "as=Table" in self.headers.get("Accept", ""):
            return self.send_json(200, res.table([obj], obj.get("kind"), {"resourceVersion": obj["metadata"]
                                                                           ["resourceVersion"]}))
        self.send_json(200, obj)

    def send_list(self, r, objs, revision):
        if "as=Table" in self.headers.get("Accept", ""):
            return self.send_json(200, res.table(objs, r.kind, {"resourceVersion": revision}))
        self.send_json(200, {"kind": f"{r.kind}List", "apiVersion": r.group_version,
                             "metadata": {"resourceVersion": revision}, "items": objs})

    def watch(self, api, r, namespace, name, query):
        """A polling watch: events as JSON lines until timeoutSeconds (default 300 s)."""
        timeout = min(int(query.get("timeoutSeconds", ["300"])[0]), 1800)
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        seen, deadline = {}, time.monotonic() + timeout
        if name:
            query = dict(query, fieldSelector=[f"metadata.name={name}"])
        try:
            while time.monotonic() < deadline:
                objs, _ = api.list(r, namespace, query)
                current = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}
                for key, o in current.items():
                    rv = int(o["metadata"]["resourceVersion"])
                    if key not in seen and rv > since:
                        self.chunk({"type": "ADDED", "object": o})
                    elif key in seen and seen[key] != rv:
                        self.chunk({"type": "MODIFIED", "object": o})
                for key in set(seen) - set(current):
                    self.chunk({"type": "DELETED", "object": {"kind": r.kind, "apiVersion": r.group_version,
                                                              "metadata": {"name": key[1], "namespace": key[0]}}})
                seen = {k: int(o["metadata"]["resourceVersion"]) for k, o in current.items()}
                time.sleep(0.5)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def chunk(self, event):
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def decode(body):
    return yaml.safe_load(body) if body[:1] not in (b"{", b"[") else json.loads(body)


def forbidden(user, verb, r, namespace, name):
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    what = f'{qualified(r)} "{name}"' if name else qualified(r)
    return ApiError(403, "Forbidden", f'{what} is forbidden: User "{user[0]}" cannot {verb} resource '
                                      f'"{r.plural}" in API group "{r.group}" {where}',
                    {"name": name or "", "kind": r.plural})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api):
        self.api = api
        self.tls = tlsserving.DynamicTLS(api.flags["tls-cert-file"], api.flags["tls-private-key-file"],
                                         api.flags["client-ca-file"])
        self.serials = tlsserving.Serials()
        super().__init__((api.bind, api.port), Handler)

    def get_request(self):
        # each connection gets the serving certificate and client CAs as they are on disk now
        conn, address = self.socket.accept()
        return self.tls.context().wrap_socket(conn, server_side=True, do_handshake_on_connect=False), address


def check_flags(flags):
    """Refuse to start the way kube-apiserver does when its inputs are missing or broken."""
    missing = [f for f in REQUIRED_FLAGS if not flags.get(f)]
    if missing:
        raise DoubleError(f"[{', '.join('--' + m + ' must be specified' for m in missing)}]")
    for flag in ("tls-cert-file", "tls-private-key-file", "client-ca-file", "service-account-key-file",
                 "etcd-cafile", "etcd-certfile", "etcd-keyfile"):
        path = flags.get(flag)
        if path and not host(path).is_file():
            raise DoubleError(f"--{flag}: open {path}: no such file or directory")
    startup.ca_bundle("client-ca-bundle", flags["client-ca-file"])
    if flags.get("requestheader-client-ca-file"):
        startup.ca_bundle("request-header", flags["requestheader-client-ca-file"])
    for cert, key in (("proxy-client-cert-file", "proxy-client-key-file"),
                      ("kubelet-client-certificate", "kubelet-client-key")):
        if flags.get(cert) or flags.get(key):
            startup.key_pair(flags.get(cert, ""), flags.get(key, ""))


def main(argv=None):
    flags, _ = flagparse.parse(sys.argv[1:] if argv is None else argv)
    flagsets.refuse_unknown("kube-apiserver", flags)
    try:
        check_flags(flags)
        api = ApiServer(flags)
        api.store.wait_ready(float(os.environ.get("KUBEFAB_DOUBLE_ETCD_WAIT_SECONDS", "60")))
        api.ensure_namespaces()
        server = Server(api)
    except (DoubleError, StoreError, ssl.SSLError, OSError) as e:
        print(f"E run.go: \"command failed\" err=\"{e}\"", file=sys.stderr, flush=True)
        return 1
    # the flags this process runs with, for the tests (the real server logs them as FLAG: lines only at --v=1)
    print(f"kube-apiserver double started with flags: {' '.join(f'--{k}={v}' for k, v in sorted(flags.items()))}",
          flush=True)
    print(f"kube-apiserver double serving on https://{api.bind}:{api.port}", flush=True)
    server.serve_forever()
    return 0
