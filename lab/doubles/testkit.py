"""Test material for the doubles: a kubeadm-shaped PKI bundle and kubeconfigs built straight from
reference §1-§3 with `cryptography`, independent of the doubles' own x509 code, plus helpers to
run etcd and the API-server double on 127.0.0.1.
"""

import contextlib
import datetime
import hashlib
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU, NameOID

from .x509util import cert_pem, key_pem

SERVER, CLIENT = [EKU.SERVER_AUTH], [EKU.CLIENT_AUTH]


def _name(cn, org=None):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(cn, *, org=None, ca=None, usage=(), dns=(), ips=(), days=365, key=None, not_before=None):
    """(cert, key): self-signed CA when `ca` is None, else a leaf signed by `ca` = (cert, key)."""
    key = key or rsa.generate_private_key(65537, 2048)
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    issuer_cert, issuer_key = ca if ca else (None, key)
    b = (x509.CertificateBuilder().subject_name(_name(cn, org))
         .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
         .public_key(key.public_key()).serial_number(secrets.randbelow(2**63 - 2) + 1)
         .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
         .add_extension(x509.KeyUsage(True, False, True, False, False, ca is None, False, False, False), True)
         .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), True))
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage(list(usage)), False)
    if ca is None:
        dns = [cn]
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), False)
    names = [x509.DNSName(d) for d in dict.fromkeys(dns)] + \
            [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), False)
    return b.sign(issuer_key, hashes.SHA256()), key


def ca_hash(cert):
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def new_token():
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + \
        "".join(secrets.choice(alphabet) for _ in range(16))


def kubeconfig(server, ca_cert, user, cert=None, key=None, token=None, cluster="kubernetes"):
    creds = {"token": token} if token else {
        "client-certificate-data": _b64(cert_pem(cert)), "client-key-data": _b64(key_pem(key))}
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": f"{user}@{cluster}", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": server,
                                                   "certificate-authority-data": _b64(cert_pem(ca_cert))}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "users": [{"name": user, "user": creds}]}).encode()


def _b64(data):
    import base64
    return base64.b64encode(data).decode()


@dataclass
class Cluster:
    """Cluster-wide PKI facts (reference §1.1) and the per-node files derived from them."""
    endpoint: str                       # controlPlaneEndpoint host:port
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"
    cert_sans: tuple = ()
    cas: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, cn in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
            self.cas[name] = issue(cn, days=3650)
        self.sa = rsa.generate_private_key(65537, 2048)

    def apiserver_sans(self, node, address):
        net = ipaddress.ip_network(self.service_subnet)
        cpe_host = self.endpoint.rsplit(":", 1)[0]
        dns = [node, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               f"kubernetes.default.svc.{self.dns_domain}"]
        ips = [str(net.network_address + 1), address]
        for extra in (cpe_host, *self.cert_sans):
            try:
                ips.append(str(ipaddress.ip_address(extra)))
            except ValueError:
                dns.append(extra)
        return dns, ips

    def shared_files(self):
        """What every control-plane node gets: the CAs with keys and sa (reference §9)."""
        files = {}
        for name, (cert, key) in self.cas.items():
            files[f"pki/{name}.crt"], files[f"pki/{name}.key"] = cert_pem(cert), key_pem(key)
        files["pki/sa.key"] = key_pem(self.sa)
        files["pki/sa.pub"] = self.sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return files

    def node_files(self, node, address, first=True):
        """Shared CAs plus this node's leaves and kubeconfigs, keyed by path under /etc/kubernetes."""
        ca, fp, etcd = self.cas["ca"], self.cas["front-proxy-ca"], self.cas["etcd/ca"]
        dns, ips = self.apiserver_sans(node, address)
        etcd_dns, etcd_ips = [node, "localhost"], [address, "127.0.0.1", "::1"]
        leaves = {
            "apiserver": issue("kube-apiserver", ca=ca, usage=SERVER, dns=dns, ips=ips),
            "apiserver-kubelet-client": issue("kube-apiserver-kubelet-client", org="kubeadm:cluster-admins",
                                              ca=ca, usage=CLIENT),
            "front-proxy-client": issue("front-proxy-client", ca=fp, usage=CLIENT),
            "etcd/server": issue(node, ca=etcd, usage=SERVER + CLIENT, dns=etcd_dns, ips=etcd_ips),
            "etcd/peer": issue(node, ca=etcd, usage=SERVER + CLIENT, dns=etcd_dns, ips=etcd_ips),
            "etcd/healthcheck-client": issue("kube-etcd-healthcheck-client", ca=etcd, usage=CLIENT),
            "apiserver-etcd-client": issue("kube-apiserver-etcd-client", ca=etcd, usage=CLIENT),
        }
        files = self.shared_files()
        for name, (cert, key) in leaves.items():
            files[f"pki/{name}.crt"], files[f"pki/{name}.key"] = cert_pem(cert), key_pem(key)
        files.update(self.kubeconfigs(node, address, first))
        return files

    def kubeconfigs(self, node, address, first=True):
        ca = self.cas["ca"]
        cpe, local = f"https://{self.endpoint}", f"https://{address}:6443"
        specs = {"admin.conf": (cpe, "kubernetes-admin", "kubeadm:cluster-admins"),
                 "controller-manager.conf": (local, "system:kube-controller-manager", None),
                 "scheduler.conf": (local, "system:kube-scheduler", None)}
        if first:
            specs["super-admin.conf"] = (cpe, "kubernetes-super-admin", "system:masters")
        out = {}
        for fname, (server, cn, org) in specs.items():
            cert, key = issue(cn, org=org, ca=ca, usage=CLIENT)
            out[fname] = kubeconfig(server, ca[0], cn, cert, key)
        return out

    def admin_kubeconfig(self, server, org="system:masters", cn="kubernetes-super-admin"):
        cert, key = issue(cn, org=org, ca=self.cas["ca"], usage=CLIENT)
        return kubeconfig(server, self.cas["ca"][0], cn, cert, key)

    def ca_hash(self):
        return ca_hash(self.cas["ca"][0])


def write_files(base, files, prefix="etc/kubernetes"):
    for rel, data in files.items():
        path = Path(base) / prefix / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o600 if rel.endswith((".key", ".conf")) else 0o644)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(check, timeout=30.0):
    """check()'s first true answer, asked every 0.2 s; an AssertionError when there is none within `timeout`."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not in time ({timeout:g} s)"
        time.sleep(0.2)
    return found


def wait_port(address, port, timeout=20.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {address}:{port} opened")
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{address}:{port} did not open within {timeout}s")


class Processes:
    """Processes a test started, stopped by their own PIDs (process groups) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, env=None, **kw):
        out = open(log, "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_etcd(procs, root, name="etcd-test", address="127.0.0.1"):
    """Real etcd with the bundle's etcd/server and etcd/peer certs under `root`; returns the client URL."""
    client, peer, metrics = free_port(), free_port(), free_port()
    pki = Path(root) / "etc/kubernetes/pki/etcd"
    argv = ["etcd", f"--name={name}", f"--data-dir={root}/var/lib/etcd",
            f"--listen-client-urls=https://{address}:{client}", f"--advertise-client-urls=https://{address}:{client}",
            f"--listen-peer-urls=https://{address}:{peer}", f"--initial-advertise-peer-urls=https://{address}:{peer}",
            f"--initial-cluster={name}=https://{address}:{peer}", f"--listen-metrics-urls=http://127.0.0.1:{metrics}",
            f"--cert-file={pki}/server.crt", f"--key-file={pki}/server.key", f"--trusted-ca-file={pki}/ca.crt",
            "--client-cert-auth=true", f"--peer-cert-file={pki}/peer.crt", f"--peer-key-file={pki}/peer.key",
            f"--peer-trusted-ca-file={pki}/ca.crt", "--peer-client-cert-auth=true", "--snapshot-count=10000"]
    proc = procs.start(argv, Path(root) / "etcd.log")
    wait_port(address, client, proc=proc)
    return f"https://{address}:{client}"


def apiserver_flags(root, etcd_url, address, port):
    pki = "/etc/kubernetes/pki"
    return [f"--advertise-address={address}", f"--secure-port={port}", "--allow-privileged=true",
            "--authorization-mode=Node,RBAC", f"--client-ca-file={pki}/ca.crt", "--enable-bootstrap-token-auth=true",
            f"--etcd-servers={etcd_url}", f"--etcd-cafile={pki}/etcd/ca.crt",
            f"--etcd-certfile={pki}/apiserver-etcd-client.crt", f"--etcd-keyfile={pki}/apiserver-etcd-client.key",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki}/sa.pub", f"--service-account-signing-key-file={pki}/sa.key",
            f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key"]


def double_env(root, bin_dir=None, **extra):
    env = dict(os.environ, KUBEFAB_DOUBLE_ROOT=str(root), **extra)
    if bin_dir:
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def fake_cri(root):
    """A listening unix socket where containerd's would be, so the CRI preflight check can connect."""
    path = Path(root) / "var/run/containerd/containerd.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(64)
    return sock


CONTAINERD_SYSTEMD = """version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
"""


def prepare_host(root):
    """What kubefab's prerequisites phase leaves on a node: containerd configured for systemd cgroups."""
    path = Path(root) / "etc/containerd/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONTAINERD_SYSTEMD)
    return fake_cri(root)


class NodeHost:
    """A lab node for the doubles' tests: a root directory in a network namespace, its CRI socket ready."""

    def __init__(self, name, address, root, netns, bin_dir):
        self.name, self.address, self.root, self.ns, self.bin_dir = name, address, root, netns, bin_dir
        self.sock = prepare_host(root)

    def kubeadm(self, *args, bin_dir=None, timeout=180):
        """The kubeadm double of `bin_dir` (the host's own by default), run in the host's namespace."""
        binaries = bin_dir or self.bin_dir
        env = double_env(self.root, binaries, KUBEFAB_DOUBLE_STATUS_SECONDS="0.5")
        return self.ns.exec([str(binaries / "kubeadm"), *args], env=env, capture_output=True, text=True,
                            check=False, timeout=timeout)

    def kubectl(self, *args):
        out = self.ns.exec(["kubectl", "--kubeconfig", str(self.root / "etc/kubernetes/admin.conf"), *args],
                           capture_output=True, text=True, check=False, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def path(self, rel):
        return self.root / rel.lstrip("/")


@contextlib.contextmanager
def local_apiserver(root, bin_dir):
    """Real etcd plus the API-server double on 127.0.0.1, with a full test bundle under `root`.

    Yields (cluster, server URL, port); `root/etc/kubernetes/super-admin.conf` reaches it as system:masters.
    """
    cluster = Cluster(endpoint="127.0.0.1:6443", cert_sans=("127.0.0.1",))
    write_files(root, cluster.node_files("cp-1", "127.0.0.1"))
    procs = Processes()
    try:
        etcd = start_etcd(procs, root)
        port = free_port()
        proc = procs.start([str(bin_dir / "kube-apiserver"), *apiserver_flags(root, etcd, "127.0.0.1", port)],
                           root / "apiserver.log", env=double_env(root))
        wait_port("127.0.0.1", port, proc=proc)
        server = f"https://127.0.0.1:{port}"
        (root / "etc/kubernetes/super-admin.conf").write_bytes(cluster.admin_kubeconfig(server))
        yield cluster, server, port
    finally:
        procs.stop()
