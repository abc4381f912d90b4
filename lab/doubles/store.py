"""The API-server double's storage: real etcd through its v3 JSON gateway, over mutual TLS with
the apiserver-etcd-client certificate (so the etcd certs kubefab generates are exercised).

Keys follow the real layout (/registry/<resource>/<namespace>/<name>); values are JSON rather
than protobuf. resourceVersion is the key's etcd mod_revision, as in the real server.

Lists are served as the real server serves them (--watch-cache, on by default): from a cache of everything under
/registry/ that one LIST fills and one etcd WATCH keeps, once the cache has caught up with etcd's current revision
(a consistent read from the cache, Kubernetes 1.31's ConsistentListFromCache); a cache that is not (yet) there, or
has not caught up within CATCH_UP_SECONDS, leaves the read to etcd. A kubelet's pods by spec.nodeName are then one
filter over memory, not every pod read from etcd and decoded.
"""

import base64
import http.client
import json
import ssl
import threading
import time
from urllib.parse import urlparse


LEADER_RETRY_SECONDS = 5
CATCH_UP_SECONDS = 2
REGISTRY = "/registry/"


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
    def __init__(self, endpoint, cafile, certfile, keyfile, watch_cache=False):
        url = urlparse(endpoint)
        self.host, self.port = url.hostname, url.port or 2379
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.local = threading.local()
        self.cache = WatchCache(self) if watch_cache else None

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
        obj, _, rv = WatchCache.entry(kv)
        return obj, rv

    def get(self, key):
        kvs = self.call("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return self._decode(kvs[0]) if kvs else None

    def list(self, prefix, where=None, consistent=True):
        """[(object, mod_revision)] under `prefix` in key order, those `where(object)` accepts, and the revision.

        `consistent=False` is what the real server's own informers read (its authorizers, its CRD handler): the
        watch cache as it is, without first asking etcd for its current revision."""
        if self.cache is not None:
            revision = "0"
            if consistent:
                revision = self.call("/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix),
                                                   "count_only": True})["header"].get("revision", "0")
            served = self.cache.list(prefix, where, int(revision))
            if served is not None:
                return served, revision if consistent else str(self.cache.revision)
        data = self.call("/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        items = [self._decode(kv) for kv in data.get("kvs", [])]
        return [(o, rv) for o, rv in items if where is None or where(o)], data["header"].get("revision", "0")

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


class WatchCache:
    """Everything under /registry/ as etcd had it at `revision`: a thread lists it, then follows etcd's watch of the
    whole keyspace (every write is an event, so `revision` keeps up) and lists again whenever the watch ends."""

    def __init__(self, store):
        self.store = store
        self.items, self.revision, self.ready = {}, 0, False
        self.changed = threading.Condition()
        threading.Thread(target=self.follow, daemon=True).start()

    def list(self, prefix, where, revision):
        """Copies of the matching objects once the cache has reached `revision`; None when it has not in time."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        with self.changed:
            while not (self.ready and self.revision >= revision):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            chosen = [(key, raw, rv) for key, (obj, raw, rv) in self.items.items()
                      if key.startswith(prefix) and (where is None or where(obj))]
        return [(json.loads(raw), rv) for _, raw, rv in sorted(chosen)]

    def follow(self):
        while True:
            try:
                self.watch(self.fill())
            except (OSError, http.client.HTTPException, StoreError, ValueError, KeyError):
                pass
            with self.changed:
                self.ready = False
            time.sleep(0.5)

    def fill(self):
        data = self.store.call("/kv/range", {"key": _b64(REGISTRY), "range_end": _prefix_end(REGISTRY)})
        revision = int(data["header"]["revision"])
        with self.changed:
            self.items = {base64.b64decode(kv["key"]).decode(): self.entry(kv) for kv in data.get("kvs", [])}
            self.revision, self.ready = revision, True
            self.changed.notify_all()
        return revision

    @staticmethod
    def entry(kv):
        raw = base64.b64decode(kv["value"])
        return json.loads(raw), raw, kv.get("mod_revision", "0")

    def watch(self, revision):
        conn = http.client.HTTPSConnection(self.store.host, self.store.port, context=self.store.ctx)
        try:
            conn.request("POST", "/v3/watch", json.dumps({"create_request": {
                "key": _b64("\0"), "range_end": _b64("\0"), "start_revision": str(revision + 1)}}),
                {"Content-Type": "application/json"})
            resp = conn.getresponse()
            while line := resp.readline():
                result = json.loads(line).get("result", {})
                if result.get("canceled"):
                    return
                with self.changed:
                    for event in result.get("events", []):
                        self.apply(event)
                    self.changed.notify_all()
        finally:
            conn.close()

    def apply(self, event):
        """One event; the revision moves on with every key's (the header's may be ahead of a replayed watch's)."""
        kv = event["kv"]
        key = base64.b64decode(kv["key"]).decode()
        self.revision = max(self.revision, int(kv.get("mod_revision", 0)))
        if not key.startswith(REGISTRY):
            return
        if event.get("type") == "DELETE":
            self.items.pop(key, None)
        else:
            self.items[key] = self.entry(kv)
