"""Helpers shared by the kubeadm double's commands: durations, phase skipping, waits, clients."""

import re
import secrets
import socket
import ssl
import time
import urllib.request

from .hostfs import DoubleError, log

ADMIN_CONF, SUPER_ADMIN_CONF = "/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf"


KUBELET_CONF, BOOTSTRAP_CONF = "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf"


def duration(value, default):
    """Seconds in a Go duration string ('24h', '5m0s', '0' = 0)."""
    if value in (None, ""):
        return default
    parts = re.findall(r"([\d.]+)(h|ms|m|s)", str(value))
    if not parts:
        if str(value).strip() == "0":
            return 0
        raise DoubleError(f'time: invalid duration "{value}"')
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)


def skip_set(flags, doc):
    raw = flags.get("skip-phases")
    names = raw.split(",") if raw else list((doc or {}).get("skipPhases") or [])
    return {n.strip() for n in names if n.strip()}


def skipper(skipped):
    def skip(phase):
        return phase in skipped or phase.split("/")[0] in skipped
    return skip


def ignored_errors(flags, node_registration):
    raw = flags.get("ignore-preflight-errors", "")
    return [x for x in raw.split(",") if x] + list(node_registration.get("ignorePreflightErrors") or [])


def mixed_config_check(flags, exclusive):
    mixed = [f for f in exclusive if f in flags]
    if "config" in flags and mixed:
        raise DoubleError(f"can not mix '--config' with arguments {mixed}")


def default_address():
    """The address on the default-route interface, as kubeadm picks it (first global IPv4 here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.18.0.1", 9))
            return s.getsockname()[0]
        except OSError:
            raise DoubleError("unable to select an IP from default routes.")


def new_token():
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + \
        "".join(secrets.choice(alphabet) for _ in range(16))


def wait_http(url, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DoubleError(f"The HTTP call equal to 'curl -sSL {url}' returned error: {what} is not healthy "
                              f"after {timeout:.0f}s")
        time.sleep(0.3)


def wait_component(url, timeout, what):
    ctx = ssl._create_unverified_context()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                if r.status == 200:
                    log(f"[control-plane-check] {what} is healthy after some seconds")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DoubleError(f"{what} check failed at {url}: context deadline exceeded")
        time.sleep(0.3)
