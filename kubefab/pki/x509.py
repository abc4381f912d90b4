"""X.509 the way kubeadm does it: keys, certificates, PEM encodings, chain and SAN checks.

The only module that imports `cryptography`. Everything crosses this boundary as PEM bytes;
private keys as a `Secret` holding their PEM, so a key never prints by accident. Also, as the same boundary,
files sealed with a passphrase (scrypt and AES-GCM: `seal`, `unseal`), which state.export writes.
"""

import datetime
import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubefab.secret import Secret

SERVER, CLIENT = "server", "client"
BACKDATE = datetime.timedelta(minutes=5)           # kubeadm's CertificateBackdate
_MAX_SERIAL = 2**63 - 1                            # Go's math.MaxInt64, exclusive upper bound
_USAGES = {SERVER: ExtendedKeyUsageOID.SERVER_AUTH, CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH}
_KEYS = {
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
    "RSA-3072": lambda: rsa.generate_private_key(65537, 3072),
    "RSA-4096": lambda: rsa.generate_private_key(65537, 4096),
    "ECDSA-P256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ECDSA-P384": lambda: ec.generate_private_key(ec.SECP384R1()),
}
ALGORITHMS = tuple(_KEYS)


@dataclass(frozen=True)
class Request:
    """What a certificate says: subject, usages, SANs, lifetime and whether it is a CA."""

    cn: str
    org: str = ""
    usages: tuple = ()          # SERVER and/or CLIENT; empty for a CA
    dns: tuple = ()
    ips: tuple = ()
    days: int = 365
    is_ca: bool = False


@dataclass(frozen=True)
class View:
    """A read-only summary of one certificate, for checks and `pki.show`."""

    cn: str
    org: str
    issuer_cn: str
    dns: tuple
    ips: tuple
    not_before: datetime.datetime
    not_after: datetime.datetime
    is_ca: bool
    serial: int = 0

    @property
    def sans(self):
        return self.dns + self.ips


def now():
    """The current UTC time, to the second (what X.509 stores)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def new_key(algorithm):
    """A new private key for kubeadm's `encryptionAlgorithm`, as PKCS#1 / SEC1 PEM in a Secret."""
    if algorithm not in _KEYS:
        raise ValueError(f"unknown key algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    key = _KEYS[algorithm]()
    # TraditionalOpenSSL = "RSA PRIVATE KEY" / "EC PRIVATE KEY", byte-compatible with kubeadm's keyutil
    return Secret(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()))


def public_pem(key):
    """The PKIX `PUBLIC KEY` PEM of a private key (what kubeadm writes as sa.pub)."""
    return _key(key).public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)


def issue(request, key, ca=None, at=None):
    """Sign `request` for `key` with `ca` = (ca cert PEM, ca key Secret), or self-sign when `ca` is None."""
    at = at or now()
    private = _key(key)
    ca_cert, ca_key = (x509.load_pem_x509_certificate(ca[0]), _key(ca[1])) if ca else (None, private)
    subject = _name(request.cn, request.org)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(ca_cert.subject if ca_cert else subject)
               .public_key(private.public_key())
               .serial_number(secrets.randbelow(_MAX_SERIAL - 1) + 1)
               .not_valid_before(at - BACKDATE)
               .not_valid_after(at + datetime.timedelta(days=request.days)))
    for extension, critical in _extensions(request, private, ca_cert):
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, _hash_for(ca_key)).public_bytes(serialization.Encoding.PEM)


def _extensions(request, private, ca_cert):
    """The extensions Go's x509.CreateCertificate writes for kubeadm's templates."""
    dns = request.dns + ((request.cn,) if request.is_ca else ())
    yield x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=request.is_ca,
                        content_commitment=False, data_encipherment=False, key_agreement=False,
                        crl_sign=False, encipher_only=False, decipher_only=False), True
    if request.usages:
        yield x509.ExtendedKeyUsage([_USAGES[u] for u in request.usages]), False
    yield x509.BasicConstraints(ca=request.is_ca, path_length=None), True
    if request.is_ca:
        yield x509.SubjectKeyIdentifier.from_public_key(private.public_key()), False
    if ca_cert is not None:
        yield x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), False
    if dns or request.ips:
        yield x509.SubjectAlternativeName([x509.DNSName(d) for d in dns] +
                                          [x509.IPAddress(ipaddress.ip_address(i)) for i in request.ips]), False


def _name(cn, org):
    # Go's pkix.Name puts O before CN; keep that order so subjects read like kubeadm's
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name(attributes + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _hash_for(signer):
    curve = getattr(signer, "curve", None)
    return hashes.SHA384() if isinstance(curve, ec.SECP384R1) else hashes.SHA256()


def _key(secret, thorough=False):
    # OpenSSL 3's RSA consistency check costs ~40 ms a key; the state dir's keys are ours and written
    # atomically, so only trust roots get the full check (key_matches(thorough=True)).
    return serialization.load_pem_private_key(secret.reveal(), password=None,
                                              unsafe_skip_rsa_key_validation=not thorough)


def _cert(pem):
    return x509.load_pem_x509_certificate(pem)


def problem(cert_pem, ca_pem, at=None):
    """Why `cert_pem` does not chain to `ca_pem` at time `at` (signature, validity), or None if it does."""
    at = at or now()
    try:
        cert, ca = _cert(cert_pem), _cert(ca_pem)
    except ValueError as e:
        return f"cannot be parsed ({e})"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "is not signed by its CA"
    if at < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if at > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def key_matches(cert_pem, key, thorough=False):
    """True when `key` (a Secret) loads and is the private half of `cert_pem`'s public key.

    `thorough` also checks the RSA key's internal consistency (slow; meant for CA keys).
    """
    try:
        return _spki(_key(key, thorough).public_key()) == _spki(_cert(cert_pem).public_key())
    except (ValueError, TypeError):
        return False


def user_pair_problem(cert_pem, key_pem, at=None):
    """Why a user's certificate file and key file cannot serve TLS, as ("cert" | "key", words), or None.

    Either may be the OSError of reading it. The first certificate of the file is the server's (a chain follows).
    """
    for which, data in (("cert", cert_pem), ("key", key_pem)):
        if isinstance(data, OSError):
            return which, f"cannot be read ({data.strerror or data}) — check the path (relative to the inventory)"
    try:
        cert = _cert(cert_pem)
    except ValueError:
        return "cert", "is not a PEM certificate — give the server certificate (its chain may follow it)"
    at = at or now()
    if at > cert.not_valid_after_utc:
        return "cert", (f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC — renew it and point cert at the "
                        "new one")
    if at < cert.not_valid_before_utc:
        return "cert", f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC — check its dates"
    try:
        _key(Secret(key_pem))
    except (ValueError, TypeError):
        return "key", "is not an unencrypted PEM private key — give the key without a passphrase"
    if not key_matches(cert_pem, Secret(key_pem)):
        return "key", "is not the private key of cert's certificate — give the key the certificate was made for"
    return None


def is_ca(cert_pem):
    """True when the certificate has BasicConstraints CA:TRUE."""
    try:
        return _cert(cert_pem).extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def spki_sha256(cert_pem):
    """Hex SHA-256 over the DER SubjectPublicKeyInfo: kubeadm's discovery-token-ca-cert-hash pin."""
    return hashlib.sha256(_spki(_cert(cert_pem).public_key())).hexdigest()


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def view(cert_pem):
    """A `View` of the (first) certificate in `cert_pem`."""
    cert = _cert(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns, ips = tuple(san.get_values_for_type(x509.DNSName)), tuple(
            str(i) for i in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return View(cn=_attr(cert.subject, NameOID.COMMON_NAME), org=_attr(cert.subject, NameOID.ORGANIZATION_NAME),
                issuer_cn=_attr(cert.issuer, NameOID.COMMON_NAME), dns=dns, ips=ips,
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, is_ca=is_ca(cert_pem),
                serial=cert.serial_number)


def _attr(name, oid):
    return ",".join(a.value for a in name.get_attributes_for_oid(oid))


def not_valid_for(cert_pem, names):
    """The names (DNS or IP) in `names` that Go's VerifyHostname would reject for this certificate."""
    v = view(cert_pem)
    return tuple(n for n in names if not _matches(v, n))


def _matches(v, name):
    ip = _ip(name)
    if ip is not None:
        return any(_ip(candidate) == ip for candidate in v.ips)
    host = name.lower().rstrip(".")
    return any(_dns_match(pattern.lower().rstrip("."), host) for pattern in v.dns)


def _ip(text):
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    # Go's net.IP.Equal treats ::ffff:a.b.c.d and a.b.c.d as the same address
    return getattr(ip, "ipv4_mapped", None) or ip


def _dns_match(pattern, host):
    """Go's matchHostnames: exact match, or a leftmost '*' label standing for exactly one label."""
    if pattern == host:
        return True
    p, h = pattern.split("."), host.split(".")
    if p[0] != "*" or len(p) != len(h) or "*" in host or "" in h:
        return False
    return p[1:] == h[1:]


# -- passphrase-sealed files (state.export) -------------------------------------------------------

SEALED = b"kubefab-sealed-1\n"      # the format's name, also bound into the tag: a header changed is a file refused
_SALT, _NONCE = 16, 12
_SCRYPT = {"length": 32, "n": 2 ** 15, "r": 8, "p": 1}     # ~32 MiB and ~0.1 s per try: a guess costs the same


def seal(data, passphrase):
    """`data` encrypted under `passphrase` (a Secret of str): scrypt derives an AES-256-GCM key from it and a fresh
    salt; the result is SEALED, salt, nonce, then the ciphertext with its tag."""
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    return SEALED + salt + nonce + AESGCM(_derive(passphrase, salt)).encrypt(nonce, data, SEALED)


def unseal(blob, passphrase):
    """The data `seal` sealed; ValueError when `blob` is not a sealed file, or the passphrase or a byte is wrong."""
    if not blob.startswith(SEALED) or len(blob) < len(SEALED) + _SALT + _NONCE + 16:
        raise ValueError("not a file kubefab sealed")
    salt = blob[len(SEALED):len(SEALED) + _SALT]
    nonce = blob[len(SEALED) + _SALT:len(SEALED) + _SALT + _NONCE]
    try:
        return AESGCM(_derive(passphrase, salt)).decrypt(nonce, blob[len(SEALED) + _SALT + _NONCE:], SEALED)
    except InvalidTag:
        raise ValueError("the passphrase is wrong, or the file was changed since it was sealed") from None


def _derive(passphrase, salt):
    return Scrypt(salt=salt, **_SCRYPT).derive(passphrase.reveal().encode())
