"""kubeadm configuration files: kinds, versions, strict field checking, defaults and validation
(reference §5; field lists from kubeadm's v1beta4/v1beta3 types)."""

import copy
import ipaddress
import os
import re

import yaml

from .hostfs import DoubleError, host, warn

KUBEADM_GROUP = "kubeadm.k8s.io"
OLD_VERSIONS = {"v1alpha1": "v1.11", "v1alpha2": "v1.12", "v1alpha3": "v1.14", "v1beta1": "v1.15", "v1beta2": "v1.22"}
COMPONENT_KINDS = {("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
                   ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")}
STRICT_ENV = "KUBEFAB_DOUBLE_STRICT"

S, I, B, ANY = "string", "int", "bool", "any"
STRS = [S]
ARGS4 = [{"name": S, "value": S}]
ENV = [{"name": S, "value": S, "valueFrom": ANY}]
TAINTS = [{"key": S, "value": S, "effect": S, "timeAdded": S}]
VOLUMES = [{"name": S, "hostPath": S, "mountPath": S, "readOnly": B, "pathType": S}]
DURATION = S
TIMEOUTS = {k: DURATION for k in ("controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall",
                                   "etcdAPICall", "tlsBootstrap", "discovery", "upgradeManifests")}
TOKEN = [{"token": S, "description": S, "ttl": S, "expires": S, "usages": STRS, "groups": STRS}]
ENDPOINT = {"advertiseAddress": S, "bindPort": I}
PATCHES = {"directory": S}
IMAGE_META = {"imageRepository": S, "imageTag": S}


def _node_registration(v4):
    fields = {"name": S, "criSocket": S, "taints": TAINTS, "kubeletExtraArgs": ARGS4 if v4 else {"*": S},
              "ignorePreflightErrors": STRS, "imagePullPolicy": S}
    if v4:
        fields["imagePullSerial"] = B
    return fields


def _component(v4):
    fields = {"extraArgs": ARGS4 if v4 else {"*": S}, "extraVolumes": VOLUMES}
    if v4:
        fields["extraEnvs"] = ENV
    return fields


def _schemas(v4):
    component = _component(v4)
    api_server = dict(component, certSANs=STRS)
    local_etcd = dict(IMAGE_META, dataDir=S, extraArgs=component["extraArgs"], serverCertSANs=STRS,
                      peerCertSANs=STRS)
    if v4:
        local_etcd["extraEnvs"] = ENV
    else:
        api_server["timeoutForControlPlane"] = DURATION
    cluster = {
        "etcd": {"local": local_etcd, "external": {"endpoints": STRS, "caFile": S, "certFile": S, "keyFile": S}},
        "networking": {"serviceSubnet": S, "podSubnet": S, "dnsDomain": S},
        "kubernetesVersion": S, "controlPlaneEndpoint": S, "apiServer": api_server,
        "controllerManager": component, "scheduler": component, "dns": dict(IMAGE_META),
        "certificatesDir": S, "imageRepository": S, "featureGates": {"*": B}, "clusterName": S,
    }
    init = {"bootstrapTokens": TOKEN, "nodeRegistration": _node_registration(v4), "localAPIEndpoint": ENDPOINT,
            "certificateKey": S, "skipPhases": STRS, "patches": PATCHES}
    discovery = {"bootstrapToken": {"token": S, "apiServerEndpoint": S, "caCertHashes": STRS,
                                    "unsafeSkipCAVerification": B},
                 "file": {"kubeConfigPath": S}, "tlsBootstrapToken": S}
    join = {"nodeRegistration": _node_registration(v4), "caCertPath": S, "discovery": discovery,
            "controlPlane": {"localAPIEndpoint": ENDPOINT, "certificateKey": S}, "skipPhases": STRS,
            "patches": PATCHES}
    kinds = {"InitConfiguration": init, "ClusterConfiguration": cluster, "JoinConfiguration": join}
    if v4:
        cluster["dns"]["disabled"] = B
        cluster.update(proxy={"disabled": B}, encryptionAlgorithm=S, certificateValidityPeriod=DURATION,
                       caCertificateValidityPeriod=DURATION)
        for kind in (init, join):
            kind.update(dryRun=B, timeouts=TIMEOUTS)
        kinds["ResetConfiguration"] = {"cleanupTmpDir": B, "certificatesDir": S, "criSocket": S, "dryRun": B,
                                       "force": B, "ignorePreflightErrors": STRS, "skipPhases": STRS,
                                       "unmountFlags": STRS, "timeouts": TIMEOUTS}
        kinds["UpgradeConfiguration"] = {"apply": ANY, "diff": ANY, "node": ANY, "plan": ANY, "timeouts": TIMEOUTS}
    else:
        discovery["timeout"] = DURATION
    return kinds


SCHEMAS = {"v1beta4": _schemas(True), "v1beta3": _schemas(False)}


def unknown_fields(value, schema, path=""):
    """Field paths in `value` that `schema` does not know (Go's strict decoding)."""
    if schema == ANY or value is None:
        return []
    if isinstance(schema, list):
        return [f for item in (value if isinstance(value, list) else []) for f in unknown_fields(item, schema[0], path)]
    if isinstance(schema, dict) and isinstance(value, dict):
        out = []
        for key, sub in value.items():
            if "*" in schema:
                out += unknown_fields(sub, schema["*"], f"{path}{key}.")
            elif key not in schema:
                out.append(f"{path}{key}")
            else:
                out += unknown_fields(sub, schema[key], f"{path}{key}.")
        return out
    return []


def gvk_repr(api_version, kind):
    group, _, ver = api_version.rpartition("/")
    return f'schema.GroupVersionKind{{Group:"{group}", Version:"{ver}", Kind:"{kind}"}}'


def split_documents(text):
    """{kind: (apiVersion, document)}; kubeadm's SplitConfigDocuments rules."""
    docs = {}
    try:
        loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise DoubleError(f"error converting YAML to JSON: {e}")
    for doc in loaded:
        kind, api_version = doc.get("kind", ""), doc.get("apiVersion", "")
        if not kind or "/" not in api_version:
            raise DoubleError(f"invalid configuration for GroupVersionKind {gvk_repr(api_version, kind)}: kind and "
                              "apiVersion is mandatory information that must be specified")
        if kind in docs:
            raise DoubleError(f'invalid configuration: kind "{kind}" is specified twice in YAML file')
        docs[kind] = (api_version, doc)
    return docs


def check_version(api_version):
    group, _, ver = api_version.rpartition("/")
    if group != KUBEADM_GROUP:
        return
    if ver in OLD_VERSIONS:
        raise DoubleError(f'your configuration file uses an old API spec: "{api_version}". Please use kubeadm '
                          f"{OLD_VERSIONS[ver]} instead and run 'kubeadm config migrate --old-config old.yaml "
                          "--new-config new.yaml', which will write the new, similar spec using a newer API version.")
    if ver == "v1beta3":
        warn(f'your configuration file uses a deprecated API spec: "{api_version}". Please use \'kubeadm config '
             "migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using "
             "a newer API version.")
    elif ver != "v1beta4":
        raise DoubleError(f'no kind "{api_version}" is registered for version "{api_version}" in scheme '
                          '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"')


def strict(api_version, kind, doc, strict_errors):
    """Unknown fields: kubeadm init/join only warn; the double fails unless KUBEFAB_DOUBLE_STRICT=0
    (`kubeadm config validate` fails in both), so a typo in kubefab's templates is caught."""
    ver = api_version.rpartition("/")[2]
    schema = SCHEMAS.get(ver, {}).get(kind)
    if schema is None:
        return
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
    bad = unknown_fields(body, schema)
    if bad:
        msg = (f"error unmarshaling configuration {gvk_repr(api_version, kind)}: strict decoding error: "
               + ", ".join(f'unknown field "{f}"' for f in bad))
        if strict_errors or os.environ.get(STRICT_ENV, "1") != "0":
            raise DoubleError(msg)
        warn(msg)


def load(path, wanted, strict_errors=False):
    """Documents of `path` for the kinds in `wanted`; others are ignored with kubeadm's warning."""
    try:
        text = host(path).read_text()
    except FileNotFoundError:
        raise DoubleError(f"unable to read config from \"{path}\" : open {path}: no such file or directory")
    docs = split_documents(text)
    out = {}
    for kind, (api_version, doc) in sorted(docs.items()):
        known = api_version.startswith(KUBEADM_GROUP + "/") and kind in SCHEMAS["v1beta4"] or \
            (api_version, kind) in COMPONENT_KINDS
        if not known:
            warn(f"[config] WARNING: Ignored configuration document with GroupVersionKind "
                 f"{api_version}, Kind={kind}")
            continue
        check_version(api_version)
        strict(api_version, kind, doc, strict_errors)
        if kind in wanted:
            out[kind] = doc
    return out


# ---- defaults and validation ---------------------------------------------------------------

DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def args_dict(value):
    """extraArgs/kubeletExtraArgs as an ordered dict (v1beta4 list or v1beta3 map)."""
    if isinstance(value, dict):
        return dict(value)
    return {a["name"]: a["value"] for a in value or []}


def default_cluster(doc):
    c = copy.deepcopy(doc or {})
    c.setdefault("kubernetesVersion", "")
    c.setdefault("certificatesDir", "/etc/kubernetes/pki")
    c.setdefault("imageRepository", "registry.k8s.io")
    c.setdefault("clusterName", "kubernetes")
    c.setdefault("encryptionAlgorithm", "RSA-2048")
    net = c.setdefault("networking", {})
    net.setdefault("serviceSubnet", "10.96.0.0/12")
    net.setdefault("dnsDomain", "cluster.local")
    etcd = c.setdefault("etcd", {})
    if "external" not in etcd:
        etcd.setdefault("local", {}).setdefault("dataDir", "/var/lib/etcd")
    for comp in ("apiServer", "controllerManager", "scheduler"):
        c.setdefault(comp, {})
    c.setdefault("dns", {})
    c.setdefault("proxy", {})
    c.setdefault("controlPlaneEndpoint", "")
    return c


def default_node_registration(nr, control_plane):
    nr = dict(nr or {})
    nr.setdefault("name", os.uname().nodename.lower())
    nr.setdefault("criSocket", "unix:///var/run/containerd/containerd.sock")
    nr.setdefault("imagePullPolicy", "IfNotPresent")
    if nr.get("taints") is None:
        nr["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}] \
            if control_plane else []
    return nr


def validate_node_name(name, field_path):
    if not DNS1123_SUB.match(name) or len(name) > 253:
        raise DoubleError(f"{field_path}: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist "
                          "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
                          "alphanumeric character (e.g. 'example.com', regex used for validation is "
                          "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def validate_endpoint(ep, field_path):
    addr = ep.get("advertiseAddress", "")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise DoubleError(f"{field_path}.advertiseAddress: Invalid value: \"{addr}\": "
                          "cannot parse IP address")
    port = ep.get("bindPort", 6443)
    if not 0 < int(port) < 65536:
        raise DoubleError(f"{field_path}.bindPort: Invalid value: {port}: port number is not valid")


def validate_version(v, kubeadm_version):
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", v or "")
    if not m:
        raise DoubleError(f'couldn\'t parse Kubernetes version "{v}": kubernetesVersion must be set '
                          "explicitly in the lab (no internet to resolve labels like stable-1)")
    minor, own = int(m.group(2)), int(kubeadm_version.lstrip("v").split(".")[1])
    if minor < own - 1:
        raise DoubleError(f"this version of kubeadm only supports deploying clusters with the control plane "
                          f"version >= 1.{own - 1}.0. Current version: {v}")
    if minor > own:
        warn(f"[preflight] WARNING: Kubernetes version is greater than kubeadm version. Please consider to "
             f"upgrade kubeadm. Kubernetes version: {v}. Kubeadm version: 1.{own}.x")


def init_configuration(docs, kubeadm_version):
    if "InitConfiguration" not in docs and "ClusterConfiguration" not in docs:
        raise DoubleError("no InitConfiguration or ClusterConfiguration kind was found in the supplied config")
    init = copy.deepcopy(docs.get("InitConfiguration") or {})
    cluster = default_cluster(docs.get("ClusterConfiguration"))
    init["nodeRegistration"] = default_node_registration(init.get("nodeRegistration"), True)
    ep = init.setdefault("localAPIEndpoint", {})
    ep.setdefault("bindPort", 6443)
    validate_node_name(init["nodeRegistration"]["name"], "nodeRegistration.name")
    validate_endpoint(ep, "localAPIEndpoint")
    validate_version(cluster["kubernetesVersion"], kubeadm_version)
    for i, t in enumerate(init.get("bootstrapTokens") or []):
        if not TOKEN_RE.match(str(t.get("token", ""))):
            raise DoubleError(f'bootstrapTokens[{i}].token: Invalid value: "{t.get("token")}": the bootstrap token '
                              "is invalid")
    validate_cluster(cluster)
    return init, cluster


def validate_cluster(cluster):
    net = cluster["networking"]
    for key in ("serviceSubnet", "podSubnet"):
        if net.get(key):
            try:
                ipaddress.ip_network(net[key])
            except ValueError:
                raise DoubleError(f"networking.{key}: Invalid value: \"{net[key]}\": couldn't parse subnet")
    if cluster["encryptionAlgorithm"] not in ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384"):
        raise DoubleError(f"encryptionAlgorithm: Unsupported value: \"{cluster['encryptionAlgorithm']}\"")
    cpe = cluster["controlPlaneEndpoint"]
    if cpe:
        host_part = cpe.rsplit(":", 1)[0] if cpe.count(":") == 1 or cpe.startswith("[") else cpe
        host_part = host_part.strip("[]")
        try:
            ipaddress.ip_address(host_part)
        except ValueError:
            if not DNS1123_SUB.match(host_part):
                raise DoubleError(f"controlPlaneEndpoint: Invalid value: \"{cpe}\": must be a valid DNS name or IP "
                                  "address with optional port")
    if "local" in cluster["etcd"] and "external" in cluster["etcd"]:
        raise DoubleError("etcd.local: Invalid value: \"...\": cannot configure both local and external etcd")


def join_configuration(docs):
    join = copy.deepcopy(docs.get("JoinConfiguration"))
    if join is None:
        raise DoubleError("no JoinConfiguration found in the supplied config")
    cp = join.get("controlPlane")
    join["nodeRegistration"] = default_node_registration(join.get("nodeRegistration"), cp is not None)
    join.setdefault("caCertPath", "/etc/kubernetes/pki/ca.crt")
    validate_node_name(join["nodeRegistration"]["name"], "nodeRegistration.name")
    disc = join.get("discovery") or {}
    bt = disc.get("bootstrapToken")
    if bt is None and "file" not in disc:
        raise DoubleError("discovery: Invalid value: \"\": bootstrapToken or file must be set")
    if bt is not None:
        if not TOKEN_RE.match(str(bt.get("token", ""))):
            raise DoubleError(f"discovery.bootstrapToken.token: Invalid value: \"{bt.get('token')}\": the bootstrap "
                              "token is invalid")
        if not bt.get("apiServerEndpoint"):
            raise DoubleError("discovery.bootstrapToken.apiServerEndpoint: Required value: the API server endpoint "
                              "must be set")
        hashes = bt.get("caCertHashes") or []
        if not hashes and not bt.get("unsafeSkipCAVerification"):
            raise DoubleError("discovery.bootstrapToken.caCertHashes: Invalid value: \"\": using token-based "
                              "discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true "
                              "in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification "
                              "flag to continue")
        for h in hashes:
            if not HASH_RE.match(h):
                raise DoubleError(f"discovery.bootstrapToken.caCertHashes: Invalid value: \"{h}\": invalid hash "
                                  f"\"{h}\", expected a \"sha256:\" prefix and 64 lowercase hex characters")
        disc.setdefault("tlsBootstrapToken", bt["token"])
    if cp is not None:
        ep = cp.setdefault("localAPIEndpoint", {})
        ep.setdefault("bindPort", 6443)
        validate_endpoint(ep, "controlPlane.localAPIEndpoint")
    return join


def reset_configuration(docs):
    return dict(docs.get("ResetConfiguration") or {})
