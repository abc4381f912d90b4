"""The doubles' API client keeps its connection: one TLS handshake serves a component's requests (as client-go's
kept connections do), and a kept connection the server has closed meanwhile is replaced without an error."""

import json
import os
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.doubles import x509util as xu
from lab.doubles.hostfs import DoubleError
from lab.doubles.kubeclient import Client


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keeps the connection open between requests, as the API-server double does

    def do_GET(self):
        data = json.dumps({"kind": "NodeList", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 that counts the connections it accepted and can close every one of them."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, ctx):
        self.ctx, self.accepted = ctx, []
        super().__init__(("127.0.0.1", port), Answer)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        conn, address = self.socket.accept()
        self.accepted.append(self.ctx.wrap_socket(conn, server_side=True))
        return self.accepted[-1], address

    def stop(self):
        self.shutdown()
        self.server_close()
        for conn in self.accepted:
            try:
                conn.shutdown(2)
            except OSError:
                pass
            conn.close()


@pytest.fixture
def tls():
    cert, key = xu.new_ca("127.0.0.1", algorithm="ECDSA-P256")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        cf, kf = os.path.join(d, "c"), os.path.join(d, "k")
        open(cf, "wb").write(xu.cert_pem(cert))
        open(kf, "wb").write(xu.key_pem(key))
        ctx.load_cert_chain(cf, kf)
    return ctx


def test_requests_share_one_connection_and_a_closed_one_is_replaced(tls):
    server = Server(0, tls)
    port = server.server_address[1]
    client = Client(f"https://127.0.0.1:{port}")
    try:
        for _ in range(10):
            assert client.get("/api/v1/nodes")["kind"] == "NodeList"
        assert len(server.accepted) == 1, "every request paid a TLS handshake of its own"

        server.stop()          # an API server restarted: the kept connection is closed under the client
        server = Server(port, tls)
        assert client.get("/api/v1/nodes")["kind"] == "NodeList"
        assert len(server.accepted) == 1
    finally:
        server.stop()


def test_a_server_that_is_gone_is_still_an_error(tls):
    server = Server(0, tls)
    client = Client(f"https://127.0.0.1:{server.server_address[1]}")
    client.get("/api/v1/nodes")
    server.stop()
    with pytest.raises(DoubleError, match=r"Get \"https://127\.0\.0\.1:[0-9]+/api/v1/nodes\": "):
        client.get("/api/v1/nodes")
