"""What kube-apiserver refuses at start, in its words: key files that do not parse, client cert/key pairs
that do not match, CA bundles without certificates.

Sources: k/k pkg/controlplane/apiserver/options (service-account-issuer-key-file), staging client-go
util/keyutil (PublicKeysFromFile, PrivateKeyFromFile), apiserver pkg/server/dynamiccertificates
(dynamic_serving_content.go: cert/key pairs through Go's tls.X509KeyPair; dynamic_cafile_content.go:
"error loading CA bundle for"), Go crypto/tls error strings.
"""

import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .hostfs import DoubleError, host


def _read(path):
    try:
        return host(path).read_bytes()
    except FileNotFoundError:
        raise DoubleError(f"open {path}: no such file or directory")


def _private_key(data):
    try:
        return serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError):
        return None


PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.DOTALL)


def public_keys(path):
    """keyutil.PublicKeysFromFile: PUBLIC KEY blocks, private keys and certificates all give keys."""
    keys = [k for m in PEM_BLOCK.finditer(_read(path)) for k in _keys_of(m.group(0))]
    if not keys:
        raise DoubleError(f'failed to parse key file "{path}": error reading public key file {path}: data does not '
                          "contain any valid RSA or ECDSA public keys")
    return keys


def _keys_of(pem):
    for load in (serialization.load_pem_public_key, lambda d: _private_key(d).public_key(),
                 lambda d: x509.load_pem_x509_certificate(d).public_key()):
        try:
            return [load(pem)]
        except (ValueError, TypeError, AttributeError):
            continue
    return []


def signing_key(path):
    key = _private_key(_read(path))
    if key is None:
        raise DoubleError(f"failed to parse service-account-issuer-key-file: error reading private key file {path}: "
                          "data does not contain a valid RSA or ECDSA private key")
    return key


def key_pair(cert_path, key_path):
    """tls.X509KeyPair over the two files, with Go's errors."""
    cert_pem, key_pem = _read(cert_path), _read(key_path)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise DoubleError("tls: failed to find any PEM data in certificate input")
    key = _private_key(key_pem)
    if key is None:
        raise DoubleError("tls: failed to find any PEM data in key input")
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise DoubleError("tls: private key does not match public key")


def ca_bundle(purpose, path):
    data = _read(path)
    if not data.strip():
        raise DoubleError(f'missing content for CA bundle "{purpose}::{path}"')
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise DoubleError(f'error loading CA bundle for "{purpose}::{path}": data does not contain any valid RSA or '
                          "ECDSA certificates")
