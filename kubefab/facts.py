"""Facts of a host from one probe script (POSIX sh, run as root), parsed into a frozen value.

Minimal stand-in for the facts module of issue 8 (helper h8b writes the full one); it carries what
the runner, the plan and the stand-in preflight use.
"""

from dataclasses import dataclass

from kubefab.errors import KubefabError

COMMANDS = ("ip", "iptables", "mount", "nsenter", "ebtables", "ethtool", "socat", "tc", "touch", "conntrack")

PROBE = r"""set -u
kv() { printf '%s=%s\n' "$1" "$2"; }
kv hostname "$(hostname)"
kv machine_id "$(cat /etc/machine-id 2>/dev/null)"
. /etc/os-release 2>/dev/null; kv os_id "${ID:-}"
pm=""; for m in apt-get dnf yum; do command -v $m >/dev/null 2>&1 && { pm=${m%-get}; break; }; done
kv package_manager "$pm"
kv cpus "$(nproc 2>/dev/null || echo 0)"
kv mem_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
kv swaps "$(awk 'NR > 1' /proc/swaps | wc -l)"
kv clock "$(date +%s)"
kv ports "$(ss -ltnH 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}' | sort -un | tr '\n' ' ')"
kv commands "$(for c in COMMANDS; do command -v $c >/dev/null 2>&1 && printf '%s ' $c; done)"
kv kubernetes_files "$(ls /etc/kubernetes/manifests/*.yaml /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt 2>/dev/null | tr '\n' ' ')"
kv disk_kib "$(df -Pk /var/lib 2>/dev/null | awk 'NR == 2 {print $4}')"
kv end 1
""".replace("COMMANDS", " ".join(COMMANDS))
FIELDS = ("hostname", "machine_id", "os_id", "package_manager", "cpus", "mem_kib", "swaps", "clock", "ports",
          "commands", "kubernetes_files", "disk_kib")


class FactsError(KubefabError):
    """The probe's output is not what PROBE prints."""


@dataclass(frozen=True)
class Facts:
    host: str
    hostname: str
    machine_id: str
    os_id: str
    package_manager: str
    cpus: int
    mem_mb: int
    swaps: int
    clock: int
    ports: tuple
    commands: tuple
    kubernetes_files: tuple
    disk_mb: int


def parse(host_name, stdout):
    """Facts of `host_name` from the probe's stdout; FactsError showing the output's tail otherwise."""
    values = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    missing = [k for k in (*FIELDS, "end") if k not in values]
    tail = "\n".join(stdout.strip().splitlines()[-5:]) or "(no output)"
    if missing:
        raise FactsError(f"{host_name}: the facts probe's output lacks {', '.join(missing)}; it ended with:\n{tail}")
    try:
        return Facts(host_name, values["hostname"], values["machine_id"], values["os_id"], values["package_manager"],
                     int(values["cpus"]), int(values["mem_kib"]) // 1024, int(values["swaps"]), int(values["clock"]),
                     tuple(int(p) for p in values["ports"].split()), tuple(values["commands"].split()),
                     tuple(values["kubernetes_files"].split()), int(values["disk_kib"] or 0) // 1024)
    except ValueError as e:
        raise FactsError(f"{host_name}: the facts probe printed a bad value ({e}); it ended with:\n{tail}") from None
