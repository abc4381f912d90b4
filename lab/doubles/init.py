"""`kubeadm init`: its phases in kubeadm's order (reference §2.4)."""

import base64
import socket

import yaml

from . import certs, config, controllers, kubelet_setup, manifests, preflight
from . import kubeconfig as kc
from . import x509util as xu
from .certs import Node, PhaseError
from .hostfs import DoubleError, exists, log, version
from .kubeclient import Client
from .kubeadm_util import (ADMIN_CONF, KUBELET_CONF, duration, ignored_errors,
                           mixed_config_check, new_token, skip_set, skipper, wait_component, wait_http)
from .objects import (admin_client, configmap, coredns_objects, create_token_secret, grant_bootstrap_tokens,
                      grant_config_reads, kube_proxy_objects, mark_control_plane)

INIT_FLAGS_EXCLUSIVE_WITH_CONFIG = ("apiserver-advertise-address", "apiserver-bind-port", "apiserver-cert-extra-sans",
                                    "cert-dir", "control-plane-endpoint", "cri-socket", "image-repository",
                                    "kubernetes-version", "node-name", "pod-network-cidr", "service-cidr",
                                    "service-dns-domain", "token", "token-ttl")


def init_docs_from_flags(flags):
    init = {"nodeRegistration": {}, "localAPIEndpoint": {}}
    cluster = {"kubernetesVersion": flags.get("kubernetes-version", version())}
    if "apiserver-advertise-address" in flags:
        init["localAPIEndpoint"]["advertiseAddress"] = flags["apiserver-advertise-address"]
    if "apiserver-bind-port" in flags:
        init["localAPIEndpoint"]["bindPort"] = int(flags["apiserver-bind-port"])
    if "node-name" in flags:
        init["nodeRegistration"]["name"] = flags["node-name"]
    if "cri-socket" in flags:
        init["nodeRegistration"]["criSocket"] = flags["cri-socket"]
    if "token" in flags:
        init["bootstrapTokens"] = [{"token": flags["token"], "ttl": flags.get("token-ttl", "24h")}]
    for flag, path in (("pod-network-cidr", ("networking", "podSubnet")),
                       ("service-cidr", ("networking", "serviceSubnet")),
                       ("service-dns-domain", ("networking", "dnsDomain"))):
        if flag in flags:
            cluster.setdefault(path[0], {})[path[1]] = flags[flag]
    for flag, key in (("control-plane-endpoint", "controlPlaneEndpoint"), ("image-repository", "imageRepository"),
                      ("cert-dir", "certificatesDir")):
        if flag in flags:
            cluster[key] = flags[flag]
    return {"InitConfiguration": init, "ClusterConfiguration": cluster}


class Init:
    """Everything `kubeadm init` decides before acting, and its phases in order."""

    def __init__(self, flags):
        mixed_config_check(flags, INIT_FLAGS_EXCLUSIVE_WITH_CONFIG)
        docs = config.load(flags["config"], {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration",
                                             "KubeProxyConfiguration"}) if "config" in flags \
            else init_docs_from_flags(flags)
        self.init, self.cluster = config.init_configuration(docs, version())
        self.kubelet_doc = docs.get("KubeletConfiguration")
        self.proxy_doc = docs.get("KubeProxyConfiguration")
        ep, nr = self.init["localAPIEndpoint"], self.init["nodeRegistration"]
        self.node = Node(nr["name"], ep["advertiseAddress"], int(ep["bindPort"]), self.cluster)
        self.flags = flags
        self.skip = skipper(skip_set(flags, self.init))
        self.ignored = ignored_errors(flags, nr)
        self.timeouts = self.init.get("timeouts") or {}
        self.tokens = list(self.init.get("bootstrapTokens") or [])
        if not self.tokens:
            self.tokens = [{"token": new_token()}]

    PHASES = ("preflight", "certs", "kubeconfig", "etcd", "control-plane", "kubelet-start", "wait-control-plane",
              "upload-config", "upload-certs", "mark-control-plane", "bootstrap-token", "kubelet-finalize",
              "addon", "show-join-command")

    def run(self, only=None):
        self.sub = (only or "").partition("/")[2]       # `all` or one sub-phase of control-plane or upload-config
        for phase in self.PHASES:
            if (only and phase != only.split("/")[0]) or self.skip(phase):
                continue
            getattr(self, "phase_" + phase.replace("-", "_"))()

    def wants(self, sub):
        """Whether this run includes sub-phase `sub` of the phase it runs (all of them unless one was named)."""
        return self.sub in ("", "all", sub)

    def phase_preflight(self):
        log(f"[init] Using Kubernetes version: {self.cluster['kubernetesVersion']}")
        ctx = {"bind_port": self.node.bind_port, "local_etcd": "local" in self.cluster["etcd"],
               "etcd_data_dir": (self.cluster["etcd"].get("local") or {}).get("dataDir", "/var/lib/etcd"),
               "cri_socket": self.init["nodeRegistration"]["criSocket"],
               "kubernetes_version": self.cluster["kubernetesVersion"]}
        failure = preflight.run(preflight.init_checks(ctx), ctx, self.ignored) or preflight.pull_images(ctx)
        if failure:
            raise PhaseError("preflight", failure)

    def phase_certs(self):
        certs.run_certs(self.node, self.skip)

    def phase_kubeconfig(self):
        certs.run_kubeconfigs(self.node, init=True, skip=self.skip)

    def external_ca(self):
        return exists(self.node.path("ca", "crt")) and not exists(self.node.path("ca", "key"))

    def phase_etcd(self):
        if "local" in self.cluster["etcd"] and not self.skip("etcd/local"):
            log("[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\"")
            manifests.write("etcd", manifests.etcd(self.cluster, self.node, manifests.images(self.cluster)))

    def phase_control_plane(self):
        imgs = manifests.images(self.cluster)
        if self.sub in ("", "all"):
            log("[control-plane] Using manifest folder \"/etc/kubernetes/manifests\"")
        for name, pod in (("kube-apiserver", manifests.apiserver(self.cluster, self.node, imgs)),
                          ("kube-controller-manager", manifests.controller_manager(self.cluster, self.node, imgs,
                                                                                   self.external_ca())),
                          ("kube-scheduler", manifests.scheduler(self.cluster, self.node, imgs))):
            sub = name.removeprefix("kube-")
            if self.wants(sub) and not self.skip(f"control-plane/{sub}"):
                log(f"[control-plane] Creating static Pod manifest for \"{name}\"")
                manifests.write(name, pod)

    def phase_kubelet_start(self):
        kubelet_setup.write_kubelet_files(self.kubelet_config(), self.init["nodeRegistration"], socket.gethostname())
        try:
            kubelet_setup.start_kubelet()
        except DoubleError as e:
            raise PhaseError("kubelet-start", e)

    def kubelet_config(self):
        return kubelet_setup.kubelet_configuration(self.kubelet_doc, self.cluster)

    def phase_wait_control_plane(self):
        limit = duration(self.timeouts.get("controlPlaneComponentHealthCheck"), 240)
        kubelet_limit = duration(self.timeouts.get("kubeletHealthCheck"), 240)
        log("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from "
            "directory \"/etc/kubernetes/manifests\"")
        try:
            wait_http("http://127.0.0.1:10248/healthz", kubelet_limit, "kubelet")
            log("[kubelet-check] The kubelet is healthy")
            wait_component(f"{self.node.local_url()}/livez", limit, "kube-apiserver")
            wait_component("https://127.0.0.1:10257/healthz", limit, "kube-controller-manager")
            wait_component("https://127.0.0.1:10259/livez", limit, "kube-scheduler")
        except DoubleError as e:
            raise PhaseError("wait-control-plane", e)
        self.client = admin_client(self.node)

    def phase_upload_config(self):
        c = self.ensure_client()
        stored = {k: v for k, v in self.cluster.items()}
        stored.update(apiVersion="kubeadm.k8s.io/v1beta4", kind="ClusterConfiguration")
        if self.wants("kubeadm"):
            log("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the "
                "\"kube-system\" Namespace")
            c.apply("/api/v1/namespaces/kube-system/configmaps", configmap("kube-system", "kubeadm-config", {
                "ClusterConfiguration": yaml.safe_dump(stored, sort_keys=False)}))
        if self.wants("kubelet"):
            log("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration "
                "for the kubelets in the cluster")
            c.apply("/api/v1/namespaces/kube-system/configmaps", configmap("kube-system", "kubelet-config", {
                "kubelet": yaml.safe_dump(self.kubelet_config(), sort_keys=False)}))
        grant_config_reads(c)

    def phase_upload_certs(self):
        if "upload-certs" not in self.flags:
            log("[upload-certs] Skipping phase. Please see --upload-certs")

    def phase_mark_control_plane(self):
        c = self.ensure_client()
        log(f"[mark-control-plane] Marking the node {self.node.name} as control-plane by adding the labels: "
            "[node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]")
        mark_control_plane(c, self.node.name, self.init["nodeRegistration"]["taints"],
                           duration(self.timeouts.get("kubernetesAPICall"), 60) + 60)

    def phase_bootstrap_token(self):
        c = self.ensure_client()
        for t in self.tokens:
            log(f"[bootstrap-token] Using token: {t['token']}")
            create_token_secret(c, t)
        grant_bootstrap_tokens(c)
        log("[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace")
        admin = kc.load(ADMIN_CONF)
        cluster, _ = kc.current(admin, ADMIN_CONF)
        info = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "users": None, "contexts": None,
                "clusters": [{"name": "", "cluster": {"certificate-authority-data": base64.b64encode(
                    kc.ca_data(cluster)).decode(), "server": cluster["server"]}}]}
        c.apply("/api/v1/namespaces/kube-public/configmaps",
                configmap("kube-public", "cluster-info", {"kubeconfig": yaml.safe_dump(info, sort_keys=False)}))
        c.apply("/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"],
                       "verbs": ["get"]}]})
        c.apply("/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "kubeadm:bootstrap-signer-clusterinfo"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]})
        controllers.sign_cluster_info(c)

    def phase_kubelet_finalize(self):
        pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
        if not exists(pem) or not exists(KUBELET_CONF):
            return
        config = kc.load(KUBELET_CONF)
        for user in config.get("users") or []:
            user["user"] = {"client-certificate": pem, "client-key": pem}
        kc.write(KUBELET_CONF, config)
        log("[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client "
            "certificate and key")

    def phase_addon(self):
        c = self.ensure_client()
        imgs = manifests.images(self.cluster)
        if not self.skip("addon/coredns") and not self.cluster["dns"].get("disabled"):
            for path, obj in coredns_objects(self.cluster, imgs["coredns"]):
                c.apply(path, obj)
            log("[addons] Applied essential addon: CoreDNS")
        if not self.skip("addon/kube-proxy") and not self.cluster["proxy"].get("disabled"):
            for path, obj in kube_proxy_objects(self.cluster, imgs["kube-proxy"], self.node.cpe_url(),
                                                self.proxy_doc):
                c.apply(path, obj)
            log("[addons] Applied essential addon: kube-proxy")

    def phase_show_join_command(self):
        ca = xu.load_cert(self.node.path("ca", "crt"))
        cpe = self.node.cpe_url().removeprefix("https://")
        log("\nYour Kubernetes control-plane has initialized successfully!\n")
        token = "<value withheld>" if "skip-token-print" in self.flags else self.tokens[0]["token"]
        log(f"kubeadm join {cpe} --token {token} \\\n\t--discovery-token-ca-cert-hash {xu.spki_pin(ca)}")

    def ensure_client(self):
        if getattr(self, "client", None) is None:
            self.client = (Client.from_kubeconfig(self.flags["kubeconfig"]) if "kubeconfig" in self.flags
                           else admin_client(self.node))
        return self.client
