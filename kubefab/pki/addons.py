"""The add-ons' certificates, declared as pki.CERTS declares kubeadm's, under <state>/pki/addons/.

A CA of their own (never the cluster CA, whose trust the API server and every kubelet hold): it signs
envoy-gateway's control-plane and xDS certificates (what upstream's certgen Job would make, after
internal/crypto/certgen.go: the controller's with its Service's names, the proxies' and the rate limiter's with
`*.<namespace>`) and, for `[addons.tls] issue`, the gateway's TLS certificate. envoy-gateway also reads a 32-byte
OIDC HMAC key, kept beside them. Nothing here is made while `[addons] gateway` is "none"; once made, the CA is
kept and never regenerated, and a leaf is reissued only when it no longer fits (pki.leaf_problem).
"""

import secrets

from kubefab import fsutil, net, pki
from kubefab.pki import x509
from kubefab.pki.x509 import CLIENT, SERVER
from kubefab.secret import Secret

NAMESPACE = "envoy-gateway-system"      # where envoy-gateway runs and reads its Secrets
CONTROLLER = "envoy-gateway"            # its Service, whose names the controller's certificate carries
HMAC_BYTES = 32                         # certgen's generateHMACSecret


def controller_sans(inv, host):
    """certgen's kubeServiceNames(envoy-gateway, namespace, dns domain)."""
    service = f"{CONTROLLER}.{NAMESPACE}"
    return (CONTROLLER, service, f"{service}.svc", f"{service}.svc.{inv.cluster.dns_domain}"), ()


def proxy_sans(inv, host):
    return (f"*.{NAMESPACE}",), ()


def issued_sans(inv, host):
    """[addons.tls] issue: its DNS names and its IP addresses."""
    names = inv.addons.tls.issue
    return (tuple(n for n in names if not net.as_ip(n)),
            tuple(str(net.as_ip(n)) for n in names if net.as_ip(n)))


CA = pki.CertSpec("addons/ca", None, "kubefab-addons-ca")
CERTS = (
    CA,
    pki.CertSpec("addons/envoy-gateway", CA.name, "envoy-gateway", usages=(SERVER, CLIENT), sans=controller_sans),
    pki.CertSpec("addons/envoy", CA.name, "*", usages=(SERVER, CLIENT), sans=proxy_sans),
    pki.CertSpec("addons/envoy-rate-limit", CA.name, "*", usages=(SERVER, CLIENT), sans=proxy_sans),
    pki.CertSpec("addons/gateway-tls", CA.name, "kubefab-gateway", usages=(SERVER,), sans=issued_sans),
)
BY_NAME = {s.name: s for s in CERTS}
# envoy-gateway's Secret name -> the certificate it holds (internal/provider/kubernetes/secrets.go CertsToSecret)
XDS = {"envoy-gateway": "addons/envoy-gateway", "envoy": "addons/envoy", "envoy-rate-limit": "addons/envoy-rate-limit"}
HMAC = "addons/envoy-oidc-hmac.key"


def wanted(inv):
    """The specs this inventory needs: none without the gateway; the TLS leaf only for `issue`."""
    if inv.addons.gateway == "none":
        return ()
    return tuple(s for s in CERTS if s.name != "addons/gateway-tls" or inv.addons.tls.issue)


def ensure(inv):
    """Create the add-on CA, issue what is missing or no longer fits, keep the rest; pki.Action each."""
    specs = wanted(inv)
    if not specs:
        return ()
    at = x509.now()
    crt, key = pki.paths(inv, CA)
    pki.check_ca(crt, key)
    pki.check_ca_dates(inv, crt, at)
    pki.private_dirs(inv, [crt])
    actions = [pki.ensure_ca(inv, CA, at)]
    ca = crt.read_bytes(), Secret(key.read_bytes())
    for spec in specs[1:]:
        leaf, leaf_key = pki.paths(inv, spec)
        want = pki.request(inv, spec)
        reason = pki.leaf_problem(leaf, leaf_key, ca[0], want, at)
        if reason is None:
            actions.append(pki.Action(spec.name, None, pki.KEPT, pki.expiry_note(leaf.read_bytes(), at) or "valid"))
            continue
        new_key = x509.new_key(inv.cluster.encryption_algorithm)
        pki.write_pair(leaf, x509.issue(want, new_key, ca, at), leaf_key, new_key)
        actions.append(pki.Action(spec.name, None, pki.CREATED if reason == pki.NEW else pki.REISSUED, reason))
    hmac = pki.pki_dir(inv) / HMAC
    if not hmac.exists():
        fsutil.write_atomic(hmac, secrets.token_bytes(HMAC_BYTES), pki.KEY_MODE, pki.DIR_MODE)
        actions.append(pki.Action(HMAC.removesuffix(".key"), None, pki.CREATED, "new OIDC HMAC key"))
    return tuple(actions)


def pair(inv, name):
    """(cert PEM, key Secret) of certificate `name` as ensure() left it."""
    crt, key = pki.paths(inv, BY_NAME[name])
    return crt.read_bytes(), Secret(key.read_bytes())


def ca_cert(inv):
    return pki.paths(inv, CA)[0].read_bytes()


def hmac_key(inv):
    return Secret((pki.pki_dir(inv) / HMAC).read_bytes())


def tls_pair(inv):
    """The gateway's certificate (chain) and key: the user's files, or the one issued from the add-on CA."""
    tls = inv.addons.tls
    if tls.cert:
        with open(tls.cert, "rb") as cert, open(tls.key, "rb") as key:
            return cert.read(), Secret(key.read())
    return pair(inv, "addons/gateway-tls")
