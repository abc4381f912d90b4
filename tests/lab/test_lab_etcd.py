"""etcd.backup and etcd.restore on lab clusters made by cluster.up on the doubles, whose API server keeps its objects
in the real etcd: after a restore the UIDs of kube-system and of every Node are those of the backup, an object
written after the backup is gone, every node is Ready, and with 3 control planes all three members are healthy."""

import io
import json
import shutil
import time

import pytest

from kubefab import inventory
from kubefab.api import kube
from kubefab.plan import snapshots
from kubefab.run import backups
from kubefab.run.session import Options
from test_lab_up import run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("etcdctl") is None, reason="etcdctl is not installed")]


def uids(api):
    return {"kube-system": api.get("/api/v1/namespaces/kube-system")["metadata"]["uid"],
            **{n["metadata"]["name"]: n["metadata"]["uid"] for n in api.get("/api/v1/nodes")["items"]}}


def on_host(lab, name, command):
    return lab.run(name, command, check=False)


def backup_and_restore(lab, tmp_path):
    """Back up, write an object, restore: (api, uids at the backup, restore outcome, console text, backup path)."""
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    before = uids(api)
    for h in inv.control_planes:
        on_host(lab, h.name, "touch /run/kf-marker")
    start = time.monotonic()
    code, db = backups.backup(inv, Options(), console=io.StringIO())
    print(f"\netcd.backup: {time.monotonic() - start:.1f} s, {db.stat().st_size} bytes")
    assert code == 0 and db.parent == inv.state_dir / "backups"
    data = json.loads(db.with_suffix(".json").read_text())
    assert data["revision"] > 0 and data["keys"] > 0 and data["taken_from"] == inv.control_planes[0].name
    assert [m[0] for m in data["members"]] == sorted(h.name for h in inv.control_planes)
    for h in inv.control_planes:            # nothing of the backup left on the host (its /tmp is its own tmpfs)
        left = on_host(lab, h.name, "find /tmp -mindepth 1 -newer /run/kf-marker").stdout
        assert left == "", left
    api.create("/api/v1/namespaces/default/configmaps",
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "written-after-the-backup"}})
    console = io.StringIO()
    start = time.monotonic()
    outcome = backups.restore(inv, Options(yes=True), db, console=console)
    seconds = {p: f"{s:.1f}" for p, s in outcome.seconds.items()}
    print(f"etcd.restore: {time.monotonic() - start:.1f} s ({seconds})")
    return api, before, outcome, console.getvalue(), inv


def test_a_restore_brings_back_the_objects_of_the_backup_and_drops_what_came_after(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    api, before, outcome, text, inv = backup_and_restore(lab, tmp_path)
    assert outcome.code == 0, text
    assert uids(api) == before
    assert api.find("/api/v1/namespaces/default/configmaps/written-after-the-backup") is None
    assert "no --bump-revision" in text                  # Debian's etcd 3.4: etcdctl restores, without a bump
    nodes = api.get("/api/v1/nodes")["items"]
    assert all(c["status"] == "True" for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready")
    cp = inv.control_planes[0].name
    left = on_host(lab, cp, f"ls {snapshots.ON_HOST} {snapshots.ASIDE}/*.yaml 2>/dev/null").stdout
    assert left == "", left             # the snapshot removed, every manifest back


def test_three_members_are_restored_from_one_snapshot_and_all_three_are_healthy(new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=3, flavour="node")
    api, before, outcome, text, inv = backup_and_restore(lab, tmp_path)
    assert outcome.code == 0, text
    assert uids(api) == before
    assert api.find("/api/v1/namespaces/default/configmaps/written-after-the-backup") is None
    health = on_host(lab, inv.control_planes[1].name, f"{snapshots.ETCDCTL} endpoint health --cluster 2>&1")
    assert health.returncode == 0 and health.stdout.count("is healthy") == 3, health.stdout
    members = on_host(lab, inv.control_planes[2].name, f"{snapshots.ETCDCTL} member list")
    assert sorted(line.split(", ")[2] for line in members.stdout.splitlines()) == [h.name for h in inv.control_planes]
