"""`etcd.backup` and `etcd.restore`: a snapshot streamed from a healthy member into the state dir with its metadata,
and the restore workflow run after the refusals (kubefab.plan.snapshots says what is refused and why).

The backup tries the control planes in inventory order and keeps the first snapshot that arrives whole: written to
a temp file beside its target, its size checked against the host's, fsynced, then renamed, and its metadata after
it; the host's temp directory goes with the script, whatever happens.
"""

import datetime
import hashlib
import os
import secrets
import sys
import tempfile
from pathlib import Path

from kubefab import fsutil
from kubefab.errors import KubefabError
from kubefab.plan import snapshots, workflows
from kubefab.remote import ssh
from kubefab.run import execute, session as sessions

BACKUPS = "backups"             # under the state dir
BACKUP_TIMEOUT = 3600


def backup(inv, options, output=None, console=None):
    """etcd.backup: (exit code, path of the .db or None); the snapshot of the first control plane whose member is
    healthy, into `output` (default <state>/backups), its metadata beside it."""
    say = (console or sys.stdout).write
    target = Path(output) if output else inv.state_dir / BACKUPS
    if output and not target.is_dir():
        raise KubefabError(f"--output {output}: no such directory — create it first (mode 0700: a snapshot holds "
                           "every Secret of the cluster)")
    with sessions.opened(inv, options, console, prepare=False) as s:
        if not output:
            fsutil.ensure_dir(target)
        tried = []
        for host in inv.control_planes:
            try:
                db, data = _take(s, host, target)
            except (KubefabError, ssh.Unreachable) as e:
                tried.append(f"{host.name}: {e}")
                s.say(f"no snapshot from {host.name}: {e}")
                continue
            for problem in snapshots.refusals(inv, data):
                say(f"warning: a restore of this backup with {inv.state_dir} would be refused: {problem}\n")
            say(f"etcd snapshot of {host.name}'s member: {db} ({data.size} bytes, revision {data.revision}, "
                f"{data.keys} keys, sha256 {data.sha256}); metadata in {db.with_suffix('.json').name}\n")
            return 0, db
    say("no snapshot taken:\n" + "\n".join(f"  {t}" for t in tried) + "\n")
    return execute.EXIT_FAILED, None


def _take(s, host, target):
    at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    db_name, meta_name = snapshots.names(s.inv, at)
    digest = hashlib.sha256()
    fd, part = tempfile.mkstemp(dir=target, prefix=f".{db_name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)

            def sink(chunk):
                digest.update(chunk)
                f.write(chunk)
            out = s.ssh.run(host, snapshots.backup_script().encode(), BACKUP_TIMEOUT, sink=sink)
            if out.code:
                raise KubefabError(f"the snapshot script exited {out.code}: {out.stderr.strip()[-600:]}")
            report = snapshots.read_report(host.name, out.stderr)
            f.flush()
            os.fsync(f.fileno())
            if f.tell() != report["size"]:
                raise KubefabError(f"{f.tell()} bytes arrived of the {report['size']} the snapshot has")
        data = snapshots.Metadata(
            cluster=s.inv.cluster.name, sha256=digest.hexdigest(), size=report["size"], revision=report["revision"],
            keys=report["keys"], taken_from=host.name, members=report["members"], ca_sha256=report["ca"],
            sa_sha256=report["sa"], kubernetes_version=_version(s), taken_at=at.isoformat())
        db = target / db_name
        os.replace(part, db)
        fsutil.write_atomic(target / meta_name, data.to_json(), dir_mode=None)
        return db, data
    finally:
        Path(part).unlink(missing_ok=True)


def _version(s):
    """The API server's gitVersion, or the inventory's version when it does not answer (said so)."""
    try:
        return s.api.api().get("/version")["gitVersion"]
    except KubefabError:
        return f"{s.inv.cluster.kubernetes_version} (the inventory's: the API server did not answer)"


def restore(inv, options, source, console=None, ask=None):
    """etcd.restore of the backup `source` (.db or .json): refused (KubefabError) when it fails its checksum or
    holds another CA or service-account key than the state dir; else the restore workflow (kubefab.plan.workflows)."""
    db, data = snapshots.load(source)
    refused = snapshots.refusals(inv, data)
    if refused:
        raise KubefabError(f"{db}: not restored — " + "; ".join(refused))
    say = (console or sys.stdout).write
    missing = sorted({name for name, _ in data.members} - {h.name for h in inv.control_planes})
    if missing:
        say(f"warning: the backup's members {', '.join(missing)} are not control planes of the inventory: the "
            "restored cluster has the inventory's control planes only\n")
    token = f"kubefab-restore-{secrets.token_hex(4)}"
    outcome = execute.run(inv, workflows.restore(data, db, token), options, console, ask)
    warned = [r.steps[0].detail for r in outcome.results if r.phase == "check" and r.steps
              and "warning" in r.steps[0].detail]
    for line in dict.fromkeys(warned):
        say(line + "\n")
    return outcome
