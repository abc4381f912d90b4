"""Whether a CRI endpoint answers the v1 RuntimeService, in the words of the CRI client kubeadm and the
kubelet use (k8s.io/cri-client: "validate service connection: validate CRI v1 runtime API for endpoint").

No gRPC is spoken: the socket must accept a connection, and when it is containerd's, its CRI plugin must not
be disabled in /etc/containerd/config.toml (`disabled_plugins = ["cri"]`, as the containerd.io package ships
it), in which case containerd answers `Unimplemented desc = unknown service runtime.v1.RuntimeService`.
"""

import socket
import tomllib

from .hostfs import host

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CRI_PLUGINS = {"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"}


def _containerd_config():
    try:
        return tomllib.loads(host("/etc/containerd/config.toml").read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}


def _rpc_error(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(host(path)))
    except OSError as e:
        return ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial '
                f'unix {path}: connect: {(e.strerror or str(e)).lower()}"')
    finally:
        s.close()
    conf = _containerd_config()
    address = (conf.get("grpc") or {}).get("address", CONTAINERD_SOCKET)
    if _same(path, address) and CRI_PLUGINS & set(conf.get("disabled_plugins") or []):
        return "rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService"
    return None


def _same(a, b):
    return a.replace("/var/run/", "/run/", 1) == b.replace("/var/run/", "/run/", 1)


def validation_error(endpoint):
    """`validate service connection: ...` for `endpoint` (unix:// URL or path), or None when it answers."""
    path = endpoint.removeprefix("unix://")
    error = _rpc_error(path)
    if error is None:
        return None
    return f'validate service connection: validate CRI v1 runtime API for endpoint "{endpoint}": {error}'


def connect_error(endpoint):
    """kubeadm's CRIRuntime.Connect failure text, or None."""
    error = validation_error(endpoint)
    return f"failed to create new CRI runtime service: {error}" if error else None
