"""kube-controller-manager and kube-scheduler doubles.

Both load their --kubeconfig (failing like the real ones when it is missing or unusable, or when its
identity may not read kube-system/extension-apiserver-authentication), serve
/healthz, /livez and /readyz over HTTPS with a self-signed certificate on --bind-address and their
secure port (10257 / 10259). The controller-manager also runs the controllers of controllers.py, daemonsets.py
and deployments.py; the scheduler binds pods (scheduler.py). With --leader-elect (the default) only the holder of
their Lease does (leaderelection.py).
"""

import json
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import controllers, daemonsets, deployments, eviction, gateways, leaderelection, scheduler
from . import flags as flagparse
from . import flagsets
from . import x509util as xu
from .hostfs import DoubleError, host
from .kubeclient import ApiStatus, Client

PORTS = {"kube-controller-manager": 10257, "kube-scheduler": 10259}


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200 if self.path.split("?")[0] in ("/healthz", "/livez", "/readyz") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_health(address, port):
    server = ThreadingHTTPServer((address, port), Health)
    cert, key = xu.new_ca(f"{address}@{int(time.time())}")
    with tempfile.TemporaryDirectory() as d:
        cf, kf = os.path.join(d, "c"), os.path.join(d, "k")
        open(cf, "wb").write(xu.cert_pem(cert))
        open(kf, "wb").write(xu.key_pem(key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cf, kf)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


AUTH_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
SERVICE_ACCOUNTS = "/api/v1/namespaces/kube-system/serviceaccounts"


def check_credentials(client):
    """DelegatingAuthenticationOptions: the kubeconfig's identity must read the request-header CA from the
    cluster, or the component exits (tolerate-lookup-failure is off; apiserver options/authentication.go)."""
    try:
        client.get(AUTH_CONFIGMAP)
    except ApiStatus as e:
        if e.code != 404:
            raise DoubleError(f"unable to load configmap based request-header-client-ca-file: {e}")
    except DoubleError as e:
        raise DoubleError(f"unable to load configmap based request-header-client-ca-file: {e}")


class ControllerClients:
    """With --use-service-account-credentials each controller talks as its own ServiceAccount, with a token
    the API server signs with sa.key and checks with sa.pub (clientbuilder.go); else as the kubeconfig."""

    def __init__(self, kubeconfig, admin, per_controller):
        self.kubeconfig, self.admin, self.per_controller, self.cache = kubeconfig, admin, per_controller, {}

    def __call__(self, account):
        if not self.per_controller:
            return self.admin
        made, client = self.cache.get(account, (None, None))
        if made is None or time.monotonic() - made > 600:    # monotonic counts from boot: 0 is not "long ago"
            try:
                self.admin.get(f"{SERVICE_ACCOUNTS}/{account}")
            except ApiStatus as e:
                if e.code != 404:
                    raise
                self.admin.create(SERVICE_ACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                     "metadata": {"name": account, "namespace": "kube-system"}})
            token = self.admin.create(f"{SERVICE_ACCOUNTS}/{account}/token", {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
            client = Client.from_kubeconfig(self.kubeconfig, token=token["status"]["token"])
            self.cache[account] = (time.monotonic(), client)
        return client


class EnvoyGatewayClient:
    """A client acting as envoy-gateway's ServiceAccount (so the add-on's own RBAC is what lets it work), or None
    while the add-on is not installed. (The gateway controller runs in envoy-gateway's pod on a real cluster; the
    lab plays it here, beside the other controllers.)"""

    def __init__(self, kubeconfig, admin):
        self.kubeconfig, self.admin, self.made, self.client = kubeconfig, admin, 0.0, None

    def __call__(self):
        account = f"/api/v1/namespaces/{gateways.NAMESPACE}/serviceaccounts/envoy-gateway"
        try:
            self.admin.get(account)
        except ApiStatus as e:
            if e.code != 404:
                raise
            self.client = None
            return None
        if self.client is None or time.monotonic() - self.made > 600:
            token = self.admin.create(f"{account}/token", {"apiVersion": "authentication.k8s.io/v1",
                                                           "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
            self.client = Client.from_kubeconfig(self.kubeconfig, token=token["status"]["token"])
            self.made = time.monotonic()
        return self.client


class Informers:
    """What several controllers read, listed once per pass and shared, as the controller-manager's controllers
    share one informer per resource (listing with the component's own credentials, as informers do); every
    reader gets its own copy."""
    SHARED = ("/api/v1/nodes", "/api/v1/pods", controllers.SECRETS)

    def __init__(self, client):
        self.client, self.listed = client, {}

    def get(self, path):
        if path not in self.listed:
            self.listed[path] = json.dumps(self.client.get(path))
        return json.loads(self.listed[path])


class Informed:
    """A controller's client: its reads of a shared collection come from the pass's informers, the rest (and
    every write) from its own client."""

    def __init__(self, client, informers):
        self.client, self.informers = client, informers

    def get(self, path):
        return (self.informers if path in Informers.SHARED else self.client).get(path)

    def __getattr__(self, name):
        return getattr(self.client, name)


def controller_loop(client, flags):
    signing_cert, signing_key = flags.get("cluster-signing-cert-file"), flags.get("cluster-signing-key-file")
    ca_cert = xu.load_cert(signing_cert) if signing_cert else None
    ca_key = xu.load_key(signing_key) if signing_key else None
    cidr = flags.get("cluster-cidr") if flags.get("allocate-node-cidrs") == "true" else None
    clients = ControllerClients(flags["kubeconfig"], client, flags.get("use-service-account-credentials") == "true")
    envoy_gateway = EnvoyGatewayClient(flags["kubeconfig"], client)
    while True:
        informers = Informers(client)
        def informed(account):
            return Informed(clients(account), informers)
        try:
            controllers.sign_cluster_info(informed("bootstrap-signer"))
            controllers.clean_tokens(informed("token-cleaner"))
            controllers.approve_and_sign(clients("certificate-controller"), ca_cert, ca_key)
            if cidr:
                controllers.allocate_pod_cidrs(informed("node-controller"), cidr)
            daemonsets.sync(informed("daemon-set-controller"))
            deployments.sync(informed("deployment-controller"))
            eviction.sync_budgets(clients("disruption-controller"))
            gateways.collect(clients("generic-garbage-collector"))
            envoy = envoy_gateway()
            if envoy is not None:
                gateways.sync(envoy)
        except (DoubleError, ApiStatus) as e:
            print(f"E controller: {e}", file=sys.stderr, flush=True)
        time.sleep(0.5)


def scheduler_loop(client):
    while True:
        try:
            scheduler.sync(client)
        except (DoubleError, ApiStatus) as e:
            print(f"E scheduler: {e}", file=sys.stderr, flush=True)
        time.sleep(0.5)


def elect(client, flags, name):
    """Wait to lead; the scheduler gives its Lease up on SIGTERM (ReleaseOnCancel), the controller-manager not."""
    elector = leaderelection.Elector(client, flags, name)
    if name == "kube-scheduler":
        def release(*_):
            releasing = threading.Thread(target=elector.release)   # its own connection, not the interrupted one
            releasing.start()
            releasing.join(5)
            os._exit(0)
        signal.signal(signal.SIGTERM, release)
    elector.acquire()


def main(argv=None):
    name = os.path.basename(sys.argv[0])
    flags, _ = flagparse.parse(sys.argv[1:] if argv is None else argv)
    flagsets.refuse_unknown(name, flags)
    try:
        if not flags.get("kubeconfig"):
            raise DoubleError("--kubeconfig is required for the double")
        if not host(flags["kubeconfig"]).is_file():
            raise DoubleError(f"stat {flags['kubeconfig']}: no such file or directory")
        client = Client.from_kubeconfig(flags["kubeconfig"])
        check_credentials(client)
        port = int(flags.get("secure-port", PORTS.get(name, 10257)))
        serve_health(flags.get("bind-address", "127.0.0.1"), port)
    except (DoubleError, OSError, ssl.SSLError, KeyError) as e:
        print(f"E run.go: \"command failed\" err=\"{e}\"", file=sys.stderr, flush=True)
        return 1
    print(f"{name} double running", flush=True)
    if flags.get("leader-elect", "true") == "true":
        elect(client, flags, name)
    if name == "kube-controller-manager":
        controller_loop(client, flags)
    if name == "kube-scheduler":
        scheduler_loop(client)
    while True:
        time.sleep(3600)
