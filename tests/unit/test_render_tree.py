"""The rendered tree `<state>/hosts/<host>/`: laid out and moded as on the host, stable, kept current."""

import hashlib
import stat
from pathlib import Path

import pytest

from inventories import host_tables
from kubefab import inventory, paths, pki
from kubefab.errors import KubefabError
from kubefab.pki import kubeconfig
from kubefab.plan import render
from kubefab.state import bundle, tree

BEFORE = """\
[cluster]
name = "tree"
kubernetes_version = "1.33.5"
control_plane_endpoint = "10.0.0.10:6443"
encryption_algorithm = "ECDSA-P256"

""" + host_tables(2, 2) + """
[mirrors.registries]
"docker.io" = ["https://docker.m.daocloud.io"]
"quay.io" = ["https://quay.m.daocloud.io"]
"""

# cp-2 becomes a worker, w-2 leaves the inventory, the quay.io mirror is dropped.
AFTER = (BEFORE.replace('[hosts.cp-2]\naddress = "10.0.0.12"\nroles = ["control-plane"]',
                        '[hosts.cp-2]\naddress = "10.0.0.12"\nroles = ["worker"]')
         .replace('[hosts.w-2]\naddress = "10.0.0.22"\nroles = ["worker"]\n', "")
         .replace('"quay.io" = ["https://quay.m.daocloud.io"]\n', ""))


def ensure(path, text):
    path.write_text(text)
    inv = inventory.load(path)
    pki.ensure(inv)
    kubeconfig.ensure(inv)
    return inv


@pytest.fixture
def rendered(tmp_path):
    inv = ensure(tmp_path / "inventory.toml", BEFORE)
    return inv, render.render(inv)


def snapshot(root):
    return {p.relative_to(root): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns,
                                  stat.S_IMODE(p.stat().st_mode))
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_files_sit_at_their_host_path_with_the_host_mode(rendered):
    inv, files = rendered
    for f in files:
        assert f.local == tree.hosts_dir(inv) / f.host / f.path.lstrip("/")
        assert stat.S_IMODE(f.local.stat().st_mode) == f.mode
        assert f.local.stat().st_size == f.size
    modes = {(f.host, f.path): f.mode for f in files}
    assert modes[("cp-1", "/etc/kubernetes/kubefab/init.yaml")] == 0o600
    assert modes[("w-1", "/etc/kubernetes/kubefab/join.yaml")] == 0o600
    assert modes[("cp-2", "/etc/kubernetes/pki/ca.key")] == 0o600
    assert modes[("cp-2", "/etc/kubernetes/pki/ca.crt")] == 0o644
    assert modes[("w-1", "/etc/containerd/config.toml")] == 0o644


def test_tree_dirs_are_0755_and_the_state_dir_stays_private(rendered):
    inv, _ = rendered
    dirs = [p for p in tree.hosts_dir(inv).rglob("*") if p.is_dir()]
    assert {stat.S_IMODE(d.stat().st_mode) for d in dirs} == {0o755}
    assert stat.S_IMODE(tree.hosts_dir(inv).stat().st_mode) == 0o700
    assert stat.S_IMODE(inv.state_dir.stat().st_mode) == 0o700


def test_the_tree_holds_exactly_the_returned_files(rendered):
    inv, files = rendered
    on_disk = {(p.relative_to(tree.hosts_dir(inv)).parts[0], p) for p in tree.hosts_dir(inv).rglob("*")
               if p.is_file()}
    assert on_disk == {(f.host, f.local) for f in files}
    assert sorted({f.host for f in files}) == ["cp-1", "cp-2", "w-1", "w-2"]


def test_no_placeholder_survives_anywhere(rendered):
    inv, _ = rendered
    for p in tree.hosts_dir(inv).rglob("*"):
        if p.is_file():
            text = p.read_bytes().decode()
            assert "${" not in text and "{{" not in text, p


def test_a_second_render_changes_nothing(rendered):
    inv, first = rendered
    before = snapshot(tree.hosts_dir(inv))
    again = render.render(inv)
    assert not [f for f in again if f.changed]
    assert [(f.host, f.path, f.mode, f.size) for f in again] == [(f.host, f.path, f.mode, f.size) for f in first]
    assert snapshot(tree.hosts_dir(inv)) == before
    assert all(f.changed for f in first)


def test_a_changed_mode_on_disk_is_put_back(rendered):
    inv, _ = rendered
    key = tree.local_path(inv, "cp-1", "/etc/kubernetes/pki/ca.key")
    key.chmod(0o644)
    changed = [f for f in render.render(inv) if f.changed]
    assert [(f.host, f.path) for f in changed] == [("cp-1", "/etc/kubernetes/pki/ca.key")]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_files_no_longer_due_leave_the_tree_and_files_kubefab_did_not_write_stay(rendered, tmp_path):
    inv, _ = rendered
    stray = tree.local_path(inv, "w-1", "/etc/leftover/old.conf")
    stray.parent.mkdir(parents=True)
    stray.write_text("the user's own\n")
    inv = ensure(tmp_path / "inventory.toml", AFTER)
    files = render.render(inv)
    cp2 = tree.hosts_dir(inv) / "cp-2"
    assert not (cp2 / "etc/kubernetes/pki").exists()
    assert not list(cp2.glob("etc/kubernetes/*.conf"))
    assert "controlPlane" not in tree.local_path(inv, "cp-2", paths.JOIN_CONFIG).read_text()
    assert not (tree.hosts_dir(inv) / "w-2").exists()
    assert not (cp2 / "etc/containerd/certs.d/quay.io").exists()
    assert (cp2 / "etc/containerd/certs.d/docker.io/hosts.toml").is_file()
    assert stray.read_text() == "the user's own\n"
    assert {p for p in tree.hosts_dir(inv).rglob("*") if p.is_file()} == {f.local for f in files} | {stray}


def test_render_refuses_to_give_a_worker_what_kubeadm_join_writes(rendered, monkeypatch):
    inv, _ = rendered
    real = bundle.host_files
    ca = real(inv, inv.first_control_plane)[0]
    monkeypatch.setattr(bundle, "host_files", lambda i, h: real(i, h) + (() if h.is_control_plane else (ca,)))
    with pytest.raises(KubefabError, match=r"refusing to put /etc/kubernetes/pki/ca.crt on w-1: a worker gets no "
                                           r"certificate.*FileAvailable--etc-kubernetes-pki-ca.crt"):
        render.render(inv)
