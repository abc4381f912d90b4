"""Envoy Gateway's controller, as far as the lab needs it to prove a Gateway (envoyproxy/gateway v1.9.0:
internal/provider/kubernetes, internal/infrastructure/kubernetes/proxy, internal/gatewayapi/status).

It plays only while the envoy-gateway Deployment is available (no running controller, no status), and only for
GatewayClasses naming its controllerName. Each such class is Accepted. For each Gateway of one: every listener's
certificateRefs are resolved as the translator does (a Secret of type kubernetes.io/tls holding tls.crt and tls.key,
whose certificate and key parse and belong together), with its words; a Gateway without a valid listener is not
accepted and gets no proxy. Otherwise the proxy is made as the infra manager makes it: a Deployment and a Service named
`envoy-<namespace>-<name>-<sha256[:8]>` in the controller's namespace, labelled with the owning Gateway, owned by the
GatewayClass, running the Envoy image and the shutdown manager of the controller's EnvoyGateway config and mounting
the `envoy` Secret (the xDS client certificate certgen, here kubefab, provides). The Service is a LoadBalancer unless
the config's envoyProxy says otherwise; the Gateway's addresses are a LoadBalancer's ingress (none in a kubeadm
cluster without a load-balancer controller: Programmed False, AddressNotAssigned) or, for a NodePort, the nodes'
InternalIPs; Programmed turns True once the proxy Deployment has an available replica, with upstream's message.
Proxies whose GatewayClass or Gateway is gone are deleted (the garbage collector's part, for these owner references).
"""

import base64
import hashlib
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .kubeclient import ApiStatus

CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
NAMESPACE = "envoy-gateway-system"
CONTROLLER = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/envoy-gateway"
CONFIG = f"/api/v1/namespaces/{NAMESPACE}/configmaps/envoy-gateway-config"
GROUP = "/apis/gateway.networking.k8s.io/v1"
ENVOY_IMAGE = "docker.io/envoyproxy/envoy:distroless-v1.39.0"          # api/v1alpha1/shared_types.go defaults
SHUTDOWN_IMAGE = "docker.io/envoyproxy/gateway-dev:latest"
LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
          "app.kubernetes.io/managed-by": "envoy-gateway"}
OWNING_NAME = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"


def _get(client, path):
    try:
        return client.get(path)
    except ApiStatus as e:
        if e.code == 404:
            return None
        raise


def _available(deployment):
    return any(c.get("type") == "Available" and c.get("status") == "True"
               for c in ((deployment or {}).get("status") or {}).get("conditions") or [])


def proxy_name(namespace, name):
    """ExpectedResourceHashedName(namespace/name): envoy-<ns>-<name>-<first 8 hex of its sha256> (names of 48
    characters or less, as here)."""
    return f"envoy-{namespace}-{name}-{hashlib.sha256(f'{namespace}/{name}'.encode()).hexdigest()[:8]}"


def sync(client):
    """One pass of the gateway controller."""
    ours = _classes(client)
    gateways = _gateways(client, ours)
    if not ours or not _available(_get(client, CONTROLLER)):
        return
    config = yaml.safe_load(((_get(client, CONFIG) or {}).get("data") or {}).get("envoy-gateway.yaml") or "{}") or {}
    for gc in ours.values():
        _status(client, f"{GROUP}/gatewayclasses/{gc['metadata']['name']}", gc, {"conditions": [
            _condition(gc, "Accepted", True, "Accepted", "Valid GatewayClass")]})
    for gateway in gateways:
        sync_gateway(client, gateway, ours[gateway["spec"]["gatewayClassName"]], config)


def _classes(client):
    classes = (_get(client, f"{GROUP}/gatewayclasses") or {}).get("items", [])
    return {c["metadata"]["name"]: c for c in classes if (c.get("spec") or {}).get("controllerName") == CONTROLLER_NAME}


def _gateways(client, classes):
    return [g for g in (_get(client, f"{GROUP}/gateways") or {}).get("items", [])
            if g["spec"].get("gatewayClassName") in classes]


def collect(client):
    """Delete proxies whose GatewayClass (their owner) or Gateway is gone: the garbage collector's and the
    controller's clean-up, played as one (the controller may be gone with its add-on)."""
    ours = _classes(client)
    gateways = _gateways(client, ours)
    uids = {c["metadata"]["uid"] for c in ours.values()}
    live = {(g["metadata"]["namespace"], g["metadata"]["name"]) for g in gateways}
    selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
    for plural, base in (("deployments", "/apis/apps/v1"), ("services", "/api/v1")):
        for obj in (_get(client, f"{base}/namespaces/{NAMESPACE}/{plural}?labelSelector={selector}") or {}).get(
                "items", []):
            labels, owners = obj["metadata"].get("labels") or {}, obj["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") in uids for o in owners) or \
                    (labels.get(OWNING_NAMESPACE), labels.get(OWNING_NAME)) not in live:
                client.delete_if_present(f"{base}/namespaces/{NAMESPACE}/{plural}/{obj['metadata']['name']}")


def sync_gateway(client, gateway, gc, config):
    meta = gateway["metadata"]
    path = f"{GROUP}/namespaces/{meta['namespace']}/gateways/{meta['name']}"
    listeners = [_listener(client, gateway, spec) for spec in gateway["spec"].get("listeners") or []]
    bad = [name for name, _, ok in listeners if not ok]
    statuses = [status for _, status, _ in listeners]
    if listeners and len(bad) == len(listeners):
        _status(client, path, gateway, {"listeners": statuses, "conditions": [
            _condition(gateway, "Accepted", False, "ListenersNotValid", f"Listeners not valid: {', '.join(bad)}"),
            _condition(gateway, "Programmed", False, "Invalid", "The Gateway has no valid listener")]})
        return
    deployment, service = _proxy(client, gateway, gc, config)
    addresses = _addresses(client, service)
    replicas = (deployment.get("status") or {})
    if not addresses:
        programmed = _condition(gateway, "Programmed", False, "AddressNotAssigned",
                                "No addresses have been assigned to the Gateway")
    elif replicas.get("availableReplicas", 0) > 0:
        programmed = _condition(gateway, "Programmed", True, "Programmed",
                                f"Address assigned to the Gateway, {replicas['availableReplicas']}/"
                                f"{replicas.get('replicas', 0)} envoy replicas available")
    else:
        programmed = _condition(gateway, "Programmed", False, "NoResources", "Envoy replicas unavailable")
    accepted = _condition(gateway, "Accepted", True, "Accepted", "The Gateway has been scheduled by Envoy Gateway") \
        if not bad else _condition(gateway, "Accepted", True, "ListenersNotValid", f"Listeners not valid: "
                                                                                  f"{', '.join(bad)}")
    _status(client, path, gateway, {"addresses": [{"type": "IPAddress", "value": a} for a in addresses],
                                    "listeners": statuses, "conditions": [accepted, programmed]})


def _listener(client, gateway, spec):
    """(name, its status, valid?) with the certificate refs resolved."""
    namespace = gateway["metadata"]["namespace"]
    problem = None
    if spec.get("protocol") in ("HTTPS", "TLS") and ((spec.get("tls") or {}).get("mode") or "Terminate") == \
            "Terminate":
        refs = (spec.get("tls") or {}).get("certificateRefs") or []
        problem = "Listener must have at least 1 TLS certificate ref" if not refs else None
        for i, ref in enumerate(refs):
            problem = problem or _certificate_problem(client, i, ref.get("namespace") or namespace, ref["name"])
    conditions = [_condition(gateway, "Accepted", True, "Accepted", "Listener has been successfully translated"),
                  _condition(gateway, "ResolvedRefs", not problem,
                             "InvalidCertificateRef" if problem else "ResolvedRefs",
                             problem or "Listener has been successfully translated"),
                  _condition(gateway, "Programmed", not problem, "Invalid" if problem else "Programmed",
                             "Listener is invalid, see other Conditions for details." if problem else
                             "Sending translated listener configuration to the data plane")]
    kinds = [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    return spec["name"], {"name": spec["name"], "supportedKinds": kinds, "attachedRoutes": 0,
                          "conditions": conditions}, not problem


def _certificate_problem(client, index, namespace, name):
    """internal/gatewayapi/validate.go's words for a certificate ref that cannot be used, else None."""
    secret = _get(client, f"/api/v1/namespaces/{namespace}/secrets/{name}")
    where = f"certificate refs {index}: Secret {namespace}/{name}"
    if secret is None:
        return f"{where} does not exist."
    if secret.get("type") != "kubernetes.io/tls":
        return f"{where} must be of type kubernetes.io/tls."
    data = secret.get("data") or {}
    if "tls.crt" not in data or "tls.key" not in data:
        return f"{where} must contain tls.crt and tls.key."
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
    except ValueError as e:
        return f"{where} must contain valid tls.crt and tls.key, unable to decode pem data: {e}"
    der = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, der) != \
            key.public_key().public_bytes(serialization.Encoding.DER, der):
        return f"{where} must contain valid tls.crt and tls.key, tls: private key does not match public key"
    return None


def _proxy(client, gateway, gc, config):
    """The proxy's Deployment and Service for `gateway`, created when missing; (deployment, service) as stored."""
    meta = gateway["metadata"]
    name = proxy_name(meta["namespace"], meta["name"])
    labels = dict(LABELS, **{OWNING_NAME: meta["name"], OWNING_NAMESPACE: meta["namespace"],
                             "gateway.envoyproxy.io/owning-gatewayclass": gc["metadata"]["name"]})
    owner = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "name": gc["metadata"]["name"],
              "uid": gc["metadata"]["uid"]}]
    kubernetes = (((config.get("envoyProxy") or {}).get("provider") or {}).get("kubernetes") or {})
    image = ((kubernetes.get("envoyDeployment") or {}).get("container") or {}).get("image") or ENVOY_IMAGE
    shutdown = ((((config.get("provider") or {}).get("kubernetes") or {}).get("shutdownManager") or {}).get("image")
                or SHUTDOWN_IMAGE)
    service_type = (kubernetes.get("envoyService") or {}).get("type") or "LoadBalancer"
    ports = [{"name": f"{l['protocol'].lower()}-{l['port']}", "protocol": "TCP", "port": l["port"],
              "targetPort": 10000 + l["port"] if l["port"] < 1024 else l["port"]}
             for l in gateway["spec"].get("listeners") or []]
    deployment = _ensure(client, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", name, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "ownerReferences": owner},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [
                {"name": "envoy", "image": image, "command": ["envoy"],
                 "volumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": True}]},
                {"name": "shutdown-manager", "image": shutdown, "command": ["envoy-gateway"],
                 "args": ["envoy", "shutdown-manager"]}],
                "volumes": [{"name": "certs", "secret": {"secretName": "envoy"}}]}}}})
    service = _ensure(client, f"/api/v1/namespaces/{NAMESPACE}/services", name, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "ownerReferences": owner},
        "spec": {"type": service_type, "selector": labels, "ports": ports}})
    return deployment, service


def _ensure(client, collection, name, obj):
    found = _get(client, f"{collection}/{name}")
    return found if found is not None else client.create(collection, obj)


def _addresses(client, service):
    spec, status = service.get("spec") or {}, service.get("status") or {}
    if spec.get("type") == "LoadBalancer":
        return [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    if spec.get("type") == "NodePort":
        nodes = (_get(client, "/api/v1/nodes") or {}).get("items", [])
        return [a["address"] for n in nodes for a in (n.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"]
    return [spec["clusterIP"]] if spec.get("clusterIP") not in (None, "", "None") else []


def _condition(obj, kind, ok, reason, message):
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message,
            "observedGeneration": obj["metadata"].get("generation", 1)}


def _status(client, path, obj, status):
    """Update the status subresource (PUT: the verb envoy-gateway's RBAC grants on */status) when it changed."""
    old = obj.get("status") or {}

    def plain(s):
        return {k: ([{f: c.get(f) for f in ("type", "status", "reason", "message")} for c in v or []]
                    if k == "conditions" else v) for k, v in s.items()}
    if any(plain({k: old.get(k)}) != plain({k: v}) for k, v in status.items()):
        stamped = {**old, **status, "conditions": [dict(c, lastTransitionTime=_now()) for c in status["conditions"]]}
        client.request("PUT", f"{path}/status", dict(obj, status=stamped))


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
