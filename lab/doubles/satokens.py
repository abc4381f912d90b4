"""ServiceAccount tokens as kube-apiserver issues and checks them: JWTs signed with
--service-account-signing-key-file (sa.key), verified with every key of --service-account-key-file (sa.pub).
A sa.pub that does not match sa.key therefore shows as it does on a real cluster: every token is refused
(401) and the controller-manager's controllers, which use such tokens, stop working.
(k/k pkg/serviceaccount/jwt.go, pkg/registry/core/serviceaccount/storage/token.go)"""

import base64
import json
import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key, issuer, namespace, name, audiences, seconds=3600):
    alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    now = int(time.time())
    header = _b64(json.dumps({"alg": alg, "kid": ""}).encode())
    claims = _b64(json.dumps({
        "aud": audiences, "exp": now + seconds, "iat": now, "nbf": now, "iss": issuer,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": str(uuid.uuid4())}},
        "sub": f"system:serviceaccount:{namespace}:{name}"}).encode())
    signed = f"{header}.{claims}".encode()
    if alg == "RS256":
        signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{header}.{claims}.{_b64(signature)}", now + seconds


def verify(token, public_keys, issuer):
    """(namespace, name) of a valid token, else None."""
    try:
        header, claims, signature = token.split(".")
        body, sig = json.loads(_unb64(claims)), _unb64(signature)
    except ValueError:
        return None
    signed = f"{header}.{claims}".encode()
    if not any(_verifies(k, signed, sig) for k in public_keys):
        return None
    if body.get("iss") != issuer or body.get("exp", 0) < time.time():
        return None
    sa = (body.get("kubernetes.io") or {}).get("serviceaccount") or {}
    return body["kubernetes.io"].get("namespace"), sa.get("name")


def _verifies(key, signed, sig):
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey) and len(sig) == 64:
            key.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                       signed, ec.ECDSA(hashes.SHA256()))
        else:
            return False
        return True
    except InvalidSignature:
        return False
