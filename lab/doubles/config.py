"""kubeadm configuration files: kinds, versions, strict decoding by Go type, defaults and validation
(reference §5; k/k cmd/kubeadm/app/util/config/initconfiguration.go, joinconfiguration.go, strict/strict.go,
componentconfigs/configset.go, apis/kubeadm/validation/validation.go)."""

import copy
import ipaddress
import os
import re

import yaml

from . import gotypes, schemas
from .hostfs import DoubleError, host, warn, version
from .kubeadm_util import default_address

KUBEADM_GROUP = "kubeadm.k8s.io"
OLD_VERSIONS = {"v1alpha1": "v1.11", "v1alpha2": "v1.12", "v1alpha3": "v1.14", "v1beta1": "v1.15", "v1beta2": "v1.22"}
STRICT_ENV = "KUBEFAB_DOUBLE_STRICT"
KUBEADM_SCHEME = "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"
COMPONENT_SCHEME = "k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs/scheme.go:30"


def gvk_repr(api_version, kind):
    group, _, ver = api_version.rpartition("/")
    return f'schema.GroupVersionKind{{Group:"{group}", Version:"{ver}", Kind:"{kind}"}}'


def gvk_string(api_version, kind):
    return f"{api_version}, Kind={kind}"


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
    """validateSupportedVersion: old kubeadm APIs fail, v1beta3 warns."""
    group, _, ver = api_version.rpartition("/")
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
                          f'"{KUBEADM_SCHEME}"')


def kube_version_key(ver):
    """Order of Kubernetes API versions: v1alpha1 < v1beta1 < v1 (CompareKubeAwareVersionStrings)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", ver)
    if not m:
        return (-1, 0, 0)
    return (int(m.group(1)), {"alpha": 0, "beta": 1, None: 2}[m.group(2)], int(m.group(3) or 0))


def strict_policy(message, strict_errors):
    """Unknown fields: kubeadm init/join only warn; the double fails unless KUBEFAB_DOUBLE_STRICT=0
    (`kubeadm config validate` fails in both), so a typo in kubefab's templates is caught."""
    if strict_errors or os.environ.get(STRICT_ENV, "1") != "0":
        raise DoubleError(message)
    warn(message)


def decode_kubeadm(api_version, kind, doc, strict_errors):
    """Decode a kubeadm.k8s.io document by its version's Go types; None for an unknown kind (ignored)."""
    check_version(api_version)
    schema = schemas.KUBEADM[api_version.rpartition("/")[2]].get(kind)
    if schema is None:
        unknown = f"unknown configuration {gvk_repr(api_version, kind)}"
        if strict_errors:
            raise DoubleError(unknown)
        warn(unknown)
        return None
    error, unknown = gotypes.decode(body(doc), schema)
    if error:
        # strict verification warns with the GVK, then the decoder fails with Go's bare error
        if strict_errors:
            raise DoubleError(f"error unmarshaling configuration {gvk_repr(api_version, kind)}: {error}")
        warn(f"error unmarshaling configuration {gvk_repr(api_version, kind)}: {error}")
        raise DoubleError(error)
    if unknown:
        strict_policy(f"error unmarshaling configuration {gvk_repr(api_version, kind)}: strict decoding error: "
                      + ", ".join(f'unknown field "{f}"' for f in unknown), strict_errors)
    return doc


def decode_component(api_version, kind, doc):
    """A kubelet or kube-proxy document: its group's one version, kind and Go types (configset.go)."""
    group, _, ver = api_version.rpartition("/")
    want_ver, want_kind, schema = schemas.COMPONENTS[group]
    order = kube_version_key(ver), kube_version_key(want_ver)
    if order[0] < order[1]:
        raise DoubleError(f'unexpected apiVersion "{api_version}", you may have to do manual conversion to '
                          f'"{group}/{want_ver}" and execute kubeadm again')
    if order[0] > order[1]:
        warn(f'WARNING: Newer apiVersion "{api_version}" detected. kubeadm won\'t patch that config but will use it '
             "as is")
        return doc
    if kind != want_kind:
        warn(f"unknown configuration {gvk_repr(api_version, kind)}")
        raise DoubleError(f'no kind "{kind}" is registered for version "{api_version}" in scheme '
                          f'"{COMPONENT_SCHEME}"')
    error, unknown = gotypes.decode(body(doc), schema)
    if error:
        warn(f"error unmarshaling configuration {gvk_repr(api_version, kind)}: {error}")
        raise DoubleError(error)
    if unknown:
        warn(f"error unmarshaling configuration {gvk_repr(api_version, kind)}: strict decoding error: "
             + ", ".join(f'unknown field "{f}"' for f in unknown))
    return doc


def body(doc):
    return {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}


def load(path, wanted, strict_errors=False, only=None):
    """Decoded documents of `path` for the kinds in `wanted`, by kind; component configs by their kind.
    `only`: the kinds this command reads (join, reset); anything else is ignored with kubeadm's warning."""
    try:
        text = host(path).read_text()
    except FileNotFoundError:
        raise DoubleError(f"unable to read config from \"{path}\" : open {path}: no such file or directory")
    docs = split_documents(text)
    out = {}
    for kind, (api_version, doc) in sorted(docs.items(), key=lambda kv: gvk_string(kv[1][0], kv[0])):
        group = api_version.rpartition("/")[0]
        if only is not None and kind not in only or group not in (KUBEADM_GROUP, *schemas.COMPONENTS):
            warn(f"[config] WARNING: Ignored configuration document with GroupVersionKind "
                 f"{gvk_string(api_version, kind)}")
            continue
        decoded = decode_kubeadm(api_version, kind, doc, strict_errors) if group == KUBEADM_GROUP \
            else decode_component(api_version, kind, doc)
        if decoded is None:
            warn(f"[config] WARNING: Ignored configuration document with GroupVersionKind "
                 f"{gvk_string(api_version, kind)}")
        elif kind in wanted or group in schemas.COMPONENTS:
            out[schemas.COMPONENTS[group][1] if group in schemas.COMPONENTS else kind] = decoded
    return out


# ---- defaults ------------------------------------------------------------------------------

DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
BOOTSTRAP_GROUP = re.compile(r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")


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


# ---- validation (field.Error wording: "<path>: Invalid value: <value>: <detail>") ------------------

def invalid(path, value, detail):
    shown = f'"{value}"' if isinstance(value, str) else (
        "[]string{" + ", ".join(f'"{v}"' for v in value) + "}" if isinstance(value, list) else value)
    return f"{path}: Invalid value: {shown}: {detail}"


def aggregate(errors):
    """field.ErrorList.ToAggregate().Error(): one message, or all of them in brackets."""
    if errors:
        raise DoubleError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")


def dns1123_subdomain(path, name):
    if DNS1123_SUB.match(name) and len(name) <= 253:
        return []
    return [invalid(path, name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                                "'-' or '.', and must start and end with an alphanumeric character (e.g. "
                                "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                                "(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]


def validate_node_registration(nr, path):
    errors = dns1123_subdomain(f"{path}.name", nr["name"])
    scheme = nr["criSocket"].partition("://")[0] if "://" in nr["criSocket"] else ""
    if scheme != "unix":
        errors.append(invalid(f"{path}.criSocket", nr["criSocket"],
                              f'only URL scheme "unix" is supported, got "{scheme}"'))
    if isinstance(nr.get("kubeletExtraArgs"), list):
        errors += extra_args(nr["kubeletExtraArgs"], f"{path}.kubeletExtraArgs")
    return errors


def extra_args(args, path):
    return [invalid(path, f"index {i}", "argument has no name") for i, a in enumerate(args or []) if not a.get("name")]


def validate_endpoint(ep, path):
    errors = []
    try:
        ipaddress.ip_address(ep.get("advertiseAddress", ""))
    except ValueError:
        errors.append(invalid(f"{path}.advertiseAddress", ep.get("advertiseAddress", ""), "ip address is not valid"))
    port = ep.get("bindPort", 6443)
    if not 0 < int(port) < 65536:
        errors.append(invalid(f"{path}.bindPort", port, "port number is not valid"))
    return errors


def validate_token(token, path):
    return [] if TOKEN_RE.match(str(token or "")) else [invalid(path, str(token or ""), "the bootstrap token is "
                                                                                       "invalid")]


def validate_bootstrap_tokens(tokens):
    errors = []
    for i, t in enumerate(tokens or []):
        path = f"bootstrapTokens.{i}"
        errors += validate_token(t.get("token"), f"{path}.token")
        usages, groups = list(t.get("usages") or []), list(t.get("groups") or [])
        bad = sorted({u for u in usages if u not in ("signing", "authentication")})
        if bad:
            errors.append(invalid(f"{path}.usages", usages, f"invalid bootstrap token usage string: {','.join(bad)}, "
                                                            "valid usage options: signing,authentication"))
        if groups and usages and "authentication" not in usages:
            errors.append(invalid(f"{path}.groups", groups, 'token groups cannot be specified unless --usages '
                                                            'includes "authentication"'))
        for g in groups:
            if not BOOTSTRAP_GROUP.match(g):
                errors.append(invalid(f"{path}.groups", groups, f'bootstrap group "{g}" is invalid (must match '
                                                                "\\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z)"))
        if t.get("ttl") is not None and t.get("expires") is not None:
            errors.append(invalid(path, "", "the BootstrapToken .TTL and .Expires fields are mutually exclusive"))
    return errors


def subnets(text, path, min_addresses):
    """ValidateIPNetFromString: one CIDR, or two of different families (dual-stack)."""
    try:
        nets = [ipaddress.ip_network(s.strip(), strict=False) for s in text.split(",")]
    except ValueError:
        return [], [invalid(path, text, "couldn't parse subnet")]
    errors = []
    if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
        errors.append(invalid(path, text, "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for "
                                          "dual-stack networking"))
    for n in nets:
        if n.num_addresses < min_addresses:
            errors.append(invalid(path, str(n), f"subnet with {n.num_addresses} address(es) is too small, the minimum "
                                                f"is {min_addresses}"))
    return nets, errors


def validate_networking(cluster):
    net, cm_args = cluster["networking"], args_dict(cluster["controllerManager"].get("extraArgs"))
    errors = dns1123_subdomain("networking.dnsDomain", net["dnsDomain"])
    if net.get("serviceSubnet"):
        nets, errs = subnets(net["serviceSubnet"], "networking.serviceSubnet", 10)
        errors += errs
        for n in nets:
            bits = n.max_prefixlen
            if bits - n.prefixlen > 20:
                errors.append(invalid("networking.serviceSubnet", str(n), f"specified service subnet is too large; for "
                                                                          f"{bits}-bit addresses, the mask must be >= "
                                                                          f"{bits - 20}"))
    if net.get("podSubnet"):
        nets, errs = subnets(net["podSubnet"], "networking.podSubnet", 4)
        errors += errs
        if cm_args.get("allocate-node-cidrs") != "false":
            errors += pod_subnet_node_mask(nets, cm_args)
    return errors


def pod_subnet_node_mask(nets, cm_args):
    errors = []
    for n in nets:
        arg = "node-cidr-mask-size-ipv6" if n.version == 6 else "node-cidr-mask-size-ipv4"
        try:
            node_mask = int(cm_args.get(arg) or (64 if n.version == 6 else 24))
        except ValueError:
            errors.append(invalid("networking.podSubnet", str(n), f"could not parse the value of the "
                                                                  f"kube-controller-manager flag {arg} as an integer"))
            continue
        if n.prefixlen > node_mask:
            errors.append(invalid("networking.podSubnet", str(n), f"the size of pod subnet with mask {n.prefixlen} is "
                                                                  f"smaller than the size of node subnet with mask "
                                                                  f"{node_mask}"))
        elif node_mask - n.prefixlen > 16:
            errors.append(invalid("networking.podSubnet", str(n), f"pod subnet mask ({n.prefixlen}) and node-mask "
                                                                  f"({node_mask}) difference is greater than 16"))
    return errors


def cert_sans(values, path):
    errors = []
    for v in values or []:
        wildcard = v.startswith("*.") and DNS1123_SUB.match(v[2:])
        if DNS1123_SUB.match(v) or wildcard or _is_ip(v):
            continue
        errors.append(invalid(path, v, "altname is not a valid IP address, DNS label or a DNS label with subdomain "
                                       "wildcards: a lowercase RFC 1123 subdomain must consist of lower case "
                                       "alphanumeric characters, '-' or '.', and must start and end with an "
                                       "alphanumeric character; a wildcard DNS-1123 subdomain must start with '*.'"))
    return errors


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def encryption_algorithms(kubeadm_version):
    """ValidateEncryptionAlgorithm's set; ECDSA-P384 arrived with kubeadm 1.34 (reference README)."""
    known = ["ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096"]
    return sorted(known + (["ECDSA-P384"] if minor(kubeadm_version) >= 34 else []))


def minor(v):
    return int(v.lstrip("v").split(".")[1])


def host_port(endpoint):
    """ParseHostPort: 'host' or 'host:port', host an IP or DNS subdomain; None if invalid."""
    h, port = endpoint, None
    if endpoint.startswith("["):
        h, _, rest = endpoint[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            return None
    elif endpoint.count(":") == 1:
        h, port = endpoint.split(":")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    return h if _is_ip(h) or DNS1123_SUB.match(h) else None


def validate_cluster(cluster, kubeadm_version):
    errors = validate_networking(cluster)
    errors += cert_sans(cluster["apiServer"].get("certSANs"), "apiServer.certSANs")
    for comp in ("apiServer", "controllerManager", "scheduler"):
        if isinstance(cluster[comp].get("extraArgs"), list):
            errors += extra_args(cluster[comp]["extraArgs"], f"{comp}.extraArgs")
    if not cluster["certificatesDir"].startswith("/"):
        errors.append(invalid("certificatesDir", cluster["certificatesDir"], "path is not absolute"))
    cpe = cluster["controlPlaneEndpoint"]
    if cpe and host_port(cpe) is None:
        errors.append(invalid("controlPlaneEndpoint", cpe, "endpoint is not valid"))
    etcd = cluster["etcd"]
    if "local" in etcd and "external" in etcd:
        errors.append(invalid("etcd", "", ".Etcd.Local and .Etcd.External are mutually exclusive"))
    elif "local" in etcd:
        errors += cert_sans(etcd["local"].get("serverCertSANs"), "etcd.local.serverCertSANs")
        errors += cert_sans(etcd["local"].get("peerCertSANs"), "etcd.local.peerCertSANs")
    algorithms = encryption_algorithms(kubeadm_version)
    if cluster["encryptionAlgorithm"] not in algorithms:
        errors.append(invalid("encryptionAlgorithm", cluster["encryptionAlgorithm"],
                              f'Invalid encryption algorithm "{cluster["encryptionAlgorithm"]}". Must be one of '
                              f"[{' '.join(algorithms)}]"))
    return errors


def validate_version(v, kubeadm_version):
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", v or "")
    if not m:
        raise DoubleError(f'couldn\'t parse Kubernetes version "{v}": kubernetesVersion must be set '
                          "explicitly in the lab (no internet to resolve labels like stable-1)")
    own = minor(kubeadm_version)
    if int(m.group(2)) < own - 1:
        raise DoubleError(f"this version of kubeadm only supports deploying clusters with the control plane "
                          f"version >= 1.{own - 1}.0. Current version: {v}")
    if int(m.group(2)) > own:
        warn(f"[preflight] WARNING: Kubernetes version is greater than kubeadm version. Please consider to "
             f"upgrade kubeadm. Kubernetes version: {v}. Kubeadm version: 1.{own}.x")


def init_configuration(docs, kubeadm_version=None):
    """documentMapToInitConfiguration: defaults (static, then dynamic), then ValidateInitConfiguration."""
    kubeadm_version = kubeadm_version or version()
    if "InitConfiguration" not in docs and "ClusterConfiguration" not in docs:
        raise DoubleError("no InitConfiguration or ClusterConfiguration kind was found in the configuration file")
    init = copy.deepcopy(docs.get("InitConfiguration") or {})
    cluster = default_cluster(docs.get("ClusterConfiguration"))
    init["nodeRegistration"] = default_node_registration(init.get("nodeRegistration"), True)
    ep = init.setdefault("localAPIEndpoint", {})
    ep.setdefault("bindPort", 6443)
    validate_version(cluster["kubernetesVersion"], kubeadm_version)
    if not ep.get("advertiseAddress"):
        ep["advertiseAddress"] = default_address()
    errors = validate_node_registration(init["nodeRegistration"], "nodeRegistration")
    errors += validate_bootstrap_tokens(init.get("bootstrapTokens"))
    errors += validate_cluster(cluster, kubeadm_version)
    errors += validate_endpoint(ep, "localAPIEndpoint")
    aggregate(errors)
    return init, cluster


def split_host_port(endpoint):
    """Go's net.SplitHostPort error text, or None."""
    if endpoint.startswith("["):
        end = endpoint.find("]")
        if end < 0:
            return f"address {endpoint}: missing ']' in address"
        rest = endpoint[end + 1:]
        if not rest.startswith(":"):
            return f"address {endpoint}: missing port in address" if not rest else \
                f"address {endpoint}: unexpected ']' in address"
        return None
    if ":" not in endpoint:
        return f"address {endpoint}: missing port in address" if endpoint else "missing port in address"
    if endpoint.count(":") > 1:
        return f"address {endpoint}: too many colons in address"
    return None


def join_configuration(docs):
    """documentMapToJoinConfiguration: defaults, then ValidateJoinConfiguration."""
    join = copy.deepcopy(docs.get("JoinConfiguration"))
    if join is None:
        raise DoubleError("no JoinConfiguration found in the supplied config")
    cp = join.get("controlPlane")
    join["nodeRegistration"] = default_node_registration(join.get("nodeRegistration"), cp is not None)
    join.setdefault("caCertPath", "/etc/kubernetes/pki/ca.crt")
    disc = join.setdefault("discovery", {})
    bt = disc.get("bootstrapToken")
    if bt is not None and not disc.get("tlsBootstrapToken"):
        disc["tlsBootstrapToken"] = bt.get("token", "")
    errors = validate_discovery(disc)
    errors += validate_node_registration(join["nodeRegistration"], "nodeRegistration")
    if cp is not None:
        ep = cp.setdefault("localAPIEndpoint", {})
        ep.setdefault("bindPort", 6443)
        if not ep.get("advertiseAddress"):
            ep["advertiseAddress"] = default_address()
        errors += validate_endpoint(ep, "controlPlane.localAPIEndpoint")
    path = join["caCertPath"]
    if not path.startswith("/") or not path.endswith(".crt"):
        errors.append(invalid("caCertPath", path, "the ca certificate path must be an absolute path"))
    aggregate(errors)
    return join


def validate_discovery(disc):
    bt, errors = disc.get("bootstrapToken"), []
    if bt is None and disc.get("file") is None:
        errors.append(invalid("discovery", "", "bootstrapToken or file must be set"))
    if bt is not None and disc.get("file") is not None:
        errors.append(invalid("discovery", "", "bootstrapToken and file cannot both be set"))
    if bt is not None:
        endpoint = bt.get("apiServerEndpoint") or ""
        if not endpoint:
            errors.append("discovery.bootstrapToken: Required value: APIServerEndpoint is not set")
        if not bt.get("caCertHashes") and not bt.get("unsafeSkipCAVerification"):
            errors.append(invalid("discovery.bootstrapToken.caCertHashes", "", "using token-based discovery without "
                                  "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm "
                                  "config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"))
        errors += validate_token(bt.get("token"), "discovery.bootstrapToken.token")
        bad_endpoint = split_host_port(endpoint)
        if bad_endpoint:
            errors.append(invalid("discovery.bootstrapToken.apiServerEndpoint", endpoint, bad_endpoint))
        errors += validate_token(disc.get("tlsBootstrapToken"), "discovery.tlsBootstrapToken")
    elif disc.get("tlsBootstrapToken"):
        errors += validate_token(disc["tlsBootstrapToken"], "discovery.tlsBootstrapToken")
    return errors


def reset_configuration(docs):
    return dict(docs.get("ResetConfiguration") or {})
