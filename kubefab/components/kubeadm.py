"""What kubeadm is told for an inventory: images, kubelet flags and labels, taints, and the values of its configs.

The values of kubeadm/init.yaml and the join configs come from here (`init_values`, `join_values`,
`join_control_plane_values`); `render` fills the templates with them.
"""

import hashlib

import yaml

from kubefab.components import templates
from kubefab.pki import token

DEFAULT_REGISTRY = "registry.k8s.io"
CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"      # nodeRegistration.criSocket of kubeadm's configs
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane:NoSchedule"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")

# Labels the kubelet may set on its own Node with --node-labels (k/k pkg/kubelet/apis IsKubeletLabel);
# any other label in a kubernetes.io or k8s.io namespace makes the kubelet refuse to start.
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region"))
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
RESTRICTED_NAMESPACES = ("kubernetes.io", "k8s.io")


# -- images ----------------------------------------------------------------------------------------

def pause_image(inv):
    """kubeadm's sandbox image for this inventory; containerd's sandbox_image must be exactly it."""
    return f"{inv.cluster.image_repository}/pause:{inv.cluster.release.pause}"


def images(inv):
    """The images kubeadm uses, named and ordered as `kubeadm config images list` prints them."""
    c, repo = inv.cluster, inv.cluster.image_repository
    coredns = f"{repo}/coredns/coredns" if repo == DEFAULT_REGISTRY else f"{repo}/coredns"
    return (*(f"{repo}/{name}:v{c.kubernetes_version}" for name in COMPONENTS),
            f"{coredns}:{c.release.coredns}", pause_image(inv), f"{repo}/etcd:{c.release.etcd}")


# -- a node's registration: kubelet flags, labels, taints ------------------------------------------

def kubelet_may_set(label):
    """True if a kubelet may put `label` on its own Node; the rest is applied through the API."""
    namespace = label.rpartition("/")[0]
    if not _within(namespace, RESTRICTED_NAMESPACES):
        return True
    return label in KUBELET_LABELS or _within(namespace, KUBELET_LABEL_NAMESPACES)


def _within(namespace, domains):
    return any(namespace == d or namespace.endswith(f".{d}") for d in domains)


def kubelet_labels(host):
    """The host's labels the kubelet sets at registration (`node-labels`)."""
    return {k: v for k, v in host.labels.items() if kubelet_may_set(k)}


def kubelet_args(inv, host):
    """kubeletExtraArgs of `host`: node-ip, allowed node-labels, then [cluster.kubelet] extra_args."""
    args = {"node-ip": host.internal_address}
    labels = kubelet_labels(host)
    if labels:
        args["node-labels"] = ",".join(f"{k}={v}" for k, v in labels.items())
    return {**args, **inv.cluster.kubelet.extra_args}


def taints(host):
    """nodeRegistration.taints: a control-plane-only node keeps kubeadm's taint; the host's own follow."""
    own = [parse_taint(t) for t in host.taints]
    if host.is_control_plane and not host.is_worker:
        default = parse_taint(CONTROL_PLANE_TAINT)
        return [default] + [t for t in own if t != default]
    return own


def parse_taint(text):
    """'key=value:Effect' (or 'key:Effect') as a v1 Taint."""
    rest, _, effect = text.rpartition(":")
    key, _, value = rest.partition("=")
    return {"key": key, **({"value": value} if value else {}), "effect": effect}


# -- the values of the kubeadm configs -------------------------------------------------------------

def _args(mapping):
    """v1beta4 extraArgs: a list of {name, value}, values as strings ('true', '30')."""
    return [{"name": k, "value": str(v).lower() if isinstance(v, bool) else str(v)} for k, v in mapping.items()]


def _hours(days):
    return f"{days * 24}h"


def _node(inv, host):
    return {"node_name": host.name, "kubelet_extra_args": _args(kubelet_args(inv, host)), "taints": taints(host)}


def _cluster(inv):
    c = inv.cluster
    return {
        "kubernetes_version": f"v{c.kubernetes_version}", "cluster_name": c.name,
        "control_plane_endpoint": inv.endpoint, "image_repository": c.image_repository,
        "encryption_algorithm": c.encryption_algorithm,
        "certificate_validity_period": _hours(c.cert_validity_days),
        "ca_certificate_validity_period": _hours(c.ca_validity_days),
        "service_subnet": c.service_subnet, "pod_subnet": c.pod_subnet, "dns_domain": c.dns_domain,
        "cert_sans": list(c.apiserver.cert_sans), "apiserver_extra_args": _args(c.apiserver.extra_args),
        "controller_manager_extra_args": _args(c.controller_manager.extra_args),
        "scheduler_extra_args": _args(c.scheduler.extra_args), **component_values(c),
    }


def component_values(c):
    """The values of init.yaml's KubeletConfiguration and KubeProxyConfiguration documents."""
    return {"proxy_mode": c.kube_proxy.mode}


def init_values(inv, host):
    """kubeadm/init.yaml on the first control-plane node: the node, the cluster, the bootstrap token."""
    return {**_node(inv, host), **_cluster(inv), "token": token.bootstrap_token(inv).reveal(),
            "token_ttl": inv.cluster.token_ttl, "advertise_address": host.internal_address}


def kubelet_configuration(c):
    """The KubeletConfiguration document of init.yaml for cluster `c`, [cluster.kubelet] config merged in: what
    upload-config puts in ConfigMap kubelet-config, which every node's /var/lib/kubelet/config.yaml is made from."""
    return templates.document("kubeadm/init.yaml", "KubeletConfiguration", component_values(c),
                              ("[cluster.kubelet] config", c.kubelet.config))


def kube_proxy_configuration(c):
    """The KubeProxyConfiguration document of init.yaml for cluster `c`, [cluster.kube_proxy] config merged in."""
    return templates.document("kubeadm/init.yaml", "KubeProxyConfiguration", component_values(c),
                              ("[cluster.kube_proxy] config", c.kube_proxy.config))


def kubelet_flags_values(inv, host):
    """kubelet/kubeadm-flags.env of `host`: its flags as kubeadm's kubelet-start writes them (the CRI endpoint,
    then kubeletExtraArgs, sorted by name), and the hash of the kubelet configuration they go with."""
    args = {"container-runtime-endpoint": CRI_SOCKET,
            **{a["name"]: a["value"] for a in _args(kubelet_args(inv, host))}}
    config = yaml.safe_dump(kubelet_configuration(inv.cluster), sort_keys=True).encode()
    return {"args": " ".join(f"--{k}={v}" for k, v in sorted(args.items())),
            "kubelet_config": hashlib.sha256(config).hexdigest()}


def component_configs(inv):
    """The inventory's KubeletConfiguration and KubeProxyConfiguration settings: {kind: (where, mapping)}."""
    c = inv.cluster
    return {"KubeletConfiguration": (f"{inv.path}: [cluster.kubelet] config", c.kubelet.config),
            "KubeProxyConfiguration": (f"{inv.path}: [cluster.kube_proxy] config", c.kube_proxy.config)}


def join_values(inv, host):
    """kubeadm/join.yaml on a worker: the node, the endpoint, the token and the CA pin."""
    return {**_node(inv, host), "control_plane_endpoint": inv.endpoint,
            "token": token.bootstrap_token(inv).reveal(), "ca_cert_hashes": [token.ca_cert_hash(inv)]}


def join_control_plane_values(inv, host):
    """kubeadm/join-control-plane.yaml: a worker's join values and the node's own advertise address."""
    return {**join_values(inv, host), "advertise_address": host.internal_address}
