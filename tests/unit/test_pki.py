"""The local PKI bundle: kubeadm's cert table, real chains, exact SANs, and idempotent keep/reissue."""

import datetime
import ipaddress
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from cryptography.x509.verification import PolicyBuilder, Store

from kubefab import inventory, net, pki, plan
from kubefab.errors import KubefabError
from kubefab.pki import kubeconfig, x509
from kubefab.state import bundle

HA = """\
[cluster]
name = "lab"
kubernetes_version = "1.33.5"
control_plane_endpoint = "api.lab.internal:6443"
dns_domain = "cluster.test"
encryption_algorithm = "{algorithm}"
cert_validity_days = {cert_days}
ca_validity_days = {ca_days}

[cluster.apiserver]
cert_sans = [{sans}]

[hosts.cp-1]
address = "10.0.0.11"
roles = ["control-plane"]
[hosts.cp-2]
address = "192.168.9.12"
internal_address = "10.0.0.12"
roles = ["control-plane"]
[hosts.cp-3]
address = "10.0.0.13"
roles = ["control-plane"]
[hosts.w-1]
address = "10.0.0.21"
roles = ["worker"]
"""
SANS = '"k8s.example.com", "10.0.0.100", "*.apps.example.com"'
CPS = {"cp-1": "10.0.0.11", "cp-2": "10.0.0.12", "cp-3": "10.0.0.13"}

# reference §1.1, as data: name -> (signed by, CN, O, extended key usages, per control-plane node)
EXPECTED = {
    "ca": (None, "kubernetes", "", (), False),
    "apiserver": ("ca", "kube-apiserver", "", ("server",), True),
    "apiserver-kubelet-client": ("ca", "kube-apiserver-kubelet-client", "kubeadm:cluster-admins", ("client",), False),
    "front-proxy-ca": (None, "front-proxy-ca", "", (), False),
    "front-proxy-client": ("front-proxy-ca", "front-proxy-client", "", ("client",), False),
    "etcd/ca": (None, "etcd-ca", "", (), False),
    "etcd/server": ("etcd/ca", "{node}", "", ("server", "client"), True),
    "etcd/peer": ("etcd/ca", "{node}", "", ("server", "client"), True),
    "etcd/healthcheck-client": ("etcd/ca", "kube-etcd-healthcheck-client", "", ("client",), False),
    "apiserver-etcd-client": ("etcd/ca", "kube-apiserver-etcd-client", "", ("client",), False),
}
EKUS = {"server": EKU.SERVER_AUTH, "client": EKU.CLIENT_AUTH}


def load(tmp, algorithm="RSA-2048", cert_days=365, ca_days=3650, sans=SANS, state=None, text=HA):
    path = tmp / "inventory.toml"
    path.write_text(text.format(algorithm=algorithm, cert_days=cert_days, ca_days=ca_days, sans=sans))
    return inventory.load(path, state_dir=state)


def ensure_all(inv):
    return pki.ensure(inv) + kubeconfig.ensure(inv)


@pytest.fixture(scope="module")
def rsa_ha(tmp_path_factory):
    inv = load(tmp_path_factory.mktemp("rsa"))
    return inv, ensure_all(inv)


@pytest.fixture(scope="module")
def ec_ha(tmp_path_factory):
    inv = load(tmp_path_factory.mktemp("ec"), algorithm="ECDSA-P256", cert_days=100, ca_days=1000)
    return inv, ensure_all(inv)


@pytest.fixture(params=["rsa", "ec"])
def any_ha(request, rsa_ha, ec_ha):
    return rsa_ha if request.param == "rsa" else ec_ha


@pytest.fixture
def ec_copy(ec_ha, tmp_path):
    """A private copy of the ECDSA bundle (cheap to reissue), with a loader for changed inventories."""
    inv, _ = ec_ha
    shutil.copytree(inv.state_dir, tmp_path / "state")

    def reload(**changes):
        options = dict(algorithm="ECDSA-P256", cert_days=100, ca_days=1000) | changes
        return load(tmp_path, state=tmp_path / "state", **options)
    return reload


def cert(path):
    return cx.load_pem_x509_certificate(path.read_bytes())


def leaf_files(inv):
    """(spec, host name or None, cert path) of every leaf in the bundle."""
    return [(s, h.name if h else None, pki.paths(inv, s, h)[0]) for s, h in pki.targets(inv) if not s.is_ca]


def ca_path(inv, spec):
    return pki.paths(inv, pki.BY_NAME[spec.ca])[0]


def tree(root):
    return {p.relative_to(root): (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*")) if p.is_file()}


def changed(before, after):
    return sorted(str(k) for k in after if before.get(k) != after[k])


def by_what(actions, what):
    return sorted((a.name, a.node) for a in actions if a.what == what)


# -- the table ------------------------------------------------------------------------------------

def test_cert_table_is_kubeadms():
    table = {s.name: (s.ca, s.cn, s.org, s.usages, s.per_node) for s in pki.CERTS}
    assert table == EXPECTED


def test_cert_table_invariants():
    names = [s.name for s in pki.CERTS]
    assert len(names) == len(set(names))
    for spec in pki.CERTS:
        if spec.ca is not None:
            assert pki.BY_NAME[spec.ca].is_ca, f"{spec.name} is signed by {spec.ca}, which is not a CA"
            assert names.index(spec.ca) < names.index(spec.name), "a CA must be ensured before its leaves"
            assert spec.usages
        else:
            assert not spec.usages and not spec.per_node
    assert {s.name for s in pki.CERTS if s.per_node} == {"apiserver", "etcd/server", "etcd/peer"}


def test_sans_come_from_the_inventory_alone(tmp_path):
    """SANs are computed before any file exists: nothing is read or written, the values are kubeadm's."""
    inv = load(tmp_path, state=tmp_path / "absent")
    host = inv.host("cp-2")
    sans = {spec.name: spec.sans(inv, host) for spec in pki.CERTS}
    assert not (tmp_path / "absent").exists()
    assert sans.pop("apiserver") == (
        ("cp-2", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.test",
         "api.lab.internal", "k8s.example.com", "*.apps.example.com"), ("10.96.0.1", "10.0.0.12", "10.0.0.100"))
    assert sans.pop("etcd/server") == sans.pop("etcd/peer") == (("cp-2", "localhost"), ("10.0.0.12", "127.0.0.1", "::1"))
    assert set(sans.values()) == {((), ())}


# -- a generated bundle ---------------------------------------------------------------------------

def test_first_run_creates_everything(rsa_ha):
    inv, actions = rsa_ha
    assert {a.what for a in actions} == {"created"}
    per_node = [(a.name, a.node) for a in actions if a.node]
    assert sorted(per_node) == sorted([(n, h) for n in ("apiserver", "etcd/server", "etcd/peer") for h in CPS] +
                                      [(n, h) for n in ("controller-manager.conf", "scheduler.conf") for h in CPS])


def test_every_leaf_chains_to_its_ca_with_openssl(any_ha):
    inv, _ = any_ha
    for spec, node, crt in leaf_files(inv):
        run = subprocess.run(["openssl", "verify", "-CAfile", str(ca_path(inv, spec)), str(crt)],
                             capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip().endswith(": OK"), (spec.name, node, run.stdout, run.stderr)


def test_every_leaf_chains_to_its_ca_with_cryptography(any_ha):
    inv, _ = any_ha
    for spec, node, crt in leaf_files(inv):
        cert(crt).verify_directly_issued_by(cert(ca_path(inv, spec)))
    # full path validation (webpki rules) for the serving certs, by name and by address
    for name, ip in CPS.items():
        server = cert(pki.paths(inv, pki.BY_NAME["apiserver"], inv.host(name))[0])
        store = Store([cert(pki.paths(inv, pki.BY_NAME["ca"])[0])])
        for subject in (cx.DNSName("kubernetes.default.svc.cluster.test"), cx.DNSName("api.lab.internal"),
                        cx.IPAddress(ipaddress.ip_address(ip)), cx.IPAddress(ipaddress.ip_address("10.96.0.1"))):
            PolicyBuilder().store(store).build_server_verifier(subject).verify(server, [])


def test_a_leaf_does_not_verify_against_another_ca(rsa_ha):
    inv, _ = rsa_ha
    apiserver = pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("cp-1"))[0]
    run = subprocess.run(["openssl", "verify", "-CAfile", str(pki.paths(inv, pki.BY_NAME["etcd/ca"])[0]),
                          str(apiserver)], capture_output=True, text=True)
    assert run.returncode != 0


def sans_of(path):
    ext = cert(path).extensions.get_extension_for_class(cx.SubjectAlternativeName).value
    return set(ext.get_values_for_type(cx.DNSName)), {str(i) for i in ext.get_values_for_type(cx.IPAddress)}


def test_apiserver_sans_are_exactly_kubeadms(rsa_ha):
    inv, _ = rsa_ha
    for name, ip in CPS.items():
        dns, ips = sans_of(pki.paths(inv, pki.BY_NAME["apiserver"], inv.host(name))[0])
        assert dns == {name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.test", "api.lab.internal", "k8s.example.com",
                       "*.apps.example.com"}
        assert ips == {"10.96.0.1", ip, "10.0.0.100"}
        assert "localhost" not in dns and "127.0.0.1" not in ips


def test_apiserver_san_uses_the_internal_address_not_the_ssh_address(rsa_ha):
    inv, _ = rsa_ha
    _, ips = sans_of(pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("cp-2"))[0])
    assert "10.0.0.12" in ips and "192.168.9.12" not in ips


def test_etcd_server_and_peer_carry_the_node(rsa_ha):
    inv, _ = rsa_ha
    for name, ip in CPS.items():
        for which in ("etcd/server", "etcd/peer"):
            path = pki.paths(inv, pki.BY_NAME[which], inv.host(name))[0]
            assert sans_of(path) == ({name, "localhost"}, {ip, "127.0.0.1", "::1"})
            assert cert(path).subject.rfc4514_string() == f"CN={name}"


def test_client_certs_have_no_sans_and_kubeadms_subjects(rsa_ha):
    inv, _ = rsa_ha
    for spec, _, crt in leaf_files(inv):
        c = cert(crt)
        if spec.per_node:
            continue
        with pytest.raises(cx.ExtensionNotFound):
            c.extensions.get_extension_for_class(cx.SubjectAlternativeName)
        want = f"CN={spec.cn}" + (f",O={spec.org}" if spec.org else "")
        assert c.subject.rfc4514_string() == want


def test_ca_certs_name_themselves_as_dns_san(rsa_ha):
    inv, _ = rsa_ha
    for spec in pki.CERTS:
        if spec.is_ca:
            c = cert(pki.paths(inv, spec)[0])
            assert sans_of(pki.paths(inv, spec)[0]) == ({spec.cn}, set())
            assert c.issuer == c.subject


def test_validity_is_backdated_five_minutes_and_follows_the_inventory(any_ha):
    inv, _ = any_ha
    c = inv.cluster
    now = datetime.datetime.now(datetime.timezone.utc)
    for spec, host in pki.targets(inv):
        got = cert(pki.paths(inv, spec, host)[0])
        days = c.ca_validity_days if spec.is_ca else c.cert_validity_days
        assert got.not_valid_after_utc - got.not_valid_before_utc == datetime.timedelta(days=days, minutes=5)
        assert now - datetime.timedelta(minutes=7) < got.not_valid_before_utc < now - datetime.timedelta(minutes=4)
        assert 1 <= got.serial_number < 2**63 - 1


def test_extensions_are_gos(any_ha):
    inv, _ = any_ha
    for spec, host in pki.targets(inv):
        c = cert(pki.paths(inv, spec, host)[0])
        ku = c.extensions.get_extension_for_class(cx.KeyUsage)
        bc = c.extensions.get_extension_for_class(cx.BasicConstraints)
        assert ku.critical and bc.critical
        assert ku.value.digital_signature and ku.value.key_encipherment
        assert ku.value.key_cert_sign == spec.is_ca == bc.value.ca
        assert bc.value.path_length is None
        assert isinstance(c.signature_hash_algorithm, hashes.SHA256)
        if spec.is_ca:
            c.extensions.get_extension_for_class(cx.SubjectKeyIdentifier)
            with pytest.raises(cx.ExtensionNotFound):
                c.extensions.get_extension_for_class(cx.ExtendedKeyUsage)
        else:
            ca_ski = cert(ca_path(inv, spec)).extensions.get_extension_for_class(cx.SubjectKeyIdentifier).value
            aki = c.extensions.get_extension_for_class(cx.AuthorityKeyIdentifier).value
            assert aki.key_identifier == ca_ski.digest
            eku = c.extensions.get_extension_for_class(cx.ExtendedKeyUsage).value
            assert list(eku) == [EKUS[u] for u in spec.usages]


def test_ecdsa_p384_signs_with_sha384(tmp_path):
    inv = load(tmp_path, algorithm="ECDSA-P384", text=HA.replace('"1.33.5"', '"1.34.2"'))
    pki.ensure(inv)
    for spec, host in pki.targets(inv):
        c = cert(pki.paths(inv, spec, host)[0])
        assert isinstance(c.signature_hash_algorithm, hashes.SHA384)
        assert isinstance(c.public_key().curve, ec.SECP384R1)


def test_pem_blocks_are_kubeadms(any_ha):
    inv, _ = any_ha
    key_block = "RSA PRIVATE KEY" if inv.cluster.encryption_algorithm.startswith("RSA") else "EC PRIVATE KEY"
    for spec, host in pki.targets(inv):
        crt, key = pki.paths(inv, spec, host)
        assert crt.read_text().startswith("-----BEGIN CERTIFICATE-----\n")
        assert crt.read_text().count("BEGIN") == 1 and "\r" not in crt.read_text()
        assert key.read_text().startswith(f"-----BEGIN {key_block}-----\n")
    sa_key, sa_pub = pki.sa_paths(inv)
    assert sa_key.read_text().startswith(f"-----BEGIN {key_block}-----\n")
    assert sa_pub.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")


def test_keys_follow_the_encryption_algorithm(any_ha):
    inv, _ = any_ha
    kind = rsa.RSAPublicKey if inv.cluster.encryption_algorithm == "RSA-2048" else ec.EllipticCurvePublicKey
    for spec, host in pki.targets(inv):
        assert isinstance(cert(pki.paths(inv, spec, host)[0]).public_key(), kind)


def test_file_and_directory_modes(rsa_ha):
    inv, _ = rsa_ha
    for path in (inv.state_dir / "pki").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        else:
            assert mode == (0o644 if path.suffix == ".crt" else 0o600), path


# -- what goes to which host ----------------------------------------------------------------------

def test_control_planes_get_the_bundle_and_their_own_leaves(rsa_ha):
    inv, _ = rsa_ha
    for host in inv.control_planes:
        files = {f.path_on_host: f for f in bundle.host_files(inv, host)}
        pki_files = {p for p in files if p.startswith("/etc/kubernetes/pki/")}
        assert pki_files == {f"/etc/kubernetes/pki/{s.name}.{e}" for s in pki.CERTS for e in ("crt", "key")} | {
            "/etc/kubernetes/pki/sa.key", "/etc/kubernetes/pki/sa.pub"}
        confs = {p for p in files if p.endswith(".conf")}
        want = {"/etc/kubernetes/admin.conf", "/etc/kubernetes/controller-manager.conf",
                "/etc/kubernetes/scheduler.conf"}
        assert confs == want | ({"/etc/kubernetes/super-admin.conf"} if host.name == "cp-1" else set())
        for name in ("apiserver", "etcd/server", "etcd/peer"):
            source = files[f"/etc/kubernetes/pki/{name}.crt"].local_source
            assert source == inv.state_dir / "pki" / "nodes" / host.name / f"{name}.crt"
            assert host.name in sans_of(source)[0]
        own = files["/etc/kubernetes/controller-manager.conf"].local_source
        assert own == inv.state_dir / "kubeconfigs" / "nodes" / host.name / "controller-manager.conf"
        for f in files.values():
            assert f.local_source.is_file(), f
            assert f.mode == (0o644 if f.path_on_host.endswith(".crt") else 0o600), f


def test_workers_get_nothing_from_the_pki(rsa_ha):
    inv, _ = rsa_ha
    assert bundle.host_files(inv, inv.host("w-1")) == ()


# -- idempotence and reissue ----------------------------------------------------------------------

def test_rerun_changes_no_byte_and_no_mtime(rsa_ha):
    inv, _ = rsa_ha
    before = tree(inv.state_dir)
    actions = ensure_all(inv)
    assert {a.what for a in actions} == {"kept"}
    assert tree(inv.state_dir) == before


def test_deleting_a_leaf_reissues_only_that_leaf(ec_copy):
    inv = ec_copy()
    gone = pki.paths(inv, pki.BY_NAME["etcd/peer"], inv.host("cp-3"))[0]
    gone.unlink()
    before = tree(inv.state_dir)
    actions = ensure_all(inv)
    assert by_what(actions, "reissued") == [("etcd/peer", "cp-3")]
    assert [a.reason for a in actions if a.what == "reissued"] == ["certificate was missing"]
    assert changed(before, tree(inv.state_dir)) == ["pki/nodes/cp-3/etcd/peer.crt", "pki/nodes/cp-3/etcd/peer.key"]


def test_a_new_cert_san_reissues_the_apiserver_certs_only(ec_copy):
    inv = ec_copy()
    before = tree(inv.state_dir)
    inv = ec_copy(sans=SANS + ', "new.example.com"')
    actions = ensure_all(inv)
    assert by_what(actions, "reissued") == [("apiserver", h) for h in CPS]
    assert all("new.example.com" in a.reason for a in actions if a.what == "reissued")
    assert changed(before, tree(inv.state_dir)) == sorted(
        f"pki/nodes/{h}/apiserver.{e}" for h in CPS for e in ("crt", "key"))
    assert "new.example.com" in sans_of(pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("cp-2"))[0])[0]


def test_a_changed_address_reissues_that_nodes_certs_and_kubeconfigs(ec_copy, tmp_path):
    inv = ec_copy(text=HA.replace('internal_address = "10.0.0.12"', 'internal_address = "10.0.0.42"'))
    actions = ensure_all(inv)
    assert by_what(actions, "reissued") == sorted(
        [(n, "cp-2") for n in ("apiserver", "etcd/server", "etcd/peer", "controller-manager.conf", "scheduler.conf")])
    reasons = {a.name: a.reason for a in actions if a.what == "reissued"}
    assert "10.0.0.42" in reasons["apiserver"] and "https://10.0.0.42:6443" in reasons["scheduler.conf"]


def test_existing_cas_are_kept_when_the_inventory_changes(ec_copy):
    inv = ec_copy()
    cas = {p: p.read_bytes() for p in (inv.state_dir / "pki").glob("**/ca.*")}
    sa = {p: p.read_bytes() for p in pki.sa_paths(inv)}
    inv = ec_copy(sans='"other.example.com"', cert_days=50, ca_days=500)
    actions = ensure_all(inv)
    assert {a.what for a in actions if a.name in ("ca", "front-proxy-ca", "etcd/ca", "sa")} == {"kept"}
    assert {p: p.read_bytes() for p in cas} == cas and {p: p.read_bytes() for p in sa} == sa


@pytest.mark.parametrize("missing", ["crt", "key"])
@pytest.mark.parametrize("ca", ["ca", "front-proxy-ca", "etcd/ca"])
def test_half_a_ca_is_an_error_never_a_new_ca(ec_copy, ca, missing):
    inv = ec_copy()
    crt, key = pki.paths(inv, pki.BY_NAME[ca])
    gone, left = (crt, key) if missing == "crt" else (key, crt)
    gone.unlink()
    before = tree(inv.state_dir)
    with pytest.raises(KubefabError, match=str(left)) as e:
        pki.ensure(inv)
    assert gone.name in str(e.value) and "never replaces a CA" in str(e.value)
    assert tree(inv.state_dir) == before


def test_a_leaf_that_is_not_a_ca_in_the_ca_slot_is_an_error(ec_copy):
    inv = ec_copy()
    crt, key = pki.paths(inv, pki.BY_NAME["front-proxy-ca"])
    client_crt, client_key = pki.paths(inv, pki.BY_NAME["front-proxy-client"])
    shutil.copy(client_crt, crt)
    shutil.copy(client_key, key)
    with pytest.raises(KubefabError, match="is not a CA certificate"):
        pki.ensure(inv)


def test_a_leaf_signed_by_another_ca_is_reissued(ec_copy, rsa_ha):
    inv = ec_copy()
    other, _ = rsa_ha
    for ext in ("crt", "key"):
        shutil.copy(pki.paths(other, pki.BY_NAME["apiserver"], other.host("cp-1"))[0].with_suffix(f".{ext}"),
                    pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("cp-1"))[0].with_suffix(f".{ext}"))
    actions = pki.ensure(inv)
    assert [(a.name, a.node, a.reason) for a in actions if a.what == "reissued"] == [
        ("apiserver", "cp-1", "certificate is not signed by its CA")]
    assert x509.problem(pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("cp-1"))[0].read_bytes(),
                        pki.paths(inv, pki.BY_NAME["ca"])[0].read_bytes()) is None


def test_a_key_that_does_not_match_is_reissued(ec_copy):
    inv = ec_copy()
    spec = pki.BY_NAME["apiserver-etcd-client"]
    shutil.copy(pki.paths(inv, pki.BY_NAME["etcd/healthcheck-client"])[1], pki.paths(inv, spec)[1])
    actions = pki.ensure(inv)
    assert [(a.name, a.reason) for a in actions if a.what == "reissued"] == [
        ("apiserver-etcd-client", "key does not match the certificate")]


def test_garbage_in_a_leaf_is_reissued(ec_copy):
    inv = ec_copy()
    pki.paths(inv, pki.BY_NAME["front-proxy-client"])[0].write_text("not a certificate\n")
    actions = pki.ensure(inv)
    assert by_what(actions, "reissued") == [("front-proxy-client", None)]


def test_sa_pub_is_restored_from_sa_key_and_sa_key_is_never_replaced(ec_copy):
    inv = ec_copy()
    key, pub = pki.sa_paths(inv)
    original = pub.read_bytes(), key.read_bytes()
    pub.unlink()
    actions = pki.ensure(inv)
    assert [(a.name, a.what) for a in actions if a.name == "sa"] == [("sa", "reissued")]
    assert (pub.read_bytes(), key.read_bytes()) == original
    key.unlink()
    with pytest.raises(KubefabError, match="sa.pub.*without its private key sa.key"):
        pki.ensure(inv)


def test_renew_reissues_the_named_leaves_but_never_a_ca(ec_copy):
    inv = ec_copy()
    actions = pki.ensure(inv, renew=("front-proxy-client",))
    assert [(a.name, a.what, a.reason) for a in actions if a.what != "kept"] == [
        ("front-proxy-client", "reissued", "renewal requested")]
    with pytest.raises(KubefabError, match="cannot renew ca"):
        pki.ensure(inv, renew=("ca",))


def test_a_cert_expiring_soon_is_reported_not_renewed(tmp_path):
    inv = load(tmp_path, algorithm="ECDSA-P256", cert_days=10)
    ensure_all(inv)
    before = tree(inv.state_dir)
    actions = ensure_all(inv)
    assert {a.what for a in actions} == {"kept"}
    leaves = [a for a in actions if a.name not in ("ca", "front-proxy-ca", "etcd/ca", "sa")]
    assert len(leaves) == 4 + 3 * 3 + 2 + 3 * 2
    assert all(re.match(r"expires in (9|10) days — renew it", a.reason) for a in leaves), leaves
    assert tree(inv.state_dir) == before


# -- pki.show -------------------------------------------------------------------------------------

def test_certificates_lists_every_cert_soonest_first(tmp_path):
    inv = load(tmp_path, algorithm="ECDSA-P256", cert_days=20, ca_days=1000)
    ensure_all(inv)
    certs = bundle.certificates(inv)
    files = [c.file for c in certs]
    assert len(files) == 3 + 4 + 3 * 3 + 2 + 3 * 2 and len(set(files)) == len(files)
    assert "kubeconfigs/admin.conf" in files and "pki/nodes/cp-2/etcd/peer.crt" in files
    assert [c.not_after for c in certs] == sorted(c.not_after for c in certs)
    assert {c.file for c in certs[-3:]} == {"pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt"}
    assert all(c.expiring for c in certs[:-3]) and not any(c.expiring for c in certs[-3:])
    admin = next(c for c in certs if c.file == "kubeconfigs/admin.conf")
    assert (admin.subject, admin.issuer) == ("CN=kubernetes-admin, O=kubeadm:cluster-admins", "kubernetes")
    assert admin.days_left in (19, 20)
    apiserver = next(c for c in certs if c.file == "pki/nodes/cp-1/apiserver.crt")
    assert "api.lab.internal" in apiserver.sans and "10.96.0.1" in apiserver.sans


# -- x509 helpers ---------------------------------------------------------------------------------

def test_hostname_matching_follows_go(rsa_ha):
    inv, _ = rsa_ha
    pem = pki.paths(inv, pki.BY_NAME["apiserver"], inv.host("cp-1"))[0].read_bytes()
    assert x509.not_valid_for(pem, ("cp-1", "CP-1", "kubernetes.default.svc.cluster.test.", "x.apps.example.com",
                                    "10.0.0.100", "::ffff:10.0.0.11")) == ()
    assert x509.not_valid_for(pem, ("a.b.apps.example.com", "apps.example.com", "localhost", "127.0.0.1",
                                    "10.0.0.12", "cp-2")) == ("a.b.apps.example.com", "apps.example.com",
                                                              "localhost", "127.0.0.1", "10.0.0.12", "cp-2")


def test_service_ip_and_endpoint_host():
    assert net.service_ip("10.96.0.0/12") == "10.96.0.1"
    assert net.service_ip("10.100.0.0/16,fd00::/108") == "10.100.0.1"
    assert net.service_ip("fd00:10:96::/112,10.96.0.0/12") == "fd00:10:96::1"
    assert net.endpoint_parts("api.lab.internal:6443") == ("api.lab.internal", 6443)
    assert net.endpoint_parts("[fd00::10]:6443") == ("fd00::10", 6443)
    assert net.endpoint_parts("fd00::10") == ("fd00::10", 6443)
    assert net.endpoint_parts("10.0.0.1:443") == ("10.0.0.1", 443)
    assert net.join_endpoint("fd00::10") == "[fd00::10]:6443" and net.join_endpoint("api", 443) == "api:443"


def test_a_new_key_prints_as_a_mask():
    key = x509.new_key("ECDSA-P256")
    assert str(key) == "***" and "PRIVATE" not in repr(key)


# -- what kubeadm would say -----------------------------------------------------------------------

def kubeadm_cluster(inv):
    """The ClusterConfiguration fields the kubeadm double's certs/kubeconfig phases read."""
    c = inv.cluster
    return {"certificatesDir": "/etc/kubernetes/pki", "clusterName": c.name, "controlPlaneEndpoint": inv.endpoint,
            "encryptionAlgorithm": c.encryption_algorithm, "etcd": {"local": {}},
            "networking": {"serviceSubnet": c.service_subnet, "dnsDomain": c.dns_domain},
            "apiServer": {"certSANs": list(c.apiserver.cert_sans)}}


def test_the_kubeadm_double_uses_every_pushed_file_as_is(rsa_ha, tmp_path, monkeypatch, capsys):
    """Push host_files() into a fake root per node, run the kubeadm double's certs and kubeconfig phases
    (chain, VerifyHostname of every SAN, kubeconfig CA bytes): nothing may be regenerated."""
    from lab.doubles import certs as kubeadm_certs

    inv, _ = rsa_ha
    for host in inv.control_planes:
        root = tmp_path / host.name
        for f in bundle.host_files(inv, host):
            target = root / f.path_on_host.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f.local_source, target)
        pushed = tree(root)
        monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(root))
        node = kubeadm_certs.Node(host.name, host.internal_address, 6443, kubeadm_cluster(inv))
        kubeadm_certs.run_certs(node, generate_cas=False)
        kubeadm_certs.run_kubeconfigs(node, init=host is inv.first_control_plane)
        out = capsys.readouterr()
        assert "Generating" not in out.out and out.err == "", (host.name, out)
        assert {k: v for k, v in tree(root).items() if k in pushed} == pushed
        written = set(tree(root)) - set(pushed)
        assert written == ({Path("etc/kubernetes/kubelet.conf")}
                           if host is inv.first_control_plane else set())


def planted_ca(inv, name, days, age_days):
    """A CA pair for `name` made `age_days` ago, valid `days`; the state dir as it was."""
    crt, key = pki.paths(inv, pki.BY_NAME[name])
    old_key = x509.new_key("ECDSA-P256")
    made = x509.now() - datetime.timedelta(days=age_days)
    pki.write_pair(crt, x509.issue(x509.Request(name, days=days, is_ca=True), old_key, at=made), key, old_key)
    return crt


def test_an_expired_ca_is_an_error_saying_what_to_do_and_nothing_is_written(tmp_path):
    inv = load(tmp_path, algorithm="ECDSA-P256")
    crt = planted_ca(inv, "front-proxy-ca", days=300, age_days=400)
    before = tree(inv.state_dir)
    with pytest.raises(KubefabError) as e:
        plan.prepare(inv)
    assert str(e.value).startswith(f"{crt}: the CA expired on ")
    assert "kubefab never makes a new one: replace the CA by hand" in str(e.value)
    assert tree(inv.state_dir) == before


def test_a_ca_that_expires_before_a_leaf_issued_now_is_an_error_with_the_days_it_has_left(tmp_path):
    inv = load(tmp_path, algorithm="ECDSA-P256", cert_days=365)
    crt = planted_ca(inv, "etcd/ca", days=500, age_days=400)
    before = tree(inv.state_dir)
    with pytest.raises(KubefabError, match=re.escape(
            f"{crt}: the CA expires on ") + r"\S+ \S+ UTC \(in (99|100) days\), before a certificate issued now with "
            r"cert_validity_days = 365 would — set cert_validity_days to at most \1 in "):
        plan.prepare(inv)
    assert tree(inv.state_dir) == before
    shorter = load(tmp_path, algorithm="ECDSA-P256", cert_days=99)
    assert {a.name for a in plan.prepare(shorter).actions if a.what == "kept"} == {"etcd/ca"}


def test_kubeconfigs_can_be_renewed_by_name(ec_copy):
    inv = ec_copy()
    actions = kubeconfig.ensure(inv, renew=("admin.conf",))
    assert [(a.name, a.what, a.reason) for a in actions if a.what != "kept"] == [
        ("admin.conf", "reissued", "renewal requested")]
    with pytest.raises(KubefabError, match="cannot renew kubelet.conf"):
        kubeconfig.ensure(inv, renew=("kubelet.conf",))


def test_a_broken_ca_stops_the_run_before_any_other_ca_is_made(tmp_path):
    inv = load(tmp_path, algorithm="ECDSA-P256")
    etcd_key = pki.paths(inv, pki.BY_NAME["etcd/ca"])[1]
    etcd_key.parent.mkdir(parents=True)
    etcd_key.write_bytes(x509.new_key("ECDSA-P256").reveal())
    with pytest.raises(KubefabError, match="etcd/ca.key: CA key without its certificate ca.crt"):
        pki.ensure(inv)
    assert [p.name for p in (inv.state_dir / "pki").rglob("*") if p.is_file()] == ["ca.key"]
