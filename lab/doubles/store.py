"""The API-server double's storage: real etcd through its v3 JSON gateway, over mutual TLS with
the apiserver-etcd-client certificate (so the etcd certs kubefab generates are exercised).

Keys follow the real layout (/registry/<resource>/<namespace>/<name>); values are JSON rather
than protobuf. resourceVersion is the key's etcd mod_revision, as in the real server.
"""

import base64
import http.client
import json
import ssl
import threading
import time
from urllib.parse import urlparse


LEADER_RETRY_SECONDS = 5


class StoreError(Exception):
    pass


class Conflict(StoreError):
    pass


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix):
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class EtcdStore:
    def __init__(self, endpoint, cafile, certfile, keyfile):
        url = urlparse(endpoint)
        self.host, self.port = url.hostname, url.port or 2379
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.local = threading.local()

    def call(self, path, body):
        """etcd's answer to `path`; a read that meets a leader election is tried again for a few seconds, as
        clientv3's retry interceptor does for a range (codes.Unavailable: "etcdserver: leader changed")."""
        deadline = time.monotonic() + LEADER_RETRY_SECONDS
        while True:
            try:
                return self._call(path, body)
            except StoreError as e:
                if path != "/kv/range" or "leader changed" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _call(self, path, body):
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)
            try:
                conn.request("POST", "/v3" + path, json.dumps(body), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = json.loads(resp.read() or b"{}")
            except (OSError, http.client.HTTPException) as e:
                self.local.conn = None
                if attempt:
                    raise StoreError(f"etcd {self.host}:{self.port}: {e}")
                continue
            if resp.status != 200:
                raise StoreError(f"etcd {path}: {data.get('message') or data}")
            return data

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.call("/kv/range", {"key": _b64("/registry/health")})
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @staticmethod
    def _decode(kv):
        return json.loads(base64.b64decode(kv["value"])), kv.get("mod_revision", "0")

    def get(self, key):
        kvs = self.call("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return self._decode(kvs[0]) if kvs else None

    def list(self, prefix):
        data = self.call("/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return [self._decode(kv) for kv in data.get("kvs", [])], data["header"].get("revision", "0")

    def _txn(self, key, compare, value):
        put = {"request_put": {"key": _b64(key), "value": base64.b64encode(json.dumps(value).encode()).decode()}}
        data = self.call("/kv/txn", {"compare": [dict(compare, key=_b64(key))], "success": [put]})
        if not data.get("succeeded"):
            raise Conflict(key)
        return data["header"]["revision"]

    def create(self, key, value):
        return self._txn(key, {"result": "EQUAL", "target": "CREATE", "create_revision": "0"}, value)

    def update(self, key, value, expected_rv):
        return self._txn(key, {"result": "EQUAL", "target": "MOD", "mod_revision": str(expected_rv)}, value)

    def delete(self, key):
        return int(self.call("/kv/deleterange", {"key": _b64(key)}).get("deleted", "0")) > 0
