"""The API server, reached with the kubernetes client and the local admin.conf: kubefab's only import of it.

`connect()` builds a client from a kubeconfig, directly or through a local forward (an SSH tunnel:
`via="127.0.0.1:41234"`, the certificate still checked against the real endpoint's name). `Api` sends
JSON requests and returns plain dicts; a refusal is an `ApiError` carrying the server's own message,
an unreachable server an `Unreachable`. Everything that reads or changes cluster objects builds on it.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import urllib3
import yaml

from kubefab import net
from kubefab.errors import KubefabError

REQUEST_TIMEOUT = (5, 30)             # connect, read (seconds): no call waits without bound
READY_TIMEOUT = 240                   # kubeadm's own wait for the control plane is 4 minutes
POLL_SECONDS = 1.0
DISCOVERY_TIMEOUT = 10                # how long a kind just defined by a CRD may take to be served
JSON = "application/json"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
IDEMPOTENT = ("GET", "PUT", "DELETE")


class ApiError(KubefabError):
    """The API server answered with an error status; `status` and `reason` as it sent them."""

    def __init__(self, method, path, status, reason, message):
        self.status, self.reason, self.message = status, reason, message
        super().__init__(f"{method} {path}: {status} {reason}: {message}")


class Unreachable(KubefabError):
    """No answer from the API server (connection refused, TLS failure, timeout)."""


class Timeout(KubefabError):
    """What kubefab waited for did not happen by its deadline."""


class Stopped(KubefabError):
    """A wait given up because the run is stopping (Ctrl-C)."""


@dataclass(frozen=True)
class Resource:
    """Where objects of one kind live: the collection path and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace=None, name=None):
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{group_path(self.api_version)}{scope}/{self.plural}" + (f"/{name}" if name else "")


@dataclass(frozen=True)
class Api:
    """A connection to one API server; `server` is the URL as reached."""

    client: object
    server: str
    stop: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)  # set: waits end
    _kinds: dict = field(default_factory=dict, compare=False, repr=False)

    def request(self, method, path, body=None, content_type=JSON, query=None, timeout=REQUEST_TIMEOUT):
        """The decoded answer (JSON as dicts, text as str); ApiError or Unreachable otherwise."""
        url = self.client.configuration.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": JSON, "Content-Type": content_type}
        self.client.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        for again in (True, False):
            try:
                response = self.client.call_api(method, url, headers, body, _request_timeout=timeout)
                data = response.read()
                break
            except (urllib3.exceptions.HTTPError, _client().client.exceptions.ApiException) as e:
                # a kept-alive connection closed without an answer (a VIP that moved, a restarted haproxy or API
                # server): an idempotent request goes again once, on a new connection; a POST is never sent twice
                if again and method in IDEMPOTENT and isinstance(getattr(e, "reason", e),
                                                                 urllib3.exceptions.ProtocolError):
                    continue
                raise Unreachable(f"{self.server}: no answer to {method} {path}: {_cause(e)}") from None
        text = data.decode() if data else ""
        if not 200 <= response.status < 300:
            raise _error(method, path, response.status, text)
        ctype = response.headers.get("content-type", "") or ""
        return json.loads(text) if text and "json" in ctype else text

    def get(self, path, query=None):
        return self.request("GET", path, query=query)

    def find(self, path):
        """The object at `path`, or None when it does not exist."""
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create(self, path, body):
        return self.request("POST", path, body)

    def patch(self, path, body, content_type=STRATEGIC, query=None):
        return self.request("PATCH", path, body, content_type, query)

    def delete(self, path, body=None):
        """Delete the object at `path`; True if it was there."""
        try:
            self.request("DELETE", path, body)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    def resource(self, api_version, kind, timeout=DISCOVERY_TIMEOUT):
        """The Resource serving `kind` in `api_version`, from discovery.

        On a miss discovery is read again until `timeout`: a CRD applied a moment ago is served
        only once the API server has established it.
        """
        kinds = self._discover(api_version)
        if kind in kinds:
            return kinds[kind]

        def check():
            kinds = self._discover(api_version, fresh=True)
            if kind in kinds:
                return True, kinds[kind]
            return False, f"it serves {', '.join(sorted(kinds)) or 'nothing'}"
        return until(check, timeout, f"{self.server}: no {kind} served in {api_version}", self.stop)

    def _discover(self, api_version, fresh=False):
        if fresh or api_version not in self._kinds:
            found = self.find(group_path(api_version)) or {"resources": []}
            self._kinds[api_version] = {r["kind"]: Resource(api_version, r["kind"], r["name"], r["namespaced"])
                                        for r in found["resources"] if "/" not in r["name"]}
        return self._kinds[api_version]

    def has_subresource(self, api_version, plural, sub):
        """True when discovery lists `plural/sub` (e.g. pods/eviction) in `api_version`."""
        found = self.find(group_path(api_version)) or {"resources": []}
        return any(r["name"] == f"{plural}/{sub}" for r in found["resources"])


def group_path(api_version):
    """The discovery path of an apiVersion: /api/v1 for the core group, /apis/<group>/<version> otherwise."""
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


def _cause(e):
    """The innermost reason urllib3 or the client gives, on one line."""
    reason = getattr(e, "reason", None) or e
    return " ".join(str(reason).split())


def _error(method, path, status, text):
    try:
        body = json.loads(text)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    # the causes say which object is in the way (an eviction's 429 names the disruption budget only there)
    causes = [c.get("message") for c in (body.get("details") or {}).get("causes") or () if isinstance(c, dict)]
    message = " ".join(filter(None, (body.get("message") or text.strip(), *causes)))
    return ApiError(method, path, status, body.get("reason", "") or "Error", message)


def connect(kubeconfig, via=None, stop=None):
    """An Api for kubeconfig file `kubeconfig` (its current context), optionally through `via` ('host:port');
    its waits end with Stopped once Event `stop` is set.

    Through `via`, TLS still checks the API server's certificate for the kubeconfig's own endpoint, as
    an SSH tunnel to the control plane needs (kubeadm's apiserver certificate has no 127.0.0.1).
    """
    try:
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = _current_cluster(doc)
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as e:
        raise KubefabError(f"{kubeconfig}: not a usable kubeconfig ({type(e).__name__}: {e}) — run "
                           "`invoke cluster.plan` to (re)create it") from None
    server = cluster["server"]
    if via:
        endpoint_host = net.endpoint_parts(server.removeprefix("https://"))[0]
        cluster["tls-server-name"] = endpoint_host
        cluster["server"] = server = f"https://{via}"
    k8s = _client()
    configuration = k8s.client.Configuration()
    k8s.config.load_kube_config_from_dict(doc, client_configuration=configuration, persist_config=False)
    configuration.retries = urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, backoff_factor=0.2)
    return Api(k8s.client.ApiClient(configuration), server, stop or threading.Event())


def _client():
    """The kubernetes client package, imported on first use: listing the tasks or planning offline never pays its
    0.3 s import."""
    import kubernetes.client
    import kubernetes.config
    return kubernetes


def _current_cluster(doc):
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    return next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]


def until(check, timeout, what, stop=None):
    """Call check() every POLL_SECONDS until it returns (True, value), then return value.

    While not done, check returns (False, why); at the deadline a Timeout names `what` and the last why.
    An API server that does not answer for a moment (a read timeout on a busy server, a restart) is a reason to
    wait on, not a failure. Once Event `stop` is set (Ctrl-C), the wait ends at once with Stopped.
    """
    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            done, value = check()
        except Unreachable as e:
            done, value = False, str(e)
        if done:
            return value
        if time.monotonic() + POLL_SECONDS > deadline:
            raise Timeout(f"{what} within {timeout:g}s — last: {value}")
        stop.wait(POLL_SECONDS)
    raise Stopped(f"stopped waiting: {what} (interrupted)")


def wait_ready(api, timeout=READY_TIMEOUT):
    """Wait until /readyz answers ok, then return the server's gitVersion; a Timeout at the deadline."""
    def check():
        try:
            if api.request("GET", "/readyz", timeout=(3, 10)).strip() == "ok":
                return True, api.get("/version")["gitVersion"]
            return False, "/readyz did not say ok"
        except ApiError as e:           # until() waits through Unreachable itself
            return False, str(e)
    return until(check, timeout, f"{api.server}: the API server was not ready", api.stop)
