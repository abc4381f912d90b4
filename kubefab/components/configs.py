"""The control-plane components' flags and the kubelet's and kube-proxy's configs, checked against the real ones.

`[cluster.<component>] extra_args` become `--name=value` flags (kubeadm's ArgumentsToCommand); kubelet flags travel
through /var/lib/kubelet/kubeadm-flags.env, which systemd splits at whitespace. `[cluster.kubelet] config` and
`[cluster.kube_proxy] config` are merged into KubeletConfiguration (kubelet.config.k8s.io/v1beta1) and
KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1), which the components decode strictly with Go's types:
the field tables below are those types (k8s.io/kubelet/config/v1beta1/types.go,
k8s.io/kube-proxy/config/v1alpha1/types.go), a struct as a dict, a list of structs as a one-item list.
"""

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from kubefab import net
from kubefab.components import kubeadm, templates
from kubefab.digits import GO_DURATION_MAX_NS, go_duration_ns

# -- Go types, as the messages name them ------------------------------------------------------------

STR, BOOL, INT32, INT64, FLOAT = "string", "bool", "int32", "int64", "float64"
DURATION, ANY = "duration", "any"               # metav1.Duration: a Go duration string; any: not checked here
STRS, MAP_SS, MAP_SB = "[]string", "map[string]string", "map[string]bool"
_INT_BITS = {INT32: 32, INT64: 64}
_SAYS = {STR: "a string", BOOL: "true or false", INT32: "a whole number", INT64: "a whole number",
         FLOAT: "a number", DURATION: "a Go duration such as '10s' or '1m30s'", STRS: "a list of strings",
         MAP_SS: "a table of strings", MAP_SB: "a table of true/false values"}

TYPE_META = {"apiVersion": STR, "kind": STR}
TAINT = {"key": STR, "value": STR, "effect": STR, "timeAdded": STR}
KUBELET_CONFIGURATION = {
    **TYPE_META, "enableServer": BOOL, "staticPodPath": STR, "podLogsDir": STR, "syncFrequency": DURATION,
    "fileCheckFrequency": DURATION, "httpCheckFrequency": DURATION, "staticPodURL": STR,
    "staticPodURLHeader": {"*": STRS}, "address": STR, "port": INT32, "readOnlyPort": INT32, "tlsCertFile": STR,
    "tlsPrivateKeyFile": STR, "tlsCipherSuites": STRS, "tlsMinVersion": STR, "rotateCertificates": BOOL,
    "serverTLSBootstrap": BOOL,
    "authentication": {"x509": {"clientCAFile": STR}, "webhook": {"enabled": BOOL, "cacheTTL": DURATION},
                       "anonymous": {"enabled": BOOL}},
    "authorization": {"mode": STR, "webhook": {"cacheAuthorizedTTL": DURATION, "cacheUnauthorizedTTL": DURATION}},
    "registryPullQPS": INT32, "registryBurst": INT32, "imagePullCredentialsVerificationPolicy": STR,
    "preloadedImagesVerificationAllowlist": STRS, "eventRecordQPS": INT32, "eventBurst": INT32,
    "enableDebuggingHandlers": BOOL, "enableContentionProfiling": BOOL, "healthzPort": INT32,
    "healthzBindAddress": STR, "oomScoreAdj": INT32, "clusterDomain": STR, "clusterDNS": STRS,
    "streamingConnectionIdleTimeout": DURATION, "nodeStatusUpdateFrequency": DURATION,
    "nodeStatusReportFrequency": DURATION, "nodeLeaseDurationSeconds": INT32, "imageMinimumGCAge": DURATION,
    "imageMaximumGCAge": DURATION, "imageGCHighThresholdPercent": INT32, "imageGCLowThresholdPercent": INT32,
    "volumeStatsAggPeriod": DURATION, "kubeletCgroups": STR, "systemCgroups": STR, "cgroupRoot": STR,
    "cgroupsPerQOS": BOOL, "cgroupDriver": STR, "cpuManagerPolicy": STR, "singleProcessOOMKill": BOOL,
    "cpuManagerPolicyOptions": MAP_SS, "cpuManagerReconcilePeriod": DURATION, "memoryManagerPolicy": STR,
    "topologyManagerPolicy": STR, "topologyManagerScope": STR, "topologyManagerPolicyOptions": MAP_SS,
    "qosReserved": MAP_SS, "runtimeRequestTimeout": DURATION, "hairpinMode": STR, "maxPods": INT32,
    "podCIDR": STR, "podPidsLimit": INT64, "resolvConf": STR, "runOnce": BOOL, "cpuCFSQuota": BOOL,
    "cpuCFSQuotaPeriod": DURATION, "nodeStatusMaxImages": INT32, "maxOpenFiles": INT64, "contentType": STR,
    "kubeAPIQPS": INT32, "kubeAPIBurst": INT32, "serializeImagePulls": BOOL, "maxParallelImagePulls": INT32,
    "evictionHard": MAP_SS, "evictionSoft": MAP_SS, "evictionSoftGracePeriod": MAP_SS,
    "evictionPressureTransitionPeriod": DURATION, "evictionMaxPodGracePeriod": INT32,
    "evictionMinimumReclaim": MAP_SS, "mergeDefaultEvictionSettings": BOOL, "podsPerCore": INT32,
    "enableControllerAttachDetach": BOOL, "protectKernelDefaults": BOOL, "makeIPTablesUtilChains": BOOL,
    "iptablesMasqueradeBit": INT32, "iptablesDropBit": INT32, "featureGates": MAP_SB, "failSwapOn": BOOL,
    "memorySwap": {"swapBehavior": STR}, "containerLogMaxSize": STR, "containerLogMaxFiles": INT32,
    "containerLogMaxWorkers": INT32, "containerLogMonitorInterval": DURATION,
    "configMapAndSecretChangeDetectionStrategy": STR, "systemReserved": MAP_SS, "kubeReserved": MAP_SS,
    "reservedSystemCPUs": STR, "showHiddenMetricsForVersion": STR, "systemReservedCgroup": STR,
    "kubeReservedCgroup": STR, "enforceNodeAllocatable": STRS, "allowedUnsafeSysctls": STRS,
    "volumePluginDir": STR, "providerID": STR, "kernelMemcgNotification": BOOL, "logging": ANY,
    "enableSystemLogHandler": BOOL, "enableSystemLogQuery": BOOL, "shutdownGracePeriod": DURATION,
    "shutdownGracePeriodCriticalPods": DURATION, "shutdownGracePeriodByPodPriority": ANY, "crashLoopBackOff": ANY,
    "reservedMemory": ANY, "enableProfilingHandler": BOOL, "enableDebugFlagsHandler": BOOL, "seccompDefault": BOOL,
    "memoryThrottlingFactor": FLOAT, "registerWithTaints": [TAINT], "registerNode": BOOL, "tracing": ANY,
    "localStorageCapacityIsolation": BOOL, "containerRuntimeEndpoint": STR, "imageServiceEndpoint": STR,
    "failCgroupV1": BOOL, "userNamespaces": ANY,
}
_SYNC = {"syncPeriod": DURATION, "minSyncPeriod": DURATION}
KUBE_PROXY_CONFIGURATION = {
    **TYPE_META, "featureGates": MAP_SB, "logging": ANY, "hostnameOverride": STR, "bindAddress": STR,
    "healthzBindAddress": STR, "metricsBindAddress": STR, "bindAddressHardFail": BOOL, "enableProfiling": BOOL,
    "showHiddenMetricsForVersion": STR, "mode": STR,
    "clientConnection": {"kubeconfig": STR, "acceptContentTypes": STR, "contentType": STR, "qps": FLOAT,
                         "burst": INT32},
    "iptables": {"masqueradeBit": INT32, "masqueradeAll": BOOL, "localhostNodePorts": BOOL, **_SYNC},
    "ipvs": {**_SYNC, "scheduler": STR, "excludeCIDRs": STRS, "strictARP": BOOL, "tcpTimeout": DURATION,
             "tcpFinTimeout": DURATION, "udpTimeout": DURATION},
    "nftables": {"masqueradeBit": INT32, "masqueradeAll": BOOL, **_SYNC},
    "winkernel": ANY, "detectLocalMode": STR, "detectLocal": ANY, "clusterCIDR": STR, "nodePortAddresses": STRS,
    "oomScoreAdj": INT32,
    "conntrack": {"maxPerCore": INT32, "min": INT32, "tcpEstablishedTimeout": DURATION,
                  "tcpCloseWaitTimeout": DURATION, "tcpBeLiberal": BOOL, "udpTimeout": DURATION,
                  "udpStreamTimeout": DURATION},
    "configSyncPeriod": DURATION, "portRange": STR, "windowsRunAsService": BOOL, **_SYNC,
}


@dataclass(frozen=True)
class Config:
    """One component config an inventory table extends: its kind in kubeadm/init.yaml and its Go fields."""

    table: str
    kind: str
    version: str
    fields: dict
    settings: Callable          # cluster -> the inventory's mapping
    derived: tuple = ()         # (field, inventory setting, cluster -> value): kubeadm defaults it from there


# kubeadm's componentconfigs default these from ClusterConfiguration and only warn when a config differs; a
# different clusterDomain leaves pods searching a domain CoreDNS does not serve, a different clusterCIDR makes
# kube-proxy misjudge which traffic is the pods'.
CONFIGS = (
    Config("cluster.kubelet", "KubeletConfiguration", "kubelet.config.k8s.io/v1beta1", KUBELET_CONFIGURATION,
           lambda c: c.kubelet.config, (("clusterDomain", "[cluster] dns_domain", lambda c: c.dns_domain),)),
    Config("cluster.kube_proxy", "KubeProxyConfiguration", "kubeproxy.config.k8s.io/v1alpha1",
           KUBE_PROXY_CONFIGURATION, lambda c: c.kube_proxy.config,
           (("clusterCIDR", "[cluster] pod_subnet", lambda c: c.pod_subnet),)),
)


# -- flags ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Derived:
    """A flag kubeadm (or kubefab) sets from the inventory: extra_args replace kubeadm's value, so they must agree.

    Sources: k/k cmd/kubeadm/app/phases/controlplane/manifests.go (getAPIServerCommand,
    getControllerManagerCommand) and phases/kubelet/flags.go; kubefab.components.kubeadm.kubelet_args."""

    table: str
    flag: str
    source: str                 # the inventory setting it comes from
    value: Callable = None      # cluster -> the value it must have; None: set per host, never cluster-wide


def _same_networks(given, wanted):
    return net.networks(str(given)) == net.networks(wanted)


DERIVED = (
    Derived("cluster.apiserver", "service-cluster-ip-range", "[cluster] service_subnet", lambda c: c.service_subnet),
    Derived("cluster.apiserver", "advertise-address", "each control-plane host's internal_address"),
    Derived("cluster.controller_manager", "cluster-cidr", "[cluster] pod_subnet", lambda c: c.pod_subnet),
    Derived("cluster.controller_manager", "service-cluster-ip-range", "[cluster] service_subnet",
            lambda c: c.service_subnet),
    Derived("cluster.controller_manager", "cluster-name", "[cluster] name", lambda c: c.name),
    Derived("cluster.kubelet", "node-ip", "each host's internal_address"),
    Derived("cluster.kubelet", "node-labels", "each host's labels"),
    Derived("cluster.kubelet", "hostname-override", "each host's name (the node name)"),
    Derived("cluster.kubelet", "register-with-taints", "each host's taints"),
)
CIDR_FLAGS = ("service-cluster-ip-range", "cluster-cidr")
COMPONENT_TABLES = {"apiserver": "cluster.apiserver", "controller_manager": "cluster.controller_manager",
                    "scheduler": "cluster.scheduler", "kubelet": "cluster.kubelet"}
_FLAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def normalized(flag):
    """A flag name as the components read it: component-base's WordSepNormalizeFunc makes '_' a '-'."""
    return flag.replace("_", "-")


def check(p, cluster):
    """Every flag and component config of `cluster`, each problem with its inventory line."""
    for key, table in COMPONENT_TABLES.items():
        for name, value in getattr(cluster, key).extra_args.items():
            _check_flag(p, table, name, value)
    for row in DERIVED:
        _check_derived(p, cluster, row)
    for config in CONFIGS:
        _check_config(p, cluster, config)


def _check_config(p, cluster, config):
    settings = config.settings(cluster)
    for at, message in _misfits(settings, config.fields, config):
        p.add(config.table, "config", message, at=at)
    for field, source, wanted in config.derived:
        if field in settings and settings[field] != wanted(cluster):
            p.add(config.table, "config", f"{field} = {settings[field]!r} differs from {source} ({wanted(cluster)!r}), "
                                          "from which kubeadm sets it — remove it", at=(field,))
    ours = templates.document("kubeadm/init.yaml", config.kind, kubeadm.component_values(cluster))
    for at, value, kubefab in templates.conflicts(ours, templates.plain(settings)):
        p.add(config.table, "config", f"{'.'.join(at)} = {value!r} conflicts with {kubefab!r}, which kubefab sets — "
                                      "remove it", at=at)


def _check_flag(p, table, name, value):
    if not name:
        problem = "has an empty flag name"
    elif name.startswith("-"):
        problem = f"entry {name!r}: write flag names without '--'"
    elif "=" in name:
        problem = (f"entry {name!r} holds '=': kubeadm writes '--{name}={value}' — write the name as the key and the "
                   f"value as its value, e.g. {{ \"{name.partition('=')[0]}\" = \"...\" }}")
    elif not _FLAG_NAME.fullmatch(name):
        problem = f"entry {name!r} is not a flag name (ASCII letters, digits, '-', '_', '.')"
    elif table == "cluster.kubelet" and _splits(str(value)):
        problem = (f"{name!r} = {value!r} holds whitespace or a control character: kubeadm writes kubelet flags "
                   "into kubeadm-flags.env, which systemd splits at whitespace, so the rest would become another "
                   "kubelet argument — give a value without spaces")
    else:
        return
    p.add(table, "extra_args", problem, at=(name,))


def _splits(value):
    return any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value)


def _check_derived(p, cluster, row):
    args = {normalized(k): (k, v) for k, v in getattr(cluster, _key(row.table)).extra_args.items()}
    if row.flag not in args:
        return
    name, value = args[row.flag]
    if row.value is None:
        p.add(row.table, "extra_args", f"sets {name!r}, which kubefab sets per host from {row.source} — remove it",
              at=(name,))
        return
    wanted = row.value(cluster)
    same = _same_networks(value, wanted) if row.flag in CIDR_FLAGS else str(value) == wanted
    if not same:
        p.add(row.table, "extra_args", f"{name!r} = {value!r} differs from {row.source} ({wanted!r}), from which "
                                       f"kubeadm sets it — set {row.source} instead and remove the flag", at=(name,))


def _key(table):
    return next(k for k, t in COMPONENT_TABLES.items() if t == table)


# -- configs ----------------------------------------------------------------------------------------

def _misfits(value, go, config, at=(), label=""):
    """(key path, message) for each value of the wrong Go type and each unknown field, as Go's strict decoder."""
    label = label or ".".join(at)
    if go == ANY:
        return
    if isinstance(go, list):
        if not isinstance(value, list):
            yield at, f"{label} must be a list of tables, not {value!r}"
            return
        for i, item in enumerate(value, 1):
            yield from _misfits(item, go[0], config, at, f"{label} item {i}")
    elif isinstance(go, dict):
        yield from _struct_misfits(value, go, config, at, label)
    elif not _fits(value, go):
        yield at, f"{label} must be {_SAYS[go]} (Go {go}), not {value!r}"


def _struct_misfits(value, go, config, at, label):
    if not isinstance(value, dict):
        yield at, f"{label} must be a table, not {value!r}"
        return
    for key, item in value.items():
        if "*" in go:
            yield from _misfits(item, go["*"], config, (*at, key), f"{label}.{key}".lstrip("."))
        elif key not in go:
            close = difflib.get_close_matches(key, list(go), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"see the {config.kind} ({config.version}) reference"
            yield (*at, key), f"{f'{label}.{key}'.lstrip('.')} is not a field of {config.kind} — {hint}"
        else:
            yield from _misfits(item, go[key], config, (*at, key), f"{label}.{key}".lstrip("."))


def _fits(value, go):
    if go == STR:
        return isinstance(value, str)
    if go == BOOL:
        return isinstance(value, bool)
    if go in _INT_BITS:
        bits = _INT_BITS[go]
        return isinstance(value, int) and not isinstance(value, bool) and -2 ** (bits - 1) <= value < 2 ** (bits - 1)
    if go == FLOAT:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if go == DURATION:
        ns = go_duration_ns(value)
        return ns is not None and abs(ns) <= GO_DURATION_MAX_NS
    if go == STRS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    element = {MAP_SS: str, MAP_SB: bool}[go]
    return isinstance(value, dict) and all(isinstance(v, element) for v in value.values())
