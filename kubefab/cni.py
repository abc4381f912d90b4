"""The CNI manifest for `[cluster] cni`, rendered from templates/cni/ with the inventory's pod subnet.

The pod network is filled in from `pod_subnet`, the same value kubeadm's podSubnet gets, so the two
cannot disagree. Images keep their upstream names on docker.io, where both projects publish: a
`[mirrors.registries] "docker.io"` entry (containerd's hosts.toml) then serves them, which is how
the China and offline setups reach them. `image_repository` is not applied: it names kubeadm's own
images (registry.aliyuncs.com/google_containers, say), a namespace that holds no flannel or calico.
`cni = "none"` renders nothing: the user applies a network of their own. `cni_manifest` names a
file to apply instead (e.g. a newer upstream release); its pod network is checked against pod_subnet.
"""

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from kubefab import net, templates
from kubefab.errors import KubefabError

FLANNEL, CALICO, CALICO_CRD = "cni/flannel.yaml", "cni/calico.yaml", "cni/calico-crd.yaml"
TEMPLATES = (FLANNEL, CALICO, CALICO_CRD)       # applied through the API, so not in render.FILES
FLANNEL_IMAGES = {"flannel_image": "docker.io/flannel/flannel:v0.27.3",
                  "cni_plugin_image": "docker.io/flannel/flannel-cni-plugin:v1.7.1-flannel1"}
CALICO_IMAGES = {"cni_image": "docker.io/calico/cni:v3.29.3",
                 "node_image": "docker.io/calico/node:v3.29.3",
                 "controllers_image": "docker.io/calico/kube-controllers:v3.29.3"}


@dataclass(frozen=True)
class Crd:
    kind: str
    plural: str
    namespaced: bool = False
    group: str = "crd.projectcalico.org"
    version: str = "v1"
    status: bool = False           # has a status subresource


# Calico v3.29's CustomResourceDefinitions (upstream manifests/calico.yaml, kdd-crds)
CALICO_CRDS = (
    Crd("BGPConfiguration", "bgpconfigurations"), Crd("BGPFilter", "bgpfilters"), Crd("BGPPeer", "bgppeers"),
    Crd("BlockAffinity", "blockaffinities"), Crd("CalicoNodeStatus", "caliconodestatuses", status=True),
    Crd("ClusterInformation", "clusterinformations"), Crd("FelixConfiguration", "felixconfigurations"),
    Crd("GlobalNetworkPolicy", "globalnetworkpolicies"), Crd("GlobalNetworkSet", "globalnetworksets"),
    Crd("HostEndpoint", "hostendpoints"), Crd("IPAMBlock", "ipamblocks"), Crd("IPAMConfig", "ipamconfigs"),
    Crd("IPAMHandle", "ipamhandles"), Crd("IPPool", "ippools"), Crd("IPReservation", "ipreservations"),
    Crd("KubeControllersConfiguration", "kubecontrollersconfigurations", status=True),
    Crd("NetworkPolicy", "networkpolicies", namespaced=True), Crd("NetworkSet", "networksets", namespaced=True),
    Crd("Tier", "tiers"),
    Crd("AdminNetworkPolicy", "adminnetworkpolicies", group="policy.networking.k8s.io", version="v1alpha1",
        status=True),
)


def _pod_network(inv):
    networks = net.networks(inv.cluster.pod_subnet)
    if len(networks) != 1 or networks[0].version != 4:
        raise KubefabError(f"{inv.path}: [cluster] pod_subnet {inv.cluster.pod_subnet} is not IPv4 only: kubefab's "
                           f'{inv.cluster.cni} manifest is IPv4 only — set cni = "none" and apply your own network')
    return str(networks[0])


def flannel(inv):
    """flannel's manifest: net-conf.json's Network is the pod subnet; nftables masquerading with kube-proxy's."""
    net_conf = {"Network": _pod_network(inv), "EnableNFTables": inv.cluster.kube_proxy.mode == "nftables",
                "Backend": {"Type": "vxlan"}}
    return templates.fill(FLANNEL, {"net_conf": json.dumps(net_conf, indent=2) + "\n",
                                               **FLANNEL_IMAGES})


def calico(inv):
    """Calico's CRDs and manifest: the default IPv4 pool is the pod subnet."""
    crds = [templates.fill(CALICO_CRD, _crd_values(crd)) for crd in CALICO_CRDS]
    body = templates.fill(CALICO, {"pool_cidr": _pod_network(inv), **CALICO_IMAGES})
    return "---\n".join(crds + [body])


def _crd_values(crd):
    return {"name": f"{crd.plural}.{crd.group}", "group": crd.group, "kind": crd.kind,
            "list_kind": f"{crd.kind}List", "plural": crd.plural, "singular": crd.kind.lower(),
            "scope": "Namespaced" if crd.namespaced else "Cluster", "version": crd.version,
            "subresources": {"status": {}} if crd.status else {}}


RENDERERS = {"flannel": flannel, "calico": calico}


@dataclass(frozen=True)
class Advertised:
    """Where a CNI records on each Node the address other nodes tunnel its pods' traffic to, and how to set it."""

    annotation: str
    fix: str


# flannel: pkg/subnet/kube's public-ip; calico: the Kubernetes datastore's node BGP address (libcalico-go's
# k8s node resource, address/prefix)
ADVERTISED = {
    "flannel": Advertised("flannel.alpha.coreos.com/public-ip",
                          "give flanneld `--iface=$(NODE_IP)` with NODE_IP from the pod's status.hostIP (kubefab's "
                          "manifest does), or `--iface=` the interface that holds internal_address"),
    "calico": Advertised("projectcalico.org/IPv4Address",
                         "set calico-node's IP_AUTODETECTION_METHOD to kubernetes-internal-ip (kubefab's manifest "
                         "does)"),
}


def advertised(node, spec):
    """The address Node object `node` advertises to the pod network, as `spec` (an Advertised) records it; ''."""
    value = ((node.get("metadata") or {}).get("annotations") or {}).get(spec.annotation, "")
    return value.split("/")[0]


def advertise_problem(inv, host, address):
    """Why `host`'s pods are unreachable from other nodes when it advertises `address`, or None."""
    try:
        same = ipaddress.ip_address(address) == ipaddress.ip_address(host.internal_address)
    except ValueError:
        same = False
    if same:
        return None
    spec, source = ADVERTISED[inv.cluster.cni], inv.cluster.cni_manifest or f"kubefab's {inv.cluster.cni} manifest"
    return (f"{host.name} advertises {address} to the pod network ({spec.annotation}), not its internal_address "
            f"{host.internal_address}: pods on other nodes cannot reach its pods (a NAT adapter's address, the "
            f"same on every VirtualBox VM, is the usual cause) — in {source}, {spec.fix}")


def manifest(inv):
    """The manifest to apply for the inventory's CNI: kubefab's, the file `cni_manifest` names, or '' for "none"."""
    if inv.cluster.cni_manifest:
        return from_file(inv)
    render = RENDERERS.get(inv.cluster.cni)
    return render(inv) if render else ""


def from_file(inv):
    """The user's manifest file, refused when its pod network disagrees with pod_subnet."""
    path = Path(inv.cluster.cni_manifest).expanduser()
    path = path if path.is_absolute() else inv.path.resolve().parent / path
    where = f"{inv.path}: [cluster] cni_manifest"
    if inv.cluster.cni == "none":
        raise KubefabError(f'{where} is set but cni = "none" — name the CNI the file installs, or remove it')
    try:
        text = path.read_text()
    except OSError as e:
        raise KubefabError(f"{where}: cannot read {path} ({e.strerror}) — fix the path (relative paths are "
                           "relative to the inventory)") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as e:
        raise KubefabError(f"{where}: {path} is not valid YAML: {e}") from None
    try:
        networks = list(pod_networks(docs))
    except ValueError as e:
        raise KubefabError(f"{path}: net-conf.json is not valid JSON: {e}") from None
    for what, network in networks:
        if network != inv.cluster.pod_subnet:
            raise KubefabError(f"{path}: {what} is {network}, but [cluster] pod_subnet is {inv.cluster.pod_subnet} "
                               "— make them equal (nodes get their pod CIDRs from pod_subnet)")
    return text


def pod_networks(docs):
    """(where, network) for every pod network a manifest sets: flannel's net-conf.json Network, Calico's
    CALICO_IPV4POOL_CIDR and IPPool cidr."""
    for doc in docs:
        name = f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
        data = doc.get("data") or {}
        if doc.get("kind") == "ConfigMap" and "net-conf.json" in data:
            yield f"{name}: net-conf.json Network", json.loads(data["net-conf.json"]).get("Network")
        if doc.get("kind") == "IPPool":
            yield f"{name}: spec.cidr", (doc.get("spec") or {}).get("cidr")
        pod = (((doc.get("spec") or {}).get("template") or {}).get("spec")) or {}
        for container in pod.get("containers") or ():
            for env in container.get("env") or ():
                if env.get("name") == "CALICO_IPV4POOL_CIDR":
                    yield f"{name}: {container.get('name')} env CALICO_IPV4POOL_CIDR", env.get("value")

