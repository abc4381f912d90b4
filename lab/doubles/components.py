"""kube-controller-manager and kube-scheduler doubles.

Both load their --kubeconfig (failing like the real ones when it is missing or unusable), serve
/healthz, /livez and /readyz over HTTPS with a self-signed certificate on --bind-address and their
secure port (10257 / 10259). The controller-manager also runs the controllers of controllers.py.
"""

import os
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import controllers
from . import flags as flagparse
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


def controller_loop(client, flags):
    signing_cert, signing_key = flags.get("cluster-signing-cert-file"), flags.get("cluster-signing-key-file")
    ca_cert = xu.load_cert(signing_cert) if signing_cert else None
    ca_key = xu.load_key(signing_key) if signing_key else None
    cidr = flags.get("cluster-cidr") if flags.get("allocate-node-cidrs") == "true" else None
    while True:
        try:
            controllers.sign_cluster_info(client)
            controllers.clean_tokens(client)
            controllers.approve_and_sign(client, ca_cert, ca_key)
            if cidr:
                controllers.allocate_pod_cidrs(client, cidr)
        except (DoubleError, ApiStatus) as e:
            print(f"E controller: {e}", file=sys.stderr, flush=True)
        time.sleep(0.5)


def main(argv=None):
    name = os.path.basename(sys.argv[0])
    flags, _ = flagparse.parse(sys.argv[1:] if argv is None else argv)
    try:
        if not flags.get("kubeconfig"):
            raise DoubleError("--kubeconfig is required for the double")
        if not host(flags["kubeconfig"]).is_file():
            raise DoubleError(f"stat {flags['kubeconfig']}: no such file or directory")
        client = Client.from_kubeconfig(flags["kubeconfig"])
        port = int(flags.get("secure-port", PORTS.get(name, 10257)))
        serve_health(flags.get("bind-address", "127.0.0.1"), port)
    except (DoubleError, OSError, ssl.SSLError, KeyError) as e:
        print(f"E run.go: \"command failed\" err=\"{e}\"", file=sys.stderr, flush=True)
        return 1
    print(f"{name} double running", flush=True)
    if name == "kube-controller-manager":
        controller_loop(client, flags)
    while True:
        time.sleep(3600)
