"""`kubeadm join` for workers and control-plane nodes (reference §4.5, §9)."""

import socket
import time

import yaml

from . import certs, config, discovery, etcdjoin, kubelet_setup, manifests, preflight
from . import kubeconfig as kc
from .certs import Node, PhaseError
from .hostfs import DoubleError, exists, host, log, version, write_file
from .kubeadm_util import (BOOTSTRAP_CONF, KUBELET_CONF, default_address, duration, ignored_errors,
                           mixed_config_check, skip_set, skipper, wait_component, wait_http)
from .kubeclient import ApiStatus, Client
from .objects import admin_client, mark_control_plane

JOIN_FLAGS_EXCLUSIVE_WITH_CONFIG = ("apiserver-advertise-address", "apiserver-bind-port", "cri-socket", "node-name",
                                    "token", "discovery-token", "discovery-token-ca-cert-hash", "tls-bootstrap-token",
                                    "discovery-token-unsafe-skip-ca-verification", "control-plane")


def join_docs_from_flags(flags, args):
    token = flags.get("token") or flags.get("discovery-token")
    bt = {"token": token, "apiServerEndpoint": args[0] if args else ""}
    if flags.get("discovery-token-ca-cert-hash"):
        bt["caCertHashes"] = flags["discovery-token-ca-cert-hash"].split(",")
    if "discovery-token-unsafe-skip-ca-verification" in flags:
        bt["unsafeSkipCAVerification"] = True
    join = {"discovery": {"bootstrapToken": bt, "tlsBootstrapToken": flags.get("tls-bootstrap-token") or token},
            "nodeRegistration": {}}
    if "node-name" in flags:
        join["nodeRegistration"]["name"] = flags["node-name"]
    if "cri-socket" in flags:
        join["nodeRegistration"]["criSocket"] = flags["cri-socket"]
    if "control-plane" in flags:
        join["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": flags.get("apiserver-advertise-address")
                                                     or default_address(),
                                                     "bindPort": int(flags.get("apiserver-bind-port", 6443))}}
    return {"JoinConfiguration": join}


class Join:
    PHASES = ("preflight", "control-plane-prepare", "kubelet-start", "control-plane-join", "wait-control-plane")

    def __init__(self, flags, args):
        mixed_config_check(flags, JOIN_FLAGS_EXCLUSIVE_WITH_CONFIG)
        docs = config.load(flags["config"], {"JoinConfiguration"}, only={"JoinConfiguration"}) if "config" in flags \
            else join_docs_from_flags(flags, args)
        self.join = config.join_configuration(docs)
        self.flags = flags
        self.nr = self.join["nodeRegistration"]
        self.cp = self.join.get("controlPlane")
        self.skip = skipper(skip_set(flags, self.join))
        self.ignored = ignored_errors(flags, self.nr)
        self.timeouts = self.join.get("timeouts") or {}
        self.discovered = None

    def run(self):
        for phase in self.PHASES:
            if not self.skip(phase):
                getattr(self, "phase_" + phase.replace("-", "_"))()

    def phase_preflight(self):
        ctx = {"bind_port": int(self.cp["localAPIEndpoint"]["bindPort"]) if self.cp else 6443,
               "local_etcd": True, "etcd_data_dir": "/var/lib/etcd", "cri_socket": self.nr["criSocket"],
               "kubernetes_version": version(), "ca_cert_path": self.join["caCertPath"]}
        failure = preflight.run(preflight.join_checks(ctx, self.cp is not None), ctx, self.ignored)
        if failure:
            raise PhaseError("preflight", failure)
        try:
            self.discovered = discovery.discover(self.join, duration(self.timeouts.get("discovery"), 300))
            log("[preflight] Reading configuration from the cluster...")
            log("[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
                "kubeadm-config -o yaml'")
            self.cluster = self.fetch_cluster_configuration()
        except DoubleError as e:
            raise PhaseError("preflight", e)
        if self.cp is None:
            return
        self.node = Node(self.nr["name"], self.cp["localAPIEndpoint"]["advertiseAddress"],
                         int(self.cp["localAPIEndpoint"]["bindPort"]), self.cluster)
        self.check_ready_for_control_plane()
        ctx.update(local_etcd="local" in self.cluster["etcd"],
                   etcd_data_dir=(self.cluster["etcd"].get("local") or {}).get("dataDir", "/var/lib/etcd"),
                   kubernetes_version=self.cluster["kubernetesVersion"])
        failure = preflight.run(preflight.control_plane_checks(ctx), ctx, self.ignored) or preflight.pull_images(ctx)
        if failure:
            raise PhaseError("preflight", failure)

    def fetch_cluster_configuration(self):
        client = Client(self.discovered.server, self.discovered.ca_pem, token=self.tls_token())
        try:
            cm = client.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
            self.kubelet_cm = client.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        except ApiStatus as e:
            raise DoubleError(f"unable to fetch the kubeadm-config ConfigMap: {e}")
        return config.default_cluster(yaml.safe_load(cm["data"]["ClusterConfiguration"]))

    def tls_token(self):
        return self.join["discovery"].get("tlsBootstrapToken") or self.join["discovery"]["bootstrapToken"]["token"]

    def check_ready_for_control_plane(self):
        if not self.cluster.get("controlPlaneEndpoint"):
            raise PhaseError("preflight", "\nOne or more conditions for hosting a new control plane instance is "
                             "not satisfied.\n\nunable to add a new control plane instance to a cluster that doesn't "
                             "have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a "
                             "stable controlPlaneEndpoint address.\n* The certificates that must be shared among "
                             "control plane instances are provided.\n")
        problems = certs.shared_certificates_exist(self.cluster)
        if problems:
            raise PhaseError("preflight", "\nOne or more conditions for hosting a new control plane instance is "
                             "not satisfied.\n\n[" + ", ".join(problems) + "]\n\nPlease ensure that:\n* The cluster "
                             "has a stable controlPlaneEndpoint address.\n* The certificates that must be shared "
                             "among control plane instances are provided.\n")

    def phase_control_plane_prepare(self):
        if self.cp is None:
            return
        certs.run_certs(self.node, self.skip, join_wording=True, generate_cas=False)
        certs.run_kubeconfigs(self.node, init=False, skip=self.skip)
        imgs = manifests.images(self.cluster)
        external = exists(self.node.path("ca", "crt")) and not exists(self.node.path("ca", "key"))
        for name, pod in (("kube-apiserver", manifests.apiserver(self.cluster, self.node, imgs)),
                          ("kube-controller-manager", manifests.controller_manager(self.cluster, self.node, imgs,
                                                                                   external)),
                          ("kube-scheduler", manifests.scheduler(self.cluster, self.node, imgs))):
            log(f"[control-plane] Creating static Pod manifest for \"{name}\"")
            manifests.write(name, pod)

    def phase_kubelet_start(self):
        self.check_node_name_free()
        write_file(self.join["caCertPath"], self.discovered.ca_pem)
        kc.write(BOOTSTRAP_CONF, kc.build(self.discovered.server, self.discovered.ca_pem, "tls-bootstrap-token-user",
                                          token=self.tls_token()))
        kubelet_config = yaml.safe_load(self.kubelet_cm["data"]["kubelet"])
        kubelet_setup.write_kubelet_files(kubelet_config, self.nr, socket.gethostname(), register_taints=True)
        try:
            kubelet_setup.start_kubelet()
            log("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
            wait_http("http://127.0.0.1:10248/healthz", duration(self.timeouts.get("kubeletHealthCheck"), 240),
                      "kubelet")
            self.wait_bootstrap(duration(self.timeouts.get("tlsBootstrap"), 300))
        except DoubleError as e:
            raise PhaseError("kubelet-start", e)
        host(BOOTSTRAP_CONF).unlink(missing_ok=True)

    def check_node_name_free(self):
        """A Ready Node of this name means another machine already joined under it (kubelet-start phase)."""
        client = Client(self.discovered.server, self.discovered.ca_pem, token=self.tls_token())
        try:
            node = client.get(f"/api/v1/nodes/{self.nr['name']}")
        except ApiStatus as e:
            if e.code == 404:
                return
            raise PhaseError("kubelet-start", f"cannot get Node \"{self.nr['name']}\": {e}")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (node.get("status") or {}).get("conditions") or [])
        if ready:
            raise PhaseError("kubelet-start", f"a Node with name \"{self.nr['name']}\" and status \"Ready\" already "
                             "exists in the cluster. You must delete the existing Node or change the name of this "
                             "new joining Node")

    def wait_bootstrap(self, timeout):
        deadline = time.monotonic() + timeout
        while not exists(KUBELET_CONF):
            if time.monotonic() > deadline:
                raise DoubleError("timed out waiting for the condition: the kubelet did not complete the TLS "
                                  "Bootstrap; check `journalctl -u kubelet`")
            time.sleep(0.3)

    def phase_control_plane_join(self):
        if self.cp is None:
            return
        if "local" in self.cluster["etcd"] and not self.skip("control-plane-join/etcd"):
            try:
                etcdjoin.add_member(self.node, self.cluster, admin_client(self.node),
                                    duration(self.timeouts.get("etcdAPICall"), 120))
            except DoubleError as e:
                raise PhaseError("control-plane-join/etcd", e)
        if not self.skip("control-plane-join/mark-control-plane"):
            mark_control_plane(admin_client(self.node), self.node.name, self.nr["taints"], 120)

    def phase_wait_control_plane(self):
        if self.cp is None:
            self.show_worker_done()
            return
        try:
            wait_component(f"{self.node.local_url()}/livez", 240, "kube-apiserver")
        except DoubleError as e:
            raise PhaseError("wait-control-plane", e)
        log("\nThis node has joined the cluster and a new control plane instance was created")

    @staticmethod
    def show_worker_done():
        log("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a "
            "response was received.\n* The Kubelet was informed of the new secure connection details.\n")
