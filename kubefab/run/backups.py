"""`etcd.backup` and `etcd.restore`: a snapshot streamed from a healthy member into the state dir with its metadata,
and the restore workflow run after the refusals (kubefab.plan.snapshots says what is refused and why).

The backup tries the control planes in inventory order and keeps the first snapshot that arrives whole
(kubefab.remote.snapshot).
"""

import secrets
import sys
from pathlib import Path

from kubefab import fsutil
from kubefab.errors import KubefabError
from kubefab.plan import snapshots, workflows
from kubefab.remote import snapshot, ssh
from kubefab.run import execute, session as sessions



def backup(inv, options, output=None, console=None):
    """etcd.backup: (exit code, path of the .db or None); the snapshot of the first control plane whose member is
    healthy, into `output` (default <state>/backups), its metadata beside it."""
    say = (console or sys.stdout).write
    target = Path(output) if output else inv.state_dir / snapshots.BACKUPS
    if output and not target.is_dir():
        raise KubefabError(f"--output {output}: no such directory — create it first (mode 0700: a snapshot holds "
                           "every Secret of the cluster)")
    with sessions.opened(inv, options, console, prepare=False) as s:
        if not output:
            fsutil.ensure_dir(target)
        tried = []
        for host in inv.control_planes:
            try:
                db, data = snapshot.take(s.ssh, s.inv, host, target, lambda: _version(s))
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
