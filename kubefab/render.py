"""Every file kubefab puts on a host, rendered locally into `<state>/hosts/<host>/` as it will land.

FILES is the one table of templates: on-host path, mode, which hosts, how each is filled. render()
writes those and the PKI files each host gets (`pki.host_files`) into the tree, with their on-host
modes, removes whatever no longer belongs there, and returns what it wrote so the plan can list it.
"""

import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from kubefab import fsutil, pki, templates, token
from kubefab.errors import KubefabError

KUBEFAB_DIR = "/etc/kubernetes/kubefab"         # kubefab's own files: no kubeadm preflight looks here
INIT_CONFIG = f"{KUBEFAB_DIR}/init.yaml"
JOIN_CONFIG = f"{KUBEFAB_DIR}/join.yaml"
CERTS_D = "/etc/containerd/certs.d"
DIR_MODE = 0o755
DEFAULT_REGISTRY = "registry.k8s.io"
UPSTREAMS = {"docker.io": "https://registry-1.docker.io"}     # where a registry's API really lives
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane:NoSchedule"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
KUBEFAB_KUBELET_ARGS = ("node-ip", "node-labels")

# Files kubeadm must write itself: its preflight fails when they already exist (reference §6.1).
MANIFESTS = tuple(f"/etc/kubernetes/manifests/{name}.yaml"
                  for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"))
JOIN_WRITES = ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf")

# Labels the kubelet may set on its own Node with --node-labels (k/k pkg/kubelet/apis IsKubeletLabel);
# any other label in a kubernetes.io or k8s.io namespace makes the kubelet refuse to start.
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region"))
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
RESTRICTED_NAMESPACES = ("kubernetes.io", "k8s.io")

HOSTS = {
    "all": lambda inv: inv.hosts,
    "control-plane": lambda inv: inv.control_planes,
    "first-control-plane": lambda inv: (inv.first_control_plane,),
    "other-control-planes": lambda inv: inv.control_planes[1:],
    "workers": lambda inv: inv.workers,
}


# -- what the images and values are ---------------------------------------------------------------

def pause_image(inv):
    """kubeadm's sandbox image for this inventory; containerd's sandbox_image must be exactly it."""
    return f"{inv.cluster.image_repository}/pause:{inv.cluster.release.pause}"


def images(inv):
    """The images kubeadm uses, named and ordered as `kubeadm config images list` prints them."""
    c, repo = inv.cluster, inv.cluster.image_repository
    coredns = f"{repo}/coredns/coredns" if repo == DEFAULT_REGISTRY else f"{repo}/coredns"
    return (*(f"{repo}/{name}:v{c.kubernetes_version}" for name in COMPONENTS),
            f"{coredns}:{c.release.coredns}", pause_image(inv), f"{repo}/etcd:{c.release.etcd}")


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
    extra = inv.cluster.kubelet.extra_args
    for name in KUBEFAB_KUBELET_ARGS:
        if name in extra:
            raise KubefabError(f"{inv.path}: [cluster.kubelet] extra_args sets {name!r}, which kubefab sets per "
                               "host (node-ip from internal_address, node-labels from labels) — remove it")
    args = {"node-ip": host.internal_address}
    labels = kubelet_labels(host)
    if labels:
        args["node-labels"] = ",".join(f"{k}={v}" for k, v in labels.items())
    return {**args, **extra}


def taints(host):
    """nodeRegistration.taints: a control-plane-only node keeps kubeadm's taint; the host's own follow."""
    own = [_taint(t) for t in host.taints]
    if host.is_control_plane and not host.is_worker:
        default = _taint(CONTROL_PLANE_TAINT)
        return [default] + [t for t in own if t != default]
    return own


def _taint(text):
    rest, _, effect = text.rpartition(":")
    key, _, value = rest.partition("=")
    return {"key": key, **({"value": value} if value else {}), "effect": effect}


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
        "scheduler_extra_args": _args(c.scheduler.extra_args), "proxy_mode": c.kube_proxy.mode,
    }


def _init_values(inv, host, _):
    return {**_node(inv, host), **_cluster(inv), "token": token.bootstrap_token(inv).reveal(),
            "token_ttl": inv.cluster.token_ttl, "advertise_address": host.internal_address}


def _component_configs(inv):
    c = inv.cluster
    return {"KubeletConfiguration": (f"{inv.path}: [cluster.kubelet] config", c.kubelet.config),
            "KubeProxyConfiguration": (f"{inv.path}: [cluster.kube_proxy] config", c.kube_proxy.config)}


def _join_values(inv, host, _):
    return {**_node(inv, host), "control_plane_endpoint": inv.endpoint,
            "token": token.bootstrap_token(inv).reveal(), "ca_cert_hashes": [token.ca_cert_hash(inv)]}


def _join_control_plane_values(inv, host, item):
    return {**_join_values(inv, host, item), "advertise_address": host.internal_address}


def _containerd_values(inv, host, _):
    return {"sandbox_image": pause_image(inv)}


def registry_dir(registry):
    """containerd's certs.d directory for a registry: 'host:port' becomes 'host_port_' (docs/hosts.md)."""
    name, sep, port = registry.rpartition(":")
    return f"{name}_{port}_" if sep and port.isdigit() else registry


def _registry_hosts_path(registry):
    return f"{CERTS_D}/{registry_dir(registry)}/hosts.toml"


def _registry_hosts(template, inv, host, registry):
    head = templates.fill(template, {"registry": registry, "registry_dir": registry_dir(registry),
                                     "server": UPSTREAMS.get(registry, f"https://{registry}")})
    return head + "".join(templates.fill("containerd/hosts-mirror.toml", {"mirror": url})
                          for url in inv.mirrors.registries[registry])


# -- the table ---------------------------------------------------------------------------------------

def _once(inv):
    return (None,)


def _if_ipvs(inv):
    return (None,) if inv.cluster.kube_proxy.mode == "ipvs" else ()


def _if_ipv6(inv):
    subnets = (inv.cluster.pod_subnet, inv.cluster.service_subnet)
    return (None,) if any(ipaddress.ip_network(s).version == 6 for s in subnets) else ()


def _registries(inv):
    return tuple(inv.mirrors.registries)


def _with(values, overlays=None):
    """Fill the template with values(inv, host, item), component configs from overlays(inv) merged in."""
    def fill(template, inv, host, item):
        return templates.fill(template, values(inv, host, item), overlays(inv) if overlays else None)
    return fill


def _as_is(template, inv, host, item):
    return templates.fill(template, {})


@dataclass(frozen=True)
class FileSpec:
    """One template and where it lands: on-host path, mode, which hosts, how it is filled."""

    template: str                       # under templates/
    path: Union[str, Callable]          # on-host path; or item -> path, for one file per item
    mode: int
    hosts: str                          # a key of HOSTS
    fill: Callable                      # (template, inventory, host, item) -> file text
    items: Callable = _once             # inventory -> items, one file each; () = not for this inventory
    phase: str = "runtime"              # the phase of cluster.up that pushes it: runtime or push

    def on_host(self, item):
        return self.path(item) if callable(self.path) else self.path


FILES = (
    FileSpec("kubeadm/init.yaml", INIT_CONFIG, 0o600, "first-control-plane",
             _with(_init_values, _component_configs), phase="push"),
    FileSpec("kubeadm/join-control-plane.yaml", JOIN_CONFIG, 0o600, "other-control-planes",
             _with(_join_control_plane_values), phase="push"),
    FileSpec("kubeadm/join.yaml", JOIN_CONFIG, 0o600, "workers", _with(_join_values), phase="push"),
    FileSpec("containerd/config.toml", "/etc/containerd/config.toml", 0o644, "all", _with(_containerd_values)),
    FileSpec("containerd/hosts.toml", _registry_hosts_path, 0o644, "all", _registry_hosts, items=_registries),
    FileSpec("system/crictl.yaml", "/etc/crictl.yaml", 0o644, "all", _as_is),
    FileSpec("system/modules-load.conf", "/etc/modules-load.d/k8s.conf", 0o644, "all", _as_is),
    FileSpec("system/modules-load-ipvs.conf", "/etc/modules-load.d/k8s-ipvs.conf", 0o644, "all", _as_is,
             items=_if_ipvs),
    FileSpec("system/sysctl.conf", "/etc/sysctl.d/99-kubernetes.conf", 0o644, "all", _as_is),
    FileSpec("system/sysctl-ipv6.conf", "/etc/sysctl.d/99-kubernetes-ipv6.conf", 0o644, "all", _as_is,
             items=_if_ipv6),
)


def kernel_modules(inv):
    """The modules the modules-load.d files name for `inv`: what `modprobe -a` loads right away."""
    specs = [s for s in FILES if isinstance(s.path, str) and s.path.startswith("/etc/modules-load.d/") and s.items(inv)]
    return tuple(line.strip() for spec in specs for line in templates.load(spec.template).splitlines()
                 if line.strip() and not line.startswith("#"))


# -- the tree ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedFile:
    """One file as it will land on a host, and its copy in the local tree."""

    host: str
    path: str                 # on the host
    mode: int
    size: int
    changed: bool             # this render wrote it (new content or mode)
    local: Path               # <state>/hosts/<host><path>
    source: str               # the template, or the state-dir file it was copied from
    phase: str                # the phase of cluster.up that pushes it


@dataclass(frozen=True)
class _Due:
    host: object
    path: str
    mode: int
    data: bytes
    source: str
    phase: str


def hosts_dir(inv):
    return inv.state_dir / "hosts"


def local_path(inv, host_name, path):
    """Where the on-host `path` of host `host_name` sits in the local tree."""
    return hosts_dir(inv) / host_name / path.lstrip("/")


def render(inv):
    """Write every host's files into <state>/hosts/<host>/ as on the host; call after the PKI exists."""
    due = tuple(d for host in inv.hosts for d in _due(inv, host))
    written = tuple(_write(inv, d) for d in due)
    _prune(inv, due)
    return written


def _due(inv, host):
    files = [_Due(host, spec.on_host(item), spec.mode, _text(spec, inv, host, item).encode(), spec.template,
                  spec.phase) for spec in FILES if _serves(spec, inv, host) for item in spec.items(inv)]
    files += [_Due(host, f.path_on_host, f.mode, Path(f.local_source).read_bytes(),
                   str(Path(f.local_source).relative_to(inv.state_dir)), "push") for f in pki.host_files(inv, host)]
    seen = set()
    for d in files:
        _refuse_forbidden(inv, host, d.path)
        if d.path in seen:
            raise KubefabError(f"{host.name}: two files render to {d.path} — fix kubefab's render table")
        seen.add(d.path)
    return files


def _serves(spec, inv, host):
    return any(h.name == host.name for h in HOSTS[spec.hosts](inv))


def _text(spec, inv, host, item):
    text = spec.fill(spec.template, inv, host, item)
    templates.check(f"{host.name}:{spec.on_host(item)}", text)
    return text


def _refuse_forbidden(inv, host, path):
    preflight = f"its preflight check FileAvailable-{path.replace('/', '-')} fails when the file exists"
    if path in MANIFESTS:
        why = f"kubeadm writes the static pod manifests itself and {preflight}"
    elif path in JOIN_WRITES and host.name != inv.first_control_plane.name:
        why = f"kubeadm join writes it itself and {preflight}"
    elif path.startswith(f"{pki.HOST_PKI}/") and not host.is_control_plane:
        why = ("a worker gets no certificate: kubeadm join fetches the CA by token discovery and its preflight "
               "check FileAvailable--etc-kubernetes-pki-ca.crt fails when the CA is already there")
    else:
        return
    raise KubefabError(f"refusing to put {path} on {host.name}: {why}")


def _write(inv, due):
    local = local_path(inv, due.host.name, due.path)
    _make_dirs(hosts_dir(inv), local.parent)
    changed = fsutil.write_atomic(local, due.data, due.mode, DIR_MODE)
    return RenderedFile(due.host.name, due.path, due.mode, len(due.data), changed, local, due.source, due.phase)


def _make_dirs(top, target):
    """Dirs inside a host's tree get on-host modes; the tree of all hosts holds keys, so it stays private."""
    for d in (*reversed(target.parents), target):
        if d == top:
            fsutil.ensure_dir(d, 0o700)
        elif top in d.parents:
            fsutil.ensure_dir(d, DIR_MODE)


def _prune(inv, due):
    """Remove files no host should get any more, emptied dirs, and trees of hosts gone from the inventory."""
    keep = {local_path(inv, d.host.name, d.path) for d in due}
    roots = {hosts_dir(inv) / h.name for h in inv.hosts}
    for entry in hosts_dir(inv).iterdir():
        if entry not in roots:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for root in roots:
        for path in sorted(root.rglob("*"), reverse=True):
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif path not in keep:
                path.unlink()
