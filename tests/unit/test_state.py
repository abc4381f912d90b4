"""The state dir is one cluster's, and nothing outside it is ever touched: links, foreign files, another cluster's
name, secrets readable by others, a file where the dir should be, unreadable certificates."""

import datetime
import io
import json
import os
import re
import shutil
import stat

import pytest

from conftest import invoke
from inventories import host_tables
from kubefab import facts, inventory, pki, plan, state
from kubefab.errors import KubefabError
from kubefab.pki import x509
from kubefab.remote import ssh
from kubefab.run import execute, session
from kubefab.state import bundle


def write_inventory(directory, name="alpha", workers=2):
    path = directory / "inventory.toml"
    path.write_text(f'[cluster]\nname = "{name}"\nkubernetes_version = "1.33.5"\nencryption_algorithm = "ECDSA-P256"\n'
                    + host_tables(1, workers))
    return path


def planned(tmp_path, name="alpha", workers=2, state_dir=None):
    """An inventory loaded with its state dir (default tmp_path/state) and cluster.plan's preparation done."""
    inv = inventory.load(write_inventory(tmp_path, name, workers), state_dir=state_dir or tmp_path / "state")
    plan.prepare(inv)
    return inv


def snapshot(root):
    """Every entry under `root` without following links: relative path -> (kind, mode, bytes or link target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            content = os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
                open(p, "rb").read() if stat.S_ISREG(st.st_mode) else b""
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), content)
    return out


def outside_tree(tmp_path):
    """A directory outside the state dir, shaped like what kubefab keeps, with files kubefab did not write."""
    out = tmp_path / "outside"
    for rel in ("gone-host/etc/important.conf", "cp-1/etc/notes.txt", "etc/passwd-copy", "cp-1/etc/crictl.yaml"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(f"not kubefab's: {rel}\n")
    return out


# -- links and pruning ----------------------------------------------------------------------------

@pytest.mark.parametrize("link, target", [
    ("hosts", ""),                       # the whole tree of hosts: pruning removed 'gone-host' out there
    ("hosts/w-1/etc", "cp-1/etc"),       # a directory inside a host's tree
    ("pki/nodes", "etc"),                # writes and chmods through it
])
def test_a_link_in_the_state_dir_is_refused_and_nothing_outside_changes(tmp_path, link, target):
    inv = planned(tmp_path)
    out = outside_tree(tmp_path)
    before = snapshot(out)
    where = inv.state_dir / link
    shutil.rmtree(where)
    where.symlink_to(out / target)
    with pytest.raises(KubefabError) as e:
        plan.prepare(inv)
    assert f"{where}: is a symbolic link (to {out / target}); kubefab never follows a link out of its state dir" \
        in str(e.value)
    assert f"`rm {where}`" in str(e.value)
    assert snapshot(out) == before


def test_prune_deletes_only_files_kubefab_wrote(tmp_path):
    inv = planned(tmp_path, workers=2)
    hosts = inv.state_dir / "hosts"
    mine = [hosts / "cp-1" / "etc" / "notes.txt", hosts / "w-9" / "keep.txt", hosts / "README"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's\n")
    fewer = planned(tmp_path, workers=1)           # w-2 left the inventory: its tree is kubefab's to remove
    assert not (hosts / "w-2").exists()
    assert all(p.read_text() == "the user's\n" for p in mine)
    listed = json.loads((fewer.state_dir / "hosts.json").read_text())
    assert sorted(listed) == ["cp-1", "w-1"] and "/etc/containerd/config.toml" in listed["w-1"]


def test_a_file_list_that_points_out_of_the_tree_is_refused(tmp_path):
    inv = planned(tmp_path)
    out = outside_tree(tmp_path)
    before = snapshot(out)
    written = inv.state_dir / "hosts.json"
    written.write_text(json.dumps({"cp-1": ["/../../../outside/etc/passwd-copy"]}))
    with pytest.raises(KubefabError, match=re.escape(f"{written}: is not the list of files kubefab wrote")):
        plan.prepare(inv)
    assert snapshot(out) == before


# -- one cluster per state dir --------------------------------------------------------------------

def test_another_cluster_name_on_a_state_dir_is_refused_naming_both(tmp_path):
    alpha = planned(tmp_path)
    before = snapshot(alpha.state_dir)
    (tmp_path / "b").mkdir()
    beta = inventory.load(write_inventory(tmp_path / "b", "beta"), state_dir=alpha.state_dir)
    with pytest.raises(KubefabError) as e:
        plan.prepare(beta)
    assert f"{alpha.state_dir}: this state dir belongs to cluster 'alpha'" in str(e.value)
    assert "names the cluster 'beta'" in str(e.value)
    assert "give --state-dir another directory for 'beta'" in str(e.value)
    assert "or set [cluster] name back to 'alpha'" in str(e.value)
    assert snapshot(alpha.state_dir) == before


def test_a_state_dir_without_a_record_adopts_it_once(tmp_path):
    inv = planned(tmp_path)
    record = inv.state_dir / state.RECORD
    assert json.loads(record.read_text()) == {"cluster": "alpha", "ca_sha256": {
        name: facts.ca_fingerprint(pki.paths(inv, pki.BY_NAME[name])[0].read_bytes())
        for name in ("ca", "front-proxy-ca", "etcd/ca")}}
    record.unlink()                              # a state dir made before the record existed
    plan.prepare(inv)
    assert json.loads(record.read_text())["cluster"] == "alpha"
    (tmp_path / "b").mkdir()
    with pytest.raises(KubefabError, match="this state dir belongs to cluster 'alpha'"):
        plan.prepare(inventory.load(write_inventory(tmp_path / "b", "beta"), state_dir=inv.state_dir))


@pytest.mark.parametrize("ca", ["ca", "etcd/ca", "front-proxy-ca"])
def test_a_lost_ca_is_never_answered_with_a_new_one(tmp_path, ca):
    inv = planned(tmp_path)
    crt, key = pki.paths(inv, pki.BY_NAME[ca])
    crt.unlink()
    key.unlink()
    before = snapshot(inv.state_dir)
    with pytest.raises(KubefabError, match=re.escape(f"{crt}: the {ca} CA of cluster 'alpha' (sha256 ")) as e:
        plan.prepare(inv)
    assert f"restore {crt.name} and its key from your backup of {crt.parent}" in str(e.value)
    assert snapshot(inv.state_dir) == before


def test_a_replaced_ca_is_refused_with_both_fingerprints(tmp_path):
    inv = planned(tmp_path)
    (tmp_path / "other").mkdir()
    other = planned(tmp_path / "other")
    crt, key = pki.paths(inv, pki.BY_NAME["ca"])
    want = facts.ca_fingerprint(crt.read_bytes())
    for mine, theirs in zip((crt, key), pki.paths(other, pki.BY_NAME["ca"])):
        shutil.copy2(theirs, mine)
    with pytest.raises(KubefabError) as e:
        plan.prepare(inv)
    assert f"is not the ca CA cluster 'alpha' was made with (sha256 {facts.ca_fingerprint(crt.read_bytes())}, " \
           f"cluster.json records {want})" in str(e.value)


# -- secrets, a file for a dir, special files -----------------------------------------------------

@pytest.mark.parametrize("secret", ["pki/ca.key", "pki/nodes/cp-1/etcd/peer.key", "kubeconfigs/admin.conf",
                                    "bootstrap-token"])
def test_a_secret_readable_by_others_is_refused_with_the_chmod_that_fixes_it(tmp_path, secret):
    inv = planned(tmp_path)
    path = inv.state_dir / secret
    path.chmod(0o644)
    with pytest.raises(KubefabError) as e:
        plan.prepare(inv)
    assert f"{path}: holds a secret but is readable by" in str(e.value) and f"`chmod 600 {path}`" in str(e.value)
    path.chmod(0o600)
    plan.prepare(inv)


@pytest.mark.parametrize("path, kind", [("pki/etcd", "file"), ("hosts", "file"), ("kubeconfigs", "file"),
                                        ("bootstrap-token", "directory"), ("pki/sa.pub", "directory"),
                                        ("kubefab.log", "directory"), ("cluster.json", "directory")])
def test_a_file_where_kubefab_keeps_a_directory_or_the_reverse_is_refused(tmp_path, path, kind):
    inv = planned(tmp_path)
    where = inv.state_dir / path
    shutil.rmtree(where) if where.is_dir() else where.unlink(missing_ok=True)
    where.mkdir() if kind == "directory" else where.write_text("")
    with pytest.raises(KubefabError, match=re.escape(f"{where}: is a {kind} where kubefab keeps a ")):
        plan.prepare(inv)


def test_a_file_in_the_way_of_the_rendered_tree_is_an_error_naming_the_tree_to_remove(tmp_path):
    inv = planned(tmp_path)
    host_tree = inv.state_dir / "hosts" / "w-1"
    shutil.rmtree(host_tree / "etc")
    (host_tree / "etc").write_text("")
    with pytest.raises(KubefabError, match=re.escape(f"(`rm -r {host_tree}`), kubefab renders it again")):
        plan.prepare(inv)


def test_a_fifo_in_the_state_dir_is_refused(tmp_path):
    inv = planned(tmp_path)
    fifo = inv.state_dir / "hosts" / "w-1" / "etc" / "crictl.yaml"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(KubefabError, match=re.escape(f"{fifo}: is neither a file nor a directory")):
        plan.prepare(inv)


def test_a_state_dir_that_is_a_file_is_an_error_not_a_traceback(tmp_path):
    write_inventory(tmp_path)
    (tmp_path / "state").write_text("not a directory\n")
    for task in ("cluster.plan", "pki.show"):
        r = invoke(task, "-i", str(tmp_path / "inventory.toml"), "--state-dir", str(tmp_path / "state"))
        assert (r.returncode, r.stdout) == (2, ""), r.stderr
        assert r.stderr == f"error: {tmp_path / 'state'}: the state dir is not a directory — move that file away, " \
                           "or pass --state-dir a directory of its own for this cluster\n"
    r = invoke("cluster.plan", "-i", str(tmp_path / "inventory.toml"), "--state-dir", str(tmp_path / "state" / "x"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "is not a directory" in r.stderr, r.stderr


# -- pki.show -------------------------------------------------------------------------------------

def test_pki_show_lists_the_readable_certificates_and_names_the_unreadable_one(tmp_path):
    inv = planned(tmp_path)
    total = len(bundle.certificates(inv))
    bad = inv.state_dir / "pki" / "apiserver-kubelet-client.crt"
    bad.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
    (inv.state_dir / "kubeconfigs" / "admin.conf").write_text("clusters: []\n")
    r = invoke("pki.show", "-i", str(inv.path), "--state-dir", str(inv.state_dir))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    assert f"{total - 2} certificates; 0 expire within 30 days" in lines
    assert "error: pki/apiserver-kubelet-client.crt: is not a PEM certificate — restore it from your backup, or " \
           "let `invoke cluster.plan` issue it again" in lines
    assert "error: kubeconfigs/admin.conf: is not a kubeconfig with a client certificate — restore it from your " \
           "backup, or let `invoke cluster.plan` issue it again" in lines
    assert any("pki/ca.crt" in line for line in lines)


def test_a_reset_is_not_stopped_by_an_expired_ca_and_makes_no_ca(tmp_path, monkeypatch):
    def unreachable(self, host):          # no packet leaves this machine: the host does not answer
        raise ssh.Unreachable(f"connection to {host.address}:22 timed out after 1 s")
    monkeypatch.setattr(ssh.Hosts, "_open", unreachable)
    path = tmp_path / "inventory.toml"
    path.write_text('[cluster]\nname = "alpha"\nkubernetes_version = "1.33.5"\nencryption_algorithm = "ECDSA-P256"\n'
                    '[ssh]\nconnect_timeout = 1\n' + host_tables(1, 0, net="198.18.255"))
    inv = inventory.load(path, state_dir=tmp_path / "state")
    code = execute.reset(inv, session.Options(yes=True), console=io.StringIO()).code
    assert code == 1 and not (inv.state_dir / "pki").exists()             # the host is unreachable; no CA made
    plan.prepare(inv)
    crt, key = pki.paths(inv, pki.BY_NAME["ca"])
    made = x509.now() - datetime.timedelta(days=400)
    ca_key = x509.new_key("ECDSA-P256")
    pki.write_pair(crt, x509.issue(x509.Request("kubernetes", days=300, is_ca=True), ca_key, at=made), key, ca_key)
    (inv.state_dir / state.RECORD).unlink()                                 # the expired CA is the recorded one
    with pytest.raises(KubefabError, match="the CA expired on"):
        plan.prepare(inv)
    before = snapshot(inv.state_dir / "pki")
    console = io.StringIO()
    assert execute.reset(inv, session.Options(yes=True), console=console).code == 1, console.getvalue()
    assert "failed on some hosts" in console.getvalue()
    assert snapshot(inv.state_dir / "pki") == before
