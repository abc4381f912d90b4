"""The `offline` install source: a local directory of binaries and kubelet unit files, pushed over SSH.

Layout of `[install] directory` and where each entry lands:
    kubeadm, kubelet, kubectl, crictl, ... (executables)   /opt/kubefab/offline/<name>, linked from /usr/bin
    kubelet.service                                        /usr/lib/systemd/system/kubelet.service
    10-kubeadm.conf                                        /usr/lib/systemd/system/kubelet.service.d/
    cni/<plugin>                                           /opt/cni/bin/<plugin>
    debs/<package>_<version>_<arch>.deb                    /opt/kubefab/offline/debs/ on control planes only (an
                                                           epoch, 1%3a in apt-get download's names, left out)
    anything else (e.g. lib/...)                           /opt/kubefab/offline/<path>, beside the executables
kubeadm, kubelet and both unit files are required. containerd and runc are used from the host when the
directory has none. With [cluster.ha] mode keepalived, debs/ must hold keepalived, haproxy and socat (and whatever
of their dependencies the hosts lack: `apt-get download` fetches them), which the runtime phase installs with apt.
"""

import os
import re
from pathlib import Path

from kubefab import paths
from kubefab.errors import KubefabError
from kubefab.inventory import ha
from kubefab.state.tree import RenderedFile

HOME = "/opt/kubefab/offline"
BIN = "/usr/bin"
CNI_BIN = "/opt/cni/bin"
UNIT = "/usr/lib/systemd/system/kubelet.service"
UNITS = {"kubelet.service": UNIT, "10-kubeadm.conf": f"{UNIT}.d/10-kubeadm.conf"}
REQUIRED = ("kubeadm", "kubelet", *UNITS)
DEBS = f"{HOME}/debs"
EPOCH = re.compile(r"_[0-9]+%3a", re.ASCII)     # apt-get download's "_1%3a2.2.7": '%' cannot travel in a host script


def files(inv):
    """The offline directory's files as they land on every host (runtime phase); () for `packages`."""
    if inv.install.source != "offline":
        return ()
    root = Path(inv.install.directory)
    missing = [name for name in REQUIRED if not (root / name).is_file()]
    if missing:
        raise KubefabError(f"{inv.path}: [install] directory {root} lacks {', '.join(missing)} — put the "
                           f"binaries and the kubelet unit files there (see the README's install sources)")
    found = tuple(_file(root, path) for path in sorted(root.rglob("*"))
                  if path.is_file() and "__pycache__" not in path.parts)
    lacking = [n for n in ha.PACKAGES if not any(f.path.startswith(f"{DEBS}/{n}_") for f in found)]
    if inv.ha and inv.ha.mode == "keepalived" and lacking:
        raise KubefabError(f"{inv.path}: [install] directory {root} lacks debs/ for {', '.join(lacking)} — "
                           f"[cluster.ha] keepalived installs them from there: `apt-get download "
                           f"{' '.join(ha.PACKAGES)}` (and the dependencies your hosts lack) into {root / 'debs'}")
    for f in found:
        try:
            paths.plain(f.path, "push to")
        except ValueError:
            raise KubefabError(f"{inv.path}: [install] directory holds {str(f.local)!r}, whose name cannot travel "
                               "in a host script — rename it with only letters, digits and . _ / @ + -") from None
    return found


def _file(root, path):
    rel = path.relative_to(root).as_posix()
    executable = os.access(path, os.X_OK)
    if rel in UNITS:
        target, mode = UNITS[rel], 0o644
    elif rel.startswith("cni/"):
        target, mode = f"{CNI_BIN}/{rel[4:]}", 0o755
    elif rel.startswith("debs/"):
        target, mode = f"{HOME}/{EPOCH.sub('_', rel)}", 0o644
    else:
        target, mode = f"{HOME}/{rel}", 0o755 if executable else 0o644
    stat = path.stat()
    return RenderedFile("", target, mode, stat.st_size, False, path, f"offline:{rel}", "runtime",
                        mtime=int(stat.st_mtime))


def for_host(offline_files, host):
    """The offline files that go to `host`: the .debs (HA's load balancer) to control planes only."""
    return tuple(f for f in offline_files if host.is_control_plane or not f.path.startswith(f"{DEBS}/"))


def debs(offline_files):
    """The on-host paths of the .debs among the offline files."""
    return tuple(f.path for f in offline_files if f.path.startswith(f"{DEBS}/") and f.path.endswith(".deb"))


def commands(offline_files):
    """Names of the executables at the top of the offline directory: each gets a link in /usr/bin."""
    return tuple(f.path.rsplit("/", 1)[1] for f in offline_files
                 if f.path.rsplit("/", 1)[0] == HOME and f.mode & 0o111)
