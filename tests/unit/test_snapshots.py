"""etcd backups offline: the metadata a restore reads and each reason it refuses a backup before any host is touched;
the restore workflow's phases in their order, and its dry run."""

import dataclasses
import hashlib
import io
import os
import subprocess

import pytest

from inventories import host_tables
from kubefab import facts, inventory, plan
from kubefab.errors import KubefabError
from kubefab.plan import snapshots, workflows
from kubefab.run import backups
from kubefab.run.session import Options

RESTORE = ("check, stop-api-servers, stop-etcd, restore, start-etcd, etcd-healthy, start-api-servers, "
           "restart-components, verify")


@pytest.fixture
def made(tmp_path):
    """An inventory of 3 control planes and a worker, its PKI made, and a backup matching that state dir."""
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n\n' + host_tables(3, 1))
    inv = inventory.load(path, state_dir=tmp_path / "state")
    plan.prepare(inv)
    db = tmp_path / "etcd-t-20261205T230000Z.db"
    db.write_bytes(b"bolt" * 1000)
    pki = inv.state_dir / "pki"
    data = snapshots.Metadata(
        cluster="t", sha256=hashlib.sha256(db.read_bytes()).hexdigest(), size=4000, revision=812, keys=1234,
        taken_from="cp-1", members=tuple((h.name, snapshots.peer_url(h)) for h in inv.control_planes),
        ca_sha256=facts.ca_fingerprint((pki / "ca.crt").read_bytes()),
        sa_sha256=facts.ca_fingerprint((pki / "sa.pub").read_bytes()), kubernetes_version="v1.33.5",
        taken_at="2026-12-05T23:00:00+00:00")
    db.with_suffix(".json").write_text(data.to_json())
    return inv, db, data


def test_a_backup_is_read_back_from_its_db_or_its_json(made):
    inv, db, data = made
    assert snapshots.load(db) == (db, data) == snapshots.load(db.with_suffix(".json"))
    assert snapshots.refusals(inv, data) == ()


def test_a_restore_of_a_damaged_snapshot_is_refused_before_any_host_is_touched(made):
    inv, db, data = made
    db.write_bytes(b"bolt" * 999 + b"BOLT")
    with pytest.raises(KubefabError, match="does not match its checksum"):
        backups.restore(inv, Options(yes=True), db, console=io.StringIO())


def test_a_snapshot_without_its_metadata_is_refused_naming_the_missing_file(made):
    inv, db, data = made
    db.with_suffix(".json").unlink()
    with pytest.raises(KubefabError, match=r"etcd-t-20261205T230000Z\.json: no such file"):
        snapshots.load(db)


@pytest.mark.parametrize("field, words", [
    ("ca_sha256", "its cluster CA (sha256 0000) is not"), ("sa_sha256", "its service-account key (sha256 0000) is not"),
    ("cluster", "the backup is of cluster '0000'")])
def test_a_backup_of_another_ca_service_account_key_or_cluster_is_refused(made, field, words):
    inv, db, data = made
    other = dataclasses.replace(data, **{field: "0000"})
    db.with_suffix(".json").write_text(other.to_json())
    with pytest.raises(KubefabError) as e:
        backups.restore(inv, Options(yes=True), db, console=io.StringIO())
    assert words in str(e.value) and str(e.value).startswith(f"{db}: not restored")


def test_the_restore_workflow_stops_api_servers_before_etcd_and_starts_them_after_every_member_is_healthy(made):
    inv, db, data = made
    assert ", ".join(workflows.restore(data, db, "tok").names) == RESTORE


def test_a_dry_run_prints_each_member_restored_with_the_inventorys_initial_cluster_and_touches_nothing(made):
    inv, db, data = made
    console = io.StringIO()
    outcome = backups.restore(inv, Options(dry_run=True), db, console=console)
    text = console.getvalue()
    assert outcome.code == 0 and "dry run: nothing was changed" in text
    cluster = "cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380,cp-3=https://10.0.0.13:2380"
    assert snapshots.initial_cluster(inv) == cluster
    for h in inv.control_planes:
        assert f"`snapshot restore` it as member {h.name} of {cluster}" in text
    assert text.index("stop-api-servers") < text.index("stop-etcd") < text.index("5. start-etcd") \
        < text.index("start-api-servers") < text.index("restart-components")
    assert "w-1" not in text.split("9. verify")[0]       # the worker is only checked Ready at the end


def test_a_restore_asks_first_and_without_a_terminal_refuses_naming_what_it_stops(made):
    inv, db, data = made
    console = io.StringIO()
    with pytest.raises(KubefabError, match="pass --yes"):
        backups.restore(inv, Options(), db, console=console)
    assert "stops kube-apiserver, then etcd, on each" in console.getvalue(), console.getvalue()


def test_a_backup_into_a_directory_that_does_not_exist_is_refused_before_any_host_is_touched(made, tmp_path):
    inv, db, data = made
    with pytest.raises(KubefabError, match="no such directory — create it first"):
        backups.backup(inv, Options(), output=tmp_path / "nowhere", console=io.StringIO())


def test_a_report_the_host_did_not_finish_is_refused_with_what_the_host_said():
    with pytest.raises(KubefabError, match="(?s)cp-1: the snapshot's report could not be read; the host said:\n.*"
                                           "context deadline exceeded"):
        snapshots.read_report("cp-1", 'kubefab-members {"members": []}\nError: context deadline exceeded\n')
    report = snapshots.read_report("cp-1", 'kubefab-members {"members": [{"name": "b", "peerURLs": ["https://b"]}, '
                                   '{"name": "a", "peerURLs": ["https://a"]}]}\n'
                                   'kubefab-status {"hash":1,"revision":3,"totalKey":6,"totalSize":20480}\n'
                                   'kubefab-ca abc\nkubefab-sa def\nkubefab-size 20480\n')
    assert report == {"members": (("a", "https://a"), ("b", "https://b")), "revision": 3, "keys": 6, "ca": "abc",
                      "sa": "def", "size": 20480}


# etcdctl 3.4 as a freshly restored cluster answers it: until cp-3's member publishes its client URL, the member
# list shows it without one and `endpoint health --cluster` checks (and counts) only the two others
FAKE_ETCDCTL = r"""#!/bin/sh
n=$(cat "$CALLS" 2>/dev/null || echo 0); echo $((n + 1)) > "$CALLS"
c3=; [ "$n" -ge 4 ] && c3=https://10.0.0.13:2379
case "$*" in
*"member list"*)
  echo "1, started, cp-1, https://10.0.0.11:2380, https://10.0.0.11:2379, false"
  echo "2, started, cp-2, https://10.0.0.12:2380, https://10.0.0.12:2379, false"
  echo "3, started, cp-3, https://10.0.0.13:2380, $c3, false";;
*"endpoint health --cluster"*)
  for u in https://10.0.0.11:2379 https://10.0.0.12:2379 $c3; do
    echo "$u is healthy: successfully committed proposal: took = 1ms"; done;;
esac
"""


def test_the_health_wait_lasts_until_every_member_runs_not_only_those_the_health_check_already_sees(made, tmp_path):
    inv, db, data = made
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "etcdctl").write_text(FAKE_ETCDCTL)
    (bin_dir / "etcdctl").chmod(0o755)
    (bin_dir / "sleep").symlink_to("/bin/true")         # the wait's one-second pauses, skipped
    step = snapshots.wait_healthy(inv)
    done = subprocess.run(["sh", "-c", step.script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls)})
    assert done.returncode == 100, done.stdout + done.stderr
    assert int(calls.read_text()) > 4, "it stopped before cp-3's member published its client URL"
    assert "cp-3, https://10.0.0.13:2380, https://10.0.0.13:2379" in done.stdout
