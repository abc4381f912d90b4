"""Lab doubles for kubeadm, kubelet and the control-plane components (see README.md).

`install_dir(target)` writes the executables into `target`; lab node hosts put that directory on
PATH (or copy its files to /usr/bin). `unit_files()` gives the kubelet systemd unit and kubeadm's
10-kubeadm.conf drop-in as kubefab's installer would copy them. `install_cni_plugins(target)` writes
stand-ins for the CNI plugins release (bridge, host-local, loopback, portmap, ...), e.g. into an offline
install source's cni/ directory, which kubefab's runtime phase puts in /opt/cni/bin.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import cniplugins
from .hostfs import DEFAULT_VERSION

HERE = Path(__file__).resolve().parent
EXECUTABLES = {
    "kubeadm": "kubeadm",
    "kubelet": "kubelet",
    "kube-apiserver": "apiserver",
    "kube-controller-manager": "components",
    "kube-scheduler": "components",
    "crictl": "crictl",
}
# lib/interpreter: the doubles' interpreter, then every directory it reads (prefixes, sys.path), one a
# line, so a lab can make them visible in its hosts (which hide the machine's /tmp, where venvs may live).
INTERPRETER = Path("lib", "interpreter")
# The scripts import the copy of this package in `lib/` beside their real path, so a bin dir works
# wherever it is bound or linked (lab hosts do not see the machine's /tmp, where a checkout may live).
# Version queries are answered before the double loads, in the time a Go binary takes: kubefab's facts probe asks
# them on every host of every run, and the lab should not make that look slower than it is.
QUICK = {"kubeadm": {"version -o short": ""}, "kubelet": {"--version": "Kubernetes "},
         "crictl": {"--version": "crictl version "}}
# kubeadm and the kubelet report the version they were installed as, whatever started them (a kubeadm of another
# version starts the kubelet under a test root); the control-plane doubles take the image tag the kubelet passes.
OWN_VERSION = ("kubeadm", "kubelet")
SCRIPT = """#!{python}
import os, sys
{pin}("KUBEFAB_DOUBLE_VERSION", {version!r})
version = os.environ["KUBEFAB_DOUBLE_VERSION"]
quick = {quick!r}.get(" ".join(sys.argv[1:]))
if quick is not None:
    print(quick + version)
    sys.exit(0)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "lib"))
from doubles.{module} import main
sys.exit(main())
"""


def install_dir(target, version=DEFAULT_VERSION, python=sys.executable):
    """Write the double executables into `target` (created) and return it as a Path.

    Each is a script whose shebang is `python`'s absolute, normalised path (a venv's own, not the
    interpreter it links to, so the venv's packages are found); `lib/interpreter` lists what that
    interpreter needs, for `Lab.up(bin_dir=...)`. `version` is what every double reports
    (`kubeadm version`, the kubelet's node info, the API server's /version).
    """
    target = Path(target)
    python = os.path.normpath(os.path.abspath(python))
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(HERE, target / "lib" / "doubles", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (target / INTERPRETER).write_text("".join(f"{line}\n" for line in (python, *interpreter_dirs(python))))
    for name, module in EXECUTABLES.items():
        path = target / name
        pin = "os.environ.__setitem__" if name in OWN_VERSION else "os.environ.setdefault"
        path.write_text(SCRIPT.format(python=python, version=version, module=module, quick=QUICK.get(name, {}),
                                      pin=pin))
        os.chmod(path, 0o755)
    return target


def interpreter_dirs(python):
    """The directories `python` reads to start and import: its prefixes and sys.path (.pth files included)."""
    done = subprocess.run([python, "-c", "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, "
                           "*sys.path]))"], capture_output=True, text=True, cwd="/")
    if done.returncode:
        raise RuntimeError(f"the doubles' interpreter {python} does not run: {done.stderr.strip()}")
    return sorted({os.path.normpath(p) for p in json.loads(done.stdout) if os.path.isabs(p) and os.path.isdir(p)})


def install_cni_plugins(target):
    """Write stand-ins of the CNI plugins release into `target` (created) and return it as a Path."""
    return cniplugins.install_release(target)


def unit_files():
    """{host path: content} of the kubelet unit and its kubeadm drop-in (the real packages' files)."""
    return {
        "/usr/lib/systemd/system/kubelet.service": (HERE / "kubelet.service").read_text(),
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (HERE / "10-kubeadm.conf").read_text(),
    }
