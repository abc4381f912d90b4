"""What the plan relies on, checked when the inventory is loaded, before any state file or host changes.

Each rule here used to fail late: the CNI manifest in the cni phase (after init and the joins), taints in
`verify` (after the cluster is up), flags and component configs when kubeadm or the kubelet start, values
unfit for containerd's TOML files while rendering (after the PKI was written). Here each is a problem with
its inventory line. Component flags and configs are `components`; the CNI manifest is `cni.check`.
"""

import re

from kubefab import net
from kubefab.components import cni, configs, kubeadm, templates
from kubefab.inventory import validate

# Kubernetes' names (k8s.io/apimachinery/pkg/util/validation): IsQualifiedName for taint keys (ValidateLabelName)
# and IsValidLabelValue for taint values; validateNodeTaints (pkg/apis/core/validation) adds the effect and that a
# node's taints are unique by key and effect.
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
SUBDOMAIN_MAX, NAME_MAX, LABEL_VALUE_MAX = 253, 63, 63


def check(p, hosts, cluster, mirrors):
    """Add to `p` every problem the later phases would meet."""
    cni.check(p, cluster)
    configs.check(p, cluster)
    for host in hosts:
        _check_taints(p, host)
    _check_placement(p, hosts, cluster)
    _check_rendered_values(p, cluster, mirrors)


# -- taints -----------------------------------------------------------------------------------------

def qualified_name_problem(key):
    """Why `key` is not a Kubernetes qualified name ([prefix/]name), or ''."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "its prefix before '/' is empty"
    if "/" in prefix:
        return "it has more than one '/'"
    if prefix and (len(prefix) > SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"its prefix {prefix!r} is not a lowercase DNS subdomain of at most {SUBDOMAIN_MAX} characters"
    if len(name) > NAME_MAX or not _QUALIFIED_NAME.fullmatch(name):
        return (f"its name {name!r} is not at most {NAME_MAX} of a-z, A-Z, 0-9, '-', '_', '.' starting and ending "
                "alphanumeric")
    return ""


def label_value_problem(value):
    """Why `value` is not a Kubernetes label value, or ''."""
    if not validate.is_label_value(value):
        return (f"value {value!r} is not at most {LABEL_VALUE_MAX} of a-z, A-Z, 0-9, '-', '_', '.' starting and "
                "ending alphanumeric (or empty)")
    return ""


def _check_taints(p, host):
    table = ("hosts", host.name)
    good = True
    for text in host.taints:
        taint = kubeadm.parse_taint(text)
        problems = [] if ":" in text else ["it has no ':Effect'"]
        problems += [m for m in (qualified_name_problem(taint["key"]), label_value_problem(taint.get("value", "")))
                     if m]
        if taint["effect"] not in validate.TAINT_EFFECTS:
            problems.append(f"its effect {taint['effect']!r} is not one of {', '.join(validate.TAINT_EFFECTS)}")
        if problems:
            good = False
            p.add(table, "taints", f"entry {text!r} must be 'key=value:Effect' (the value optional): "
                                   f"{'; '.join(problems)}")
    if good:
        _check_unique(p, host)


def _check_unique(p, host):
    """The API refuses a node whose taints repeat a key and effect; kubeadm's control-plane taint counts."""
    seen = {}
    for taint in kubeadm.taints(host):
        pair = (taint["key"], taint["effect"])
        if pair in seen:
            theirs = "kubeadm's control-plane taint" if seen[pair] == kubeadm.CONTROL_PLANE_TAINT else repr(seen[pair])
            p.add(("hosts", host.name), "taints", f"{pair[0]}:{pair[1]} appears twice (with {theirs}): a node's taints "
                                                  "are unique by key and effect — keep one")
        seen.setdefault(pair, _text(taint))


def _text(taint):
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint['key']}{value}:{taint['effect']}"


# -- capacity and placement -------------------------------------------------------------------------

def _check_placement(p, hosts, cluster):
    pods, services = net.networks(cluster.pod_subnet) or (), net.networks(cluster.service_subnet) or ()
    endpoint = net.as_ip(net.endpoint_parts(cluster.control_plane_endpoint)[0]) if cluster.control_plane_endpoint \
        else None
    for key, nets in (("pod_subnet", pods), ("service_subnet", services)):
        for n in nets:
            if endpoint and endpoint.version == n.version and endpoint in n:
                p.add("cluster", "control_plane_endpoint",
                      f"{endpoint} lies inside {key} {n}: that address belongs to pods or services — use an address "
                      "of the host network")
    for pod in pods:
        mask, origin = node_mask(cluster, pod, len(pods) == 2)
        if mask is None or mask < pod.prefixlen:
            continue
        ranges = 2 ** (mask - pod.prefixlen)
        if ranges < len(hosts):
            wanted = mask - (len(hosts) - 1).bit_length()
            p.add("cluster", "pod_subnet", f"{pod} holds {ranges} node range(s) of /{mask} ({origin}) but the "
                                           f"inventory has {len(hosts)} hosts, each of which gets one — use a "
                                           f"/{wanted} or larger pod subnet, or smaller node ranges")


def node_mask(cluster, pod, dual_stack):
    """(prefix length, where it comes from) of the range kube-controller-manager gives each node out of `pod`;
    (None, '') when the flag is no whole number. Its setNodeCIDRMaskSizes: single-stack, --node-cidr-mask-size
    wins over the per-family flag; dual-stack, only the per-family flags count."""
    args = {configs.normalized(k): v for k, v in cluster.controller_manager.extra_args.items()}
    family = f"{validate.NODE_MASK_FLAG}-ipv{pod.version}"
    for flag in ((family,) if dual_stack else (validate.NODE_MASK_FLAG, family)):
        if flag in args:
            value = args[flag]
            number = str(value) if not isinstance(value, bool) and re.fullmatch(r"[0-9]{1,3}", str(value)) else None
            return (int(number) if number else None), f"[cluster.controller_manager] extra_args {flag!r}"
    return validate.NODE_MASKS[pod.version], f"the IPv{pod.version} default"


# -- values that land in rendered files ------------------------------------------------------------

def _check_rendered_values(p, cluster, mirrors):
    """containerd's config.toml and hosts.toml carry image_repository and the mirrors inside quoted TOML strings,
    where a quote, backslash or control character cannot stand; and every rendered file is refused when it holds
    what looks like an unfilled placeholder ('${', '{{'), so no inventory value may."""
    fix = "— give it without quotes, backslashes, line breaks or other control characters"
    if not templates.is_plain(cluster.image_repository):
        p.add("cluster", "image_repository", f"{cluster.image_repository!r} cannot stand in containerd's "
                                             f"config.toml (sandbox_image) {fix}")
    for registry, urls in mirrors.registries.items():
        for value in (registry, *urls):
            if not templates.is_plain(value):
                p.add("mirrors.registries", registry, f"{value!r} cannot stand in containerd's hosts.toml {fix}")
    for table, key, at, value in _strings(cluster, mirrors):
        if templates.looks_unfilled(value):
            p.add(table, key, f"{value!r} holds '${{' or '{{{{', which kubefab's check of every rendered file takes "
                              "for a placeholder left unfilled — write it without", at=at)


def _strings(cluster, mirrors):
    """(table, key, path inside it, text) of every free-form string that reaches a rendered file."""
    yield "cluster", "image_repository", (), cluster.image_repository
    for registry, urls in mirrors.registries.items():
        yield from (("mirrors.registries", registry, (), v) for v in (registry, *urls))
    for key, table in configs.COMPONENT_TABLES.items():
        for name, value in getattr(cluster, key).extra_args.items():
            yield from ((table, "extra_args", (name,), text) for text in (name, str(value)))
    for config in configs.CONFIGS:
        yield from ((config.table, "config", at, text) for at, text in _texts(config.settings(cluster)))


def _texts(node, at=()):
    """(key path, text) of every key and string inside a config value."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*at, key), str(key)
            yield from _texts(value, (*at, key))
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value, at)
    elif isinstance(node, str):
        yield at, node
