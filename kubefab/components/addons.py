"""The add-ons of `[addons]`, rendered from the pinned manifests in templates/addons/ (applied by the addons phase).

Each add-on is a row of ADDONS: the inventory key that turns it on (the name `invoke addons.remove` takes), its
template, the pinned upstream image of each image placeholder and the Deployments `verify` waits for. Images are
named as the CNI's and kubeadm's are, so the China mirrors and offline installs reach them the same way: one under
registry.k8s.io follows `image_repository` by kubeadm's rule (kept as is on registry.k8s.io, else the last path
component under the repository, as kubeadm names coredns), any other keeps its upstream name, which a
`[mirrors.registries]` entry for its registry serves through containerd's hosts.toml.
"""

from dataclasses import dataclass

from kubefab.components import kubeadm, templates


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
ADDONS = (UI, METRICS)
TEMPLATES = tuple(a.template for a in ADDONS)      # applied through the API, so not in render.FILES
BY_NAME = {a.name: a for a in ADDONS}
UI_ACCOUNT = ("kube-system", "headlamp-admin")     # the ServiceAccount a UI token is for
UI_SERVICE = ("kube-system", "headlamp", 80)


def enabled(inv):
    """The add-ons the inventory turns on, in apply order."""
    on = {"ui": inv.addons.ui == "headlamp", "metrics": inv.addons.metrics}
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


def _service(inv):
    port = inv.addons.ui_node_port
    return {"service_type": "NodePort" if port else "ClusterIP",
            "port": {"port": UI_SERVICE[2], "targetPort": 4466, **({"nodePort": port} if port else {})}}


def manifest(inv, addon):
    """The add-on's manifest for this inventory: images named for its registries, the UI's Service as asked."""
    values = {key: image(inv, ref) for key, ref in addon.images.items()}
    if addon is UI:
        values.update(_service(inv))
    return templates.fill(addon.template, values)
