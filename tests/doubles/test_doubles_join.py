"""`kubeadm join` token discovery against the API-server double: the JWS must verify with the
token, the CA must match a pinned SPKI hash, unknown/expired tokens find no signature."""

import base64
import datetime
import subprocess

import pytest
import yaml

from lab.doubles import controllers, install_dir, objects, testkit
from lab.doubles.kubeclient import Client

PREFIX = "error execution phase preflight: couldn't validate the identity of the API Server: "


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    bin_dir = install_dir(root / "bin")
    with testkit.local_apiserver(root, bin_dir) as (cluster, server, port):
        client = Client.from_kubeconfig(root / "etc/kubernetes/super-admin.conf")
        info = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(
                testkit.cert_pem(cluster.cas["ca"][0])).decode()}}]}
        client.create("/api/v1/namespaces/kube-public/configmaps", {
            "metadata": {"name": "cluster-info"}, "data": {"kubeconfig": yaml.safe_dump(info)}})
        # a cluster initialised without controlPlaneEndpoint (reference pitfall 11)
        client.create("/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": "kubeadm-config"}, "data": {
            "ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                                    "kubernetesVersion: v1.33.5\n"}})
        client.create("/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": "kubelet-config"}, "data": {
            "kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"}})
        # what kubeadm init grants the default bootstrap token group (reference §4.3)
        objects.grant_config_reads(client)
        objects.grant_bootstrap_tokens(client)
        yield type("Api", (), dict(root=root, bin_dir=bin_dir, server=server, port=port, cluster=cluster,
                                   client=client))


def add_token(api, expires_in=3600, signing=True):
    token = testkit.new_token()
    tid, secret = token.split(".")
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expires_in)
    data = {"token-id": tid, "token-secret": secret, "expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true" if signing else "false",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    api.client.create("/api/v1/namespaces/kube-system/secrets", {
        "metadata": {"name": f"bootstrap-token-{tid}"}, "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})
    controllers.sign_cluster_info(api.client)
    return token


def join(api, tmp_path, token, hashes, args=None, **extra):
    """`kubeadm join --config` (or with `args` instead), preflight errors ignored: discovery is tested."""
    sock = testkit.prepare_host(tmp_path)
    (tmp_path / "join.yaml").write_text(yaml.safe_dump(dict({
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
        "nodeRegistration": {"name": "worker-1"}, "timeouts": {"discovery": "1s"},
        "discovery": {"bootstrapToken": {"apiServerEndpoint": f"127.0.0.1:{api.port}", "token": token,
                                         "caCertHashes": hashes}}}, **extra)))
    try:
        return subprocess.run([str(api.bin_dir / "kubeadm"), "join", *(args or ["--config", "/join.yaml"]),
                               "--ignore-preflight-errors=all"], env=testkit.double_env(tmp_path, api.bin_dir),
                              capture_output=True, text=True, timeout=60)
    finally:
        sock.close()


@pytest.mark.lab
def test_a_ca_hash_that_does_not_match_is_rejected(api, tmp_path):
    wrong = testkit.Cluster(endpoint="x:6443").ca_hash()
    out = join(api, tmp_path, add_token(api), [wrong])
    assert out.returncode == 1
    assert (PREFIX + "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
            f'"{api.cluster.ca_hash()}" are pinned') in out.stderr
    assert not (tmp_path / "etc/kubernetes/pki/ca.crt").exists()


@pytest.mark.lab
def test_a_wrong_token_secret_fails_the_jws_check(api, tmp_path):
    tid = add_token(api).split(".")[0]
    out = join(api, tmp_path, f"{tid}.{'0' * 16}", [api.cluster.ca_hash()])
    assert out.returncode == 1
    assert PREFIX + "failed to verify JWS signature of received cluster info object, can't trust this API Server" \
        in out.stderr


@pytest.mark.lab
def test_a_tampered_signature_fails_the_jws_check(api, tmp_path):
    token = add_token(api)
    tid = token.split(".")[0]
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    good = api.client.get(path)["data"][f"jws-kubeconfig-{tid}"]
    api.client.patch(path, {"data": {f"jws-kubeconfig-{tid}": good[:-4] + ("AAAA" if good[-4:] != "AAAA" else "BBBB")}})
    try:
        out = join(api, tmp_path, token, [api.cluster.ca_hash()])
    finally:
        controllers.sign_cluster_info(api.client)
    assert out.returncode == 1 and "failed to verify JWS signature" in out.stderr


@pytest.mark.lab
def test_an_unknown_token_finds_no_signature(api, tmp_path):
    token = testkit.new_token()
    out = join(api, tmp_path, token, [api.cluster.ca_hash()])
    assert out.returncode == 1
    assert (PREFIX + "could not find a JWS signature in the cluster-info ConfigMap for token ID "
            f'"{token.split(".")[0]}"') in out.stderr


@pytest.mark.lab
def test_an_expired_token_finds_no_signature(api, tmp_path):
    token = add_token(api, expires_in=-60)
    out = join(api, tmp_path, token, [api.cluster.ca_hash()])
    assert out.returncode == 1 and "could not find a JWS signature in the cluster-info ConfigMap" in out.stderr


@pytest.mark.lab
def test_a_token_without_signing_usage_finds_no_signature(api, tmp_path):
    out = join(api, tmp_path, add_token(api, signing=False), [api.cluster.ca_hash()])
    assert out.returncode == 1 and "could not find a JWS signature" in out.stderr


@pytest.mark.lab
def test_token_create_signs_cluster_info_and_prints_the_join_command(api):
    out = subprocess.run([str(api.bin_dir / "kubeadm"), "token", "create", "--ttl", "2h", "--print-join-command",
                          "--kubeconfig", "/etc/kubernetes/super-admin.conf"],
                         env=testkit.double_env(api.root, api.bin_dir), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:3] == ["kubeadm", "join", f"127.0.0.1:{api.port}"]
    token, ca_hash = words[words.index("--token") + 1], words[words.index("--discovery-token-ca-cert-hash") + 1]
    assert ca_hash == api.cluster.ca_hash()
    tid, secret = token.split(".")
    data = api.client.get("/api/v1/namespaces/kube-public/configmaps/cluster-info")["data"]
    assert controllers.jws_valid(data[f"jws-kubeconfig-{tid}"], data["kubeconfig"], tid, secret)
    stored = api.client.get(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}")["data"]
    expiry = datetime.datetime.strptime(base64.b64decode(stored["expiration"]).decode(), "%Y-%m-%dT%H:%M:%SZ")
    left = expiry.replace(tzinfo=datetime.timezone.utc) - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(hours=1, minutes=58) < left <= datetime.timedelta(hours=2)


@pytest.mark.lab
def test_join_flags_are_checked_like_the_config(api, tmp_path):
    wrong = testkit.Cluster(endpoint="x:6443").ca_hash()
    out = join(api, tmp_path, None, None, args=[f"127.0.0.1:{api.port}", "--token", add_token(api),
                                                 "--discovery-token-ca-cert-hash", wrong])
    assert out.returncode == 1 and "none of the public keys" in out.stderr


@pytest.mark.lab
def test_control_plane_join_needs_a_control_plane_endpoint(api, tmp_path):
    testkit.write_files(tmp_path, api.cluster.shared_files())
    out = join(api, tmp_path, add_token(api), [api.cluster.ca_hash()],
               controlPlane={"localAPIEndpoint": {"advertiseAddress": "127.0.0.1", "bindPort": 6443}})
    assert out.returncode == 1
    assert ("unable to add a new control plane instance to a cluster that doesn't have a stable "
            "controlPlaneEndpoint address") in out.stderr
    assert not (tmp_path / "etc/kubernetes/manifests").exists()


@pytest.mark.lab
def test_an_upper_case_ca_hash_pins_the_same_key(api, tmp_path):
    pin = "SHA256:" + api.cluster.ca_hash().split(":")[1].upper()
    out = join(api, tmp_path, add_token(api), [pin],
               args=["--config", "/join.yaml", "--skip-phases=kubelet-start"])
    assert out.returncode == 0, out.stderr
    assert "Cluster info signature and contents are valid" in out.stdout


@pytest.mark.lab
@pytest.mark.parametrize("pin, words", [
    ("sha256:" + "ab" * 31, "expected a 32 byte SHA-256 hash, found 31 bytes"),
    ("md5:" + "ab" * 32, 'unknown hash format "md5". Known format(s) are: sha256'),
    ("ab" * 32, 'invalid hash, expected "format:hex-value". Known format(s) are: sha256'),
])
def test_a_malformed_ca_hash_is_refused_before_any_request(api, tmp_path, pin, words):
    out = join(api, tmp_path, add_token(api), [pin])
    assert out.returncode == 1
    assert PREFIX + "invalid discovery token CA certificate hash: " + words in out.stderr


@pytest.mark.lab
def test_joining_under_the_name_of_a_ready_node_is_refused_before_tls_bootstrap(api, tmp_path):
    api.client.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}})
    api.client.request("PATCH", "/api/v1/nodes/worker-1/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}}, "application/merge-patch+json")
    try:
        out = join(api, tmp_path, add_token(api), [api.cluster.ca_hash()])
    finally:
        api.client.delete("/api/v1/nodes/worker-1")
    assert out.returncode == 1
    assert ('error execution phase kubelet-start: a Node with name "worker-1" and status "Ready" already exists in the '
            "cluster. You must delete the existing Node or change the name of this new joining Node") in out.stderr
    assert not (tmp_path / "etc/kubernetes/bootstrap-kubelet.conf").exists()
