"""state.export and state.import: the state dir sealed with a passphrase from the environment and brought back into a
fresh directory, where cluster.plan then keeps every certificate and renders every host file as before; a wrong
passphrase, a changed byte and a state dir of another CA are refused with nothing written."""

import os
import stat

import pytest

from conftest import invoke
from inventories import host_tables
from kubefab import inventory, pki, plan
from kubefab.errors import KubefabError
from kubefab.secret import Secret
from kubefab.state import archive

PASSPHRASE = Secret("correct horse battery staple")


def planned(directory, state="state"):
    directory.mkdir(exist_ok=True)
    path = directory / "inventory.toml"
    path.write_text('[cluster]\nname = "alpha"\nkubernetes_version = "1.33.5"\nencryption_algorithm = "ECDSA-P256"\n'
                    + host_tables(1, 1))
    inv = inventory.load(path, state_dir=directory / state)
    return inv, plan.prepare(inv)


def tree(root):
    return {p.relative_to(root).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_import_into_a_fresh_state_dir_keeps_every_certificate_and_renders_every_host_file_as_before(tmp_path):
    inv, before = planned(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    sealed = shared / "alpha.state"
    kept = archive.export(inv, sealed, PASSPHRASE)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755          # the user's directory keeps its mode
    assert "pki/ca.key" in kept and "bootstrap-token" in kept and "cluster.json" in kept
    assert not [k for k in kept if k.startswith("hosts/") or k.endswith(".log")]
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600 and b"PRIVATE KEY" not in sealed.read_bytes()

    fresh = inventory.load(inv.path, state_dir=tmp_path / "fresh")
    archive.import_(fresh, sealed, PASSPHRASE)
    after = plan.prepare(fresh)
    assert {a.what for a in after.actions} == {pki.KEPT}
    assert after.token_id == before.token_id and after.ca_hash == before.ca_hash
    assert {h: [(f.path, f.sha256, f.mode) for f in fs] for h, fs in after.files.items()} == \
        {h: [(f.path, f.sha256, f.mode) for f in fs] for h, fs in before.files.items()}
    assert stat.S_IMODE((fresh.state_dir / "pki/ca.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("damage, words", [
    (lambda blob: blob, "the passphrase is wrong"),
    (lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]), "the passphrase is wrong, or the file was changed"),
    (lambda blob: b"tar" + blob, "not a file kubefab sealed")])
def test_a_wrong_passphrase_or_a_changed_byte_writes_nothing(tmp_path, damage, words):
    inv, _ = planned(tmp_path)
    sealed = tmp_path / "alpha.state"
    archive.export(inv, sealed, PASSPHRASE)
    sealed.write_bytes(damage(sealed.read_bytes()))
    fresh = inventory.load(inv.path, state_dir=tmp_path / "fresh")
    wrong = Secret("not the passphrase") if words == "the passphrase is wrong" else PASSPHRASE
    with pytest.raises(KubefabError, match=words):
        archive.import_(fresh, sealed, wrong)
    assert not fresh.state_dir.exists()


def test_an_import_over_a_state_dir_of_another_ca_is_refused_and_leaves_it_as_it_was(tmp_path):
    inv, _ = planned(tmp_path / "a")
    sealed = tmp_path / "alpha.state"
    archive.export(inv, sealed, PASSPHRASE)
    other, _ = planned(tmp_path / "b")            # the same cluster name, made again: another CA
    untouched = tree(other.state_dir)
    with pytest.raises(KubefabError, match="holds another cluster CA .* kubefab never replaces a CA"):
        archive.import_(other, sealed, PASSPHRASE)
    assert tree(other.state_dir) == untouched


def test_the_passphrase_comes_only_from_the_environment_variable_the_option_names(tmp_path):
    inv, _ = planned(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != archive.PASSPHRASE_ENV}
    args = ("state.export", "-i", str(inv.path), "--state-dir", str(inv.state_dir), "--output",
            str(tmp_path / "out.state"))
    unset = invoke(*args, "--passphrase-env", "KF_TEST_PASS", env=env)
    assert unset.returncode == 2 and "$KF_TEST_PASS is not set" in unset.stderr
    assert invoke(*args, "--passphrase", "secret", env=env).returncode != 0     # no such option
    short = invoke(*args, "--passphrase-env", "KF_TEST_PASS", env={**env, "KF_TEST_PASS": "short"})
    assert short.returncode == 2 and "at least 12" in short.stderr
    done = invoke(*args, "--passphrase-env", "KF_TEST_PASS", env={**env, "KF_TEST_PASS": PASSPHRASE.reveal()})
    assert done.returncode == 0, done.stderr
    back = invoke("state.import", str(tmp_path / "out.state"), "-i", str(inv.path), "--state-dir",
                  str(tmp_path / "back"), "--passphrase-env", "KF_TEST_PASS",
                  env={**env, "KF_TEST_PASS": PASSPHRASE.reveal()})
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back/pki/ca.crt").read_bytes() == (inv.state_dir / "pki/ca.crt").read_bytes()
