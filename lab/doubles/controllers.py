"""The controller-manager's part the doubles play: bootstrapsigner and tokencleaner (reference §4),
kubelet client CSR approval and signing (--cluster-signing-*), and node pod-CIDR allocation."""

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json

from cryptography import x509

from . import x509util as xu
from .kubeclient import ApiStatus

CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
SECRETS = "/api/v1/namespaces/kube-system/secrets"
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
ALLOWED_USAGES = {"digital signature", "key encipherment", "client auth"}


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_sign(content, token_id, token_secret):
    """Detached HS256 JWS of `content` keyed by the full token (reference §4.4)."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    sig = hmac.new(f"{token_id}.{token_secret}".encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}..{_b64url(sig)}"


def jws_valid(detached, content, token_id, token_secret):
    parts = detached.split(".")
    if len(parts) != 3 or parts[1]:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return False
    if header.get("alg") != "HS256" or header.get("kid") != token_id:
        return False
    return hmac.compare_digest(detached, jws_sign(content, token_id, token_secret))


def _decode(data):
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tokens(client):
    """[(id, secret, data)] of the bootstrap-token Secrets that have not expired."""
    out = []
    for s in client.get(SECRETS).get("items", []):
        if s.get("type") != "bootstrap.kubernetes.io/token":
            continue
        data = _decode(s.get("data"))
        if data.get("expiration") and data["expiration"] < now_rfc3339():
            continue
        out.append((data.get("token-id", ""), data.get("token-secret", ""), data))
    return out


def sign_cluster_info(client):
    """bootstrapsigner: one jws-kubeconfig-<id> per unexpired signing token, stale ones removed."""
    try:
        cm = client.get(CLUSTER_INFO)
    except ApiStatus as e:
        if e.code == 404:
            return False
        raise
    data = dict(cm.get("data") or {})
    content = data.get("kubeconfig", "")
    wanted = {f"jws-kubeconfig-{tid}": jws_sign(content, tid, sec) for tid, sec, d in tokens(client)
              if d.get("usage-bootstrap-signing") == "true"}
    current = {k: v for k, v in data.items() if k.startswith("jws-kubeconfig-")}
    if current == wanted:
        return False
    patch = {"data": {**{k: None for k in current if k not in wanted}, **wanted}}
    client.patch(CLUSTER_INFO, patch)
    return True


def clean_tokens(client):
    """tokencleaner: expired bootstrap-token Secrets are deleted."""
    for s in client.get(SECRETS).get("items", []):
        exp = _decode(s.get("data")).get("expiration")
        if s.get("type") == "bootstrap.kubernetes.io/token" and exp and exp < now_rfc3339():
            client.delete(f"{SECRETS}/{s['metadata']['name']}")


def _approvable(csr):
    """csrapproving's rules for kubelet client CSRs (nodeclient / selfnodeclient)."""
    spec = csr.get("spec", {})
    if spec.get("signerName") != KUBELET_SIGNER:
        return False
    req = x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
    cn, orgs = xu.subject_of(req)
    if orgs != ["system:nodes"] or not cn.startswith("system:node:") or not set(spec.get("usages", [])) <= \
            ALLOWED_USAGES or "client auth" not in spec.get("usages", []):
        return False
    groups = spec.get("groups", [])
    return "system:bootstrappers" in groups or ("system:nodes" in groups and spec.get("username") == cn)


def approve_and_sign(client, ca_cert, ca_key):
    """Approve and sign pending kubelet client CSRs; `ca_key` None = external CA (never signed)."""
    for csr in client.get(CSRS).get("items", []):
        status, name = csr.get("status") or {}, csr["metadata"]["name"]
        conds = {c.get("type") for c in status.get("conditions", [])}
        if not conds and _approvable(csr):
            csr.setdefault("status", {})["conditions"] = [{
                "type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                "lastUpdateTime": now_rfc3339()}]
            csr = client.request("PUT", f"{CSRS}/{name}/approval", csr)
            conds = {"Approved"}
        if "Approved" in conds and not csr.get("status", {}).get("certificate") and ca_key is not None:
            req = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
            cn, orgs = xu.subject_of(req)
            cert = xu.sign(req.public_key(), req.subject, ca_cert, ca_key, usages=(xu.CLIENT,))
            csr["status"]["certificate"] = base64.b64encode(xu.cert_pem(cert)).decode()
            client.request("PUT", f"{CSRS}/{name}/status", csr)


def allocate_pod_cidrs(client, cluster_cidr, mask=24):
    """nodeipam: per node a /24 (IPv4) or /64 (IPv6) from each --cluster-cidr family, in order."""
    nodes = client.get("/api/v1/nodes").get("items", [])
    nets = [ipaddress.ip_network(c.strip(), strict=False) for c in cluster_cidr.split(",")]
    used = {c for n in nodes for c in n.get("spec", {}).get("podCIDRs") or [n.get("spec", {}).get("podCIDR")] if c}
    free = [(str(s) for s in net.subnets(new_prefix=mask if net.version == 4 else 64) if str(s) not in used)
            for net in nets]
    for node in nodes:
        if not node.get("spec", {}).get("podCIDR"):
            cidrs = [next(f) for f in free]
            client.patch(f"/api/v1/nodes/{node['metadata']['name']}", {"spec": {"podCIDR": cidrs[0],
                                                                                "podCIDRs": cidrs}})
