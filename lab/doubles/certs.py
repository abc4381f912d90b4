"""kubeadm's `certs` and `kubeconfig` phases: the cert tree as a table of specs, SANs computed as
kubeadm computes them, existing files validated (reference §2.1/§2.2), missing ones generated."""

import datetime
import ipaddress
import re
from dataclasses import dataclass

from . import kubeconfig as kc
from . import x509util as xu
from .config import DNS1123_SUB
from .hostfs import DoubleError, exists, host, log, warn, write_file


@dataclass(frozen=True)
class CertSpec:
    name: str          # phase name (certs/<name>)
    base: str          # file base name under certificatesDir
    ca: str            # base name of the signing CA; "" for a CA
    cn: str            # common name; "{node}" is the node name
    org: str = ""
    usages: tuple = ()
    sans: str = ""     # which SAN rule applies: "apiserver", "etcd-server", "etcd-peer", or ""
    etcd: bool = False


SERVER, CLIENT = (xu.SERVER,), (xu.CLIENT,)
CERTS = (
    CertSpec("ca", "ca", "", "kubernetes"),
    CertSpec("apiserver", "apiserver", "ca", "kube-apiserver", usages=SERVER, sans="apiserver"),
    CertSpec("apiserver-kubelet-client", "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
             org="kubeadm:cluster-admins", usages=CLIENT),
    CertSpec("front-proxy-ca", "front-proxy-ca", "", "front-proxy-ca"),
    CertSpec("front-proxy-client", "front-proxy-client", "front-proxy-ca", "front-proxy-client", usages=CLIENT),
    CertSpec("etcd-ca", "etcd/ca", "", "etcd-ca", etcd=True),
    CertSpec("etcd-server", "etcd/server", "etcd/ca", "{node}", usages=SERVER + CLIENT, sans="etcd-server",
             etcd=True),
    CertSpec("etcd-peer", "etcd/peer", "etcd/ca", "{node}", usages=SERVER + CLIENT, sans="etcd-peer", etcd=True),
    CertSpec("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client",
             usages=CLIENT, etcd=True),
    CertSpec("apiserver-etcd-client", "apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client",
             usages=CLIENT, etcd=True),
)


@dataclass(frozen=True)
class KubeconfigSpec:
    file: str
    cn: str
    org: str
    local: bool        # local API endpoint rather than controlPlaneEndpoint
    init_only: bool = False


KUBECONFIGS = (
    KubeconfigSpec("admin.conf", "kubernetes-admin", "kubeadm:cluster-admins", False),
    KubeconfigSpec("super-admin.conf", "kubernetes-super-admin", "system:masters", False, init_only=True),
    KubeconfigSpec("kubelet.conf", "system:node:{node}", "system:nodes", False, init_only=True),
    KubeconfigSpec("controller-manager.conf", "system:kube-controller-manager", "", True),
    KubeconfigSpec("scheduler.conf", "system:kube-scheduler", "", True),
)


@dataclass(frozen=True)
class Node:
    """What the cert and kubeconfig phases need to know about this node and cluster."""
    name: str
    address: str
    bind_port: int
    cluster: dict

    @property
    def pki(self):
        return self.cluster["certificatesDir"]

    def path(self, base, ext):
        return f"{self.pki}/{base}.{ext}"

    def cpe_url(self):
        cpe = self.cluster.get("controlPlaneEndpoint")
        if not cpe:
            return self.local_url()
        if cpe.rsplit(":", 1)[-1].isdigit() and not cpe.endswith("]"):
            return f"https://{cpe}"
        return f"https://{cpe}:{self.bind_port}"

    def local_url(self):
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{address}:{self.bind_port}"


def _split_sans(values, cert_name):
    dns, ips = [], []
    for v in values:
        try:
            ips.append(str(ipaddress.ip_address(v)))
        except ValueError:
            if DNS1123_SUB.match(v) or (v.startswith("*.") and DNS1123_SUB.match(v[2:])):
                dns.append(v)
            else:
                warn(f"[certificates] WARNING: '{v}' was not added to the '{cert_name}' SAN, because it is not a "
                     "valid IP or RFC-1123 compliant DNS entry")
    return dns, ips


def alt_names(spec, node):
    """(DNS names, IPs) kubeadm puts in `spec`'s certificate (reference §1.2)."""
    c = node.cluster
    if spec.sans == "apiserver":
        net = ipaddress.ip_network(c["networking"]["serviceSubnet"].split(",")[0], strict=False)
        domain = c["networking"]["dnsDomain"]
        dns = [node.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               f"kubernetes.default.svc.{domain}"]
        ips = [str(net.network_address + 1), node.address]
        extra = list(c["apiServer"].get("certSANs") or [])
        cpe = c.get("controlPlaneEndpoint")
        if cpe:
            extra.insert(0, cpe.rsplit(":", 1)[0].strip("[]") if cpe.rsplit(":", 1)[-1].isdigit() else cpe)
    elif spec.sans in ("etcd-server", "etcd-peer"):
        dns, ips = [node.name, "localhost"], [node.address, "127.0.0.1", "::1"]
        local = c["etcd"].get("local") or {}
        extra = list(local.get("serverCertSANs" if spec.sans == "etcd-server" else "peerCertSANs") or [])
    else:
        return [], []
    more_dns, more_ips = _split_sans(extra, spec.base)
    return list(dict.fromkeys(dns + more_dns)), list(dict.fromkeys(ips + more_ips))


def _ca_of(spec):
    return next(s for s in CERTS if s.base == spec.ca)


def specs_for(cluster):
    external = "external" in cluster["etcd"]
    return [s for s in CERTS if not (external and s.etcd)]


# ---- certs phase ---------------------------------------------------------------------------

def ensure_ca(spec, node, generate):
    crt, key = node.path(spec.base, "crt"), node.path(spec.base, "key")
    if exists(crt):
        cert = xu.load_cert(crt)
        note = xu.period_warning(spec.base, cert)
        if note:
            warn(note)
        if not xu.is_ca(cert):
            raise DoubleError(f"certificate {spec.base} is not a CA")
        if exists(key):
            xu.load_key(key)
            log(f"[certs] Using existing {spec.base} certificate authority")
        else:
            log(f"[certs] Using existing {spec.base} keyless certificate authority")
        return
    if not generate:
        raise DoubleError(f"couldn't load {spec.base} certificate authority from {node.pki}")
    algo, validity = node.cluster["encryptionAlgorithm"], _validity(node, ca=True)
    cert, k = xu.new_ca(spec.cn, algo, validity)
    log(f"[certs] Generating \"{spec.base}\" certificate and key")
    write_file(crt, xu.cert_pem(cert))
    write_file(key, xu.key_pem(k), mode=0o600)


def _validity(node, ca):
    field = "caCertificateValidityPeriod" if ca else "certificateValidityPeriod"
    value = node.cluster.get(field)
    if not value:
        return xu.TEN_YEARS if ca else xu.ONE_YEAR
    hours = sum(float(n) * {"h": 1, "m": 1 / 60, "s": 1 / 3600}[u] for n, u in re.findall(r"([\d.]+)([hms])", value))
    return datetime.timedelta(hours=hours)


def validate_leaf(spec, node, join_wording=False):
    """Existing leaf: key loads, chain verifies to the CA, every SAN kubeadm computes verifies.
    (Real `kubeadm init` skips the SAN check for a complete cert+key pair; `join --control-plane`
    runs it. The double runs it on both, since a missing SAN breaks the cluster either way.)"""
    crt, key = node.path(spec.base, "crt"), node.path(spec.base, "key")
    try:
        xu.load_key(key)
    except DoubleError as e:
        raise DoubleError(f"failure loading {spec.base} key: {e}")
    chain = xu.load_chain(crt)
    note = xu.period_warning(spec.base, chain[0])
    if note:
        warn(note)
    ca = xu.load_cert(node.path(spec.ca, "crt"))
    try:
        xu.verify_chain(chain[0], chain[1:], ca)
    except DoubleError as e:
        if join_wording:
            raise DoubleError(f"certificate {spec.base} is not signed by corresponding CA")
        raise DoubleError(f"[certs] certificate {spec.base} not signed by CA certificate {spec.ca}: {e}")
    dns, ips = alt_names(spec, node)
    for name in dns + ips:
        try:
            xu.verify_hostname(chain[0], name)
        except DoubleError as e:
            raise DoubleError(f"failed to write or validate certificate \"{spec.name}\": certificate "
                              f"{spec.base} is invalid: {e}")
    log(f"[certs] Using existing {spec.base} certificate and key on disk")


def ensure_leaf(spec, node, join_wording=False):
    crt, key = node.path(spec.base, "crt"), node.path(spec.base, "key")
    if exists(crt) or exists(key):
        return validate_leaf(spec, node, join_wording)
    ca_crt, ca_key = node.path(spec.ca, "crt"), node.path(spec.ca, "key")
    try:
        ca_cert, ca_k = xu.load_cert(ca_crt), xu.load_key(ca_key)
    except DoubleError as e:
        raise DoubleError(f"couldn't load CA certificate {_ca_of(spec).name}: failure loading {spec.ca} "
                          f"certificate authority: {e}")
    dns, ips = alt_names(spec, node)
    cert, k = xu.new_leaf(ca_cert, ca_k, spec.cn.format(node=node.name), (spec.org,) if spec.org else (),
                          spec.usages, dns, ips, node.cluster["encryptionAlgorithm"], _validity(node, ca=False))
    log(f"[certs] Generating \"{spec.base}\" certificate and key")
    if dns or ips:
        log(f"[certs] {spec.base} serving cert is signed for DNS names {dns} and IPs {ips}")
    write_file(crt, xu.cert_pem(cert))
    write_file(key, xu.key_pem(k), mode=0o600)


def ensure_sa(node):
    key = node.path("sa", "key")
    if exists(key):
        try:
            xu.load_key(key)
        except DoubleError as e:
            raise DoubleError(f"file sa.key existed but it could not be loaded properly: {e}")
        log('[certs] Using the existing "sa" key')
        return
    k = xu.new_key(node.cluster["encryptionAlgorithm"])
    log('[certs] Generating "sa" key and public key')
    write_file(key, xu.key_pem(k), mode=0o600)
    write_file(node.path("sa", "pub"), xu.public_pem(k), mode=0o600)


def run_certs(node, skip=lambda name: False, join_wording=False, generate_cas=True):
    """Every cert of the tree in kubeadm's order; returns nothing, raises (phase, error)."""
    log(f"[certs] Using certificateDir folder \"{node.pki}\"")
    for spec in specs_for(node.cluster):
        if skip(f"certs/{spec.name}"):
            continue
        try:
            if spec.ca:
                ensure_leaf(spec, node, join_wording)
            else:
                ensure_ca(spec, node, generate_cas)
        except DoubleError as e:
            raise PhaseError(f"certs/{spec.name}", e)
    if not skip("certs/sa"):
        try:
            ensure_sa(node)
        except DoubleError as e:
            raise PhaseError("certs/sa", e)


class PhaseError(Exception):
    def __init__(self, phase, error):
        super().__init__(f"error execution phase {phase}: {error}")
        self.phase = phase


def shared_certificates_exist(cluster):
    """SharedCertificateExists for `join --control-plane` without certificateKey (reference §9)."""
    pki, errors = cluster["certificatesDir"], []
    cas = [("ca", "CA"), ("front-proxy-ca", "front-proxy CA")]
    if "external" not in cluster["etcd"]:
        cas.append(("etcd/ca", "etcd CA"))
    for base, ux in cas:
        try:
            cert = xu.load_cert(f"{pki}/{base}.crt")
        except DoubleError as e:
            errors.append(f"failure loading certificate for {ux}: {e}")
            continue
        if not xu.is_ca(cert):
            errors.append(f"certificate {ux} is not a CA")
        elif not exists(f"{pki}/{base}.key"):
            warn(f"assuming external key for {ux}: couldn't load the private key file {pki}/{base}.key")
    try:
        xu.load_key(f"{pki}/sa.key")
        host(f"{pki}/sa.pub").read_bytes()
    except (DoubleError, FileNotFoundError) as e:
        errors.append(f"failure loading key for service account: {e}")
    return errors


# ---- kubeconfig phase ----------------------------------------------------------------------

def ca_pem_for_kubeconfig(node):
    return xu.cert_pem(xu.load_cert(node.path("ca", "crt")))


def validate_kubeconfig(path, ca_pem, server):
    config = kc.load(path)
    cluster, _ = kc.current(config, path)
    if kc.ca_data(cluster).strip() != ca_pem.strip():
        raise DoubleError(f"a kubeconfig file \"{path}\" exists already but has got the wrong CA cert")
    if cluster.get("server") != server:
        warn(f"[kubeconfig] WARNING: a kubeconfig file \"{path}\" exists already but has an unexpected API "
             f"Server URL: expected: {server}, got: {cluster.get('server')}")
    log(f"[kubeconfig] Using existing kubeconfig file: \"{path}\"")


def run_kubeconfigs(node, init, skip=lambda name: False, kube_dir="/etc/kubernetes"):
    if not (exists(node.path("ca", "crt")) and exists(node.path("ca", "key"))) and not _all_present(init, kube_dir):
        raise PhaseError("kubeconfig/admin", DoubleError(
            "the CA files do not exist, please run `kubeadm init phase certs ca` to generate it"))
    ca_pem = ca_pem_for_kubeconfig(node)
    for spec in KUBECONFIGS:
        if (spec.init_only and not init) or skip(f"kubeconfig/{spec.file[:-5]}"):
            continue
        path = f"{kube_dir}/{spec.file}"
        server = node.local_url() if spec.local else node.cpe_url()
        try:
            if exists(path):
                validate_kubeconfig(path, ca_pem, server)
                continue
            ca_cert, ca_key = xu.load_cert(node.path("ca", "crt")), xu.load_key(node.path("ca", "key"))
            cn = spec.cn.format(node=node.name)
            cert, key = xu.new_leaf(ca_cert, ca_key, cn, (spec.org,) if spec.org else (), (xu.CLIENT,),
                                    algorithm=node.cluster["encryptionAlgorithm"])
            log(f"[kubeconfig] Writing \"{spec.file}\" kubeconfig file")
            kc.write(path, kc.build(server, ca_pem, cn, node.cluster["clusterName"], xu.cert_pem(cert),
                                    xu.key_pem(key)))
        except DoubleError as e:
            raise PhaseError(f"kubeconfig/{spec.file[:-5]}", e)


def _all_present(init, kube_dir):
    return all(exists(f"{kube_dir}/{s.file}") for s in KUBECONFIGS if init or not s.init_only)
