"""pki.renew offline: what is due, the reissue from the same CAs, --add-san, the restart steps, the expiry warnings
every task gives, and the dry run's plan."""

import datetime
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from inventories import host_tables
from kubefab import inventory, pki, plan
from kubefab.pki import kubeconfig, x509
from kubefab.plan import renewal, workflows
from kubefab.run import report

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path, cert_days=365, ca_days=3650):
    path = tmp_path / "inventory.toml"
    path.write_text(f'[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\ncert_validity_days = {cert_days}\n'
                    f'ca_validity_days = {ca_days}\n\n' + host_tables(2, 1))
    return inventory.load(path, state_dir=tmp_path / "state")


def files(inv):
    """Every file of the PKI and kubeconfigs in the state dir, by relative path: its bytes."""
    return {str(p.relative_to(inv.state_dir)): p.read_bytes() for d in ("pki", "kubeconfigs")
            for p in sorted((inv.state_dir / d).rglob("*")) if p.is_file()}


@pytest.fixture
def made(tmp_path):
    inv = load(tmp_path)
    plan.prepare(inv)
    return inv


def test_renewing_everything_keeps_the_cas_bytes_and_every_subject_san_and_key_type(made):
    before = files(made)
    what = renewal.due(made, 0)
    assert what.certs == tuple(s.name for s in pki.CERTS if not s.is_ca)
    assert what.kubeconfigs == tuple(kubeconfig.BY_FILE)
    renewal.reissue(made, what)
    after = files(made)
    for name in ("ca", "front-proxy-ca", "etcd/ca"):
        assert after[f"pki/{name}.crt"] == before[f"pki/{name}.crt"]
        assert after[f"pki/{name}.key"] == before[f"pki/{name}.key"]
    assert after["pki/sa.key"] == before["pki/sa.key"]
    leaves = [p for p in before if p.endswith(".crt") and not p.endswith("ca.crt")]
    for p in leaves:
        old, new = x509.view(before[p]), x509.view(after[p])
        assert new.serial != old.serial and new.not_after >= old.not_after, p
        assert (new.cn, new.org, new.issuer_cn, new.sans) == (old.cn, old.org, old.issuer_cn, old.sans), p
        assert before[p.replace(".crt", ".key")][:30] == after[p.replace(".crt", ".key")][:30], p   # same key type
    assert all(after[p] != before[p] for p in before if p.startswith("kubeconfigs/"))


def test_nothing_is_due_within_the_days_left_and_a_short_validity_is(tmp_path):
    inv = load(tmp_path, cert_days=20)
    plan.prepare(inv)
    assert not renewal.due(inv, 10)
    assert renewal.due(inv, 30).kubeconfigs == tuple(kubeconfig.BY_FILE)
    assert "apiserver" in renewal.due(inv, 30).certs


def test_add_san_reissues_the_apiserver_certificate_with_every_old_name_and_says_which_line_keeps_it(made):
    old = x509.view(pki.paths(made, pki.BY_NAME["apiserver"], made.control_planes[0])[0].read_bytes())
    inv = renewal.with_sans(made, ("api.example.com", "203.0.113.7"))
    what = renewal.due(inv, 30, ("api.example.com",))
    assert what.certs == ("apiserver",) and not what.kubeconfigs
    renewal.reissue(inv, what)
    new = x509.view(pki.paths(inv, pki.BY_NAME["apiserver"], inv.control_planes[0])[0].read_bytes())
    assert set(old.sans) < set(new.sans) and {"api.example.com", "203.0.113.7"} <= set(new.sans)
    assert renewal.san_hint(inv) == ('add to inventory.toml under [cluster.apiserver]: cert_sans = '
                                     '["api.example.com", "203.0.113.7"] (else a later reissue drops them)')


def test_add_san_refuses_what_is_neither_a_name_nor_an_address(made):
    with pytest.raises(renewal.KubefabError, match="--add-san 'bad name!'"):
        renewal.with_sans(made, ("bad name!",))


def test_a_restart_runs_only_when_a_file_it_reads_is_newer_than_its_manifest(tmp_path):
    scheduler = renewal.COMPONENTS[-1]
    root = tmp_path / "host"
    conf, manifest = root / "scheduler.conf", root / "kube-scheduler.yaml"
    component = renewal.Component("kube-scheduler", 10259, (str(conf),))
    step = renewal.restart(component)
    guard = step.guard.replace(renewal.q(component.manifest), renewal.q(str(manifest)))
    root.mkdir()
    manifest.write_text("pod")
    conf.write_text("old")
    os.utime(conf, (1000, 1000))
    assert subprocess.run(["sh", "-c", guard]).returncode == 0          # done: no restart
    os.utime(conf, (os.path.getmtime(manifest) + 5,) * 2)
    assert subprocess.run(["sh", "-c", guard]).returncode != 0          # a renewed file: restart
    assert scheduler.files == ("/etc/kubernetes/scheduler.conf",)


def test_the_dry_run_plan_pushes_to_control_planes_then_restarts_them_one_at_a_time(made):
    what = renewal.due(made, 0)
    p = plan.build(made, plan.prepare(made), None, workflow=workflows.renew(what))
    assert [pp.phase.name for pp in p.phases] == ["push-certs", "restart"]
    assert [[hs.host.name for hs in b] for b in p.phases[0].batches] == [["cp-1", "cp-2"]]
    assert [[hs.host.name for hs in b] for b in p.phases[1].batches] == [["cp-1"], ["cp-2"]]
    steps = p.phases[1].batches[0][0].steps
    assert [s.name for s in steps] == ["restart etcd", "restart kube-apiserver", "restart kube-controller-manager",
                                       "restart kube-scheduler", "renewed"]
    assert "apiserver.crt" in steps[1].label and "scheduler.conf renewed" in steps[3].label
    only_san = plan.build(made, plan.prepare(made), None,
                          workflow=workflows.renew(renewal.Due(("apiserver",), ())))
    assert "none of its files renewed here" in only_san.phases[1].batches[0][0].steps[0].label


def test_every_task_warns_offline_of_a_leaf_within_30_days_and_a_ca_within_a_year(tmp_path):
    inv = load(tmp_path, cert_days=20, ca_days=200)
    plan.prepare(inv)
    warned = renewal.warnings(inv)
    # 199 days, or 200 when the warning is read within the second of the issue
    assert any(re.match(r"pki/ca\.crt: expires in (199|200) days", w) and "a CA is never renewed" in w
               for w in warned)
    assert any(re.match(r"kubeconfigs/admin\.conf: expires in (19|20) days", w) and "pki.renew" in w for w in warned)
    out = subprocess.run([sys.executable, "-m", "invoke", "cluster.plan", "--inventory", str(inv.path),
                          "--state-dir", str(inv.state_dir)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    assert re.search(r"^warning: pki/apiserver-etcd-client\.crt: expires in (19|20) days", out.stderr, re.M)
    (tmp_path / "fresh").mkdir()
    fresh = load(tmp_path / "fresh")
    plan.prepare(fresh)
    assert renewal.warnings(fresh) == ()


def test_pki_show_nodes_lists_each_kubelet_certificate_soonest_first_and_says_why_one_is_missing():
    at = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)

    def node(days):
        return SimpleNamespace(kubelet_client_expiry=at + datetime.timedelta(days=days, hours=1))
    text = report.kubelet_certs({"w-2": node(300), "w-1": node(10), "cp-1": node(200), "new": SimpleNamespace(
        kubelet_client_expiry=None), "gone": None}, warn_days=30, at=at).splitlines()
    assert text[1] == "2027-01-11 01:00    10  w-1  <-- WARNING: the kubelet has not rotated it"
    assert text[2].endswith("  200  cp-1") and text[3].endswith("  300  w-2")
    assert text[4:] == ["-                     -  gone: no facts (unreachable)",
                        "-                     -  new: no client certificate (not a node)"]
