"""Paths on the hosts, each spelled once: kubeadm's tree under /etc/kubernetes, kubefab's own files, containerd's."""

import re

_PLAIN = re.compile(r"/[A-Za-z0-9._/@+-]+")

KUBERNETES = "/etc/kubernetes"
PKI = f"{KUBERNETES}/pki"                       # kubeadm's certificatesDir
KUBEFAB = f"{KUBERNETES}/kubefab"               # kubefab's own files: no kubeadm preflight looks here
INIT_CONFIG = f"{KUBEFAB}/init.yaml"
JOIN_CONFIG = f"{KUBEFAB}/join.yaml"
# the init config without its bootstrap token: what a control plane's manifests are made from, so that a new token
# alone reconfigures nothing; and its copy as the manifests were last made from it
CONTROL_PLANE_CONFIG = f"{KUBEFAB}/control-plane.yaml"
APPLIED_CONFIG = f"{KUBEFAB}/control-plane.applied.yaml"

# The kubelet's files kubeadm writes (kubelet-start, `upgrade node phase kubelet-config`); kubefab's copy of the flags
# as they should be, and of those last applied (the kubelet restarted on them)
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_FLAGS_WANTED = f"{KUBEFAB}/kubeadm-flags.env"
KUBELET_FLAGS_APPLIED = f"{KUBEFAB}/kubeadm-flags.applied.env"

# Files kubeadm must write itself: its preflight fails when they already exist (reference §6.1).
def manifest(component):
    """The static pod manifest kubeadm writes for `component` (kube-apiserver, etcd, ...)."""
    return f"{KUBERNETES}/manifests/{component}.yaml"


MANIFESTS = tuple(manifest(name) for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"))
KEPT_MANIFESTS = f"{KUBEFAB}/manifests"         # kubefab's copy of kubeadm's manifests, as kubeadm wrote them


def kept_manifest(component):
    """Where kubefab keeps the static pod manifest of `component` as kubeadm wrote it."""
    return f"{KEPT_MANIFESTS}/{component}.yaml"
JOIN_WRITES = (f"{KUBERNETES}/kubelet.conf", f"{KUBERNETES}/bootstrap-kubelet.conf")

CONTAINERD_CONFIG = "/etc/containerd/config.toml"
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
HAPROXY_SOCKET = "/run/haproxy/admin.sock"      # haproxy's admin socket, root's only: cluster.status reads it
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"
KEEPALIVED_INTERFACE = "/etc/keepalived/kubefab-interface.conf"   # the VRRP interface, found on the host
KUBE_VIP = manifest("kube-vip")                   # kube-vip mode's static pod, on admin.conf
KUBE_VIP_STAGED = f"{KUBEFAB}/kube-vip.yaml"        # put in place after kubeadm init or join
KUBE_VIP_INIT = f"{KUBEFAB}/kube-vip-init.yaml"     # ... and its variant on super-admin.conf, during kubeadm init
CONTAINERD_CERTS_D = "/etc/containerd/certs.d"  # containerd's registry host directories (config_path)


def kubeconfig(file):
    """Where kubeadm keeps kubeconfig `file` (admin.conf, scheduler.conf, ...) on a host."""
    return f"{KUBERNETES}/{file}"


def in_pki(name):
    """Where file `name` of kubeadm's PKI (e.g. 'etcd/ca.crt') sits on a host."""
    return f"{PKI}/{name}"
# the lines around kubefab's block of node names in /etc/hosts
HOSTS_BEGIN, HOSTS_END = "# BEGIN kubefab nodes", "# END kubefab nodes"


def plain(path, what):
    """`path`, when it is absolute and plain enough to travel in a host script unquoted; else a ValueError
    saying it cannot `what` (e.g. "push to") it."""
    if not _PLAIN.fullmatch(path):
        raise ValueError(f"cannot {what} {path!r}: only plain path characters are allowed")
    return path
