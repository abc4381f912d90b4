"""The `offline` install source: a local directory of binaries and kubelet unit files, pushed over SSH.

Layout of `[install] directory` and where each entry lands:
    kubeadm, kubelet, kubectl, crictl, ... (executables)   /opt/kubefab/offline/<name>, linked from /usr/bin
    kubelet.service                                        /usr/lib/systemd/system/kubelet.service
    10-kubeadm.conf                                        /usr/lib/systemd/system/kubelet.service.d/
    cni/<plugin>                                           /opt/cni/bin/<plugin>
    anything else (e.g. lib/...)                           /opt/kubefab/offline/<path>, beside the executables
kubeadm, kubelet and both unit files are required. containerd and runc are used from the host when the
directory has none.
"""

import os
from pathlib import Path

from kubefab import paths
from kubefab.errors import KubefabError
from kubefab.state.tree import RenderedFile

HOME = "/opt/kubefab/offline"
BIN = "/usr/bin"
CNI_BIN = "/opt/cni/bin"
UNIT = "/usr/lib/systemd/system/kubelet.service"
UNITS = {"kubelet.service": UNIT, "10-kubeadm.conf": f"{UNIT}.d/10-kubeadm.conf"}
REQUIRED = ("kubeadm", "kubelet", *UNITS)


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
    else:
        target, mode = f"{HOME}/{rel}", 0o755 if executable else 0o644
    stat = path.stat()
    return RenderedFile("", target, mode, stat.st_size, False, path, f"offline:{rel}", "runtime",
                        mtime=int(stat.st_mtime))


def commands(offline_files):
    """Names of the executables at the top of the offline directory: each gets a link in /usr/bin."""
    return tuple(f.path.rsplit("/", 1)[1] for f in offline_files
                 if f.path.rsplit("/", 1)[0] == HOME and f.mode & 0o111)
