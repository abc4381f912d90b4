"""etcd membership, read and changed from this machine: the member list, each voting member's health, whether a
member may go without breaking quorum, and its removal through a healthy peer.

Nothing runs on the hosts: kubefab speaks etcd's v3 JSON gateway (served on every member's client port) over
mutual TLS with the state dir's etcd/healthcheck-client certificate, the certificate kubeadm's own etcd client
uses. A member is reached at its client URL, or, when that does not answer from here, through a forward over its
own host's SSH connection to 127.0.0.1:2379 — its server certificate is checked for its address either way.
`judge` is pure: the refusal and warnings for removing one host's member, from the members as read.
"""

import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from kubefab import net, pki
from kubefab.errors import KubefabError
from kubefab.remote import ssh

CLIENT_PORT, PEER_PORT = 2379, 2380
TIMEOUT = 5


@dataclass(frozen=True)
class Member:
    """One etcd member as the member list gives it, and whether its own status call answered."""

    id: str                 # the uint64 ID, as the gateway writes it (a decimal string)
    name: str
    peer_url: str
    client_urls: tuple
    learner: bool
    healthy: bool = False


@dataclass(frozen=True)
class Judgement:
    """What removing one host's member would do: the member (None when it is not one), why it must not go
    ("" when it may), and what is worth knowing."""

    member: object
    refusal: str
    warnings: tuple = ()


def peer_url(host):
    """The peer URL kubeadm gives the member of control plane `host`."""
    return f"https://{net.join_endpoint(host.internal_address, PEER_PORT)}"


def judge(members, host):
    """Whether `host`'s member may be removed from `members`: never the last voting member, and only when the
    healthy voting members left still make a quorum of those left; an even count left is a warning."""
    mine = next((m for m in members if m.peer_url == peer_url(host) or m.name == host.name), None)
    if mine is None:
        return Judgement(None, "")
    left = [m for m in members if not m.learner and m is not mine]
    if not left:
        return Judgement(mine, f"{host.name} holds the cluster's last etcd member: removing it ends the cluster — "
                               "`invoke cluster.reset` takes a whole cluster down")
    healthy, need = [m for m in left if m.healthy], len(left) // 2 + 1
    if len(healthy) < need:
        sick = ", ".join(m.name or m.peer_url for m in left if not m.healthy)
        return Judgement(mine, f"removing {host.name}'s etcd member leaves {len(left)} members of which "
                               f"{len(healthy)} are healthy, and etcd needs {need} for a quorum — bring {sick} "
                               "back first")
    warnings = ()
    if len(left) % 2 == 0:
        warnings = (f"etcd will have {len(left)} members: an even count tolerates no more failed members than "
                    f"{len(left) - 1} do ({(len(left) - 1) // 2}) — add a control plane to make it odd again",)
    return Judgement(mine, "", warnings)


class Etcd:
    """The etcd cluster of `inv` as this machine reaches it, over `hosts` (an ssh.Hosts) when it must."""

    def __init__(self, inv, hosts):
        self.inv, self.hosts = inv, hosts
        ca = pki.paths(self.inv, pki.BY_NAME["etcd/ca"])[0]
        cert, key = pki.paths(self.inv, pki.BY_NAME["etcd/healthcheck-client"])
        if not (ca.is_file() and cert.is_file() and key.is_file()):
            raise KubefabError(f"{cert}: the etcd client certificate is missing from the state dir — run "
                               "`invoke cluster.plan` to make it (from the same etcd CA)")
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.ctx.load_cert_chain(str(cert), str(key))

    def members(self, skip=(), health=True):
        """Every Member, listed through the first control plane (not in `skip`) that answers; with `health`, each
        one's health asked of itself."""
        listed = self._first(lambda url: self.call(url, "/cluster/member/list"), skip)
        return tuple(Member(str(m["ID"]), m.get("name", ""), (m.get("peerURLs") or [""])[0],
                            tuple(m.get("clientURLs") or ()), bool(m.get("isLearner")),
                            healthy=health and self._answers(m.get("clientURLs") or ()))
                     for m in listed.get("members", ()))

    def remove(self, member, skip=()):
        """Remove `member` through the first other control plane that answers; etcd's own refusal as a
        KubefabError."""
        self._first(lambda url: self.call(url, "/cluster/member/remove", {"ID": member.id}), skip)

    def call(self, url, path, body=None):
        """POST `body` to etcd's gateway at client URL `url`; the answer, or KubefabError with etcd's words."""
        parts = urlsplit(url)
        address, port = parts.hostname, parts.port or CLIENT_PORT
        conn = _Connection(self._route(address, port), address, self.ctx)
        try:
            conn.request("POST", "/v3" + path, json.dumps(body or {}), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise KubefabError(f"etcd at {url}: {e}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise KubefabError(f"etcd at {url}: {data.get('message') or data.get('error') or data}")
        return data

    def _route(self, address, port):
        """(address, port) to connect to: the client URL itself, else a forward over its host's SSH connection."""
        try:
            socket.create_connection((address, port), timeout=TIMEOUT).close()
            return address, port
        except OSError:
            pass
        owner = next((h for h in self.inv.control_planes if h.internal_address == address), None)
        if owner is None:
            raise KubefabError(f"etcd at {address}:{port} does not answer and is not a control plane of the "
                               "inventory to reach it through")
        try:
            return self.hosts.forward(owner, "127.0.0.1", port)
        except (ssh.Unreachable, OSError) as e:
            raise KubefabError(f"etcd at {address}:{port}: {owner.name} cannot be reached: {e}") from None

    def _first(self, call, skip):
        errors = []
        for host in self.inv.control_planes:
            if host.name in skip:
                continue
            url = f"https://{net.join_endpoint(host.internal_address, CLIENT_PORT)}"
            try:
                return call(url)
            except KubefabError as e:
                errors.append(str(e))
        raise KubefabError("no etcd member answers: " + "; ".join(errors or ["no other control plane"]))

    def _answers(self, urls):
        for url in urls:
            try:
                self.call(url, "/maintenance/status")
                return True
            except KubefabError:
                continue
        return False


class _Connection(http.client.HTTPSConnection):
    """HTTPS to `route` (address, port), the server's certificate checked for `name`."""

    def __init__(self, route, name, context):
        super().__init__(name, route[1], context=context, timeout=TIMEOUT)
        self.route, self.context = route, context

    def connect(self):
        sock = socket.create_connection(self.route, self.timeout)
        self.sock = self.context.wrap_socket(sock, server_hostname=self.host)
