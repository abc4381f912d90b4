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
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from kubefab import net
from kubefab.components import templates
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
    """The IPv4 pod network kubefab's manifests use (`check` refused any other pod subnet at load time)."""
    return str(net.networks(inv.cluster.pod_subnet)[0])


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
    """The user's manifest file, refused when it cannot be applied (it may have changed since the plan)."""
    try:
        return read(manifest_path(inv.path, inv.cluster.cni_manifest), inv.cluster)
    except KubefabError as e:
        raise KubefabError(f"{inv.path}: [cluster] cni_manifest {e}") from None


def manifest_path(inventory_path, value):
    """Where `cni_manifest` points: relative paths are relative to the inventory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(inventory_path).resolve().parent / path


def check(p, cluster):
    """What the cni phase relies on, checked when the inventory is loaded: the manifest file it applies (a
    regular file of YAML whose pod network is pod_subnet), or kubefab's manifest, which is IPv4 only."""
    if cluster.cni_manifest:
        try:
            read(manifest_path(p.path, cluster.cni_manifest), cluster)
        except KubefabError as e:
            p.add("cluster", "cni_manifest", str(e))
        return
    networks = net.networks(cluster.pod_subnet)
    if cluster.cni in RENDERERS and networks and (len(networks) != 1 or networks[0].version != 4):
        p.add("cluster", "pod_subnet", f"{cluster.pod_subnet} is not IPv4 only: kubefab's {cluster.cni} manifest is "
                                       'IPv4 only — set cni = "none" and apply your own network, or give '
                                       "cni_manifest")


def read(path, cluster):
    """The text of manifest file `path`; a KubefabError saying why it cannot be applied for `cluster`."""
    if cluster.cni == "none":
        raise KubefabError('is set but cni = "none" — name the CNI the file installs, or remove cni_manifest')
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise KubefabError(f"{path} is not a regular file — name the manifest file itself")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise KubefabError(f"cannot read {path} ({e.strerror}) — fix the path (relative paths are relative to the "
                           "inventory)") from None
    except UnicodeDecodeError:
        raise KubefabError(f"{path} is not UTF-8 text — give a YAML manifest") from None
    except ValueError:          # a NUL byte in the path
        raise KubefabError(f"{str(path)!r} is not a path — fix it") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        networks = list(pod_networks(docs))
    except yaml.YAMLError as e:
        raise KubefabError(f"{path} is not valid YAML: {e}") from None
    except ValueError as e:
        raise KubefabError(f"{path}: net-conf.json is not valid JSON: {e}") from None
    for what, network in networks:
        if network != cluster.pod_subnet:
            raise KubefabError(f"{path}: {what} is {network}, but [cluster] pod_subnet is {cluster.pod_subnet} "
                               "— make them equal (nodes get their pod CIDRs from pod_subnet)")
    return text


def pod_networks(docs):
    """(where, network) for every pod network a manifest sets: flannel's net-conf.json Network, Calico's
    CALICO_IPV4POOL_CIDR and IPPool cidr. ValueError when net-conf.json is not a JSON object."""
    for doc in docs:
        name = f"{doc.get('kind')} {_field(doc, 'metadata', 'name')}"
        data = _field(doc, "data") or {}
        if doc.get("kind") == "ConfigMap" and isinstance(data, dict) and "net-conf.json" in data:
            yield f"{name}: net-conf.json Network", _net_conf(data["net-conf.json"]).get("Network")
        if doc.get("kind") == "IPPool":
            yield f"{name}: spec.cidr", _field(doc, "spec", "cidr")
        for container in _list(_field(doc, "spec", "template", "spec", "containers")):
            for env in _list(_field(container, "env")):
                if _field(env, "name") == "CALICO_IPV4POOL_CIDR":
                    yield f"{name}: {_field(container, 'name')} env CALICO_IPV4POOL_CIDR", env.get("value")


def _field(node, *keys):
    """node[k1][k2]...; None where a level is missing or not a mapping (a manifest is anybody's YAML)."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _list(value):
    return value if isinstance(value, list) else ()


def _net_conf(text):
    conf = json.loads(text) if isinstance(text, str) else None
    if not isinstance(conf, dict):
        raise ValueError("not a JSON object")
    return conf
