"""The add-ons through the API: applied server-side under kubefab's field manager and recorded, waited for until
their Deployments are available, removed by the record, and a short-lived token for the UI's ServiceAccount."""

from dataclasses import dataclass

from kubefab import net, pki
from kubefab.api import apply, kube
from kubefab.components import addons
from kubefab.errors import KubefabError
from kubefab.pki import addons as addon_pki
from kubefab.secret import Secret
from kubefab.state import applied_addons

AVAILABLE_TIMEOUT = 300
MIN_TOKEN_SECONDS = 600         # the TokenRequest API refuses expirationSeconds under 10 minutes
QUIET_WAITS = ("ContainerCreating", "PodInitializing")


@dataclass(frozen=True)
class Installed:
    """One add-on's apply: each object's Applied, in apply order."""

    addon: addons.AddOn
    applied: tuple

    @property
    def written(self):
        return tuple(a for a in self.applied if a.action != apply.UNCHANGED)


def install(api, inv, chosen=None, dry_run=False):
    """Apply every add-on the inventory turns on (or those `chosen`), recording each object as soon as it is
    applied (an interrupted run leaves nothing kubefab wrote unrecorded); one Installed per add-on. An add-on's
    Secrets (keys from the add-on PKI) go in before the objects that mount them. With `dry_run`, only read: what
    apply would do to each object, nothing recorded."""
    done = []
    for addon in addons.enabled(inv) if chosen is None else chosen:
        source = f"add-on {addon.name} ({addon.component})"
        docs = apply.ordered(apply.documents(addons.manifest(inv, addon), source))
        first = [d for d in docs if d["kind"] in apply.FIRST]
        applied = []
        for doc in (*first, *addons.secret_objects(inv, addon), *docs[len(first):]):
            result = apply.apply_object(api, doc, dry_run)
            if not dry_run:
                applied_addons.record(inv, addon.name, [(doc["apiVersion"], doc["kind"], result.namespace,
                                                         result.name)])
            applied.append(result)
        done.append(Installed(addon, tuple(applied)))
    return tuple(done)


def sample(api, inv, dry_run=False):
    """Apply the gateway's sample (an echo server and an HTTPRoute to it), recorded as add-on `sample` (with
    `dry_run`, only read: what apply would do)."""
    if addons.GATEWAY not in addons.enabled(inv):
        raise KubefabError(f"{inv.path}: [addons] gateway is 'none' — the sample routes through the gateway: set "
                           "gateway = \"envoy-gateway\" and run cluster.up first")
    if addons.GATEWAY.name not in applied_addons.read(inv):
        raise KubefabError("the gateway is not installed yet (nothing recorded in "
                           f"{applied_addons.path(inv)}) — run cluster.up first")
    return install(api, inv, (addons.SAMPLE,), dry_run)[0]


def sample_hint(inv):
    """How to reach the sample: the proxy's Service, and curl trusting the add-on CA (or your own certificate)."""
    namespace, gateway = addons.WEB
    name = next((n for n in inv.addons.tls.issue if not net.as_ip(n)), "<a name of your certificate>")
    ca = f"--cacert {pki.paths(inv, addon_pki.CA)[0]} " if inv.addons.tls.issue else ""
    return (f"# the proxy: kubectl -n {namespace} get service -l "
            f"gateway.envoyproxy.io/owning-gateway-name={gateway}\n"
            f"# then: curl {ca}--resolve {name}:443:<its address> https://{name}/hostname")


def left_over(inv):
    """Names of add-ons recorded in the state dir that the inventory no longer turns on (the sample rides on the
    gateway)."""
    on = {a.name for a in addons.enabled(inv)}
    if addons.GATEWAY.name in on:
        on.add(addons.SAMPLE.name)
    return tuple(name for name in applied_addons.read(inv) if name not in on)


def remove(api, inv, name, dry_run=False):
    """Delete what add-on `name`'s record holds (objects another recorded add-on holds too are kept), last applied
    first, then forget it; the objects that were there, as (kind, namespace, name). With `dry_run`, only read:
    the objects that would be deleted, and the record is kept."""
    data = applied_addons.read(inv)
    if name not in data:
        known = ", ".join(sorted(data)) or "none"
        raise KubefabError(f"no add-on {name!r} in {applied_addons.path(inv)} (recorded: {known}) — kubefab removes "
                           "only what it applied")
    shared = {o for other, objects in data.items() if other != name for o in objects}
    deleted = []
    for api_version, kind, namespace, obj_name in reversed(data[name]):
        if (api_version, kind, namespace, obj_name) in shared:
            continue
        try:
            resource = api.resource(api_version, kind, timeout=0)
        except kube.Timeout:
            continue            # no longer served (its CRD is gone): nothing of that kind is left
        path = resource.path(namespace, obj_name)
        if api.find(path) is not None if dry_run else api.delete(path, {"propagationPolicy": "Background"}):
            deleted.append((kind, namespace, obj_name))
    if not dry_run:
        applied_addons.forget(inv, name)
    return tuple(deleted)


def wait_available(api, inv, timeout=None):
    """Wait until every add-on Deployment is available (AVAILABLE_TIMEOUT each by default), and the gateway
    programmed when it is one of them; a Timeout naming the first that is not and why. What was waited for, said."""
    timeout = timeout or AVAILABLE_TIMEOUT
    enabled = addons.enabled(inv)
    for addon in enabled:
        for namespace, name in addon.deployments:
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"

            def check():
                deployment = api.find(path)
                if deployment is None:
                    return False, "it does not exist"
                if _available(deployment):
                    return True, None
                return False, why_unavailable(api, deployment)
            kube.until(check, timeout, f"deployment {namespace}/{name} ({addon.component}) did not become available",
                       api.stop)
        if addon is addons.GATEWAY:
            _wait_programmed(api, timeout)
    return "every add-on Deployment available" + (", the gateway programmed" if addons.GATEWAY in enabled else "")


def _wait_programmed(api, timeout):
    """The Gateway's Programmed condition True (its controller has a proxy serving it), else why not."""
    namespace, name = addons.WEB
    path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}"

    def check():
        gateway = api.find(path) or {}
        status = gateway.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        if (conditions.get("Programmed") or {}).get("status") == "True":
            return True, None
        for listener in status.get("listeners") or []:
            for c in listener.get("conditions") or []:
                if c.get("status") == "False":
                    return False, f"listener {listener.get('name')}: {c.get('reason')}: {c.get('message')}"
        worst = conditions.get("Programmed") or conditions.get("Accepted")
        return False, f"{worst.get('reason')}: {worst.get('message')}" if worst else "no status from its controller"
    kube.until(check, timeout, f"gateway {namespace}/{name} (envoy-gateway) was not programmed", api.stop)


def _available(deployment):
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)


def why_unavailable(api, deployment):
    """The reason the API gives: a container's waiting reason (image pull, crash), a pod the scheduler cannot place,
    else the Deployment's own Available condition."""
    namespace = deployment["metadata"]["namespace"]
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods = api.get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}).get("items", [])
    for pod in pods:
        status, name = pod.get("status") or {}, pod["metadata"]["name"]
        for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in QUIET_WAITS:
                return (f"pod {name}: container {c['name']} ({c.get('image')}): {waiting['reason']}"
                        + (f": {waiting['message']}" if waiting.get("message") else ""))
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return f"pod {name}: {cond.get('reason')}: {cond.get('message')}"
    available = [c for c in (deployment.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"]
    if available:
        return f"{available[0].get('reason')}: {available[0].get('message')}"
    return "no pods yet" if not pods else "its pods are not ready yet"


def ui_token(api, seconds):
    """(a Secret token for the UI's ServiceAccount from the TokenRequest API, its expiry as the API gives it)."""
    if seconds < MIN_TOKEN_SECONDS:
        raise KubefabError(f"a token must live at least {MIN_TOKEN_SECONDS // 60} minutes (the TokenRequest API's "
                           "minimum) — give --ttl 10m or more")
    namespace, name = addons.UI_ACCOUNT
    answer = api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}})
    return Secret(answer["status"]["token"]), answer["status"]["expirationTimestamp"]


def ui_url(inv):
    """How to open the UI: its NodePort on the first control plane, else a kubectl port-forward line."""
    port = inv.addons.ui_node_port
    namespace, service, service_port = addons.UI_SERVICE
    if port:
        return f"http://{inv.first_control_plane.address}:{port}/"
    return (f"kubectl -n {namespace} port-forward service/{service} 8080:{service_port}  "
            "then open http://localhost:8080/")
