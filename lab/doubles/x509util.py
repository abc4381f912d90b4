"""Certificates and keys the way kubeadm loads, verifies and signs them (reference §1, §2.1)."""

import datetime
import hashlib
import ipaddress
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .hostfs import DoubleError, host

BACKDATE = datetime.timedelta(minutes=5)
ONE_YEAR = datetime.timedelta(hours=8760)
TEN_YEARS = datetime.timedelta(hours=87600)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
PEM_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


# ---- loading ------------------------------------------------------------------------------

def parse_certs(data):
    """Every CERTIFICATE PEM block in `data` (kubeadm takes only those, reference §1.5)."""
    certs = []
    for block in data.split(PEM_CERT_BEGIN)[1:]:
        certs.append(x509.load_pem_x509_certificate(PEM_CERT_BEGIN + block.split(b"-----END CERTIFICATE-----")[0]
                                                    + b"-----END CERTIFICATE-----\n"))
    if not certs:
        raise DoubleError("data does not contain any valid RSA or ECDSA certificates")
    return certs


def load_chain(path):
    try:
        return parse_certs(host(path).read_bytes())
    except FileNotFoundError:
        raise DoubleError(f"couldn't load the certificate file {path}: open {path}: no such file or directory")
    except ValueError as e:
        raise DoubleError(f"couldn't load the certificate file {path}: {e}")


def load_cert(path):
    return load_chain(path)[0]


def parse_key(data, where):
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise DoubleError(f"couldn't load the private key file {where}: {e}")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise DoubleError(f"the private key file {where} is neither in RSA nor ECDSA format")
    return key


def load_key(path):
    try:
        return parse_key(host(path).read_bytes(), path)
    except FileNotFoundError:
        raise DoubleError(f"couldn't load the private key file {path}: open {path}: no such file or directory")


def is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


# ---- verification -------------------------------------------------------------------------

def check_signature(cert, issuer):
    """Go's CheckSignatureFrom: issuer must be a CA and its key must verify the signature."""
    if not is_ca(issuer):
        raise DoubleError("x509: invalid signature: parent certificate cannot sign this kind of certificate")
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        else:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        algo = "crypto/rsa" if isinstance(key, rsa.RSAPublicKey) else "x509: ECDSA"
        raise DoubleError(f"{algo}: verification error")


def verify_chain(leaf, intermediates, ca):
    """pkiutil.VerifyCertChain: leaf -> intermediates -> ca by signature and time (any EKU),
    failing with Go's x509.Verify wording."""
    chain = [leaf, *intermediates]
    for cert, issuer in zip(chain, chain[1:] + [ca]):
        if cert.issuer != issuer.subject:
            raise DoubleError("x509: certificate signed by unknown authority")
        try:
            check_signature(cert, issuer)
        except DoubleError as e:
            cn = subject_of(issuer)[0]
            raise DoubleError(f'x509: certificate signed by unknown authority (possibly because of "{e}" while '
                              f'trying to verify candidate authority certificate "{cn}")')
    t = now()
    for cert in chain:
        if t < cert.not_valid_before_utc or t > cert.not_valid_after_utc:
            when = "before" if t < cert.not_valid_before_utc else "after"
            bound = cert.not_valid_before_utc if when == "before" else cert.not_valid_after_utc
            raise DoubleError(f"x509: certificate has expired or is not yet valid: current time "
                              f"{t:%Y-%m-%dT%H:%M:%SZ} is {when} {bound:%Y-%m-%dT%H:%M:%SZ}")


def period_warning(name, cert):
    """kubeadm's CheckCertificatePeriodValidity only warns."""
    t = now()
    if t < cert.not_valid_before_utc:
        return f"WARNING: certificate {name} is not yet valid: NotBefore: {cert.not_valid_before_utc}, now: {t}"
    if t > cert.not_valid_after_utc:
        return f"WARNING: certificate {name} has expired: NotAfter: {cert.not_valid_after_utc}, now: {t}"
    return None


def sans(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ext.get_values_for_type(x509.DNSName), [str(i) for i in ext.get_values_for_type(x509.IPAddress)]


def _dns_match(pattern, name):
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*.") and "." in name:
        return name.split(".", 1)[1] == pattern[2:] and name.split(".", 1)[0] != ""
    return pattern == name


def verify_hostname(cert, name):
    """Go's x509.Certificate.VerifyHostname, with Go's error wording."""
    dns, ips = sans(cert)
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        if any(ipaddress.ip_address(i) == ip for i in ips):
            return
        if not ips:
            raise DoubleError(f"x509: cannot validate certificate for {name} because it doesn't contain any IP SANs")
        raise DoubleError(f"x509: certificate is valid for {', '.join(ips)}, not {name}")
    if any(_dns_match(p, name) for p in dns):
        return
    if not dns:
        raise DoubleError(f"x509: certificate is not valid for any names, but wanted to match {name}")
    raise DoubleError(f"x509: certificate is valid for {', '.join(dns)}, not {name}")


def spki_pin(cert):
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# ---- signing (what kubeadm and the controller-manager generate) -----------------------------

KEY_TYPES = {
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
    "RSA-3072": lambda: rsa.generate_private_key(65537, 3072),
    "RSA-4096": lambda: rsa.generate_private_key(65537, 4096),
    "ECDSA-P256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ECDSA-P384": lambda: ec.generate_private_key(ec.SECP384R1()),
}


def new_key(algorithm="RSA-2048"):
    return KEY_TYPES[algorithm or "RSA-2048"]()


def _hash_for(key):
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _name(cn, orgs=()):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def sign(public_key, subject, issuer_cert, issuer_key, *, ca=False, usages=(), dns=(), ips=(), validity=ONE_YEAR):
    """A certificate shaped like kubeadm's (reference §1.3)."""
    start = now()
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
         .public_key(public_key).serial_number(secrets.randbelow(2**63 - 2) + 1)
         .not_valid_before(start - BACKDATE).not_valid_after(start + validity)
         .add_extension(x509.KeyUsage(True, False, True, False, False, ca, False, False, False), critical=True)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if ca:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if issuer_cert is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                            critical=False)
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(issuer_key, _hash_for(issuer_key))


def new_ca(cn, algorithm="RSA-2048", validity=TEN_YEARS):
    key = new_key(algorithm)
    return sign(key.public_key(), _name(cn), None, key, ca=True, dns=[cn], validity=validity), key


def new_leaf(ca_cert, ca_key, cn, orgs=(), usages=(), dns=(), ips=(), algorithm="RSA-2048", validity=ONE_YEAR):
    key = new_key(algorithm)
    return sign(key.public_key(), _name(cn, orgs), ca_cert, ca_key, usages=usages, dns=dns, ips=ips,
                validity=validity), key


def subject_of(cert):
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cn[0] if cn else ""), orgs
