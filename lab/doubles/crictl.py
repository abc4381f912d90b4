"""crictl double (cri-tools): `crictl --version` and `crictl pull IMAGE`, what kubefab's runtime phase asks of it.

A pull puts the image into containerd's k8s.io namespace as kubeadm's `config images pull` double does (images.py:
nothing is downloaded, the lab has no route out) through the runtime endpoint of /etc/crictl.yaml, and prints what
crictl prints; any other command is refused.
"""

import hashlib
import sys

import yaml

from . import images
from .hostfs import DoubleError, host, version

USAGE = "crictl: the lab's double answers only --version and pull IMAGE"


def endpoint():
    """/etc/crictl.yaml's runtime-endpoint as a socket path, containerd's default without one."""
    config = host("/etc/crictl.yaml")
    found = (yaml.safe_load(config.read_text()) or {}).get("runtime-endpoint", "") if config.is_file() else ""
    return found.removeprefix("unix://") or images.SOCKET


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-v"]):
        print(f"crictl version {version()}")
        return 0
    if len(args) != 2 or args[0] != "pull":
        print(USAGE, file=sys.stderr)
        return 1
    ref = images.normalize(args[1])
    try:
        images.pull([ref], endpoint())
    except DoubleError as e:
        print(f'E pull image "{args[1]}": {e}', file=sys.stderr)
        return 1
    print(f"Image is up to date for sha256:{hashlib.sha256(ref.encode()).hexdigest()}")
    return 0
