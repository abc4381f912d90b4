"""A phase's steps as one sh script, run here with the machine's own sh: guards, statuses, pushes."""

import io
import os
import re
import subprocess
import tarfile

import pytest

from kubefab.remote import script
from kubefab.secret import Secret
from kubefab.state.tree import RenderedFile
from kubefab.steps import Command, Push


def run(steps, tmp_path):
    built = script.build(steps)
    (tmp_path / "script").write_bytes(built.text)
    (tmp_path / "payload").write_bytes(b"".join(built.payload.chunks()))
    out = subprocess.run(["sh", tmp_path / "script", tmp_path / "payload"], capture_output=True, timeout=60)
    return script.parse(steps, out.stdout.decode(), built.nonce)


def statuses(results):
    return [r.status for r in results]


def test_a_satisfied_guard_skips_the_body_and_an_unsatisfied_one_runs_it(tmp_path):
    mark = tmp_path / "mark"
    steps = (Command("already", f"touch {mark}.a", guard="true"),
             Command("needed", f"touch {mark}.b", guard=f"[ -e {mark}.b ]"))
    assert statuses(run(steps, tmp_path)) == ["unchanged", "changed"]
    assert not (tmp_path / "mark.a").exists() and (tmp_path / "mark.b").exists()
    assert statuses(run(steps, tmp_path)) == ["unchanged", "unchanged"]


def test_a_failed_step_reports_its_exit_and_output_and_the_rest_are_skipped(tmp_path):
    results = run((Command("breaks", "echo starting; echo 'no such thing' >&2; exit 3"),
                   Command("after", f"touch {tmp_path}/ran")), tmp_path)
    assert statuses(results) == ["failed", "skipped"]
    assert results[0].detail.startswith("exit 3:") and "starting" in results[0].detail
    assert "no such thing" in results[0].detail
    assert not (tmp_path / "ran").exists()


def test_accepted_exit_codes_and_the_nothing_to_do_exit(tmp_path):
    results = run((Command("grep finds nothing", "exit 1", ok_codes=(0, 1)), Command("says nothing to do", "exit 100")), tmp_path)
    assert statuses(results) == ["changed", "unchanged"]


def test_a_step_over_its_timeout_is_killed_and_failed(tmp_path):
    results = run((Command("slow", "sleep 30", timeout=1),), tmp_path)
    assert statuses(results) == ["failed"] and results[0].code == 124


def test_stdin_reaches_the_body_and_a_secret_stays_off_its_command_line(tmp_path):
    out = tmp_path / "got"
    results = run((Command("reads", f"cat > {out}; ps -o args= -p $$ >> {out}", stdin=Secret("s3cret-value")),), tmp_path)
    assert statuses(results) == ["changed"]
    got = out.read_text().splitlines()
    assert got[0] == "s3cret-value" and "s3cret-value" not in got[1]


def rendered(tmp_path, path, data, mode=0o600):
    local = tmp_path / "local" / path.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return RenderedFile("h", path, mode, len(data), True, local, "test", "push")


@pytest.mark.skipif(os.geteuid() != 0, reason="a push makes files owned by root")
def test_a_push_places_files_with_mode_and_owner_and_leaves_identical_ones(tmp_path):
    target = tmp_path / "host"
    a = rendered(tmp_path, f"{target}/etc/a.key", b"key\n")
    b = rendered(tmp_path, f"{target}/etc/sub/b.conf", b"conf\n", 0o644)
    restart = Command("restart", f"touch {tmp_path}/restarted", guard="true", after=(a.path,))
    first = run((Push("files", (a, b)), restart), tmp_path)
    assert statuses(first) == ["changed", "changed"] and first[0].detail.startswith("2 changed, 0 unchanged")
    assert (target / "etc/a.key").read_bytes() == b"key\n"
    assert oct((target / "etc/a.key").stat().st_mode & 0o7777) == "0o600"
    assert oct((target / "etc/sub/b.conf").stat().st_mode & 0o7777) == "0o644"
    (tmp_path / "restarted").unlink()
    assert statuses(run((Push("files", (a, b)), restart), tmp_path)) == ["unchanged", "unchanged"]
    assert not (tmp_path / "restarted").exists()
    os.chmod(target / "etc/sub/b.conf", 0o666)
    again = run((Push("files", (a, b)), restart), tmp_path)
    assert statuses(again) == ["changed", "unchanged"] and again[0].detail.endswith(f"1 unchanged: {b.path}")
    assert sorted(p.name for p in (target / "etc").rglob("*")) == ["a.key", "b.conf", "sub"]


def test_a_step_that_never_reported_is_failed_with_the_reason():
    steps = (Command("one", "true"),)
    assert script.parse(steps, "garbage\n", "nonce")[0].detail.startswith("no report")


def test_the_payload_is_the_tar_tarfile_writes_and_its_size_is_known_before_reading(tmp_path):
    sizes = (0, 1, 512, script.CHUNK + 513, 10240)
    files = [rendered(tmp_path, f"/etc/f{i}", os.urandom(n)) for i, n in enumerate(sizes)]
    for i, f in enumerate(files):
        os.utime(f.local, ns=(0, 1_700_000_000_999_999_999 + i * 10 ** 9))
    payload = script.build((Push("files", tuple(files)),)).payload
    data = b"".join(payload.chunks())
    assert payload.size == len(data)
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w") as tar:
        for i, f in enumerate(files):
            info = tarfile.TarInfo(f"s0f{i}")
            info.size, info.mode, info.mtime = f.local.stat().st_size, 0o600, 1_700_000_000 + i
            tar.addfile(info, io.BytesIO(f.local.read_bytes()))
    assert data == expected.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert [tar.extractfile(m).read() for m in tar.getmembers()] == [f.local.read_bytes() for f in files]


def test_without_a_push_the_payload_is_empty():
    payload = script.build((Command("one", "true"),)).payload
    assert payload.size == 0 and list(payload.chunks()) == []


def grow(path):
    with open(path, "ab") as f:
        f.write(b"more")


def shrink(path):
    os.truncate(path, 100)


@pytest.mark.parametrize("change, while_sent", [(grow, False), (grow, True), (shrink, True), (os.unlink, False)])
def test_a_file_changed_after_build_stops_the_payload_short_naming_it(tmp_path, change, while_sent):
    big = rendered(tmp_path, "/etc/big", os.urandom(script.CHUNK + 100))
    payload = script.build((Push("files", (big,)),)).payload
    sent = bytearray()
    if not while_sent:
        change(big.local)
    with pytest.raises(script.PayloadError, match=re.escape(f"cannot push {big.local}")):
        for chunk in payload.chunks():
            sent += chunk
            if while_sent and len(sent) > 512:
                change(big.local)
    assert len(sent) < payload.size      # the remote wrapper, short of its payload, runs nothing


def mtime(path):
    return int(os.stat(path).st_mtime)


@pytest.mark.skipif(os.geteuid() != 0, reason="a push makes files owned by root")
def test_a_pushed_file_keeps_the_local_mtime_and_an_identical_one_gets_it_back(tmp_path):
    target = tmp_path / "host"
    a = rendered(tmp_path, f"{target}/etc/a.conf", b"conf\n", 0o644)
    os.utime(a.local, (1_600_000_000, 1_600_000_000))
    assert statuses(run((Push("files", (a,)),), tmp_path)) == ["changed"]
    assert mtime(target / "etc/a.conf") == 1_600_000_000
    os.utime(target / "etc/a.conf", (1_700_000_000, 1_700_000_000))
    again = run((Push("files", (a,)),), tmp_path)
    assert statuses(again) == ["unchanged"] and again[0].detail == "0 changed, 1 unchanged"
    assert mtime(target / "etc/a.conf") == 1_600_000_000
    assert oct((target / "etc/a.conf").stat().st_mode & 0o7777) == "0o644"
