"""A host's steps of one phase as one POSIX sh script, run in one SSH round trip.

Each step reports a status line tagged with a per-script nonce, then the tail of its output, so the
results come back as values per step. Steps after a failed one are skipped. The files of every Push
travel beside the script as one tar archive (the payload, the script's $1), streamed from disk in
chunks: unpacked into a private staging dir, each file that differs is copied beside its target with
the local file's mtime, synced, then renamed over it (old or new, never partial), mode set and owned
by root; an identical file whose mtime differs only gets the mtime. The script ignores SIGHUP and
SIGPIPE: a dropped connection lets it finish.
"""

import os
import secrets
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kubefab import paths
from kubefab.digits import whole
from kubefab.errors import KubefabError
from kubefab.secret import Secret
from kubefab.steps import CHANGED, FAILED, SKIPPED, UNCHANGED, UNCHANGED_EXIT, Command, Push, StepResult, q

TAIL_BYTES = 3000
CHUNK = 2 ** 20         # bytes of a pushed file read and sent at a time

PREAMBLE = r"""set -u
umask 022
trap '' HUP PIPE
kf_payload=${1:-}
kf_stage=""
kf_dir=$(mktemp -d) || exit 1
trap 'rm -rf "$kf_dir" $kf_stage' EXIT
kf_changed=" "
kf_failed=0
kf_now() { date +%s%N 2>/dev/null || echo 0; }
kf_report() {
  printf '\n@@%s %s %s %s %s %s\n' "$K" "$1" "$2" "$3" "$4" "$(kf_now)"
  [ ! -s "$kf_dir/out" ] || tail -c TAIL "$kf_dir/out"
  printf '\n@@%s end\n' "$K"
  : > "$kf_dir/out"
}
kf_untouched() {
  for p in "$@"; do case "$kf_changed" in *" $p "*) return 1;; esac; done
}
kf_unpack() {
  [ -n "$kf_stage" ] && return
  kf_stage=$(mktemp -d /var/tmp/kubefab-stage.XXXXXX) && tar -x -f "$kf_payload" -C "$kf_stage"
}
kf_nl='
'
kf_place() {
  kf_new=""; kf_same=0
  while read -r m n p; do
    if cmp -s "$1/$n" "$p" && [ "$(stat -c '%a %u %g' "$p")" = "$m 0 0" ]; then
      kf_t=$(stat -c %y "$1/$n" "$p") || return 1
      [ "${kf_t%"$kf_nl"*}" = "${kf_t#*"$kf_nl"}" ] || touch -r "$1/$n" "$p" || return 1
      kf_same=$((kf_same + 1)); continue
    fi
    mkdir -p "${p%/*}" && cp -p "$1/$n" "$p.kubefab-new" && chown 0:0 "$p.kubefab-new" &&
      chmod "$m" "$p.kubefab-new" || return 1
    kf_new="$kf_new $p"
  done
  [ -z "$kf_new" ] || sync
  for p in $kf_new; do mv -f "$p.kubefab-new" "$p" || return 1; echo "changed $p"; done
  kf_changed="$kf_changed${kf_new# } "
  echo "unchanged $kf_same"
  [ -n "$kf_new" ] || return UNCHANGED_EXIT
}
""".replace("TAIL", str(TAIL_BYTES)).replace("UNCHANGED_EXIT", str(UNCHANGED_EXIT))


class PayloadError(KubefabError):
    """A pushed file could not be read as planned: the host's script must not run on what was sent."""


@dataclass(frozen=True)
class Member:
    """One pushed file as the tar carries it: its name there, the local file, and that file's size and mtime."""

    name: str
    local: Path
    size: int
    mtime: int              # whole seconds, as a tar header holds it


@dataclass(frozen=True)
class Payload:
    """A tar of `members`, read from disk chunk by chunk as it is sent; no members is no bytes at all."""

    members: tuple = ()

    @property
    def size(self):
        """The exact number of bytes chunks() yields, known without reading any file."""
        if not self.members:
            return 0
        files = sum(len(_header(m)) + m.size + _padding(m.size) for m in self.members)
        return files + _end(files)

    def chunks(self):
        """The tar's bytes: each file's header, its data in CHUNK pieces and padding, then the end blocks.

        Raises PayloadError, naming the file, when a file cannot be read or its size is not the planned one,
        before the bytes that would make the tar wrong are yielded."""
        sent = 0
        for m in self.members:
            for chunk in _file(m):
                sent += len(chunk)
                yield chunk
        if self.members:
            yield bytes(_end(sent))


@dataclass(frozen=True)
class Script:
    text: bytes             # the script, run by sh with the payload's path as $1
    payload: Payload        # a tar of every pushed file, named s<step>f<file>
    nonce: str              # tags the status lines


def build(steps, nonce=None):
    """The Script running `steps` in order and reporting each."""
    nonce = nonce or secrets.token_hex(8)
    parts = [f"K={nonce}\n", PREAMBLE]
    for index, step in enumerate(steps):
        parts.append(_step(index, step, nonce))
    pushed = tuple((f"s{i}f{j}", f) for i, step in enumerate(steps) if isinstance(step, Push) and not step.done
                   for j, f in enumerate(step.files))
    return Script("".join(parts).encode(), payload(pushed), nonce)


def _step(index, step, nonce):
    if step.done:
        return f"kf_report {index} {UNCHANGED} 0 0\n"
    head = f'if [ "$kf_failed" != 0 ]; then kf_report {index} {SKIPPED} - 0\n'
    if isinstance(step, Command):
        return head + _command(index, step, nonce)
    if isinstance(step, Push):
        return head + _push(index, step, nonce)
    raise TypeError(f"a host cannot run {step!r}")


def _heredoc(text, nonce):
    text = text if text.endswith("\n") else text + "\n"
    return f"<<'KFEOF_{nonce}'\n{text}KFEOF_{nonce}\n"


def _command(index, step, nonce):
    guard = step.guard or ("true" if step.after else "")
    check = ""
    if guard:
        after = f" && kf_untouched {' '.join(q(p) for p in step.after)}" if step.after else ""
        check = f"elif ( {guard}\n) >/dev/null 2>&1 </dev/null{after}; then kf_report {index} {UNCHANGED} 0 0\n"
    stdin = step.stdin.reveal() if isinstance(step.stdin, Secret) else step.stdin
    feed = _heredoc(stdin, nonce) if stdin is not None else "</dev/null\n"
    codes = "|".join(str(c) for c in step.ok_codes)
    return (check + "else s=$(kf_now)\n"
            f"timeout -k 10 {step.timeout} sh -c {q(step.script)} >\"$kf_dir/out\" 2>&1 {feed}"
            f"rc=$?; case $rc in {codes}) st={CHANGED};; {UNCHANGED_EXIT}) st={UNCHANGED};; "
            f"*) st={FAILED}; kf_failed=1;; esac\n"
            f"kf_report {index} $st $rc $s\nfi\n")


def payload(named):
    """The Payload of (name, file) pairs, each file's size and mtime taken now: what a script's Pushes carry."""
    members = []
    for name, f in named:
        st = os.stat(f.local)
        members.append(Member(name, Path(f.local), st.st_size, st.st_mtime_ns // 10 ** 9))
    return Payload(tuple(members))


def _header(member):
    info = tarfile.TarInfo(member.name)
    info.size, info.mode, info.mtime = member.size, 0o600, member.mtime
    return info.tobuf()


def _padding(size):
    return -size % tarfile.BLOCKSIZE


def _end(files):
    """The end-of-archive blocks and the zeros that fill the last record, as tarfile writes them."""
    return 2 * tarfile.BLOCKSIZE + -(files + 2 * tarfile.BLOCKSIZE) % tarfile.RECORDSIZE


def _file(member):
    """Header, data and padding of one member; PayloadError once the file is not the one planned."""
    try:
        with open(member.local, "rb") as f:
            if os.fstat(f.fileno()).st_size != member.size:
                raise _changed(member, os.fstat(f.fileno()).st_size)
            yield _header(member)
            left = member.size
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise _changed(member, member.size - left)
                left -= len(chunk)
                yield chunk
            if f.read(1):
                raise _changed(member, os.fstat(f.fileno()).st_size)
    except OSError as e:
        raise PayloadError(f"cannot push {member.local}: {e.strerror or e} — the host ran nothing of this "
                           "phase; make the file readable and run again") from None
    yield bytes(_padding(member.size))


def _changed(member, size):
    return PayloadError(f"cannot push {member.local}: it has {size} bytes, but {member.size} when the run "
                        "planned it (was it changed during the run?) — the host ran nothing of this phase; "
                        "run again")


def _push(index, step, nonce):
    if not step.files:
        return f"else kf_report {index} {UNCHANGED} 0 0\nfi\n"
    listing = "".join(f"{f.mode:o} s{index}f{i} {paths.plain(f.path, 'push to')}\n" for i, f in enumerate(step.files))
    return ("else s=$(kf_now); kf_unpack >\"$kf_dir/out\" 2>&1 &&\n"
            f"kf_place \"$kf_stage\" >\"$kf_dir/out\" 2>&1 {_heredoc(listing, nonce)}"
            "rc=$?\n"
            f"case $rc in 0) st={CHANGED};; {UNCHANGED_EXIT}) st={UNCHANGED};; *) st={FAILED}; kf_failed=1;; esac\n"
            f"kf_report {index} $st $rc $s\nfi\n")


def parse(steps, output, nonce):
    """The StepResults of `steps` from the script's stdout; a step that never reported is failed."""
    results, current, lines = {}, None, []
    for line in output.splitlines():
        if line.startswith(f"@@{nonce} "):
            fields = line.split()
            index = whole(fields[1]) if len(fields) == 6 else None
            if fields[1] == "end" and current:
                results[current[0]] = _result(steps[current[0]], current[1:], "\n".join(lines).strip())
                current, lines = None, []
            elif index is not None and index < len(steps):
                current, lines = (index, *fields[2:]), []
        elif current:
            lines.append(line)
    return tuple(results.get(i) or StepResult(s.name, FAILED, "no report: the script stopped before this step")
                 for i, s in enumerate(steps))


def _result(step, fields, text):
    status, code, start, end = fields
    begun, ended = whole(start, most=19), whole(end, most=19)
    seconds = (ended - begun) / 1e9 if begun and ended is not None else 0.0
    detail = text
    if status == FAILED:
        detail = f"exit {code}" + (f": {text}" if text else "")
    elif isinstance(step, Push):
        detail = _push_detail(text)
    elif status == SKIPPED:
        detail = "an earlier step failed"
    elif step.done:
        detail = step.done
    sign, number = (-1, whole(code[1:], most=3)) if code.startswith("-") else (1, whole(code, most=3))
    return StepResult(step.name, status, detail, seconds, sign * number if number is not None else 0)


def _push_detail(text):
    changed = [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("changed ")]
    same = next((line.split()[1] for line in text.splitlines() if line.startswith("unchanged ")), "0")
    return f"{len(changed)} changed, {same} unchanged" + (f": {', '.join(changed)}" if changed else "")
