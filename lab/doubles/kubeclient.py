"""A small Kubernetes REST client for the doubles (kubeadm, kubelet, controller-manager)."""

import http.client
import json
import os
import ssl
import tempfile
import threading
import time
from urllib.parse import urlparse

from . import kubeconfig
from .hostfs import DoubleError


class ApiStatus(Exception):
    def __init__(self, code, body):
        self.code, self.body = code, body
        super().__init__(body.get("message", str(body)) if isinstance(body, dict) else str(body))


class Client:
    """Talks to one server; TLS verified against `ca_pem` unless `ca_pem` is None (insecure)."""

    def __init__(self, server, ca_pem=None, cert_pem=None, key_pem=None, token=None, timeout=10, retry_for=0):
        url = urlparse(server)
        self.host, self.port = url.hostname, url.port or 443
        self.token, self.timeout = token, timeout
        self.retry_for = retry_for      # seconds a request is tried again, every 0.5 s, while the server is unreachable
        if ca_pem is None:
            self.ctx = ssl._create_unverified_context()
        else:
            self.ctx = ssl.create_default_context(cadata=ca_pem.decode())
        self.local = threading.local()   # a connection kept per thread, as client-go keeps its own
        if cert_pem and key_pem:
            with tempfile.TemporaryDirectory() as d:
                cf, kf = os.path.join(d, "c"), os.path.join(d, "k")
                open(cf, "wb").write(cert_pem)
                open(kf, "wb").write(key_pem)
                self.ctx.load_cert_chain(cf, kf)

    @classmethod
    def from_kubeconfig(cls, path, timeout=10, token=None, retry_for=0):
        """A client for the kubeconfig's cluster; with `token`, as that bearer instead of the kubeconfig's user."""
        config = kubeconfig.load(path)
        cluster, user = kubeconfig.current(config, str(path))
        cert, key, own_token = kubeconfig.client_material(user)
        if token:
            return cls(cluster["server"], kubeconfig.ca_data(cluster), token=token, timeout=timeout,
                       retry_for=retry_for)
        return cls(cluster["server"], kubeconfig.ca_data(cluster), cert, key, own_token, timeout, retry_for)

    def request(self, method, path, body=None, content_type="application/json"):
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                return self._request(method, path, body, content_type)
            except DoubleError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def _request(self, method, path, body, content_type):
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        while True:
            conn, reused = getattr(self.local, "conn", None), True
            if conn is None:
                conn = self.local.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                                                     timeout=self.timeout)
                reused = False
            try:
                conn.request(method, path, data, headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self.local.conn = None
                # a kept connection the server (or a balancer between) has closed meanwhile: once more on a new one
                if not reused or isinstance(e, TimeoutError):
                    raise DoubleError(f"Get \"https://{self.host}:{self.port}{path}\": {e}")
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"message": raw.decode(errors="replace")}
        if resp.status >= 400:
            raise ApiStatus(resp.status, parsed)
        return parsed

    def get(self, path):
        return self.request("GET", path)

    def create(self, path, obj):
        return self.request("POST", path, obj)

    def apply(self, path, obj):
        """Create `obj` at collection `path`, or merge-patch the existing one."""
        try:
            return self.create(path, obj)
        except ApiStatus as e:
            if e.code != 409:
                raise
        return self.request("PATCH", f"{path}/{obj['metadata']['name']}", obj, "application/merge-patch+json")

    def patch(self, path, patch):
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path):
        return self.request("DELETE", path)

    def delete_if_present(self, path):
        """DELETE, where an object already gone (404) is as good as deleted, as a controller's cleanup wants."""
        try:
            self.request("DELETE", path)
        except ApiStatus as e:
            if e.code != 404:
                raise
