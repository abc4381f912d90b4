"""The add-ons of `[addons]`, rendered from the pinned manifests in templates/addons/ (applied by the addons phase).

Each add-on is a row of ADDONS: the inventory key that turns it on (the name `invoke addons.remove` takes), its
template, the pinned upstream image of each image placeholder and the Deployments `verify` waits for. Images are
named as the CNI's and kubeadm's are, so the China mirrors and offline installs reach them the same way: one under
registry.k8s.io follows `image_repository` by kubeadm's rule (kept as is on registry.k8s.io, else the last path
component under the repository, as kubeadm names coredns), any other keeps its upstream name, which a
`[mirrors.registries]` entry for its registry serves through containerd's hosts.toml.
"""

import base64
from dataclasses import dataclass

import yaml

from kubefab import net
from kubefab.components import kubeadm, templates
from kubefab.pki import addons as addon_pki


@dataclass(frozen=True)
class AddOn:
    name: str                   # the [addons] key that enables it, and what addons.remove takes
    component: str              # what it installs, as reports say it
    template: str
    images: dict                # placeholder -> pinned upstream image
    deployments: tuple          # (namespace, name) of the Deployments that must become available


UI = AddOn("ui", "headlamp", "addons/headlamp.yaml", {"headlamp_image": "ghcr.io/headlamp-k8s/headlamp:v0.39.0"},
           (("kube-system", "headlamp"),))
METRICS = AddOn("metrics", "metrics-server", "addons/metrics-server.yaml",
                {"metrics_server_image": "registry.k8s.io/metrics-server/metrics-server:v0.8.0"},
                (("kube-system", "metrics-server"),))
GATEWAY = AddOn("gateway", "envoy-gateway", "addons/envoy-gateway.yaml",
                {"envoy_gateway_image": "docker.io/envoyproxy/gateway:v1.9.0",
                 "envoy_image": "docker.io/envoyproxy/envoy:distroless-v1.39.0"},
                ((addon_pki.NAMESPACE, "envoy-gateway"),))
ADDONS = (UI, METRICS, GATEWAY)
# `invoke addons.sample`, on the gateway: applied on request, recorded and removed as an add-on of its own
SAMPLE = AddOn("sample", "echo sample", "addons/gateway-sample.yaml",
               {"echo_image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}, (("default", "echo"),))
TEMPLATES = tuple(a.template for a in (*ADDONS, SAMPLE))      # applied through the API, so not in render.FILES
BY_NAME = {a.name: a for a in ADDONS}
UI_ACCOUNT = ("kube-system", "headlamp-admin")     # the ServiceAccount a UI token is for
UI_SERVICE = ("kube-system", "headlamp", 80)
GATEWAY_CLASS = "gateway.envoyproxy.io/gatewayclass-controller"     # envoy-gateway's controllerName
WEB = (addon_pki.NAMESPACE, "web")                  # the Gateway, with its HTTPS listener
TLS_SECRET = "web-tls"                              # its certificate, in the Gateway's namespace


def enabled(inv):
    """The add-ons the inventory turns on, in apply order."""
    on = {"ui": inv.addons.ui == "headlamp", "metrics": inv.addons.metrics,
          "gateway": inv.addons.gateway == "envoy-gateway"}
    return tuple(a for a in ADDONS if on[a.name])


def image(inv, ref):
    """`ref` (a pinned upstream image) as this inventory's nodes pull it."""
    repo = inv.cluster.image_repository
    registry, _, path = ref.partition("/")
    if registry != kubeadm.DEFAULT_REGISTRY or repo == kubeadm.DEFAULT_REGISTRY:
        return ref
    return f"{repo}/{path.rsplit('/', 1)[-1]}"


def images(inv, addon):
    return tuple(image(inv, ref) for ref in addon.images.values())


def node_images(inv):
    """Every image the enabled add-ons run (the sample's with the gateway), as the nodes pull them: what the runtime
    phase pre-pulls."""
    chosen = (*enabled(inv), *((SAMPLE,) if GATEWAY in enabled(inv) else ()))
    return tuple(dict.fromkeys(i for a in chosen for i in images(inv, a)))


def _service(inv):
    port = inv.addons.ui_node_port
    return {"service_type": "NodePort" if port else "ClusterIP",
            "port": {"port": UI_SERVICE[2], "targetPort": 4466, **({"nodePort": port} if port else {})}}


def manifest(inv, addon):
    """The add-on's manifest for this inventory: images named for its registries, the UI's Service as asked."""
    values = {key: image(inv, ref) for key, ref in addon.images.items()}
    if addon is UI:
        values.update(_service(inv))
    if addon is SAMPLE:
        values["hostnames"] = [n for n in inv.addons.tls.issue if not net.as_ip(n)]     # a route takes no address
    if addon is GATEWAY:
        envoy = values.pop("envoy_image")
        values.update(envoy_gateway_config=envoy_gateway_config(values["envoy_gateway_image"], envoy),
                      dns_domain=inv.cluster.dns_domain)
    return templates.fill(addon.template, values)


def envoy_gateway_config(controller_image, envoy_image):
    """envoy-gateway.yaml, the controller's EnvoyGateway config as the helm chart's defaults write it, with the
    images the proxies run (the Envoy proxy, and the controller's own image as their shutdown manager) named for
    this inventory's registries, the proxies' Service a NodePort (upstream's LoadBalancer gets no address on a
    kubeadm cluster without a load-balancer controller, and a Gateway without an address is never Programmed), and
    the topology injector off (its webhook's CA bundle is certgen's work)."""
    return yaml.safe_dump({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyGateway",
        "gateway": {"controllerName": GATEWAY_CLASS},
        "logging": {"level": {"default": "info"}},
        "provider": {"type": "Kubernetes", "kubernetes": {"shutdownManager": {"image": controller_image}}},
        "envoyProxy": {"provider": {"type": "Kubernetes", "kubernetes": {
            "envoyDeployment": {"container": {"image": envoy_image}},
            "envoyService": {"type": "NodePort"}}}},
        "proxyTopologyInjector": {"disabled": True}}, sort_keys=False)


def secret_objects(inv, addon):
    """The Secrets an add-on needs from kubefab's add-on PKI (pki/addons.py), applied beside its manifest but kept
    out of it (manifests are compared and shown; keys are not): envoy-gateway's control-plane certificates and
    HMAC key, in the Secrets its certgen Job would write, and the gateway's TLS secret."""
    if addon is not GATEWAY:
        return ()
    ca = addon_pki.ca_cert(inv)
    out = [_secret(addon_pki.NAMESPACE, name, "kubernetes.io/tls", {"ca.crt": ca, **_tls(addon_pki.pair(inv, cert))})
           for name, cert in addon_pki.XDS.items()]
    out.append(_secret(addon_pki.NAMESPACE, "envoy-oidc-hmac", "Opaque",
                       {"hmac-secret": addon_pki.hmac_key(inv).reveal()}))
    out.append(_secret(WEB[0], TLS_SECRET, "kubernetes.io/tls", _tls(addon_pki.tls_pair(inv))))
    return tuple(out)


def _tls(pair):
    return {"tls.crt": pair[0], "tls.key": pair[1].reveal()}


def _secret(namespace, name, kind, data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "type": kind,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
