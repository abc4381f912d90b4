"""Where the doubles read and write on a host, and how they talk to its service manager.

With KUBEFAB_DOUBLE_ROOT set, every absolute host path (/etc/kubernetes, /var/lib/...)
is mapped under that directory, so unit tests need no lab host. /proc files that
preflight and the kubelet read (/proc/swaps, /proc/sys/...) are mapped only when the
mapped file exists, so a test can fake swap or ip_forward per "host".
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT_ENV = "KUBEFAB_DOUBLE_ROOT"
VERSION_ENV = "KUBEFAB_DOUBLE_VERSION"
DEFAULT_VERSION = "v1.33.5"


class DoubleError(Exception):
    """An error the double reports like the real tool: message on stderr, exit 1."""


def root():
    value = os.environ.get(ROOT_ENV, "")
    return Path(value) if value else None


def host(path):
    """The real location of the host path `path` (a str or Path, absolute)."""
    base = root()
    path = str(path)
    if base is None or not path.startswith("/"):
        return Path(path)
    if path.startswith("/proc/"):
        mapped = base / path.lstrip("/")
        return mapped if mapped.exists() else Path(path)
    return base / path.lstrip("/")


def version():
    return os.environ.get(VERSION_ENV, DEFAULT_VERSION)


def systemd_running():
    """True when this host's service manager is systemd (never under a test root)."""
    return root() is None and Path("/run/systemd/system").is_dir()


def systemctl(*args, check=True):
    return subprocess.run(["systemctl", *args], check=check, capture_output=True, text=True)


EVENTS = "/var/log/kubefab-doubles/events.log"


def event(what):
    """One line "<epoch seconds> <what>" appended to this host's EVENTS: the order of upgrades and kubelet starts
    across hosts (which share this machine's clock) is read back from them by the lab's tests."""
    path = host(EVENTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{time.time():.6f} {what}\n")


def log(message):
    print(message, flush=True)


def warn(message):
    print(f"W {message}", file=sys.stderr, flush=True)


def write_file(path, data, mode=0o644, dir_mode=0o755):
    """Write host path `path` atomically with `mode` (kubeadm's modes, reference §1.5)."""
    real = host(path)
    real.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    tmp = real.with_name(f".{real.name}.tmp")
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, real)
    return real


def exists(path):
    return host(path).exists()
