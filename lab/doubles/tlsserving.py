"""The API-server double's TLS, as kube-apiserver does it (README: "Certificates: read at start-up or reloaded").

- The serving certificate and key (`--tls-cert-file`, `--tls-private-key-file`) and the client-CA bundle
  (`--client-ca-file`) are re-read from disk: every new connection gets a context built from the files as they
  are now (k8s.io/apiserver dynamiccertificates: DynamicServingCertificateController and DynamicFileCAContent
  reload on change). A pair that does not load (a certificate replaced before its key) keeps the last good one,
  as the real controller keeps serving its previous certificate and logs the error.
- A client certificate is asked for, not required (Go's tls.RequestClientCert in secure_serving.go): its chain is
  checked at the handshake here (Python's ssl cannot defer it), but its validity period is checked per request by
  the x509 authenticator, so an expired client certificate gets 401 Unauthorized, as on the real server.
- Each request that authenticated with a client certificate records its user and serial in
  `SERIALS_FILE` ({user: {serial hex: {"first": time, "last": time}}}), so a test can see which certificate a
  component still uses after a renewal.
"""

import datetime
import json
import os
import ssl
import threading

from .hostfs import host, warn

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: the handshake leaves the validity period to the authenticator
NO_CHECK_TIME = 0x200000
SERIALS_FILE = "/var/log/kubernetes/apiserver-client-serials.json"
RECORD_EVERY = 1.0          # seconds between two writes of the same user and serial's "last"


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class DynamicTLS:
    """The server context for the next connection, rebuilt whenever the serving pair or client CA changed."""

    def __init__(self, cert_file, key_file, client_ca_file):
        self.files = (cert_file, key_file, client_ca_file)
        self.lock = threading.Lock()
        self.loaded = None              # (the files' bytes, their context)
        self.context()

    def _build(self):
        cert, key, ca = (str(host(f)) for f in self.files)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags |= NO_CHECK_TIME
        return ctx

    def context(self):
        try:
            data = tuple(host(f).read_bytes() for f in self.files)
        except OSError as e:
            if self.loaded is None:
                raise
            warn(f"dynamic_serving_content.go: \"Failed to load serving certificate and key\" err=\"{e}\"")
            return self.loaded[1]
        with self.lock:
            if self.loaded and self.loaded[0] == data:
                return self.loaded[1]
            try:
                ctx = self._build()
            except (ssl.SSLError, OSError) as e:
                if self.loaded is None:
                    raise
                warn(f"dynamic_serving_content.go: \"Failed to load serving certificate and key\" err=\"{e}\"")
                return self.loaded[1]
            self.loaded = (data, ctx)
            return ctx


def _time(peer, field):
    return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(peer[field]), datetime.timezone.utc)


def expired(peer, now=None):
    """The x509 authenticator's refusal of a certificate outside its validity period, in Go's words; else ''."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    before, after = _time(peer, "notBefore"), _time(peer, "notAfter")
    if before <= now <= after:
        return ""
    bound = f"is after {rfc3339(after)}" if now > after else f"is before {rfc3339(before)}"
    return (f"verifying certificate SN={int(peer['serialNumber'], 16)} failed: x509: certificate has expired or "
            f"is not yet valid: current time {rfc3339(now)} {bound}")


class Serials:
    """Which client certificate (serial) each user authenticated with, first and last seen, kept in a file."""

    def __init__(self, path=SERIALS_FILE):
        self.path = host(path)
        self.lock = threading.Lock()
        try:
            self.seen = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.seen = {}

    def record(self, user, serial_hex):
        now = datetime.datetime.now(datetime.timezone.utc)
        serial = format(int(serial_hex, 16), "x")
        with self.lock:
            entry = self.seen.setdefault(user, {}).get(serial)
            if entry and (now - datetime.datetime.fromisoformat(entry["last"])).total_seconds() < RECORD_EVERY:
                return
            stamp = now.isoformat()
            self.seen[user][serial] = {"first": entry["first"] if entry else stamp, "last": stamp}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.seen, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
