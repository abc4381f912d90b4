"""Token discovery for `kubeadm join` (reference §4.5): fetch cluster-info without trusting the
server, verify the token's JWS, pin the CA by SPKI hash, re-fetch with verification."""

import time
from dataclasses import dataclass

import yaml

from . import controllers
from . import kubeconfig as kc
from . import x509util as xu
from .hostfs import DoubleError, log
from .kubeclient import ApiStatus, Client

RETRY_INTERVAL = 5.0
PREFIX = "couldn't validate the identity of the API Server: "


@dataclass(frozen=True)
class Discovered:
    server: str      # from cluster-info: where TLS bootstrap goes
    ca_pem: bytes


def _cluster_of(content):
    try:
        config = yaml.safe_load(content)
        return config["clusters"][0]["cluster"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as e:
        raise DoubleError(f"{PREFIX}couldn't parse the kubeconfig file in the cluster-info ConfigMap: {e}")


def fetch_signed(client, token_id, timeout, interval):
    """(kubeconfig, signature) once cluster-info carries a signature for `token_id`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cm = client.get(controllers.CLUSTER_INFO)
            data = cm.get("data") or {}
            sig = data.get(f"jws-kubeconfig-{token_id}")
            if sig:
                return data.get("kubeconfig", ""), sig
            error = f'could not find a JWS signature in the cluster-info ConfigMap for token ID "{token_id}"'
        except (DoubleError, ApiStatus) as e:
            error = f"failed to request the cluster-info ConfigMap: {e}"
        if time.monotonic() + interval > deadline:
            raise DoubleError(PREFIX + error)
        log(f"[discovery] Retrying due to error: {error}")
        time.sleep(interval)


def pinned(hashes):
    """pubkeypin.Set.Allow: "sha256:<64 hex>", format and hex case-insensitive; lower-case hex values."""
    pins = set()
    for h in hashes:
        parts = h.split(":")
        if len(parts) != 2:
            raise DoubleError('invalid hash, expected "format:hex-value". Known format(s) are: sha256')
        if parts[0].lower() != "sha256":
            raise DoubleError(f'unknown hash format "{parts[0]}". Known format(s) are: sha256')
        if len(parts[1]) // 2 != 32:
            raise DoubleError(f"expected a 32 byte SHA-256 hash, found {len(parts[1]) // 2} bytes")
        bad = next((c for c in parts[1] if c not in "0123456789abcdefABCDEF"), None)
        if bad:
            raise DoubleError(f"encoding/hex: invalid byte: U+{ord(bad):04X} {bad!r}")
        pins.add(parts[1].lower())
    return pins


def discover(join, timeout, interval=RETRY_INTERVAL):
    disc = join["discovery"]
    if disc.get("file"):
        config = kc.load(disc["file"]["kubeConfigPath"])
        cluster, _ = kc.current(config)
        return Discovered(cluster["server"], kc.ca_data(cluster))
    bt = disc["bootstrapToken"]
    token_id, token_secret = bt["token"].split(".")
    try:
        pins = pinned(bt.get("caCertHashes") or [])
    except DoubleError as e:
        raise DoubleError(f"{PREFIX}invalid discovery token CA certificate hash: {e}")
    endpoint = f"https://{bt['apiServerEndpoint']}"
    content, sig = fetch_signed(Client(endpoint, None), token_id, timeout, interval)
    if not controllers.jws_valid(sig, content, token_id, token_secret):
        raise DoubleError(PREFIX + "failed to verify JWS signature of received cluster info object, can't trust "
                                   "this API Server")
    cluster = _cluster_of(content)
    ca_pem = kc.ca_data(cluster)
    try:
        cas = xu.parse_certs(ca_pem)
    except DoubleError as e:
        raise DoubleError(f"{PREFIX}failed to parse certificate authority data: {e}")
    if pins:
        found = [xu.spki_pin(c) for c in cas]
        if not pins & {f.partition(":")[2] for f in found}:
            raise DoubleError(f"{PREFIX}cluster CA found in cluster-info ConfigMap is invalid: none of the public "
                              f"keys \"{':'.join(found)}\" are pinned")
    elif not bt.get("unsafeSkipCAVerification"):
        raise DoubleError(PREFIX + "using token-based discovery without caCertHashes can be unsafe")
    log(f"[discovery] Cluster info signature and contents are valid and TLS certificate validates against "
        f"pinned roots, will use API Server \"{bt['apiServerEndpoint']}\"")
    try:
        second = Client(endpoint, ca_pem).get(controllers.CLUSTER_INFO)
    except (DoubleError, ApiStatus) as e:
        raise DoubleError(f"{PREFIX}failed to request the cluster-info ConfigMap with the pinned CA: {e}")
    if (second.get("data") or {}).get("kubeconfig") != content:
        raise DoubleError(PREFIX + "the second kubeconfig from the cluster-info ConfigMap did not match the first")
    return Discovered(cluster["server"], ca_pem)
