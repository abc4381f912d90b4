"""The API-server double answers kubectl and the kubernetes client like the real one, and
refuses what the real one refuses (anonymous access, foreign client certs, bad tokens)."""

import base64
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from lab.doubles import controllers, install_dir, objects, testkit

pytestmark = pytest.mark.lab        # every test here talks to real etcd behind the API-server double
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """etcd + the API-server double on 127.0.0.1 with a full test bundle; yields a namespace."""
    root = tmp_path_factory.mktemp("api")
    with testkit.local_apiserver(root, install_dir(root / "bin")) as (cluster, server, port):
        super_conf = root / "etc/kubernetes/super-admin.conf"
        yield type("Api", (), dict(root=root, server=server, cluster=cluster, super_conf=super_conf, port=port))


def kubectl(api, *args, kubeconfig=None):
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig or api.super_conf), *args],
                          capture_output=True, text=True, timeout=60)


def k8s_client(kubeconfig):
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def raw(api, path, method="GET", token=None, body=None, cert=None):
    """A request with no client certificate (anonymous) unless `cert` = (certfile, keyfile)."""
    ctx = ssl.create_default_context(cafile=str(api.root / "etc/kubernetes/pki/ca.crt"))
    if cert:
        ctx.load_cert_chain(*cert)
    req = urllib.request.Request(api.server + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    if body:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}") if "json" in r.headers.get("Content-Type", "") else {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def node(name, ready="False"):
    info = {k: "x" for k in ("architecture", "bootID", "containerRuntimeVersion", "kernelVersion", "kubeProxyVersion",
                             "machineID", "operatingSystem", "osImage", "systemUUID")}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "node-role.kubernetes.io/control-plane": ""}}, "status": {
        "conditions": [{"type": "Ready", "status": ready}], "nodeInfo": dict(info, kubeletVersion="v1.33.5")}}


@needs_kubectl
def test_kubectl_get_nodes_shows_a_table(api):
    k8s_client(api.super_conf).create_node(node("table-node"))
    out = kubectl(api, "get", "nodes")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert any(r.split()[:3] == ["table-node", "NotReady", "control-plane"] and r.split()[-1] == "v1.33.5"
               for r in rows)


@needs_kubectl
def test_kubectl_reads_cluster_info_yaml(api):
    c = k8s_client(api.super_conf)
    c.create_namespaced_config_map("kube-public", {"metadata": {"name": "cluster-info"},
                                                   "data": {"kubeconfig": "clusters: []\n"}})
    out = kubectl(api, "get", "cm", "-n", "kube-public", "cluster-info", "-o", "yaml")
    assert out.returncode == 0, out.stderr
    cm = yaml.safe_load(out.stdout)
    assert cm["data"]["kubeconfig"] == "clusters: []\n"
    assert cm["metadata"]["uid"] and cm["metadata"]["resourceVersion"] and cm["metadata"]["creationTimestamp"]


@needs_kubectl
def test_kubectl_apply_creates_then_reports_unchanged_then_configures(api, tmp_path):
    manifest = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "cni", "namespace": "kube-system", "labels": {"app": "cni"}},
                "spec": {"selector": {"matchLabels": {"app": "cni"}}, "template": {
                    "metadata": {"labels": {"app": "cni"}},
                    "spec": {"containers": [{"name": "cni", "image": "cni:1", "env": [{"name": "A", "value": "1"}]}]}}}}
    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert "daemonset.apps/cni created" in kubectl(api, "apply", "-f", str(path)).stdout
    assert "daemonset.apps/cni unchanged" in kubectl(api, "apply", "-f", str(path)).stdout
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "cni:2"
    path.write_text(yaml.safe_dump(manifest))
    out = kubectl(api, "apply", "-f", str(path))
    assert "daemonset.apps/cni configured" in out.stdout, out.stderr
    ds = json.loads(kubectl(api, "get", "ds", "-n", "kube-system", "cni", "-o", "json").stdout)
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "cni:2" and container["env"] == [{"name": "A", "value": "1"}]
    assert ds["metadata"]["generation"] == 2


@needs_kubectl
def test_kubectl_server_side_apply_of_a_crd_and_its_object(api, tmp_path):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "ippools.example.org"},
           "spec": {"group": "example.org", "scope": "Cluster",
                    "names": {"plural": "ippools", "singular": "ippool", "kind": "IPPool"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    pool = {"apiVersion": "example.org/v1", "kind": "IPPool", "metadata": {"name": "default"},
            "spec": {"cidr": "10.244.0.0/16"}}
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump(crd))
    (tmp_path / "pool.yaml").write_text(yaml.safe_dump(pool))
    assert kubectl(api, "apply", "--server-side", "-f", str(tmp_path / "crd.yaml")).returncode == 0
    out = kubectl(api, "apply", "--server-side", "-f", str(tmp_path / "pool.yaml"))
    assert out.returncode == 0, out.stderr
    assert "10.244.0.0/16" in kubectl(api, "get", "ippools", "default", "-o", "yaml").stdout


def test_python_client_lists_nodes_and_creates_a_configmap(api):
    from kubernetes.client.rest import ApiException
    c = k8s_client(api.super_conf)
    c.create_node(node("py-node"))
    assert "py-node" in [n.metadata.name for n in c.list_node().items]
    cm = c.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}, "data": {"k": "v"}})
    assert cm.metadata.uid and int(cm.metadata.resource_version) > 0
    with pytest.raises(ApiException) as dup:
        c.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}, "data": {}})
    body = json.loads(dup.value.body)
    assert (dup.value.status, body["reason"], body["message"]) == (409, "AlreadyExists",
                                                                   'configmaps "py-cm" already exists')
    with pytest.raises(ApiException) as missing:
        c.read_namespaced_config_map("absent", "default")
    assert json.loads(missing.value.body)["message"] == 'configmaps "absent" not found'


def test_update_with_a_stale_resource_version_conflicts(api):
    from kubernetes.client.rest import ApiException
    c = k8s_client(api.super_conf)
    cm = c.create_namespaced_config_map("default", {"metadata": {"name": "rv-cm"}, "data": {"n": "1"}})
    c.patch_namespaced_config_map("rv-cm", "default", {"data": {"n": "2"}})
    cm.data = {"n": "3"}
    with pytest.raises(ApiException) as err:
        c.replace_namespaced_config_map("rv-cm", "default", cm)
    assert err.value.status == 409 and "the object has been modified" in json.loads(err.value.body)["message"]


def test_anonymous_may_read_cluster_info_and_health_only(api):
    from kubernetes.client.rest import ApiException
    try:
        k8s_client(api.super_conf).create_namespaced_config_map("kube-public", {"metadata": {"name": "cluster-info"}})
    except ApiException as e:
        assert e.status == 409
    assert raw(api, "/livez")[0] == 200 and raw(api, "/version")[0] == 200
    assert raw(api, "/api/v1/namespaces/kube-public/configmaps/cluster-info")[0] == 200
    for path in ("/api/v1/nodes", "/api/v1/namespaces/kube-system/secrets", "/api", "/apis",
                 "/api/v1/namespaces/kube-public/configmaps"):
        status, body = raw(api, path)
        assert status == 403, path
        assert 'User "system:anonymous"' in body["message"]


def test_a_bearer_token_that_is_not_a_valid_bootstrap_token_is_401(api):
    assert raw(api, "/api/v1/nodes", token="abcdef.0123456789abcdef")[0] == 401
    assert raw(api, "/api/v1/nodes", token="not-a-token")[0] == 401


def bootstrap_token(api, group):
    token = testkit.new_token()
    tid, secret = token.split(".")
    data = {"token-id": tid, "token-secret": secret, "usage-bootstrap-authentication": "true",
            "auth-extra-groups": group}
    k8s_client(api.super_conf).create_namespaced_secret("kube-system", {
        "metadata": {"name": f"bootstrap-token-{tid}"}, "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})
    return token


CSR = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
       "metadata": {"generateName": "node-csr-"},
       "spec": {"request": "", "signerName": controllers.KUBELET_SIGNER, "usages": ["client auth"]}}


def test_only_the_bootstrap_group_kubeadm_binds_may_create_csrs(api):
    from kubernetes import client, config
    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(str(api.super_conf)))
    rbac.create_cluster_role_binding(objects.crb("kubeadm:kubelet-bootstrap", "system:node-bootstrapper",
                                                 ("Group", "system:bootstrappers:kubeadm:default-node-token")))
    token = bootstrap_token(api, "system:bootstrappers:kubeadm:default-node-token")
    status, body = raw(api, "/apis/certificates.k8s.io/v1/certificatesigningrequests", "POST", token, CSR)
    assert status == 201
    assert body["spec"]["username"] == f"system:bootstrap:{token.split('.')[0]}"
    assert "system:bootstrappers:kubeadm:default-node-token" in body["spec"]["groups"]
    assert raw(api, "/api/v1/namespaces/kube-system/secrets", token=token)[0] == 403
    other = bootstrap_token(api, "system:bootstrappers:elsewhere")
    status, body = raw(api, "/apis/certificates.k8s.io/v1/certificatesigningrequests", "POST", other, CSR)
    assert status == 403
    assert body["message"] == ('certificatesigningrequests.certificates.k8s.io is forbidden: User '
                               f'"system:bootstrap:{other.split(".")[0]}" cannot create resource '
                               '"certificatesigningrequests" in API group "certificates.k8s.io" at the cluster scope')


def test_admin_conf_is_forbidden_until_the_cluster_admins_binding_exists(api, tmp_path):
    from kubernetes.client.rest import ApiException
    admin = tmp_path / "admin.conf"
    admin.write_bytes(api.cluster.admin_kubeconfig(api.server, org="kubeadm:cluster-admins", cn="kubernetes-admin"))
    with pytest.raises(ApiException) as err:
        k8s_client(admin).list_node()
    assert err.value.status == 403
    from kubernetes import client, config
    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(str(api.super_conf)))
    rbac.create_cluster_role_binding({"metadata": {"name": "kubeadm:cluster-admins"},
                                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                  "name": "cluster-admin"},
                                      "subjects": [{"kind": "Group", "name": "kubeadm:cluster-admins",
                                                    "apiGroup": "rbac.authorization.k8s.io"}]})
    assert k8s_client(admin).list_node().items


def test_a_client_certificate_from_another_ca_is_refused_at_the_handshake(api, tmp_path):
    other = testkit.Cluster(endpoint="127.0.0.1:6443")
    cert, key = testkit.issue("kubernetes-super-admin", org="system:masters", ca=other.cas["ca"],
                              usage=testkit.CLIENT)
    (tmp_path / "c.crt").write_bytes(testkit.cert_pem(cert))
    (tmp_path / "c.key").write_bytes(testkit.key_pem(key))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        raw(api, "/api/v1/nodes", cert=(tmp_path / "c.crt", tmp_path / "c.key"))


def test_watch_streams_added_and_modified_events(api):
    import threading
    from kubernetes import watch
    c = k8s_client(api.super_conf)
    c.create_namespace({"metadata": {"name": "watched"}})
    rv = c.list_namespaced_config_map("watched").metadata.resource_version

    def change():
        c.create_namespaced_config_map("watched", {"metadata": {"name": "w"}, "data": {"n": "1"}})
        c.patch_namespaced_config_map("w", "watched", {"data": {"n": "2"}})
    threading.Timer(0.3, change).start()
    seen = []
    for event in watch.Watch().stream(c.list_namespaced_config_map, "watched", resource_version=rv,
                                      timeout_seconds=3):
        seen.append((event["type"], event["object"].data["n"]))
        if len(seen) == 2 or event["type"] == "MODIFIED":
            break
    assert seen[0] == ("ADDED", "1") or seen[0] == ("ADDED", "2")
    assert seen[-1][1] == "2"
