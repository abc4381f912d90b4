"""Why a kubeadm step failed on a host: the kubelet's and containerd's last journal lines, and a hint.

When `kubeadm init` or `join` fails, `cluster.up` runs JOURNALS on the same host over the same SSH
connection and shows its output beside kubeadm's own tail. `hints(text)` matches the known causes
(reference kubeadm.md, Pitfalls) in all of that text: each HINTS row is a pattern kubeadm, the kubelet
or containerd print for the cause, and what to do about it.
"""

import re
from dataclasses import dataclass

JOURNAL_LINES = 20
UNITS = ("kubelet", "containerd")
JOURNALS = "".join(f"echo '--- journalctl -u {unit} (last {JOURNAL_LINES} lines)'\n"
                   f"journalctl -u {unit} -n {JOURNAL_LINES} --no-pager -o cat 2>&1 || true\n" for unit in UNITS)


@dataclass(frozen=True)
class Hint:
    cause: str
    pattern: str            # a regular expression, matched case-insensitively
    fix: str


HINTS = (
    Hint("cgroup driver", r"cgroup ?driver|misconfiguration: kubelet cgroup driver|SystemdCgroup",
         "the kubelet and containerd disagree on the cgroup driver: set SystemdCgroup = true under the runc options "
         "of /etc/containerd/config.toml (kubefab's runtime phase does) and restart containerd"),
    Hint("swap", r"swap (is )?on|running with swap on|failSwapOn",
         "swap is on and the kubelet refuses to run: `swapoff -a` and comment swap out of /etc/fstab "
         "(the runtime phase does), or set failSwapOn: false"),
    Hint("image pull / registry", r"ImagePull|pull(ing)? image|failed to resolve reference|ErrImagePull|"
                                  r"registry.*(unreachable|timeout|refused)|i/o timeout.*registry",
         "images could not be pulled: check the registry is reachable from the host, or set [cluster] "
         "image_repository and [mirrors.registries] to a mirror the host can reach"),
    Hint("token expired or unknown", r"could not find a JWS signature|token id .* is invalid|token .*expired",
         "the bootstrap token is expired or unknown to the cluster: `invoke node.join --host NAME` joins with a "
         "fresh token"),
    Hint("CA hash mismatch", r"none of the public keys .* are pinned|invalid discovery token CA certificate hash",
         "the cluster's CA is not the one kubefab pinned: this host talks to another cluster, or the state dir's "
         "PKI is not the cluster's (reset the cluster, or use its state dir)"),
    Hint("port in use", r"\[ERROR Port-[0-9]+\]|address already in use|bind: address already",
         "a port kubeadm needs is taken: find the process with `ss -ltnp` and stop it, or `kubeadm reset -f` "
         "a node left from an earlier cluster"),
    Hint("clock skew", r"certificate has expired or is not yet valid|current time \S+ is before|clock skew",
         "the host's clock disagrees with the machine that signed the certificates: run NTP (chrony, "
         "systemd-timesyncd) on the host and here"),
)


def hints(text):
    """The Hints whose pattern occurs in `text`, in table order."""
    return tuple(h for h in HINTS if re.search(h.pattern, text, re.IGNORECASE))


def explain(step_output, journals):
    """The text shown under a failed kubeadm step: the journals, then a hint for each known cause found."""
    found = hints(f"{step_output}\n{journals}")
    lines = [journals.strip()] if journals.strip() else []
    lines += [f"hint ({h.cause}): {h.fix}" for h in found]
    return "\n".join(lines)
