"""A request on a kept-alive connection to the API server that the other end closed without an answer (the VIP moved
to another control plane, haproxy or the API server restarted) is sent again on a new connection when it is
idempotent; a POST is not sent twice."""

import http.server
import json
import threading

import pytest
import yaml

from kubefab.api import kube


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with {}, keeping the connection open, except that the first connection is dropped
    without an answer at its second request."""

    protocol_version = "HTTP/1.1"
    connections = []

    def setup(self):
        super().setup()
        self.n = len(self.connections)
        self.connections.append(0)

    def _answer(self):
        self.connections[self.n] += 1
        if self.n == 0 and self.connections[0] == 2:
            self.close_connection = True
            return
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"kind": "Status", "method": self.command}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_DELETE = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def kept_alive(tmp_path):
    _Handler.connections = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conf = tmp_path / "admin.conf"
    conf.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "t", "user": {"token": "x"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}))
    yield kube.connect(conf)
    server.shutdown()


def test_a_delete_on_a_connection_closed_without_an_answer_is_sent_again_on_a_new_one(kept_alive):
    kept_alive.get("/api/v1/nodes")
    assert kept_alive.delete("/api/v1/nodes/kf-cp1") is True
    assert _Handler.connections == [2, 1]


def test_a_post_on_a_connection_closed_without_an_answer_is_not_sent_again(kept_alive):
    kept_alive.get("/api/v1/nodes")
    with pytest.raises(kube.Unreachable, match="no answer to POST"):
        kept_alive.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "once"}})
    assert _Handler.connections == [2]
