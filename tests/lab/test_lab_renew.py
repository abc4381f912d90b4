"""pki.renew on lab clusters made by cluster.up on the doubles. 1 control plane + 1 worker: the API server then
presents a new serving certificate chaining to the unchanged CA, the renewed admin.conf works, a second renew with
--days 30 changes nothing, --add-san restarts the API server only; a cluster whose leaves expired is brought back.
3 control planes + 1 worker (one lab for both tests): renewed one at a time, a run interrupted after the first is
finished by the next; then an apiserver extra arg added to the inventory reaches each API server through cluster.up,
one control plane at a time, and `cluster.plan --live` is empty. In both, a client polling each API server's /readyz
every 200 ms never sees two of them down at once."""

import dataclasses
import datetime
import io
import re
import shutil
import signal
import ssl
import subprocess
import time

import pytest

from kubefab import inventory, net, pki
from kubefab.api import apisteps, kube, nodes
from kubefab.errors import KubefabError
from kubefab.pki import x509
from kubefab.plan import renewal
from kubefab.run import execute, logs
from kubefab.run.session import Options
from kubefab.steps import CHANGED, UNCHANGED, WaitRenewed
from conftest import invoke, lab_unavailable
from lab import Lab
from test_lab_ha import POLL, readyz, sampled
from test_lab_live import live
from test_lab_reconfigure import edit, running_flags
from test_lab_up import cli, run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def state_files(inv):
    return {p: p.read_bytes() for d in ("pki", "kubeconfigs") for p in (inv.state_dir / d).rglob("*") if p.is_file()}


def renew(inv, **kwargs):
    console = io.StringIO()
    start = time.monotonic()
    r = execute.renew(inv, Options(yes=True), console=console, **kwargs)
    steps = ", ".join(f"{x.host} {s.name} {s.status} {s.seconds:.1f} s" for x in r.results if x.phase == "restart"
                      for s in x.steps)
    print(f"\npki.renew {kwargs}: {time.monotonic() - start:.1f} s ({steps})")
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
    untouched = state_files(inv)
    shown = invoke("pki.show", "-i", str(lab.inventory), "--state-dir", str(inv.state_dir), "--nodes")
    kubelets = shown.stdout.partition("kubelet client certificate")[2]
    for node in ("kf-cp1", "kf-w1"):        # each kubelet's own certificate, as it made it (the CSR's year)
        assert re.search(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d +3\d\d  {node}$", kubelets, re.M), shown.stdout + shown.stderr
    assert shown.returncode == 0 and state_files(inv) == untouched
    dry = execute.renew(inv, Options(dry_run=True), console=io.StringIO())
    assert dry.code == 0 and state_files(inv) == untouched and renewal.serving_serial(cp.internal_address) == old

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

    # a run interrupted in the scheduler's restart left its manifest aside: the next run puts it back, restarted
    lab.run(cp.name, "mv /etc/kubernetes/manifests/kube-scheduler.yaml /etc/kubernetes/kubefab/restarting/")
    resumed, text = renew(inv, days=30)
    assert resumed.code == 0, text
    restarts = {s.name: s.status for x in resumed.results if x.phase == "restart" for s in x.steps}
    assert [n for n, status in restarts.items() if status == CHANGED] == ["restart kube-scheduler"], text
    assert lab.run(cp.name, "ls /etc/kubernetes/manifests/kube-scheduler.yaml /etc/kubernetes/kubefab/restarting",
                   check=False).stdout.split() == ["/etc/kubernetes/manifests/kube-scheduler.yaml",
                                                   "/etc/kubernetes/kubefab/restarting:"]

    added, text = renew(inv, days=30, add_san=("api.lab.example",))
    assert added.code == 0, text
    assert 'cert_sans = ["api.lab.example"]' in text
    restarts = {s.name: s.status for x in added.results if x.phase == "restart" for s in x.steps}
    assert [n for n, status in restarts.items() if status == CHANGED] == ["restart kube-apiserver"], text
    pem = ssl.get_server_certificate((cp.internal_address, 6443)).encode()
    assert "api.lab.example" in x509.view(pem).sans and set(x509.view(local).sans) < set(x509.view(pem).sans)


def test_renew_brings_back_a_cluster_whose_leaves_expired(new_lab, tmp_path, monkeypatch):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    admin = inv.state_dir / "kubeconfigs" / "admin.conf"
    # leaves valid for one day, issued three days ago, pushed and put in use: an expired cluster
    short = dataclasses.replace(inv, cluster=dataclasses.replace(inv.cluster, cert_validity_days=1))
    past = x509.now() - datetime.timedelta(days=3)
    with monkeypatch.context() as m:
        m.setattr(x509, "now", lambda: past)
        m.setitem(apisteps.RUNNERS, WaitRenewed, lambda steps, host: (UNCHANGED, "not waited for"))
        r, text = renew(short)
        assert r.code == 0, text
    assert all(w.split(":")[0].endswith("ca.crt") or "EXPIRED" in w for w in renewal.warnings(inv))
    with pytest.raises(KubefabError):       # the API server's certificate, and admin.conf's, expired
        kube.wait_ready(kube.connect(admin), timeout=5)

    r, text = renew(inv, days=30)
    assert r.code == 0, text
    assert "apiserver" in text and "admin.conf" in text
    got = subprocess.run(["kubectl", "--kubeconfig", str(admin), "get", "nodes", "-o", "name"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and set(got.stdout.split()) == {"node/kf-cp1", "node/kf-w1"}, got.stderr
    assert renewal.warnings(inv) == ()


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """3 control planes + 1 worker made by cluster.up, shared by the tests that restart control planes one at a
    time: (lab, inventory)."""
    if lab_unavailable():
        pytest.skip(lab_unavailable())
    with Lab.up(hosts=4, control_planes=3, flavour="node") as lab:
        state = tmp_path_factory.mktemp("three")
        code, text, _ = run_of(lab, state, yes=True)
        assert code == 0, text
        yield lab, inventory.load(lab.inventory, state_dir=state / "state")


def down(inv):
    """The control planes whose own API server does not answer GET /readyz with 200 within 1 s."""
    return {cp.name for cp in inv.control_planes if not readyz(inv, (cp.internal_address, net.API_PORT), timeout=1)}


def test_three_control_planes_are_renewed_one_at_a_time_never_two_api_servers_down_at_once(three):
    lab, inv = three
    old = {cp.name: renewal.serving_serial(cp.internal_address) for cp in inv.control_planes}
    with sampled(lambda: down(inv), POLL) as samples:
        r, text = renew(inv)
    assert r.code == 0, text
    assert [x.host for x in r.results if x.phase == "restart"] == ["kf-cp1", "kf-cp2", "kf-cp3"]
    assert any(samples) and max(len(d) for d in samples) == 1, [d for d in samples if d]
    for cp in inv.control_planes:
        served = renewal.serving_serial(cp.internal_address)
        assert served != old[cp.name]
        assert served == x509.view(pki.paths(inv, pki.BY_NAME["apiserver"], cp)[0].read_bytes()).serial

    # Ctrl-C once the first control plane is renewed and healthy: exit 130; the same command again finishes the
    # others (nothing is reissued twice) and every API server serves the certificate the state dir holds.
    log = inv.state_dir / logs.FILE
    start = log.stat().st_size
    p = cli("pki.renew", "-i", str(lab.inventory), "--state-dir", str(inv.state_dir), "--yes")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "restart kf-cp1 renewed: " not in log.read_text()[start:]:
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130 and "interrupted" in out and "Traceback" not in err, out + err
    issued = {cp.name: x509.view(pki.paths(inv, pki.BY_NAME["apiserver"], cp)[0].read_bytes()).serial
              for cp in inv.control_planes}
    assert renewal.serving_serial(inv.first_control_plane.internal_address) == issued["kf-cp1"]
    again, text = renew(inv, days=30)
    assert again.code == 0 and "nothing is due" in text, text
    assert {cp.name: renewal.serving_serial(cp.internal_address) for cp in inv.control_planes} == issued


def test_three_control_planes_are_reconfigured_one_at_a_time_never_two_api_servers_down_at_once(three):
    lab, inv = three
    assert not [cp.name for cp in inv.control_planes if "--audit-log-maxage=30" in running_flags(lab, cp.name)]
    edit(lab, lambda raw: raw["cluster"].setdefault("apiserver", {}).update(extra_args={"audit-log-maxage": "30"}))
    start = time.monotonic()
    with sampled(lambda: down(inv), POLL) as samples:
        code, text, r = run_of(lab, inv.state_dir.parent, yes=True)
    print(f"\ncluster.up reconfiguring 3 control planes: {time.monotonic() - start:.1f} s, {len(samples)} samples, "
          f"{sum(map(bool, samples))} with an API server down")
    assert code == 0, text
    reconfigured = [x for x in r.results if x.phase == "reconfigure-control-planes"]
    assert [(x.host, x.status) for x in reconfigured] == [(cp, CHANGED) for cp in ("kf-cp1", "kf-cp2", "kf-cp3")]
    for x in reconfigured:      # the API server alone: the other manifests came out of kubeadm as they were
        regenerated = next(s for s in x.steps if s.name == "regenerate the control-plane manifests")
        restarted = [line for line in regenerated.detail.splitlines() if "manifest changed" in line]
        assert restarted == ["kube-apiserver: manifest changed, restarted by the kubelet"], (x.host, text)
    assert any(samples) and max(len(d) for d in samples) == 1, [d for d in samples if d]
    for cp in inv.control_planes:
        assert "--audit-log-maxage=30" in running_flags(lab, cp.name), cp.name
    start = time.monotonic()
    assert live(lab, inv.state_dir) == (0, "no changes\n")
    print(f"cluster.plan --live: {time.monotonic() - start:.1f} s")
