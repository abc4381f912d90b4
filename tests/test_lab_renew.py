"""pki.renew on a lab cluster (1 control plane + 1 worker, made by cluster.up on the doubles): the API server then
presents a new serving certificate chaining to the unchanged CA, the renewed admin.conf works, and a second
renew with --days 30 changes nothing."""

import io
import shutil
import subprocess
import time

import pytest

from kubefab import execute, inventory, kube, nodes, pki, renewal, x509
from kubefab.session import Options
from kubefab.steps import CHANGED
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def state_files(inv):
    return {p: p.read_bytes() for d in ("pki", "kubeconfigs") for p in (inv.state_dir / d).rglob("*") if p.is_file()}


def renew(inv, **kwargs):
    console = io.StringIO()
    start = time.monotonic()
    r = execute.renew(inv, Options(yes=True), console=console, **kwargs)
    print(f"\npki.renew {kwargs}: {time.monotonic() - start:.1f} s")
    return r, console.getvalue()


def test_renew_reissues_from_the_same_ca_restarts_the_api_server_and_a_second_renew_changes_nothing(
        new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    cp = inv.first_control_plane
    ca = (pki.pki_dir(inv) / "ca.crt").read_bytes(), (pki.pki_dir(inv) / "ca.key").read_bytes()
    old = renewal.serving_serial(cp.internal_address)

    r, text = renew(inv)
    assert r.code == 0, text
    assert ((pki.pki_dir(inv) / "ca.crt").read_bytes(), (pki.pki_dir(inv) / "ca.key").read_bytes()) == ca
    served = renewal.serving_serial(cp.internal_address)
    local = pki.paths(inv, pki.BY_NAME["apiserver"], cp)[0].read_bytes()
    assert served != old and served == x509.view(local).serial
    assert x509.problem(local, ca[0]) is None
    restarts = {s.name: s.status for x in r.results if x.phase == "restart" for s in x.steps}
    assert restarts == {"restart etcd": CHANGED, "restart kube-apiserver": CHANGED,
                        "restart kube-controller-manager": CHANGED, "restart kube-scheduler": CHANGED,
                        "renewed": "unchanged"}, text
    assert "each kubelet renews its own client certificate" in text
    admin = inv.state_dir / "kubeconfigs" / "admin.conf"
    got = subprocess.run(["kubectl", "--kubeconfig", str(admin), "get", "nodes", "-o", "name"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and set(got.stdout.split()) == {"node/kf-cp1", "node/kf-w1"}, got.stderr
    assert {n.name for n in nodes.list_nodes(kube.connect(admin))} == {"kf-cp1", "kf-w1"}

    before = state_files(inv)
    again, text = renew(inv, days=30)
    assert again.code == 0, text
    assert "nothing is due" in text
    assert not [x for x in again.results if x.status == CHANGED], text
    assert state_files(inv) == before
    assert renewal.serving_serial(cp.internal_address) == served
