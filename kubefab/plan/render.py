"""Every file kubefab puts on a host, rendered locally into `<state>/hosts/<host>/` as it will land.

FILES is the one table of templates: on-host path, mode, which hosts, how each is filled. render()
fills those, adds the bundle's certificates and kubeconfigs each host gets (`bundle.host_files`),
refuses any file kubeadm must write itself, and hands the lot to `tree.sync`, which writes them with
their on-host modes and removes whatever no longer belongs there.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import yaml

from kubefab import net, paths
from kubefab.components import kubeadm, requirements, templates
from kubefab.digits import whole
from kubefab.errors import KubefabError
from kubefab.inventory import HOST_SETS
from kubefab.pki import vrrp
from kubefab.state import bundle, removal, tree

UPSTREAMS = {"docker.io": "https://registry-1.docker.io"}     # where a registry's API really lives
# haproxy's health checks of each API server's /readyz: a dead one is out within inter × fall = 3 s (the check's
# own timeout is inter, so a host that stopped answering is out within 4 s), a recovered one back after 2 s
HA_CHECKS = {"inter": "1s", "fall": 3, "rise": 2}
# kube-vip's image keeps its upstream name, as the CNI's do: a [mirrors.registries] "ghcr.io" entry serves it, and
# image_repository (kubeadm's own images) is not applied
KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip:v1.2.3"
VRRP_TOP_PRIORITY = 200     # the first control plane's; each next one a step lower, so the first boot is predictable


# -- containerd's registry mirrors -----------------------------------------------------------------

def registry_dir(registry):
    """containerd's certs.d directory for a registry: 'host:port' becomes 'host_port_' (docs/hosts.md)."""
    name, sep, port = registry.rpartition(":")
    return f"{name}_{port}_" if sep and whole(port) is not None else registry


def _registry_hosts_path(registry):
    return f"{paths.CONTAINERD_CERTS_D}/{registry_dir(registry)}/hosts.toml"


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
    return (None,) if requirements.ipv6(inv) else ()


def _registries(inv):
    return tuple(inv.mirrors.registries)


def _with(values, overlays=None):
    """Fill the template with values(inv, host), component configs from overlays(inv) merged in."""
    def fill(template, inv, host, item):
        return templates.fill(template, values(inv, host), overlays(inv) if overlays else None)
    return fill


def _without_token(template, inv, host, item):
    """The init config with no bootstrapTokens: a control plane's manifests do not depend on the token."""
    docs = list(yaml.safe_load_all(_with(kubeadm.init_values, kubeadm.component_configs)(template, inv, host, item)))
    for doc in docs:
        doc.pop("bootstrapTokens", None)
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=2**31 - 1)


def _as_is(template, inv, host, item):
    return templates.fill(template, {})


def _if_keepalived(inv):
    return (None,) if inv.ha and inv.ha.mode == "keepalived" else ()


def balanced(inv, host, without=(), joining=()):
    """The control planes `host`'s haproxy balances over and its keepalived speaks VRRP with, `host` among them:
    the inventory's, less those in `without` and those node.remove took out unless they are `joining` again (a
    removed host still listed keeps itself in its own files, as when it joins again)."""
    gone = {*without, *removal.read(inv)} - {host.name, *joining}
    return tuple(h for h in inv.control_planes if h.name not in gone)


def haproxy(inv, host, without=(), joining=()):
    """haproxy.cfg of control plane `host`: the endpoint's port, balanced over `balanced(inv, host, without,
    joining)`."""
    head = templates.fill("ha/haproxy.cfg", {"endpoint": inv.endpoint, "port": inv.ha.port, **HA_CHECKS})
    return head + "".join(templates.fill("ha/haproxy-server.cfg", {
        "name": h.name, "address": net.join_endpoint(h.internal_address)})
        for h in balanced(inv, host, without, joining))


def keepalived(inv, host, without=(), joining=()):
    """keepalived.conf of control plane `host`: the VIP, the cluster's VRRP id and password, `host`'s priority by
    its place among `balanced(inv, host, without, joining)` and the others of them as unicast peers."""
    router_id, password = vrrp.credentials(inv)
    vip, planes = net.as_ip(inv.ha.vip), balanced(inv, host, without, joining)
    head = templates.fill("ha/keepalived.conf", {
        "name": host.name, "vip": inv.ha.vip, "prefix": vip.max_prefixlen, "address": host.internal_address,
        "router_id": router_id, "password": password.reveal(),
        "priority": VRRP_TOP_PRIORITY - planes.index(host)})
    peers = "".join(templates.fill("ha/keepalived-peer.conf", {"address": h.internal_address})
                    for h in planes if h is not host)
    return head + peers + templates.fill("ha/keepalived-end.conf", {})


def _if_kube_vip(inv):
    return (None,) if inv.ha and inv.ha.mode == "kube-vip" else ()


def _kube_vip(kubeconfig_file):
    """kube-vip's static pod mounting `kubeconfig_file` as its admin.conf."""
    def fill(template, inv, host, item):
        return templates.fill(template, {"image": KUBE_VIP_IMAGE, "vip": inv.ha.vip, "port": str(inv.ha.port),
                                         "interface": inv.ha.interface,
                                         "kubeconfig": paths.kubeconfig(kubeconfig_file)})
    return fill


def _containerd_values(inv, host):
    return {"sandbox_image": kubeadm.pause_image(inv)}


@dataclass(frozen=True)
class FileSpec:
    """One template and where it lands: on-host path, mode, which hosts, how it is filled."""

    template: str                       # a name under the templates package
    path: Union[str, Callable]          # on-host path; or item -> path, for one file per item
    mode: int
    hosts: str                          # a key of inventory.HOST_SETS
    fill: Callable                      # (template, inventory, host, item) -> file text
    items: Callable = _once             # inventory -> items, one file each; () = not for this inventory
    phase: str = "runtime"              # the phase of cluster.up that pushes it: runtime or push

    def on_host(self, item):
        return self.path(item) if callable(self.path) else self.path


FILES = (
    FileSpec("kubeadm/init.yaml", paths.INIT_CONFIG, 0o600, "control-planes",
             _with(kubeadm.init_values, kubeadm.component_configs), phase="push"),
    FileSpec("kubeadm/init.yaml", paths.CONTROL_PLANE_CONFIG, 0o600, "control-planes", _without_token, phase="push"),
    FileSpec("kubeadm/join-control-plane.yaml", paths.JOIN_CONFIG, 0o600, "other-control-planes",
             _with(kubeadm.join_control_plane_values), phase="push"),
    FileSpec("kubeadm/join.yaml", paths.JOIN_CONFIG, 0o600, "non-control-planes", _with(kubeadm.join_values),
             phase="push"),
    FileSpec("kubelet/kubeadm-flags.env", paths.KUBELET_FLAGS_WANTED, 0o644, "all", _with(kubeadm.kubelet_flags_values),
             phase="push"),
    FileSpec("containerd/config.toml", paths.CONTAINERD_CONFIG, 0o644, "all", _with(_containerd_values)),
    FileSpec("containerd/hosts.toml", _registry_hosts_path, 0o644, "all", _registry_hosts, items=_registries),
    FileSpec("system/crictl.yaml", "/etc/crictl.yaml", 0o644, "all", _as_is),
    FileSpec("system/modules-load.conf", requirements.MODULES_LOAD[0], 0o644, "all", _as_is),
    FileSpec("system/modules-load-ipvs.conf", requirements.MODULES_LOAD[1], 0o644, "all", _as_is, items=_if_ipvs),
    FileSpec("system/sysctl.conf", requirements.SYSCTL_FILE, 0o644, "all", _as_is),
    FileSpec("system/sysctl-ipv6.conf", requirements.SYSCTL_IPV6_FILE, 0o644, "all", _as_is, items=_if_ipv6),
    FileSpec("ha/haproxy.cfg", paths.HAPROXY_CONFIG, 0o644, "control-planes",
             lambda template, inv, host, item: haproxy(inv, host), items=_if_keepalived),
    FileSpec("ha/keepalived.conf", paths.KEEPALIVED_CONFIG, 0o600, "control-planes",
             lambda template, inv, host, item: keepalived(inv, host), items=_if_keepalived),
    # kube-vip: its static pod waits in kubefab's dir and is put in place after kubeadm join (join's preflight
    # wants the manifest directory empty) or init; for init the first control plane's super-admin.conf variant is
    # in place (admin.conf gets its RBAC binding only during init, kube-vip #684) and the admin.conf one after
    FileSpec("ha/kube-vip.yaml", paths.KUBE_VIP_STAGED, 0o600, "control-planes", _kube_vip("admin.conf"),
             items=_if_kube_vip, phase="push"),
    FileSpec("ha/kube-vip.yaml", paths.KUBE_VIP_INIT, 0o600, "first-control-plane", _kube_vip("super-admin.conf"),
             items=_if_kube_vip, phase="push"),
)


def kernel_modules(inv):
    """The modules the modules-load.d files name for `inv`: what `modprobe -a` loads right away."""
    persisted = requirements.persisted(requirements.KERNEL_MODULES)
    specs = [s for s in FILES if s.path in persisted and s.items(inv)]
    return tuple(line.strip() for spec in specs for line in templates.load(spec.template).splitlines()
                 if line.strip() and not line.startswith("#"))


# -- rendering ---------------------------------------------------------------------------------------

def render(inv):
    """Write every host's files into <state>/hosts/<host>/ as on the host; call after the PKI exists."""
    serving = {name: {h.name for h in hosts(inv)} for name, hosts in HOST_SETS.items()}
    return tree.sync(inv, tuple(d for host in inv.hosts for d in _due(inv, host, serving)))


def _due(inv, host, serving):
    files = [tree.Due(host.name, spec.on_host(item), spec.mode, _text(spec, inv, host, item).encode(), spec.template,
                      spec.phase) for spec in FILES if host.name in serving[spec.hosts] for item in spec.items(inv)]
    files += [tree.Due(host.name, f.path_on_host, f.mode, Path(f.local_source).read_bytes(),
                       str(Path(f.local_source).relative_to(inv.state_dir)), "push") for f in bundle.host_files(inv, host)]
    seen = set()
    for d in files:
        _refuse_forbidden(inv, host, d.path)
        if d.path in seen:
            raise KubefabError(f"{host.name}: two files render to {d.path} — fix kubefab's render table")
        seen.add(d.path)
    return files


def _text(spec, inv, host, item):
    text = spec.fill(spec.template, inv, host, item)
    templates.check(f"{host.name}:{spec.on_host(item)}", text)
    return text


def _refuse_forbidden(inv, host, path):
    preflight = f"its preflight check FileAvailable-{path.replace('/', '-')} fails when the file exists"
    if path in paths.MANIFESTS:
        why = f"kubeadm writes the static pod manifests itself and {preflight}"
    elif path in paths.JOIN_WRITES and host.name != inv.first_control_plane.name:
        why = f"kubeadm join writes it itself and {preflight}"
    elif path.startswith(f"{paths.PKI}/") and not host.is_control_plane:
        why = ("a worker gets no certificate: kubeadm join fetches the CA by token discovery and its preflight "
               "check FileAvailable--etc-kubernetes-pki-ca.crt fails when the CA is already there")
    else:
        return
    raise KubefabError(f"refusing to put {path} on {host.name}: {why}")
