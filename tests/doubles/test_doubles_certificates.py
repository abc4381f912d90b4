"""The API-server double keeps or reloads each certificate as kube-apiserver does: the serving certificate and the
client-CA bundle are re-read from disk, an expired client certificate gets 401 (the x509 authenticator's refusal,
not the handshake's), and the serial each client authenticated with is recorded, so a component left running with
an old client certificate shows."""

import datetime
import json
import ssl
import urllib.error
import urllib.request

import pytest

from lab.doubles import install_dir, testkit, tlsserving
from lab.doubles.x509util import cert_pem, key_pem

pytestmark = pytest.mark.lab        # real etcd behind the API-server double


@pytest.fixture()
def api(tmp_path):
    with testkit.local_apiserver(tmp_path, install_dir(tmp_path / "bin")) as (cluster, server, port):
        yield type("Api", (), dict(root=tmp_path, server=server, cluster=cluster, port=port))


def get(api, path, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(api.root / "etc/kubernetes/pki/ca.crt"))
    if cert:
        (api.root / "client.crt").write_bytes(cert_pem(cert))
        (api.root / "client.key").write_bytes(key_pem(key))
        ctx.load_cert_chain(api.root / "client.crt", api.root / "client.key")
    try:
        with urllib.request.urlopen(api.server + path, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def served_serial(api):
    pem = ssl.get_server_certificate(("127.0.0.1", api.port), timeout=5)
    from cryptography import x509
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def test_a_new_serving_certificate_on_disk_is_served_without_a_restart(api):
    old = served_serial(api)
    dns, ips = api.cluster.apiserver_sans("cp-1", "127.0.0.1")
    cert, key = testkit.issue("kube-apiserver", ca=api.cluster.cas["ca"], usage=testkit.SERVER, dns=dns, ips=ips)
    pki = api.root / "etc/kubernetes/pki"
    (pki / "apiserver.key").write_bytes(key_pem(key))       # the key first: the old pair is kept until both match
    assert served_serial(api) == old
    (pki / "apiserver.crt").write_bytes(cert_pem(cert))
    assert served_serial(api) == cert.serial_number != old


def test_a_ca_added_to_the_client_ca_file_is_trusted_without_a_restart(api):
    other = testkit.issue("other-ca", days=3650)
    cert, key = testkit.issue("kubernetes-super-admin", org="system:masters", ca=other, usage=testkit.CLIENT)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        get(api, "/api/v1/namespaces", cert, key)
    ca_file = api.root / "etc/kubernetes/pki/ca.crt"
    ca_file.write_bytes(ca_file.read_bytes() + cert_pem(other[0]))
    assert get(api, "/api/v1/namespaces", cert, key) == 200


def test_an_expired_client_certificate_is_unauthorized_not_refused_at_the_handshake(api):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
    cert, key = testkit.issue("kubernetes-super-admin", org="system:masters", ca=api.cluster.cas["ca"],
                              usage=testkit.CLIENT, days=1, not_before=past)
    assert get(api, "/api/v1/namespaces", cert, key) == 401
    assert "x509: certificate has expired or is not yet valid: current time" in (api.root / "apiserver.log").read_text()
    fresh = testkit.issue("kubernetes-super-admin", org="system:masters", ca=api.cluster.cas["ca"],
                          usage=testkit.CLIENT)
    assert get(api, "/api/v1/namespaces", *fresh) == 200


def test_each_client_certificate_serial_is_recorded_per_user(api):
    ca = api.cluster.cas["ca"]
    first = testkit.issue("system:kube-scheduler", ca=ca, usage=testkit.CLIENT)
    second = testkit.issue("system:kube-scheduler", ca=ca, usage=testkit.CLIENT)
    assert get(api, "/api/v1/namespaces", *first) == 200
    assert get(api, "/api/v1/namespaces", *second) == 200
    seen = json.loads((api.root / tlsserving.SERIALS_FILE.lstrip("/")).read_text())
    serials = seen["system:kube-scheduler"]
    assert set(serials) == {format(first[0].serial_number, "x"), format(second[0].serial_number, "x")}
    assert serials[format(second[0].serial_number, "x")]["last"] >= serials[format(first[0].serial_number, "x")]["last"]
