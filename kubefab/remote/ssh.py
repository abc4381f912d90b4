"""SSH to the hosts: one Fabric Connection per host, opened once and reused; the only fabric/paramiko import.

Host keys are always verified against the inventory's `known_hosts_file` under its `known_hosts`
policy: `accept-new` records an unknown key and refuses a changed one, `strict` refuses unknown keys
too, `off` accepts anything (and the run warns). Scripts go to a host's `sh` on stdin, received in
full before they run, as root: directly, through passwordless sudo, or through sudo with the password
from the environment variable the inventory names (sent on stdin, never on a command line).
"""

import base64
import hashlib
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import paramiko
from fabric import Config, Connection

from kubefab import net
from kubefab.errors import KubefabError
from kubefab.secret import Secret

TRUNCATED = 125     # the wrapper's exit code when the script did not arrive whole


LINK_POLL = 0.25        # seconds between looks at TCP's view of a link while a session opens


class Unreachable(Exception):
    """A host that cannot be used: refused, timed out, auth failed, host key refused, connection lost."""


@dataclass(frozen=True)
class Output:
    code: int
    stdout: str
    stderr: str
    seconds: float


def fingerprint(key):
    """A host key's fingerprint as OpenSSH prints it: SHA256:<base64 without padding>."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def sudo_password(host):
    """The sudo password of `host` from the environment variable its inventory entry names, or None."""
    name = host.ssh.sudo_password_env
    if not host.ssh.sudo or not name:
        return None
    if name not in os.environ:
        raise KubefabError(f"[hosts.{host.name}] ssh.sudo_password_env names ${name}, which is not set — "
                           f"export {name} with the sudo password of {host.ssh.user!r} before the run")
    return Secret(os.environ[name])


class KnownHosts:
    """One known_hosts file, read once and shared by every connection; new keys appended under a lock."""

    def __init__(self, path, policy):
        self.path, self.policy = Path(path), policy
        self.keys = paramiko.HostKeys()
        if policy != "off" and self.path.is_file():
            self.keys.load(str(self.path))
        self._lock = threading.Lock()

    def prime(self, client, host):
        """Give `client` only this host's known keys, so paramiko negotiates their type and checks them."""
        with self._lock:
            known = dict(self.keys.lookup(entry_name(host)) or {})
        for keytype, key in known.items():
            client.get_host_keys().add(entry_name(host), keytype, key)
        client.set_missing_host_key_policy(_Missing(self, host))

    def record(self, name, key):
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
            self.keys.add(name, key.get_name(), key)


class _Missing(paramiko.MissingHostKeyPolicy):
    def __init__(self, known, host):
        self.known, self.host = known, host

    def missing_host_key(self, client, hostname, key):
        if self.known.policy == "off":
            return
        if self.known.policy == "strict":
            raise Unreachable(f"host key refused: {self.host.address} is not in {self.known.path} and known_hosts "
                              f"is 'strict' (its key is {key.get_name()} {fingerprint(key)}) — add it, e.g. "
                              f"ssh-keyscan -p {self.host.ssh.port} {self.host.address} >> {self.known.path}")
        self.known.record(hostname, key)


def entry_name(host):
    """How known_hosts names the host: its address, with the port when it is not 22."""
    return host.address if host.ssh.port == 22 else f"[{host.address}]:{host.ssh.port}"


def _changed_key(host, known_path, error):
    return (f"host key refused: {host.name} ({host.address}) offered {error.key.get_name()} "
            f"{fingerprint(error.key)} but {known_path} holds {fingerprint(error.expected_key)} for it — "
            f"if the host was reinstalled, remove the stale entry with: ssh-keygen -R {entry_name(host)} -f {known_path}")


class Hosts:
    """Open connections to the inventory's hosts, one per host for the whole run."""

    def __init__(self):
        self._known = {}
        self._connections = {}
        self._gateways = {}
        self._forwards = []                  # listening sockets of local forwards
        self._lock = threading.RLock()       # a gateway is opened under it, and opening takes it again
        self._opening = {}                   # host name -> the Lock held while its connection is opened

    def known_hosts(self, host):
        key = (host.ssh.known_hosts_file, host.ssh.known_hosts)
        with self._lock:
            if key not in self._known:
                self._known[key] = KnownHosts(os.path.expanduser(host.ssh.known_hosts_file), host.ssh.known_hosts)
            return self._known[key]

    def connection(self, host):
        """The open Connection to `host`, opened on first use; Unreachable with the cause otherwise.

        Threads asking for the same host at once get one connection: the opening holds that host's own lock, so
        other hosts' connections open meanwhile."""
        with self._lock:
            opening = self._opening.setdefault(host.name, threading.Lock())
        with opening:
            with self._lock:
                existing = self._connections.get(host.name)
            if existing is not None and existing.is_connected:
                return existing
            if existing is not None:
                existing.close()        # dropped by the host or the network: its transport's thread ends too
            c = self._open(host)
            with self._lock:
                self._connections[host.name] = c
            return c

    def _open(self, host):
        s = host.ssh
        c = Connection(host.address, user=s.user, port=s.port, connect_timeout=max(1, int(s.connect_timeout)),
                       config=Config(lazy=True), connect_kwargs=self._auth(s))
        known = self.known_hosts(host)
        known.prime(c.client, host)
        try:
            c.connect_kwargs["sock"] = self._socket(host)
            c.open()
        except Exception as e:
            c.close()
            raise Unreachable(_cause(host, known, e)) from None
        return c

    def _auth(self, s):
        kwargs = {"allow_agent": True, "look_for_keys": not s.identity_file, "banner_timeout": s.connect_timeout,
                  "auth_timeout": s.connect_timeout}
        if s.identity_file:
            kwargs["key_filename"] = [s.identity_file]
        return kwargs

    def _socket(self, host):
        """A TCP socket to the host with Nagle off, or a channel through the gateway (ProxyJump)."""
        s = host.ssh
        if s.gateway:
            try:
                return self._gateway(host).transport.open_channel(
                    "direct-tcpip", (host.address, s.port), ("", 0), timeout=s.connect_timeout)
            except (Unreachable, paramiko.SSHException, OSError) as e:
                raise Unreachable(f"through the gateway {s.gateway}: {e}") from None
        try:
            sock = socket.create_connection((host.address, s.port), timeout=s.connect_timeout)
        except socket.timeout:
            raise Unreachable(f"connection to {host.address}:{s.port} timed out after {s.connect_timeout:g} s "
                              "(host down, or the network or a firewall drops it)") from None
        except OSError as e:
            raise Unreachable(f"connection to {host.address}:{s.port} failed: {e.strerror or e} "
                              "(is sshd running and listening there?)") from None
        # paramiko leaves Nagle on: the login then waits on delayed ACKs (~49 ms against ~7.5 ms)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _gateway(self, host):
        """The shared connection to the host's bastion; a bastion that failed once fails its hosts at once."""
        spec = host.ssh.gateway
        with self._lock:
            if spec not in self._gateways:
                user, address, port = net.gateway_parts(spec)
                via = replace(host, name=f"gateway {spec}", address=address,
                              ssh=replace(host.ssh, user=user or host.ssh.user, port=port, gateway=""))
                try:
                    self._gateways[spec] = self._open(via)
                except Unreachable as e:
                    self._gateways[spec] = e
            if isinstance(self._gateways[spec], Unreachable):
                raise self._gateways[spec]
            return self._gateways[spec]

    def run(self, host, script, timeout, payload=None, sink=None):
        """Run `script` (bytes) as root on `host`, the path of `payload` as its $1.

        `payload` (a script.Payload: `size` bytes from `chunks()`) is streamed, never held whole. `sink`, when
        given, takes the standard output's bytes as they come (a snapshot streamed to a file), and the Output's
        stdout is then empty. Returns the Output, or raises Unreachable when the connection fails or breaks; an
        error raised by `chunks()` is raised as it is, after the channel closed short of the payload, so that the
        script does not run.
        """
        c = self.connection(host)
        password = sudo_password(host)
        prefix = password.reveal().encode() + b"\n" if password else b""
        command = _wrapper(len(script), payload.size if payload else 0, host.ssh.sudo, password is not None)
        start = time.monotonic()
        chan = _session(c.transport, host, timeout)
        try:
            chan.exec_command(command)
            # memoryviews: paramiko's sendall re-slices bytes after every packet, which made a 50 MB push take
            # 40 s of copying (quadratic in the size); a memoryview slices without copying
            chan.sendall(memoryview(prefix + script))
            _send(chan, payload.chunks() if payload else ())
            chan.shutdown_write()
            code, out, err = _collect(chan, start + timeout, sink)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise Unreachable(f"connection to {host.address} lost: {e or type(e).__name__}") from None
        if code is None:
            raise Unreachable(f"no answer from {host.address} within {timeout} s; the connection was closed")
        if code == -1:
            raise Unreachable(f"connection to {host.address} lost before the script ended")
        return Output(code, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - start)

    def forward(self, host, target, port):
        """A local forward to `target`:`port` as `host` sees it, over its open connection: ('127.0.0.1', local
        port), listening until close(). Each local connection is one direct-tcpip channel (`ssh -L`)."""
        transport = self.connection(host).transport
        listener = socket.create_server(("127.0.0.1", 0))
        with self._lock:
            self._forwards.append(listener)
        threading.Thread(target=_accept, args=(listener, transport, (target, port), host), daemon=True,
                         name=f"kubefab-forward-{host.name}").start()
        return listener.getsockname()

    def close(self):
        with self._lock:
            conns = [*self._connections.values(), *(g for g in self._gateways.values() if isinstance(g, Connection))]
            listeners, self._forwards = self._forwards, []
            self._connections, self._gateways = {}, {}
        for listener in listeners:
            listener.shutdown(socket.SHUT_RDWR)     # wakes the thread in accept(); close() alone leaves it listening
            listener.close()
        for c in conns:
            c.close()


def _session(transport, host, timeout):
    """A session channel on `transport`. A busy host's sshd can take longer than connect_timeout to open one on a
    connection it already accepted: as OpenSSH's client, kubefab waits for it, within the script's own `timeout`, as
    long as the host's kernel acknowledges what is sent. A link that leaves it unacknowledged for connect_timeout is
    dead (a cut link, a host gone): the connection is closed then and the session fails at once. Without TCP's own
    view of the link (a connection through a gateway, a system without TCP_INFO), connect_timeout is the wait."""
    patience = host.ssh.connect_timeout
    watched = isinstance(transport.sock, socket.socket) and hasattr(socket, "TCP_INFO")
    wait = timeout if watched else min(timeout, patience)
    opened, dead = threading.Event(), threading.Event()
    if watched:
        threading.Thread(target=_watch_link, args=(transport, patience, opened, dead), daemon=True,
                         name=f"kubefab-link-{host.name}").start()
    try:
        return transport.open_session(timeout=wait)
    except (paramiko.SSHException, OSError, EOFError) as e:
        if dead.is_set():
            raise Unreachable(f"connection to {host.address} lost: nothing sent was acknowledged for "
                              f"{patience:g} s") from None
        if isinstance(e, paramiko.ChannelException):
            raise Unreachable(f"{host.address} refused a session: {e}") from None
        if isinstance(e, paramiko.SSHException) and transport.is_active():
            raise Unreachable(f"no answer from {host.address} within {wait:g} s: its sshd did not open a "
                              "session") from None
        raise Unreachable(f"connection to {host.address} lost: {e or type(e).__name__}") from None
    finally:
        opened.set()


def _watch_link(transport, patience, opened, dead):
    """Until `opened`: close `transport` once TCP has been retransmitting, unacknowledged, for `patience` seconds."""
    since = None
    while not opened.wait(LINK_POLL):
        if not _retransmitting(transport.sock):
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= patience:
            dead.set()
            transport.close()
            return


def _retransmitting(sock):
    """Whether the kernel is retransmitting on `sock` for want of an acknowledgement (struct tcp_info's
    tcpi_retransmits, its third byte: the retransmission timeouts since the peer last acknowledged)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[2] > 0
    except OSError:
        return False


def _accept(listener, transport, target, host):
    while True:
        try:
            local, _ = listener.accept()
        except OSError:
            return          # closed: the run is over
        try:
            chan = transport.open_channel("direct-tcpip", target, local.getpeername(),
                                          timeout=host.ssh.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError):
            local.close()   # the client sees its connection closed, as with `ssh -L` when the far end refuses
            continue
        threading.Thread(target=_pump, args=(local, chan), daemon=True).start()


def _pump(local, chan):
    """Copy bytes both ways between a local socket and its channel until either side closes."""
    try:
        while True:
            ready, _, _ = select.select([local, chan], [], [])
            if local in ready:
                data = local.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in ready:
                data = chan.recv(65536)
                if not data:
                    break
                local.sendall(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass                # either end went away: close both
    finally:
        chan.close()
        local.close()


def _cause(host, known, error):
    s = host.ssh
    if isinstance(error, Unreachable):
        return str(error)
    if isinstance(error, paramiko.BadHostKeyException):
        return _changed_key(host, known.path, error)
    if isinstance(error, paramiko.AuthenticationException):
        agent = "on" if os.environ.get("SSH_AUTH_SOCK") else "off"
        return (f"authentication failed for {s.user}@{host.address}: {error} (identity file "
                f"{s.identity_file or 'none'}, ssh-agent {agent})")
    if isinstance(error, (paramiko.SSHException, OSError, EOFError)):
        return f"SSH to {s.user}@{host.address}:{s.port} failed: {error or type(error).__name__}"
    raise error


def _wrapper(size, payload_size, sudo, with_password):
    """The remote command: take the whole script and payload into private temp files, then run it as root."""
    if not sudo:
        run = 'sh "$f" "$f.d"'
    elif with_password:
        run = 'printf "%s\\n" "$p" | sudo -S -p "" sh -c "exec </dev/null; exec sh \\"\\$0\\" \\"\\$1\\"" "$f" "$f.d"'
    else:
        run = 'sudo -n sh "$f" "$f.d"'
    read = 'IFS= read -r p; ' if with_password else ''
    take = " && ".join(f'head -c {n} > "{name}" && [ "$(wc -c < "{name}")" -eq {n} ]'
                       for name, n in (("$f", size), ("$f.d", payload_size)))
    # the complaint in a subshell: with the channel gone, SIGPIPE ends that one, and the trap still removes the files
    body = (f'umask 077; f=$(mktemp) || exit {TRUNCATED}; trap \'rm -f "$f" "$f.d"\' EXIT; {read}'
            f'{{ {take}; }} || {{ (echo "kubefab: the script arrived truncated" >&2); exit {TRUNCATED}; }}; {run}')
    return "sh -c '" + body.replace("'", "'\\''") + "'"


def _send(chan, chunks):
    """Send each chunk in turn; when producing one fails, close the channel first: the wrapper, short of its
    payload, runs nothing and removes what it took."""
    try:
        for chunk in chunks:
            chan.sendall(memoryview(chunk))
    except Exception:
        chan.close()
        raise


def _collect(chan, deadline, sink=None):
    out, err = bytearray(), bytearray()
    sink = sink or out.extend
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            chan.close()
            return None, bytes(out), bytes(err)
        select.select([chan], [], [], min(left, 5))
        while chan.recv_ready():
            sink(chan.recv(65536))
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            if chan.eof_received or chan.closed:
                return chan.recv_exit_status(), bytes(out), bytes(err)
