"""The bootstrap token (made once, reused, never printed) and the discovery CA pin."""

import hashlib
import re
import stat
import subprocess

import pytest
from cryptography import x509 as cx

from inventories import host_tables
from kubefab import inventory, pki
from kubefab.errors import KubefabError
from kubefab.pki import token

INVENTORY = """\
[cluster]
name = "tok"
kubernetes_version = "1.33.5"
encryption_algorithm = "{algorithm}"

""" + host_tables(1, 1)


def load(tmp, algorithm="ECDSA-P256"):
    path = tmp / "inventory.toml"
    path.write_text(INVENTORY.format(algorithm=algorithm))
    return inventory.load(path)


def test_generated_tokens_have_kubeadms_format_and_differ():
    made = {token.generate().reveal() for _ in range(50)}
    assert len(made) == 50
    assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t) for t in made)


def test_token_is_stored_once_and_reused(tmp_path):
    inv = load(tmp_path)
    first = token.bootstrap_token(inv)
    path = inv.state_dir / "bootstrap-token"
    mtime = path.stat().st_mtime_ns
    assert path.read_text() == first.reveal() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token.bootstrap_token(inv) == first
    assert path.stat().st_mtime_ns == mtime


def test_token_prints_as_a_mask(tmp_path):
    t = token.bootstrap_token(load(tmp_path))
    secret_half = t.reveal().split(".")[1]
    assert str(t) == "***" and secret_half not in repr(t) and secret_half not in f"{t}"


@pytest.mark.parametrize("stored", ["", "abcdef.0123456789", "ABCDEF.0123456789abcdef", "abcdef-0123456789abcdef"])
def test_a_malformed_stored_token_is_a_clear_error(tmp_path, stored):
    inv = load(tmp_path)
    path = inv.state_dir / "bootstrap-token"
    path.parent.mkdir(parents=True)
    path.write_text(stored)
    with pytest.raises(KubefabError, match=f"{re.escape(str(path))}: is not a bootstrap token.*delete it"):
        token.bootstrap_token(inv)
    assert path.read_text() == stored


def openssl_pin(ca_crt):
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(ca_crt)], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    return "sha256:" + hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("algorithm", ["ECDSA-P256", "RSA-2048"])
def test_ca_hash_is_the_spki_pin_openssl_computes(tmp_path, algorithm):
    inv = load(tmp_path, algorithm)
    pki.ensure(inv)
    ca_crt = inv.state_dir / "pki" / "ca.crt"
    pin = token.ca_cert_hash(inv)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pin)
    assert pin == openssl_pin(ca_crt)
    whole_cert = cx.load_pem_x509_certificate(ca_crt.read_bytes()).tbs_certificate_bytes
    assert pin != "sha256:" + hashlib.sha256(whole_cert).hexdigest()


def test_ca_hash_without_a_ca_is_a_clear_error(tmp_path):
    with pytest.raises(KubefabError, match="ca.crt: the cluster CA is missing"):
        token.ca_cert_hash(load(tmp_path))
