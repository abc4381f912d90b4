"""Cluster objects `kubeadm init`/`join` create through the API: bootstrap tokens, RBAC, node marks,
and the CoreDNS and kube-proxy add-ons (stored, not run)."""

import base64
import datetime
import ipaddress
import time

import yaml

from .hostfs import DoubleError, exists
from .kubeadm_util import ADMIN_CONF, SUPER_ADMIN_CONF, duration
from .kubeclient import ApiStatus, Client

def configmap(namespace, name, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


def crb(name, role, subject):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject[0], "name": subject[1]}]}


BOOTSTRAP_CRBS = (
    ("kubeadm:kubelet-bootstrap", "system:node-bootstrapper",
     ("Group", "system:bootstrappers:kubeadm:default-node-token")),
    ("kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
     ("Group", "system:bootstrappers:kubeadm:default-node-token")),
    ("kubeadm:node-autoapprove-certificate-rotation",
     "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", ("Group", "system:nodes")),
    ("kubeadm:get-nodes", "kubeadm:get-nodes", ("Group", "system:bootstrappers:kubeadm:default-node-token")),
)

GET_NODES_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                  "metadata": {"name": "kubeadm:get-nodes"},
                  "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}


NODE_CONFIG_ROLES = (("kubeadm:nodes-kubeadm-config", "kubeadm-config"), ("kubeadm:kubelet-config", "kubelet-config"))


def grant_config_reads(c):
    """upload-config: nodes and the default bootstrap token group may read kubeadm-config and kubelet-config."""
    for role, cm in NODE_CONFIG_ROLES:
        create_role_for_nodes(c, role, cm)


def grant_bootstrap_tokens(c):
    """bootstrap-token: the default token group may get nodes, create CSRs and have them approved (§4.3)."""
    c.apply("/apis/rbac.authorization.k8s.io/v1/clusterroles", GET_NODES_ROLE)
    for name, role, subject in BOOTSTRAP_CRBS:
        c.apply("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", crb(name, role, subject))


def create_role_for_nodes(c, role, cm):
    c.apply("/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": role, "namespace": "kube-system"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [cm], "verbs": ["get"]}]})
    c.apply("/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "Group", "name": "system:nodes"},
                     {"kind": "Group", "name": "system:bootstrappers:kubeadm:default-node-token"}]})


def token_secret(t):
    """The bootstrap-token Secret for InitConfiguration.bootstrapTokens entry `t` (reference §4.2)."""
    tid, tsec = t["token"].split(".")
    data = {"token-id": tid, "token-secret": tsec}
    ttl = duration(t.get("ttl"), 86400)
    if t.get("expires"):
        data["expiration"] = t["expires"]
    elif ttl:
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
        data["expiration"] = exp.strftime("%Y-%m-%dT%H:%M:%SZ")
    usages = t.get("usages") or ["signing", "authentication"]
    for u in usages:
        data[f"usage-bootstrap-{u}"] = "true"
    groups = t.get("groups") or ["system:bootstrappers:kubeadm:default-node-token"]
    for g in groups:
        if not g.startswith("system:bootstrappers:"):
            raise DoubleError(f'group "{g}" does not match pattern "system:bootstrappers:[a-z0-9:-]{{0,255}}'
                              '[a-z0-9]"')
    data["auth-extra-groups"] = ",".join(groups)
    if t.get("description"):
        data["description"] = t["description"]
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def create_token_secret(c, t):
    secret = token_secret(t)
    try:
        c.create("/api/v1/namespaces/kube-system/secrets", secret)
    except ApiStatus as e:
        if e.code != 409:
            raise
        c.request("PUT", f"/api/v1/namespaces/kube-system/secrets/{secret['metadata']['name']}", secret)


def mark_control_plane(c, name, taints, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            node = c.get(f"/api/v1/nodes/{name}")
            break
        except ApiStatus as e:
            if e.code != 404 or time.monotonic() > deadline:
                raise DoubleError(f"error patching Node \"{name}\": {e}")
            time.sleep(0.3)
    existing = node.get("spec", {}).get("taints") or []
    merged = existing + [t for t in taints if (t["key"], t.get("effect")) not in
                         {(e["key"], e.get("effect")) for e in existing}]
    c.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {
        "node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
        "spec": {"taints": merged}})


def coredns_objects(cluster, image):
    svc = ipaddress.ip_network(cluster["networking"]["serviceSubnet"].split(",")[0], strict=False)
    ns, domain = "kube-system", cluster["networking"]["dnsDomain"]
    labels = {"k8s-app": "kube-dns"}
    corefile = (f".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    kubernetes {domain} "
                "in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n"
                "       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent "
                "1000\n    }\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n")
    return [
        (f"/api/v1/namespaces/{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                       "metadata": {"name": "coredns", "namespace": ns}}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
            "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                       "verbs": ["list", "watch"]}]}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
         crb("system:coredns", "system:coredns", ("ServiceAccount", "coredns"))),
        (f"/api/v1/namespaces/{ns}/configmaps", configmap(ns, "coredns", {"Corefile": corefile})),
        (f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": ns,
                                                                        "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"serviceAccountName": "coredns", "priorityClassName": "system-cluster-critical",
                         "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                         {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                         "containers": [{"name": "coredns", "image": image,
                                         "args": ["-conf", "/etc/coredns/Corefile"]}]}}}}),
        (f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {"clusterIP": str(svc.network_address + 10), "selector": labels,
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                               {"name": "metrics", "port": 9153, "protocol": "TCP"}]}}),
    ]


def kube_proxy_objects(cluster, image, server, proxy_doc):
    ns, labels = "kube-system", {"k8s-app": "kube-proxy"}
    conf = dict(proxy_doc or {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration"})
    conf.setdefault("clientConnection", {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"})
    if cluster["networking"].get("podSubnet"):
        conf.setdefault("clusterCIDR", cluster["networking"]["podSubnet"])
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "default", "cluster": {
        "certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "server": server}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "namespace": "default",
                                                     "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}]}
    return [
        (f"/api/v1/namespaces/{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                       "metadata": {"name": "kube-proxy", "namespace": ns}}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
         crb("kubeadm:node-proxier", "system:node-proxier", ("ServiceAccount", "kube-proxy"))),
        (f"/api/v1/namespaces/{ns}/configmaps", configmap(ns, "kube-proxy", {
            "config.conf": yaml.safe_dump(conf), "kubeconfig.conf": yaml.safe_dump(kubeconfig)})),
        (f"/apis/apps/v1/namespaces/{ns}/daemonsets", {
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": ns,
                                                                       "labels": labels},
            "spec": {"selector": {"matchLabels": labels}, "updateStrategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": "kube-proxy", "hostNetwork": True,
                "priorityClassName": "system-node-critical", "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "kube-proxy", "image": image, "command": [
                    "/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                    "--hostname-override=$(NODE_NAME)"]}]}}}}),
    ]


def admin_client(node):
    """admin.conf, after making sure the kubeadm:cluster-admins binding exists (super-admin.conf if
    admin.conf is still forbidden, reference §2.3)."""
    # kubeadm's API calls after the control plane is up are retried for its KubernetesAPICall timeout (1 min, every
    # 500 ms: apiclient's idempotency helpers): the endpoint may be a load balancer not yet passing traffic
    admin = Client.from_kubeconfig(ADMIN_CONF, retry_for=60)
    binding = crb("kubeadm:cluster-admins", "cluster-admin", ("Group", "kubeadm:cluster-admins"))
    try:
        admin.apply("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    except ApiStatus as e:
        if e.code != 403 or not exists(SUPER_ADMIN_CONF):
            raise DoubleError(f"failed to create ClusterRoleBinding kubeadm:cluster-admins: {e}")
        Client.from_kubeconfig(SUPER_ADMIN_CONF, retry_for=60).apply(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    return admin
