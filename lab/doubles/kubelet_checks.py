"""What the real kubelet refuses at start-up, in its words: unknown flags, --node-labels outside the
labels a kubelet may set, a config file of the wrong kind, version or field types; and the checks of
--node-ip and the CNI configuration it makes while running.

Sources: k/k cmd/kubelet/app/server.go (flag parsing, "failed to parse kubelet flag"),
cmd/kubelet/app/options/options.go (ValidateKubeletFlags), pkg/kubelet/apis/well_known_labels.go,
pkg/kubelet/kubeletconfig/configfiles/configfiles.go and util/codec/codec.go (config loading),
pkg/kubelet/nodestatus/setters.go (validateNodeIP). FLAGS is the flag column of the kubelet reference page
(kubernetes/website content/en/docs/reference/command-line-tools-reference/kubelet.md, generated for 1.34; the English
1.33 page was not to be had) plus --log-json-info-buffer-size and --log-json-split-stream, which the 1.33 page (its
zh-cn translation, content/zh-cn/.../kubelet.md) lists and the 1.34 generator no longer shows. --register-schedulable
(on neither page) is kept: a flag marked deprecated is hidden from --help and so from the pages, which therefore
cannot show whether 1.33 still parses it, and the double would rather accept it than refuse a flag the kubelet takes.
"""

import ipaddress
import json
import os
import subprocess

import yaml

from . import gotypes, schemas
from .hostfs import DoubleError, host

FLAGS = frozenset("""
address allowed-unsafe-sysctls anonymous-auth authentication-token-webhook authentication-token-webhook-cache-ttl
authorization-mode authorization-webhook-cache-authorized-ttl authorization-webhook-cache-unauthorized-ttl
bootstrap-kubeconfig cert-dir cgroup-driver cgroup-root cgroups-per-qos client-ca-file cloud-provider cluster-dns
cluster-domain config config-dir container-log-max-files container-log-max-size container-runtime-endpoint
contention-profiling cpu-cfs-quota cpu-cfs-quota-period cpu-manager-policy cpu-manager-policy-options
cpu-manager-reconcile-period enable-controller-attach-detach enable-debugging-handlers enable-server
enforce-node-allocatable event-burst event-qps eviction-hard eviction-max-pod-grace-period eviction-minimum-reclaim
eviction-pressure-transition-period eviction-soft eviction-soft-grace-period exit-on-lock-contention
experimental-allocatable-ignore-eviction experimental-mounter-path fail-cgroupv1 fail-swap-on feature-gates
file-check-frequency hairpin-mode healthz-bind-address healthz-port help hostname-override http-check-frequency
image-credential-provider-bin-dir image-credential-provider-config image-gc-high-threshold image-gc-low-threshold
image-service-endpoint kernel-memcg-notification kube-api-burst kube-api-content-type kube-api-qps kube-reserved
kube-reserved-cgroup kubeconfig kubelet-cgroups local-storage-capacity-isolation lock-file log-flush-frequency
log-json-info-buffer-size log-json-split-stream log-text-info-buffer-size log-text-split-stream logging-format
make-iptables-util-chains manifest-url manifest-url-header max-open-files max-pods maximum-dead-containers
maximum-dead-containers-per-container memory-manager-policy minimum-container-ttl-duration
minimum-image-ttl-duration node-ip node-labels node-status-max-images node-status-update-frequency oom-score-adj
pod-cidr pod-infra-container-image pod-manifest-path pod-max-pids pods-per-core port protect-kernel-defaults
provider-id qos-reserved read-only-port register-node register-schedulable register-with-taints registry-burst
registry-qps reserved-cpus reserved-memory resolv-conf root-dir rotate-certificates rotate-server-certificates
runonce runtime-cgroups runtime-request-timeout seccomp-default serialize-image-pulls
streaming-connection-idle-timeout sync-frequency system-cgroups system-reserved system-reserved-cgroup
tls-cert-file tls-cipher-suites tls-min-version tls-private-key-file topology-manager-policy
topology-manager-policy-options topology-manager-scope v version vmodule volume-plugin-dir volume-stats-agg-period
h""".split())

KUBELET_LABELS = ("beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "beta.kubernetes.io/os",
                  "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
                  "kubernetes.io/arch", "kubernetes.io/hostname", "kubernetes.io/os",
                  "node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "topology.kubernetes.io/zone")
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
KUBELET_SCHEME = "pkg/kubelet/apis/config/scheme/scheme.go:33"


def check_flags(flags):
    for name in flags:
        if name.replace("_", "-") not in FLAGS:
            raise DoubleError(f"failed to parse kubelet flag: unknown flag: --{name}" if len(name) > 1 else
                              f"failed to parse kubelet flag: unknown shorthand flag: '{name}' in -{name}")


def _namespace(key):
    return key.split("/", 1)[0] if "/" in key else ""


def _within(namespace, domain):
    return namespace == domain or namespace.endswith("." + domain)


def node_labels(flags):
    """--node-labels as a dict, refused like ValidateKubeletFlags refuses them."""
    labels = dict(pair.split("=", 1) if "=" in pair else (pair, "")
                  for pair in filter(None, flags.get("node-labels", "").split(",")))
    unknown = sorted(k for k in labels
                     if (_within(_namespace(k), "kubernetes.io") or _within(_namespace(k), "k8s.io"))
                     and k not in KUBELET_LABELS
                     and not any(_within(_namespace(k), ns) for ns in KUBELET_LABEL_NAMESPACES))
    if unknown:
        raise DoubleError("failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels specified "
                          f"with --node-labels: [{' '.join(unknown)}]\n--node-labels in the 'kubernetes.io' namespace "
                          f"must begin with an allowed prefix ({', '.join(KUBELET_LABEL_NAMESPACES)}) or be in the "
                          f"specifically allowed set ({', '.join(KUBELET_LABELS)})")
    return labels


def load_config(path):
    """The KubeletConfiguration at `path`, decoded as the kubelet's codec does (unknown fields only logged)."""
    prefix = f"failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, error"
    try:
        text = host(path).read_text()
    except FileNotFoundError:
        raise DoubleError(f"{prefix} failed to read kubelet config file \"{path}\", error: open {path}: no such file "
                          "or directory")
    if not text.strip():
        raise DoubleError(f"{prefix} kubelet config file \"{path}\" was empty")
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DoubleError(f"{prefix} failed to decode: error converting YAML to JSON: {e}")
    kind, api_version = (cfg or {}).get("kind", ""), (cfg or {}).get("apiVersion", "")
    if (api_version, kind) != ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"):
        raise DoubleError(f'{prefix} failed to decode: no kind "{kind}" is registered for version "{api_version}" in '
                          f'scheme "{KUBELET_SCHEME}"')
    error, unknown = gotypes.decode({k: v for k, v in cfg.items() if k not in ("apiVersion", "kind")},
                                    schemas.KUBELET)
    if error:
        raise DoubleError(f"{prefix} failed to decode: {error}")
    if unknown:
        print('I "Using lenient decoding as strict decoding failed" err="strict decoding error: '
              + ", ".join(f'unknown field \\"{f}\\"' for f in unknown) + '"', flush=True)
    return cfg


def host_addresses():
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return {ipaddress.ip_address(line.split()[3].split("/")[0]) for line in out.splitlines() if len(line.split()) > 3}


def validate_node_ip(text):
    """setters.go validateNodeIP: the error the kubelet logs as "Failed to set some node status fields"."""
    ip = ipaddress.ip_address(text)
    for bad, why in ((ip.is_loopback, "nodeIP can't be loopback address"),
                     (ip.is_multicast, "nodeIP can't be a multicast address"),
                     (ip.is_link_local, "nodeIP can't be a link-local unicast address"),
                     (ip.is_unspecified, "nodeIP can't be an all zeros address")):
        if bad:
            return f"failed to validate nodeIP: {why}"
    if ip not in host_addresses():
        return f"failed to validate nodeIP: node IP: \"{ip}\" not found in the host's network interfaces"
    return None


CNI_DIR, CNI_BIN = "/etc/cni/net.d", "/opt/cni/bin"


def cni_status():
    """None when the runtime's network is ready, else the error behind NetworkReady=false: the first config
    of /etc/cni/net.d (libcni's order: *.conf, *.conflist, *.json sorted) must load and have plugins; each
    plugin type must exist in /opt/cni/bin (stricter than containerd for cniVersion < 1.1.0, see README)."""
    d = host(CNI_DIR)
    files = sorted(p for p in d.iterdir() if p.suffix in (".conf", ".conflist", ".json")) if d.is_dir() else []
    if not files:
        return "cni plugin not initialized"
    first = files[0]
    try:
        conf = json.loads(first.read_text())
    except (ValueError, OSError):
        return "cni plugin not initialized"
    plugins = conf.get("plugins") if first.suffix == ".conflist" else [conf]
    if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) and p.get("type") for p in plugins):
        return "cni plugin not initialized"
    for plugin in plugins:
        binary = host(f"{CNI_BIN}/{plugin['type']}")
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            return f'failed to find plugin "{plugin["type"]}" in path [{CNI_BIN}]'
    return None
