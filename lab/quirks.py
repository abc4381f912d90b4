"""Per-host faults a test can ask for, one frozen spec per quirk.

Each is visible the way an operator's tool sees it: `swapon` lists a swap file, `ss -ltn` shows
6443 taken, `date` is an hour ahead, `free` shows 1 GiB, `df /` shows a 1 MiB disk, ssh is refused
or times out.
"""

import re
from dataclasses import dataclass, field

from .errors import LabError

SKEW_SECONDS = 3600
LOW_MEMORY_KIB = 1024 * 1024
TAKEN_PORT = 6443
FULL_DISK = "1m"

SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
         "/swapfile                               file\t\t2097148\t\t0\t\t-2\n")
# `date` is found in /usr/local/bin before /usr/bin on every PATH a login or sudo gives.
SKEWED_DATE = f"""#!/bin/sh
# lab quirk clock-skew: this host's clock runs {SKEW_SECONDS} s ahead
exec /usr/bin/date -d "@$(( $(/usr/bin/date +%s) + {SKEW_SECONDS} ))" "$@"
"""
KUBERNETES_FILES = {
    "/etc/kubernetes/manifests/kube-apiserver.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n"
                                                    "  namespace: kube-system\n",
    "/etc/kubernetes/kubelet.conf": "apiVersion: v1\nkind: Config\nclusters: []\n",
    "/etc/kubernetes/pki/ca.crt": "left by an earlier cluster\n",
}


def low_meminfo(real):
    """The machine's /proc/meminfo with total, free and available memory cut to LOW_MEMORY_KIB."""
    return re.sub(r"^(MemTotal|MemFree|MemAvailable):(\s+)\d+ kB$",
                  lambda m: f"{m[1]}:{m[2]}{LOW_MEMORY_KIB} kB", real, flags=re.M)


@dataclass(frozen=True)
class Quirk:
    name: str
    summary: str
    files: dict = field(default_factory=dict)  # path in the host: (content, mode)
    proc: dict = field(default_factory=dict)  # /proc/<name>: content (or a function of the real file)
    boot: str = ""  # shell command left running in the host from boot
    disk: str = ""  # size of the host's writable upper dir instead of the flavour's
    twin: str = ""  # 'hostname' or 'machine-id': copied from another host of the lab
    after_up: str = ""  # a Lab method applied to the host once the lab is up
    hidden: tuple = ()  # paths of the machine's files the host does not have


QUIRKS = {q.name: q for q in (
    Quirk("swap", "swap is on: /proc/swaps lists a 2 GiB swap file", proc={"swaps": SWAPS}),
    Quirk("port-taken", f"port {TAKEN_PORT} already has a listener",
          boot=f"exec socat -u TCP-LISTEN:{TAKEN_PORT},reuseaddr,fork OPEN:/dev/null"),
    Quirk("duplicate-machine-id", "/etc/machine-id is the same as another host's", twin="machine-id"),
    Quirk("duplicate-hostname", "the hostname is the same as another host's", twin="hostname"),
    Quirk("clock-skew", f"`date` runs {SKEW_SECONDS} s ahead", files={"/usr/local/bin/date": (SKEWED_DATE, 0o755)}),
    Quirk("low-memory", f"/proc/meminfo shows {LOW_MEMORY_KIB // 1024} MiB", proc={"meminfo": low_meminfo}),
    Quirk("kubernetes-configured", "/etc/kubernetes already holds manifests, kubeconfigs and a CA",
          files={path: (text, 0o644) for path, text in KUBERNETES_FILES.items()}),
    Quirk("sshd-stopped", "sshd is not running: connections are refused", after_up="stop_sshd"),
    Quirk("network-cut", "the host's link is down: connections time out", after_up="cut"),
    Quirk("minimal", "no gpg and no curl, as on a minimal install", hidden=("/usr/bin/gpg", "/usr/bin/curl")),
    Quirk("disk-full", f"the root filesystem has {FULL_DISK}B: writes fail with ENOSPC", disk=FULL_DISK),
)}


def resolve(by_host):
    """{host: (Quirk, ...)} from {host: [quirk name, ...]}; an unknown name lists the valid ones."""
    out = {}
    for host, names in (by_host or {}).items():
        unknown = [n for n in names if n not in QUIRKS]
        if unknown:
            raise LabError(f"host {host}: unknown quirk {', '.join(map(repr, unknown))} — "
                           f"quirks are: {', '.join(QUIRKS)}")
        out[host] = tuple(QUIRKS[n] for n in names)
    return out
