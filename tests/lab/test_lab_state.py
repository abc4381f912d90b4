"""A state dir that does not match its hosts, on a real SSH host: never answered with a new CA."""

import hashlib

import pytest

from kubefab import facts, inventory, plan, state
from test_lab_up import run

pytestmark = pytest.mark.lab
MARK = "/run/kubefab-test-marker"


def test_up_on_a_host_of_a_cluster_with_another_ca_is_refused_before_any_change(new_lab, tmp_path):
    lab = new_lab(hosts=1, flavour="node")
    host = lab.hosts[0].name
    lost = inventory.load(lab.inventory, state_dir=tmp_path / "lost")    # the state dir this cluster was made from
    plan.prepare(lost)
    theirs = state.ca_fingerprint(lost)
    lab.run(host, f"mkdir -p /etc/kubernetes/pki && cat > {facts.CA_CERT} && touch {MARK} && sleep 1",
            input=(tmp_path / "lost" / "pki" / "ca.crt").read_text())

    code, text, results = run(lab, tmp_path, only=("facts", "preflight", "runtime", "push"), ignore=("all",),
                              yes=True)
    ours = state.ca_fingerprint(inventory.load(lab.inventory, state_dir=tmp_path / "state"))
    assert code == 1, text
    assert f"error ClusterCA on {host}: {facts.CA_CERT} on the host is another CA (sha256 {theirs}) than this " \
           f"state dir's {tmp_path / 'state' / 'pki' / 'ca.crt'} (sha256 {ours})" in text
    assert f"copy your backup of {tmp_path / 'state' / 'pki'}" in text
    assert "the run stops before any host changes" in text
    assert {phase for _, phase in results} == {"facts", "preflight"}
    assert lab.run(host, f"sha256sum < {facts.CA_CERT}").stdout.split()[0] == \
        hashlib.sha256((tmp_path / "lost" / "pki" / "ca.crt").read_bytes()).hexdigest()
    changed = lab.run(host, f"find /etc /opt /usr -xdev -newer {MARK} -not -type d "
                            "-not -path '*/__pycache__/*'").stdout
    assert changed == "", changed
