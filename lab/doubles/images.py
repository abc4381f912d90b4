"""What `kubeadm config images pull` leaves behind: each image in containerd's k8s.io namespace, under its name.

Nothing is downloaded in the lab. Each image is a real OCI image of one empty layer, imported with
`ctr images import` (an OCI archive whose index names every reference), so that `ctr -n k8s.io images ls`
and `crictl images` list them as after a real pull.
"""

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile

from .hostfs import DoubleError

NAMESPACE = "k8s.io"
SOCKET = "/run/containerd/containerd.sock"


def _blob(tar, data):
    digest = hashlib.sha256(data).hexdigest()
    _add(tar, f"blobs/sha256/{digest}", data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def archive(refs, arch="amd64"):
    """An OCI image-layout tar holding one tiny image, named by every reference in `refs`."""
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        layer = _blob(tar, empty.getvalue())
        config = _blob(tar, json.dumps({"architecture": arch, "os": "linux", "config": {},
                                        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
        manifest = _blob(tar, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}).encode())
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
             "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}
            for ref in refs]}
        _add(tar, "index.json", json.dumps(index).encode())
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return out.getvalue()


def normalize(ref):
    """`ref` as containerd names it: docker.io/library/ for a bare Docker Hub name, :latest without a tag."""
    first, _, rest = ref.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        ref = f"docker.io/{ref if rest else 'library/' + ref}"
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def present(socket=SOCKET):
    """The references containerd at `socket` holds in the k8s.io namespace (empty when it cannot be asked)."""
    ctr = shutil.which("ctr")
    if ctr is None:
        return set()
    done = subprocess.run([ctr, "--address", socket, "-n", NAMESPACE, "images", "ls", "-q"], capture_output=True,
                          text=True, timeout=30)
    return set(done.stdout.split()) if done.returncode == 0 else set()


def pull_error(ref):
    """What the kubelet reports for an image the node lacks and cannot fetch (the lab has no route out)."""
    domain, _, path = ref.partition("/")
    registry = "registry-1.docker.io" if domain == "docker.io" else domain
    name, _, tag = path.rpartition(":")
    return (f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": failed to do request: '
            f'Head "https://{registry}/v2/{name}/manifests/{tag}": dial tcp: lookup {registry}: no such host')


def pull(refs, socket=SOCKET):
    """Put `refs` into the k8s.io namespace of the containerd at `socket`, as a pull would; DoubleError in
    kubeadm's words when the runtime cannot take them."""
    ctr = shutil.which("ctr")
    if ctr is None:
        raise DoubleError("failed to pull image: ctr is not installed (the lab's kubeadm imports images with it)")
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        f.write(archive(refs))
        f.flush()
        done = subprocess.run([ctr, "--address", socket, "-n", NAMESPACE, "images", "import", "--no-unpack", f.name],
                              capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise DoubleError(f"failed to pull image {refs[0]!r}: output: {done.stderr.strip()}, error: exit status "
                          f"{done.returncode}")
