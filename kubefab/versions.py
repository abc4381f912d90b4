"""Kubernetes releases kubefab supports, and what each one pins."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    """Images kubeadm uses for one minor release (kubeadm constants.go)."""

    minor: int
    pause: str
    etcd: str
    coredns: str


RELEASES = {
    31: Release(31, pause="3.10", etcd="3.5.15-0", coredns="v1.11.3"),
    32: Release(32, pause="3.10", etcd="3.5.16-0", coredns="v1.11.3"),
    33: Release(33, pause="3.10", etcd="3.5.21-0", coredns="v1.12.0"),
    34: Release(34, pause="3.10.1", etcd="3.6.4-0", coredns="v1.12.1"),
}
MIN_MINOR, MAX_MINOR = min(RELEASES), max(RELEASES)
SUPPORTED = f"1.{MIN_MINOR} to 1.{MAX_MINOR}"
DEFAULT_VERSION = "1.34.2"
KUBEADM_API = "kubeadm.k8s.io/v1beta4"

_NUMBER = r"(0|[1-9][0-9]{0,5})"                  # ASCII digits, no leading zero (semver)
_VERSION = re.compile(rf"v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}")


def parse(version):
    """'v1.33.5' or '1.33.5' -> (1, 33, 5); ValueError if it is not such a version."""
    match = _VERSION.fullmatch(version)
    if not match:
        raise ValueError(version)
    return tuple(int(p) for p in match.groups())


def bare(version):
    """'1.33.5' of 'v1.33.5' or '1.33.5': the form kubefab keeps and pins packages with."""
    return ".".join(str(n) for n in parse(version))


def release(version):
    """The Release of a supported 'X.Y.Z' version."""
    return RELEASES[parse(version)[1]]
