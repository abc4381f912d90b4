"""Start-up inputs of the kubelet, API-server, controller-manager and scheduler doubles: what kubefab
would give them starts; each input the real binaries refuse is refused with their words."""

import os
import shutil
import socket
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.doubles import components, cri, install_dir, kubelet_checks, preflight, satokens, testkit
from lab.doubles.kubeclient import ApiStatus, Client

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
CONFIG = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n"
CRI = "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    return install_dir(tmp_path_factory.mktemp("bin"))


@pytest.fixture
def root(tmp_path):
    sock = testkit.prepare_host(tmp_path)
    config = tmp_path / "var/lib/kubelet/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG)
    yield tmp_path
    sock.close()


def kubelet(bin_dir, root, *flags, netns=None, timeout=20):
    argv = [str(bin_dir / "kubelet"), "--config=/var/lib/kubelet/config.yaml", *flags]
    return subprocess.run(netns.argv(argv) if netns else argv, env=testkit.double_env(root, bin_dir),
                          capture_output=True, text=True, timeout=timeout)


# ---- kubelet ----------------------------------------------------------------------------------

@pytest.mark.lab
@needs_root
def test_the_kubelet_starts_with_kubefabs_flags_and_config(bin_dir, root, netns):
    argv = netns.argv([str(bin_dir / "kubelet"), "--config=/var/lib/kubelet/config.yaml", CRI,
                       "--node-ip=127.0.0.2", "--node-labels=topology.kubernetes.io/zone=a,zone=a"])
    proc = subprocess.Popen(argv, env=testkit.double_env(root, bin_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert "kubelet double" in proc.stdout.readline()
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("flags, words", [
    (("--container-runtime=remote",), "failed to parse kubelet flag: unknown flag: --container-runtime"),
    (("--network-plugin=cni",), "failed to parse kubelet flag: unknown flag: --network-plugin"),
    (("--node-labels=zone=a,node-role.kubernetes.io/worker=",),
     "failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: "
     "[node-role.kubernetes.io/worker]\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed "
     "prefix (kubelet.kubernetes.io, node.kubernetes.io)"),
], ids=["removed --container-runtime", "removed --network-plugin", "restricted label"])
def test_the_kubelet_refuses_bad_flags(bin_dir, root, flags, words):
    out = kubelet(bin_dir, root, CRI, *flags)
    assert out.returncode == 1
    assert words in out.stderr


@pytest.mark.parametrize("config, words", [
    (CONFIG.replace("kind: KubeletConfiguration", "kind: KubeletConfig"),
     'failed to decode: no kind "KubeletConfig" is registered for version "kubelet.config.k8s.io/v1beta1"'),
    (CONFIG.replace("v1beta1", "v1"),
     'failed to decode: no kind "KubeletConfiguration" is registered for version "kubelet.config.k8s.io/v1"'),
    (CONFIG + 'healthzPort: "10248"\n',
     "failed to decode: json: cannot unmarshal string into Go struct field KubeletConfiguration.healthzPort of "
     "type int32"),
    (CONFIG + "failSwapOn: 'no'\n",
     "failed to decode: json: cannot unmarshal string into Go struct field KubeletConfiguration.failSwapOn of "
     "type bool"),
    ("", 'kubelet config file "/var/lib/kubelet/config.yaml" was empty'),
], ids=["kind", "apiVersion", "string port", "string bool", "empty"])
def test_the_kubelet_refuses_a_bad_config_file(bin_dir, root, config, words):
    (root / "var/lib/kubelet/config.yaml").write_text(config)
    out = kubelet(bin_dir, root, CRI)
    assert out.returncode == 1
    assert "failed to load kubelet config file, path: /var/lib/kubelet/config.yaml" in out.stderr
    assert words in out.stderr


def test_the_kubelet_and_kubeadm_refuse_containerd_with_its_cri_plugin_disabled(bin_dir, root):
    conf = root / "etc/containerd/config.toml"
    conf.write_text('disabled_plugins = ["cri"]\n' + conf.read_text())
    words = ('validate service connection: validate CRI v1 runtime API for endpoint '
             '"unix:///var/run/containerd/containerd.sock": rpc error: code = Unimplemented desc = unknown service '
             "runtime.v1.RuntimeService")
    out = kubelet(bin_dir, root, CRI)
    assert out.returncode == 1 and f"failed to run Kubelet: {words}" in out.stderr
    os.environ["KUBEFAB_DOUBLE_ROOT"] = str(root)
    try:
        assert cri.connect_error("unix:///var/run/containerd/containerd.sock") == \
            f"failed to create new CRI runtime service: {words}"
        conf.write_text(conf.read_text().replace('disabled_plugins = ["cri"]\n', ""))
        assert cri.connect_error("unix:///var/run/containerd/containerd.sock") is None
    finally:
        del os.environ["KUBEFAB_DOUBLE_ROOT"]


def test_node_ip_must_be_an_address_of_this_host():
    local = next(ip for ip in kubelet_checks.host_addresses() if not ip.is_loopback and not ip.is_link_local)
    assert kubelet_checks.validate_node_ip(str(local)) is None
    assert kubelet_checks.validate_node_ip("203.0.113.99") == \
        'failed to validate nodeIP: node IP: "203.0.113.99" not found in the host\'s network interfaces'
    assert kubelet_checks.validate_node_ip("127.0.0.1") == "failed to validate nodeIP: nodeIP can't be loopback address"


def test_the_network_is_ready_only_with_a_cni_config_that_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFAB_DOUBLE_ROOT", str(tmp_path))
    net = tmp_path / "etc/cni/net.d"
    net.mkdir(parents=True)
    assert kubelet_checks.cni_status() == "cni plugin not initialized"
    (net / "10-flannel.conflist").write_text('{"name": "cbr0", "plugins": [{"type": "flannel"},')
    assert kubelet_checks.cni_status() == "cni plugin not initialized"
    (net / "10-flannel.conflist").write_text('{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"},'
                                             ' {"type": "portmap"}]}')
    assert kubelet_checks.cni_status() == 'failed to find plugin "flannel" in path [/opt/cni/bin]'
    for plugin in ("flannel", "portmap"):
        path = tmp_path / "opt/cni/bin" / plugin
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    assert kubelet_checks.cni_status() is None


def test_preflight_ports_ignore_time_wait_but_not_listeners():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    assert list(preflight._port(port)({})) == [f"Port {port} is in use"]
    server.close()          # the side that closes first keeps the port in TIME_WAIT, as kubeadm reset leaves it
    listener.close()
    client.close()
    time.sleep(0.1)
    assert list(preflight._port(port)({})) == []


# ---- API server -------------------------------------------------------------------------------

def start_apiserver(bin_dir, root, **replace):
    """The API-server double with kubeadm's flags over a full test bundle, files replaced by `replace`."""
    cluster = testkit.Cluster(endpoint="127.0.0.1:6443", cert_sans=("127.0.0.1",))
    files = cluster.node_files("cp-1", "127.0.0.1")
    files.update(replace)
    testkit.write_files(root, {k: v for k, v in files.items() if v is not None})
    pki = "/etc/kubernetes/pki"
    flags = testkit.apiserver_flags(root, "https://127.0.0.1:1", "127.0.0.1", testkit.free_port()) + [
        f"--proxy-client-cert-file={pki}/front-proxy-client.crt", f"--proxy-client-key-file={pki}/front-proxy-client.key",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key"]
    return subprocess.run([str(bin_dir / "kube-apiserver"), *flags],
                          env=testkit.double_env(root, KUBEFAB_DOUBLE_ETCD_WAIT_SECONDS="0.5"), capture_output=True,
                          text=True, timeout=30)


def other_key():
    return testkit.key_pem(rsa.generate_private_key(65537, 2048))


def test_the_api_server_gets_past_its_files_with_kubeadms_bundle(bin_dir, tmp_path):
    out = start_apiserver(bin_dir, tmp_path)
    # every file loaded: what stops it is the etcd these tests leave unreachable
    assert 'err="etcd 127.0.0.1:1:' in out.stderr, out.stderr


@pytest.mark.parametrize("replace, words", [
    ({"pki/sa.pub": b"not a key\n"}, 'failed to parse key file "/etc/kubernetes/pki/sa.pub": error reading public key '
                                     "file /etc/kubernetes/pki/sa.pub: data does not contain any valid RSA or ECDSA "
                                     "public keys"),
    ({"pki/sa.key": b"garbage\n"}, "failed to parse service-account-issuer-key-file: error reading private key file "
                                   "/etc/kubernetes/pki/sa.key: data does not contain a valid RSA or ECDSA private key"),
    ({"pki/front-proxy-client.key": None}, "tls: private key does not match public key"),
    ({"pki/apiserver-kubelet-client.key": None}, "tls: private key does not match public key"),
    ({"pki/front-proxy-client.crt": None}, "open /etc/kubernetes/pki/front-proxy-client.crt: no such file or directory"),
    ({"pki/front-proxy-ca.crt": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
     'error loading CA bundle for "request-header::/etc/kubernetes/pki/front-proxy-ca.crt": data does not contain any '
     "valid RSA or ECDSA certificates"),
], ids=["garbage sa.pub", "garbage sa.key", "front-proxy key", "kubelet-client key", "no front-proxy cert",
        "garbage front-proxy CA"])
def test_the_api_server_refuses_broken_start_up_files(bin_dir, tmp_path, replace, words):
    mismatched = {k: other_key() for k, v in replace.items() if v is None and k.endswith(".key")}
    out = start_apiserver(bin_dir, tmp_path, **{k: v for k, v in replace.items() if v is not None or
                                                k.endswith(".crt")}, **mismatched)
    assert out.returncode == 1
    assert words in out.stderr


def test_service_account_tokens_verify_only_with_the_matching_public_key():
    key, other = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    token, _ = satokens.sign(key, "https://kubernetes.default.svc.cluster.local", "kube-system", "bootstrap-signer",
                             ["https://kubernetes.default.svc.cluster.local"])
    issuer = "https://kubernetes.default.svc.cluster.local"
    assert satokens.verify(token, [key.public_key()], issuer) == ("kube-system", "bootstrap-signer")
    assert satokens.verify(token, [other.public_key()], issuer) is None
    assert satokens.verify(token, [key.public_key()], "https://elsewhere") is None


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed")
    root = tmp_path_factory.mktemp("api")
    bin_dir = install_dir(root / "bin")
    with testkit.local_apiserver(root, bin_dir) as (cluster, server, port):
        yield type("Api", (), dict(root=root, bin_dir=bin_dir, server=server, cluster=cluster,
                                   admin=Client.from_kubeconfig(root / "etc/kubernetes/super-admin.conf")))


@pytest.mark.lab
def test_a_token_request_gives_a_token_the_server_accepts(api):
    sa = "/api/v1/namespaces/kube-system/serviceaccounts"
    api.admin.create(sa, {"metadata": {"name": "bootstrap-signer"}})
    token = api.admin.create(f"{sa}/bootstrap-signer/token", {"spec": {}})["status"]["token"]
    conf = api.root / "etc/kubernetes/super-admin.conf"
    assert Client.from_kubeconfig(conf, token=token).get("/api/v1/namespaces/kube-system/configmaps")["items"]
    with pytest.raises(ApiStatus) as err:
        Client.from_kubeconfig(conf, token=token[:-6] + "AAAAAA").get("/api/v1/namespaces/kube-system/configmaps")
    assert err.value.code == 401


def component(api, tmp_path, name, kubeconfig):
    (tmp_path / f"{name}.conf").write_bytes(kubeconfig)
    port = testkit.free_port()
    return subprocess.Popen([str(api.bin_dir / name), f"--kubeconfig=/{name}.conf", "--bind-address=127.0.0.1",
                             f"--secure-port={port}"], env=testkit.double_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True), port


@pytest.mark.lab
@pytest.mark.parametrize("name", ["kube-scheduler", "kube-controller-manager"])
def test_scheduler_and_controller_manager_need_their_own_credentials(api, tmp_path, name):
    user = f"system:{name}"
    ca = api.cluster.cas["ca"]
    cert, key = testkit.issue(user, ca=ca, usage=testkit.CLIENT)
    good, port = component(api, tmp_path, name, testkit.kubeconfig(api.server, ca[0], user, cert, key))
    try:
        testkit.wait_port("127.0.0.1", port, proc=good)
    finally:
        good.terminate()
        good.wait(10)
    stranger = testkit.Cluster(endpoint="127.0.0.1:6443").cas["ca"]
    cert, key = testkit.issue(user, ca=stranger, usage=testkit.CLIENT)
    bad, _ = component(api, tmp_path, name, testkit.kubeconfig(api.server, ca[0], user, cert, key))
    assert bad.wait(20) == 1
    assert "unable to load configmap based request-header-client-ca-file" in bad.stderr.read()
    cert, key = testkit.issue("someone-else", ca=ca, usage=testkit.CLIENT)
    nobody, _ = component(api, tmp_path, name, testkit.kubeconfig(api.server, ca[0], "someone-else", cert, key))
    assert nobody.wait(20) == 1
    assert ('unable to load configmap based request-header-client-ca-file: configmaps '
            '"extension-apiserver-authentication" is forbidden: User "someone-else" cannot get resource "configmaps" '
            'in API group "" in the namespace "kube-system"') in nobody.stderr.read()


LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"


def lease_of(api, name):
    """The Lease's spec, or None while there is none."""
    try:
        return api.admin.get(f"{LEASES}/{name}")["spec"]
    except ApiStatus as e:
        assert e.code == 404
        return None


@pytest.mark.lab
@pytest.mark.parametrize("name, released", [("kube-scheduler", True), ("kube-controller-manager", False)])
def test_of_three_instances_only_the_lease_holder_leads_and_another_takes_over_when_it_stops(api, tmp_path, name,
                                                                                              released):
    """--leader-elect (kubeadm's manifests set it), as client-go's leaderelection: one Lease, one holder; on SIGTERM
    the scheduler gives the Lease up (ReleaseOnCancel), the controller-manager leaves it to expire."""
    api.admin.delete_if_present(f"{LEASES}/{name}")        # one an earlier test's instance left
    user = f"system:{name}"
    ca = api.cluster.cas["ca"]
    cert, key = testkit.issue(user, ca=ca, usage=testkit.CLIENT)
    (tmp_path / f"{name}.conf").write_bytes(testkit.kubeconfig(api.server, ca[0], user, cert, key))
    logs, procs = [tmp_path / f"{name}-{i}.log" for i in range(3)], []
    for log in logs:
        with open(log, "w") as out:
            procs.append(subprocess.Popen(
                [str(api.bin_dir / name), f"--kubeconfig=/{name}.conf", "--bind-address=127.0.0.1",
                 f"--secure-port={testkit.free_port()}", "--leader-elect-lease-duration=8s",
                 "--leader-elect-renew-deadline=6s", "--leader-elect-retry-period=1s"],
                env=testkit.double_env(tmp_path), stdout=out, stderr=subprocess.STDOUT))
    try:
        holder = testkit.until(lambda: (lease_of(api, name) or {}).get("holderIdentity"))
        time.sleep(2)       # the others have tried meanwhile, twice, and must have failed
        assert lease_of(api, name)["holderIdentity"] == holder
        acquired = [i for i, log in enumerate(logs) if '"Successfully acquired lease"' in log.read_text()]
        assert len(acquired) == 1 and f'identity="{holder}"' in logs[acquired[0]].read_text()
        leader = procs[acquired[0]]
        leader.terminate()
        leader.wait(10)
        assert (lease_of(api, name).get("holderIdentity") in (None, "")) is released
        successor = testkit.until(lambda: lease_of(api, name).get("holderIdentity") not in (None, "", holder) and
                          lease_of(api, name)["holderIdentity"])
        assert successor.partition("_")[0] == holder.partition("_")[0] == socket.gethostname()   # hostname_uuid
        assert lease_of(api, name)["leaseTransitions"] >= 1
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


@pytest.mark.lab
def test_the_api_server_publishes_its_client_ca_for_the_components(api):
    cm = api.admin.get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
    assert cm["data"]["client-ca-file"] == testkit.cert_pem(api.cluster.cas["ca"][0]).decode()


def test_the_controller_manager_has_a_client_per_controller_minutes_after_the_machine_booted(monkeypatch):
    class Admin:
        def get(self, path):
            return {}

        def create(self, path, body):
            return {"status": {"token": "t0ken"}}
    monkeypatch.setattr(components.time, "monotonic", lambda: 480.0)     # 8 minutes after boot
    monkeypatch.setattr(components.Client, "from_kubeconfig", classmethod(lambda cls, path, token: ("client", token)))
    clients = components.ControllerClients("controller-manager.conf", Admin(), per_controller=True)
    assert clients("deployment-controller") == ("client", "t0ken")
