"""kubeconfigs as kubeadm writes them: the right server, exactly ca.crt's bytes, a client cert the CA signed."""

import base64
import datetime
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509 as cx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from kubernetes import client, config

from inventories import host_tables
from kubefab import inventory, pki
from kubefab.pki import kubeconfig

INVENTORY = """\
[cluster]
name = "lab"
kubernetes_version = "1.33.5"
control_plane_endpoint = "{endpoint}"
encryption_algorithm = "ECDSA-P256"
cert_validity_days = 200

""" + host_tables(3, 1)
ENDPOINT = "api.lab.internal:6443"
CPS = {"cp-1": "10.0.0.11", "cp-2": "10.0.0.12", "cp-3": "10.0.0.13"}

# reference §3, as data: file -> (CN, O, server: "endpoint" or "local", per node, first control plane only)
EXPECTED = {
    "admin.conf": ("kubernetes-admin", "kubeadm:cluster-admins", "endpoint", False, False),
    "super-admin.conf": ("kubernetes-super-admin", "system:masters", "endpoint", False, True),
    "controller-manager.conf": ("system:kube-controller-manager", "", "local", True, False),
    "scheduler.conf": ("system:kube-scheduler", "", "local", True, False),
}


def load(tmp, endpoint=ENDPOINT, state=None):
    path = tmp / "inventory.toml"
    path.write_text(INVENTORY.format(endpoint=endpoint))
    return inventory.load(path, state_dir=state)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    inv = load(tmp_path_factory.mktemp("kc"))
    pki.ensure(inv)
    return inv, kubeconfig.ensure(inv)


@pytest.fixture
def copy(made, tmp_path):
    inv, _ = made
    shutil.copytree(inv.state_dir, tmp_path / "state")
    return lambda endpoint=ENDPOINT: load(tmp_path, endpoint, state=tmp_path / "state")


def every(inv):
    """(file name, node or None, local path, expected server) of every kubeconfig."""
    out = []
    for spec, host in kubeconfig.targets(inv):
        server = f"https://{ENDPOINT}" if EXPECTED[spec.file][2] == "endpoint" else f"https://{CPS[host.name]}:6443"
        out.append((spec.file, host.name if host else None, kubeconfig.path(inv, spec, host), server))
    return out


def ca_bytes(inv):
    return (inv.state_dir / "pki" / "ca.crt").read_bytes()


def test_table_is_kubeadms():
    table = {s.file: (s.cn, s.org, "local" if s.server is kubeconfig.local_endpoint else "endpoint", s.per_node,
                      s.first_only) for s in kubeconfig.KUBECONFIGS}
    assert table == EXPECTED
    assert "kubelet.conf" not in table, "TLS bootstrap writes kubelet.conf"


def test_one_shared_and_one_per_control_plane(made):
    inv, actions = made
    assert sorted((a.name, a.node) for a in actions) == sorted(
        [("admin.conf", None), ("super-admin.conf", None)] +
        [(f, h) for f in ("controller-manager.conf", "scheduler.conf") for h in CPS])
    assert {a.what for a in actions} == {"created"}
    assert not list(inv.state_dir.rglob("kubelet.conf"))


def test_the_kubernetes_client_loads_each_with_the_right_server_and_ca(made):
    inv, _ = made
    for name, node, path, server in every(inv):
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=cfg)
        assert cfg.host == server, (name, node)
        assert Path(cfg.ssl_ca_cert).read_bytes() == ca_bytes(inv)
        assert Path(cfg.cert_file).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert Path(cfg.key_file).read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")


def test_embedded_ca_is_exactly_ca_crt_and_names_follow_kubeadm(made):
    inv, _ = made
    for name, _, path, server in every(inv):
        doc = yaml.safe_load(path.read_text())
        cn = EXPECTED[name][0]
        assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == ca_bytes(inv)
        assert doc["clusters"][0]["name"] == "lab" and doc["users"][0]["name"] == cn
        assert doc["current-context"] == doc["contexts"][0]["name"] == f"{cn}@lab"
        assert doc["contexts"][0]["context"] == {"cluster": "lab", "user": cn}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_client_certs_are_signed_by_the_cluster_ca_for_client_auth(made):
    inv, _ = made
    ca = cx.load_pem_x509_certificate(ca_bytes(inv))
    for name, _, path, _ in every(inv):
        cn, org = EXPECTED[name][:2]
        parsed = kubeconfig.parse(path.read_bytes())
        cert = cx.load_pem_x509_certificate(parsed.cert)
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"CN={cn}" + (f",O={org}" if org else "")
        assert list(cert.extensions.get_extension_for_class(cx.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.CLIENT_AUTH]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=200, minutes=5)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert str(parsed.key) == "***"


def test_rerun_keeps_every_file(made):
    inv, _ = made
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in inv.state_dir.rglob("*.conf")}
    assert {a.what for a in kubeconfig.ensure(inv)} == {"kept"}
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before


def test_a_differently_encoded_ca_is_reissued(copy):
    inv = copy()
    path = kubeconfig.path(inv, kubeconfig.BY_FILE["admin.conf"])
    doc = yaml.safe_load(path.read_text())
    crlf = ca_bytes(inv).replace(b"\n", b"\r\n")      # pitfall 3: same cert, other bytes
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(crlf).decode()
    path.write_text(yaml.safe_dump(doc))
    actions = kubeconfig.ensure(inv)
    assert [(a.name, a.reason) for a in actions if a.what != "kept"] == [
        ("admin.conf", "embedded CA differs from pki/ca.crt")]
    assert kubeconfig.parse(path.read_bytes()).ca == ca_bytes(inv)


def test_a_new_endpoint_reissues_the_endpoint_kubeconfigs_only(copy):
    inv = copy("10.0.0.100:6443")
    actions = kubeconfig.ensure(inv)
    assert sorted((a.name, a.reason) for a in actions if a.what != "kept") == [
        ("admin.conf", "server is https://api.lab.internal:6443, the inventory needs https://10.0.0.100:6443"),
        ("super-admin.conf",
         "server is https://api.lab.internal:6443, the inventory needs https://10.0.0.100:6443")]


def test_a_client_cert_from_another_ca_is_reissued(copy, tmp_path):
    inv = copy()
    (tmp_path / "other").mkdir()
    other = load(tmp_path / "other")
    pki.ensure(other)
    kubeconfig.ensure(other)
    spec = kubeconfig.BY_FILE["scheduler.conf"]
    theirs = kubeconfig.parse(kubeconfig.path(other, spec, other.host("cp-2")).read_bytes())
    mine = kubeconfig.path(inv, spec, inv.host("cp-2"))
    doc = yaml.safe_load(mine.read_text())
    doc["users"][0]["user"] = {"client-certificate-data": base64.b64encode(theirs.cert).decode(),
                               "client-key-data": base64.b64encode(theirs.key.reveal()).decode()}
    mine.write_text(yaml.safe_dump(doc))
    actions = kubeconfig.ensure(inv)
    assert [(a.name, a.node, a.reason) for a in actions if a.what != "kept"] == [
        ("scheduler.conf", "cp-2", "certificate is not signed by its CA")]


def test_an_unreadable_kubeconfig_is_reissued(copy):
    inv = copy()
    path = kubeconfig.path(inv, kubeconfig.BY_FILE["controller-manager.conf"], inv.host("cp-3"))
    path.write_text("apiVersion: v1\nkind: Config\n")
    actions = kubeconfig.ensure(inv)
    assert [(a.name, a.node, a.what) for a in actions if a.what != "kept"] == [
        ("controller-manager.conf", "cp-3", "reissued")]
    assert kubeconfig.parse(path.read_bytes()).server == "https://10.0.0.13:6443"


def test_ipv6_local_endpoint_is_bracketed():
    host = inventory.Host(name="cp-6", address="fd00::6", roles=("control-plane",), internal_address="fd00::6")
    assert kubeconfig.local_endpoint(None, host) == "https://[fd00::6]:6443"
