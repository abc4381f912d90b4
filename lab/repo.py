"""Signed apt and rpm repositories laid out as pkgs.k8s.io, holding the doubles as real .deb and .rpm packages.

    root/core:/stable:/v1.33/deb/{Release.key, InRelease, Release, Release.gpg, Packages, Packages.gz, amd64/*.deb}
    root/core:/stable:/v1.33/rpm/{repodata/{repomd.xml, repomd.xml.asc, repomd.xml.key, ...}, x86_64/*.rpm}

One repository per minor, as pkgs.k8s.io has, each holding kubeadm, kubelet, kubectl, cri-tools and
kubernetes-cni at one version. Files, paths and dependencies follow kubernetes/release's package specs
(cmd/krel/templates/latest and metadata.yaml): kubeadm ships /usr/bin/kubeadm and the kubelet drop-in
10-kubeadm.conf and depends on nothing from 1.32 on; kubelet ships /usr/bin/kubelet, kubelet.service,
/etc/default/kubelet and the two .kubelet-keep files, and depends on kubernetes-cni (>= 1.2.0), mount and
util-linux. The doubles' own files live in /usr/lib/kubefab-lab/<package>/ (the kubelet double starts the
control-plane doubles from beside its real path), linked from /usr/bin. The rpm packages are the same files
(kubelet's environment file in /etc/sysconfig, as the rpm spec has it), signed, with the repository's
repomd.xml signed beside them; they require only each other (kubelet: kubernetes-cni), not util-linux or mount,
which a Debian host's rpm database does not know. Both are signed with one key made for them, built with
dpkg-deb and apt-ftparchive, rpmbuild, rpmsign and createrepo_c, and cached: one build serves every lab until
the doubles or their interpreter change.
"""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import doubles
from .errors import LabError

CACHE = Path("/var/cache/kubefab-lab-repo")
VERSIONS = ("1.33.5", "1.34.1")  # the doubles' version and the next minor (for upgrades)
REVISION = "1.1"                 # pkgs.k8s.io's Debian revision: kubeadm_1.33.5-1.1_amd64.deb
RPM_RELEASE = "150500.1.1"       # and its rpm release: kubeadm-1.33.5-150500.1.1.x86_64.rpm
CRI_TOOLS = {"1.33": "1.33.0", "1.34": "1.34.0"}
KUBERNETES_CNI = {"1.33": "1.6.0", "1.34": "1.7.1"}
LIB = "/usr/lib/kubefab-lab"
SIGNER = "kubefab lab repository <lab@kubefab.invalid>"

KUBECTL = """#!/bin/sh
# kubefab lab double of kubectl {version}: answers `kubectl version --client`, nothing else
case "$*" in
    "version --client"*) echo "Client Version: v{version}"; echo "Kustomize Version: v5.6.0"; exit 0 ;;
esac
echo "error: the lab's kubectl double only answers 'kubectl version --client'" >&2
exit 1
"""
KUBELET_DEFAULTS = "KUBELET_EXTRA_ARGS=\n"


@dataclass(frozen=True)
class Deb:
    """One package of one version, packed as .deb and as .rpm."""

    name: str
    version: str          # upstream version, without the revision
    depends: str          # the .deb's Depends
    requires: str         # the .rpm's Requires
    section: str
    fill: object          # fill(stage: Path, version: str, family: "deb" | "rpm"): the package's files under stage


def _doubles(stage, name, version, executables):
    home = stage / LIB.lstrip("/") / name
    doubles.install_dir(home, version=f"v{version}")
    for exe in set(doubles.EXECUTABLES) - set(executables):
        (home / exe).unlink()
    (stage / "usr/bin").mkdir(parents=True, exist_ok=True)
    os.symlink(f"{LIB}/{name}/{executables[0]}", stage / "usr/bin" / executables[0])


def _write(stage, path, text, mode=0o644):
    target = stage / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chmod(target, mode)


def _kubeadm(stage, version, family):
    _doubles(stage, "kubeadm", version, ("kubeadm",))
    drop_in = "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
    _write(stage, drop_in, doubles.unit_files()[drop_in])


def _kubelet(stage, version, family):
    _doubles(stage, "kubelet", version, ("kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler"))
    unit = "/usr/lib/systemd/system/kubelet.service"
    _write(stage, unit, doubles.unit_files()[unit])
    _write(stage, "/etc/default/kubelet" if family == "deb" else "/etc/sysconfig/kubelet", KUBELET_DEFAULTS)
    for keep in ("/var/lib/kubelet/.kubelet-keep", "/etc/kubernetes/manifests/.kubelet-keep"):
        if family == "deb":      # dpkg-deb keeps no empty directory; the rpm owns them as %dir
            _write(stage, keep, "")
        else:
            (stage / keep.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)


def _kubectl(stage, version, family):
    _write(stage, "/usr/bin/kubectl", KUBECTL.format(version=version), 0o755)


def _cri_tools(stage, version, family):
    _doubles(stage, "cri-tools", version, ("crictl",))


def _kubernetes_cni(stage, version, family):
    doubles.install_cni_plugins(stage / "opt/cni/bin")


def debs(version):
    """The five packages of one Kubernetes version, as pkgs.k8s.io's repository for its minor holds them."""
    minor = version.rsplit(".", 1)[0]
    return (
        Deb("kubeadm", version, "", "", "admin", _kubeadm),
        Deb("kubelet", version, "kubernetes-cni (>= 1.2.0), mount, util-linux", "kubernetes-cni >= 1.2.0", "net",
            _kubelet),
        Deb("kubectl", version, "", "", "admin", _kubectl),
        Deb("cri-tools", CRI_TOOLS[minor], "", "", "admin", _cri_tools),
        Deb("kubernetes-cni", KUBERNETES_CNI[minor], "", "", "net", _kubernetes_cni),
    )


def minor_dir(root, version, family="deb"):
    """`root`'s directory of the `family` repository for `version`'s minor: root/core:/stable:/v1.33/deb."""
    return Path(root, "core:", "stable:", f"v{version.rsplit('.', 1)[0]}", family)


def ensure(cache=CACHE):
    """The root of the cached repository, built first when the doubles, their interpreter or this file changed."""
    root = Path(cache) / _key()
    if (root / "complete").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root.parent))
    try:
        build(work)
        (work / "complete").write_text("")
        work.chmod(0o755)
        try:
            work.rename(root)
        except OSError:         # built meanwhile by another lab: keep that one
            if not (root / "complete").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


def _key():
    digest = hashlib.sha256(f"{os.path.normpath(sys.executable)} {VERSIONS}".encode() + Path(__file__).read_bytes())
    for path in sorted(doubles.HERE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(doubles.HERE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build(root):
    """Write the signed repositories of every version in VERSIONS under `root`."""
    arch = _run(["dpkg", "--print-architecture"]).strip()
    with tempfile.TemporaryDirectory(prefix="kfl-gpg-", dir="/tmp") as home:
        env = dict(os.environ, GNUPGHOME=home)
        _run(["gpg", "--batch", "--passphrase", "", "--quick-generate-key", SIGNER, "ed25519", "sign", "never"], env)
        key = _run(["gpg", "--batch", "--armor", "--export", SIGNER], env)
        try:
            for version in VERSIONS:
                _minor(minor_dir(root, version), version, arch, key, env)
                _rpm_minor(minor_dir(root, version, "rpm"), version, key, env)
        finally:
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)


def _minor(deb_dir, version, arch, key, env):
    (deb_dir / arch).mkdir(parents=True)
    for deb in debs(version):
        _package(deb, deb_dir / arch, arch)
    packages = _run(["apt-ftparchive", "packages", arch], cwd=deb_dir)
    (deb_dir / "Packages").write_text(packages)
    (deb_dir / "Packages.gz").write_bytes(gzip.compress(packages.encode(), mtime=0))
    release = _run(["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=kubefab-lab",
                    "-o", f"APT::FTPArchive::Release::Label=v{version.rsplit('.', 1)[0]}",
                    "-o", f"APT::FTPArchive::Release::Architectures={arch}", "release", "."], cwd=deb_dir)
    (deb_dir / "Release").write_text(release)
    (deb_dir / "Release.key").write_text(key)
    sign = ["gpg", "--batch", "--yes", "--local-user", SIGNER]
    _run([*sign, "--clearsign", "-o", "InRelease", "Release"], env, cwd=deb_dir)
    _run([*sign, "--armor", "--detach-sign", "-o", "Release.gpg", "Release"], env, cwd=deb_dir)


def _package(deb, out, arch):
    with tempfile.TemporaryDirectory(prefix="kfl-deb-") as tmp:
        stage = Path(tmp)
        stage.chmod(0o755)      # the package's "./": never a private root
        deb.fill(stage, deb.version, "deb")
        control = {"Package": deb.name, "Version": f"{deb.version}-{REVISION}", "Architecture": arch,
                   "Maintainer": "kubefab lab <lab@kubefab.invalid>", "Section": deb.section,
                   "Priority": "optional", "Depends": deb.depends, "Homepage": "https://kubernetes.io",
                   "Description": f"kubefab lab double of {deb.name} {deb.version}\n"
                                  " A test stand-in with the real package's paths; not Kubernetes."}
        (stage / "DEBIAN").mkdir()
        (stage / "DEBIAN/control").write_text("".join(f"{k}: {v}\n" for k, v in control.items() if v))
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(stage),
              str(out / f"{deb.name}_{deb.version}-{REVISION}_{arch}.deb")])


def _run(argv, env=None, cwd=None):
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise LabError(f"building the lab's package repository: {' '.join(argv)} exited {done.returncode}: "
                       f"{done.stderr.strip()[-1000:]}")
    return done.stdout


RPM_SPEC = """Name: {name}
Version: {version}
Release: {release}
Summary: kubefab lab double of {name} {version}
License: Apache-2.0
URL: https://kubernetes.io
AutoReqProv: no
{requires}
%define debug_package %{{nil}}
%define __os_install_post %{{nil}}
%define _build_id_links none

%description
A test stand-in with the real package's paths; not Kubernetes.

%install
cp -a {stage}/. %{{buildroot}}/

%files
{files}
"""


def _rpm_minor(rpm_dir, version, key, env):
    arch = _run(["rpm", "--eval", "%{_arch}"]).strip()
    (rpm_dir / arch).mkdir(parents=True)
    for deb in debs(version):
        _rpm(deb, rpm_dir / arch, env)
    _run(["createrepo_c", "--quiet", str(rpm_dir)])
    repomd = rpm_dir / "repodata" / "repomd.xml"
    _run(["gpg", "--batch", "--yes", "--local-user", SIGNER, "--armor", "--detach-sign", "-o", f"{repomd}.asc",
          str(repomd)], env)
    Path(f"{repomd}.key").write_text(key)


def _rpm(deb, out, env):
    with tempfile.TemporaryDirectory(prefix="kfl-rpm-") as tmp:
        top, stage = Path(tmp, "top"), Path(tmp, "stage")
        deb.fill(stage, deb.version, "rpm")
        entries = sorted(p for p in stage.rglob("*") if p.is_symlink() or p.is_file()
                         or (p.is_dir() and not any(p.iterdir())))
        files = "\n".join(("%dir " if p.is_dir() and not p.is_symlink() else "") + "/" + p.relative_to(stage).as_posix()
                          for p in entries)
        spec = Path(tmp, f"{deb.name}.spec")
        spec.write_text(RPM_SPEC.format(name=deb.name, version=deb.version, release=RPM_RELEASE, stage=stage,
                                        requires=f"Requires: {deb.requires}" if deb.requires else "", files=files))
        _run(["rpmbuild", "--quiet", "--define", f"_topdir {top}", "-bb", str(spec)], env)
        for built in top.glob("RPMS/*/*.rpm"):
            _run(["rpmsign", "--define", f"_gpg_name {SIGNER}", "--define", f"__gpg {shutil.which('gpg')}",
                  "--addsign", str(built)], env)
            shutil.move(built, out / built.name)
