"""The hints shown under a failed kubeadm step: each known cause found from the words kubeadm, the kubelet and
containerd print for it, and nothing found in a plain failure."""

import pytest

from kubefab.remote import diagnose

CASES = (
    ('E1129 kubelet: "Failed to run kubelet" err="failed to run Kubelet: misconfiguration: kubelet cgroup driver: '
     '\\"systemd\\" is different from docker cgroup driver: \\"cgroupfs\\""', "cgroup driver"),
    ('"Failed to run kubelet" err="failed to run Kubelet: running with swap on is not supported"', "swap"),
    ('[ERROR ImagePull]: failed to pull image registry.k8s.io/kube-apiserver:v1.34.2: failed to resolve reference',
     "image pull / registry"),
    ('error execution phase preflight: couldn\'t validate the identity of the API Server: could not find a JWS '
     'signature in the cluster-info ConfigMap for token ID "abcdef"', "token expired or unknown"),
    ('cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "sha256:00ff" are pinned',
     "CA hash mismatch"),
    ("[ERROR Port-10250]: Port 10250 is in use", "port in use"),
    ("tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time "
     "2026-11-29T10:00:00Z is before 2026-11-29T11:00:00Z", "clock skew"),
)


@pytest.mark.parametrize("text,cause", CASES, ids=[c for _, c in CASES])
def test_each_known_cause_is_hinted_from_its_own_words(text, cause):
    assert [h.cause for h in diagnose.hints(text)] == [cause]


def test_a_failure_of_no_known_cause_gets_the_journals_and_no_hint():
    shown = diagnose.explain("exit 1: error execution phase kubelet-start: timed out", "--- journalctl -u kubelet\nok")
    assert shown == "--- journalctl -u kubelet\nok"
