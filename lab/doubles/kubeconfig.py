"""kubeconfig files: read, build and write them the way kubeadm and the kubelet do (reference §3)."""

import base64

import yaml

from .hostfs import DoubleError, host, write_file


def b64(data):
    return base64.b64encode(data).decode()


def load(path):
    try:
        return yaml.safe_load(host(path).read_text())
    except FileNotFoundError:
        raise DoubleError(f"stat {path}: no such file or directory")
    except yaml.YAMLError as e:
        raise DoubleError(f"failed to load kubeconfig {path}: {e}")


def current(config, where="kubeconfig"):
    """(cluster, user) dicts of the current context."""
    ctx_name = config.get("current-context", "")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    if ctx_name not in contexts:
        raise DoubleError(f"invalid kubeconfig {where}: context {ctx_name!r} not found")
    ctx = contexts[ctx_name]
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    if ctx.get("cluster") not in clusters:
        raise DoubleError(f"invalid kubeconfig {where}: cluster {ctx.get('cluster')!r} not found")
    return clusters[ctx["cluster"]], users.get(ctx.get("user"), {})


def ca_data(cluster):
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    if cluster.get("certificate-authority"):
        return host(cluster["certificate-authority"]).read_bytes()
    return b""


def client_material(user):
    """(cert PEM, key PEM, token) of a kubeconfig user (embedded data or file references)."""
    cert = base64.b64decode(user["client-certificate-data"]) if user.get("client-certificate-data") else (
        host(user["client-certificate"]).read_bytes() if user.get("client-certificate") else None)
    key = base64.b64decode(user["client-key-data"]) if user.get("client-key-data") else (
        host(user["client-key"]).read_bytes() if user.get("client-key") else None)
    return cert, key, user.get("token")


def build(server, ca_pem, user, cluster="kubernetes", cert_pem=None, key_pem=None, token=None,
          cert_file=None, key_file=None):
    if token:
        creds = {"token": token}
    elif cert_file:
        creds = {"client-certificate": cert_file, "client-key": key_file}
    else:
        creds = {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}
    context = f"{user}@{cluster}"
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
            "clusters": [{"name": cluster, "cluster": {"certificate-authority-data": b64(ca_pem), "server": server}}],
            "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
            "users": [{"name": user, "user": creds}]}


def write(path, config):
    write_file(path, yaml.safe_dump(config, sort_keys=False), mode=0o600)
