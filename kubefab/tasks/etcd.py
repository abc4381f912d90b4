"""`invoke etcd.*`: a snapshot of the cluster's etcd into the state dir, and a restore of one on every member."""

from invoke import Exit, task

from kubefab.remote.runner import DEFAULT_WORKERS
from kubefab.run import backups
from kubefab.run.session import Options

from .cluster import RUN_HELP, _interruptible
from .common import INVENTORY_HELP, STATE_HELP, load, number, user_errors


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
            "output": "directory for the snapshot and its metadata (default: <state dir>/backups)",
            **{k: RUN_HELP[k] for k in ("verbose", "quiet")}})
def backup(c, inventory=None, state_dir=None, output=None, verbose=False, quiet=False):
    """Snapshot etcd from the first healthy control plane into the state dir, with its sha256 and metadata."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        code, _ = backups.backup(inv, Options(verbose=verbose, quiet=quiet), output)
    if code:
        raise Exit(code=code)


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
            "from": "the backup to restore: its .db (or .json), as etcd.backup wrote them",
            "yes": "do not ask before stopping the cluster (needed without a terminal)",
            "dry-run": "check the backup against the state dir, print the plan and change nothing",
            **{k: RUN_HELP[k] for k in ("workers", "verbose", "quiet")}})
def restore(c, from_=None, inventory=None, state_dir=None, yes=False, workers=None, verbose=False, quiet=False,
            dry_run=False):
    """Restore every etcd member from a backup: API servers and etcd stopped, members restored, all started again."""
    with user_errors():
        if not from_:
            raise Exit("error: --from FILE: name the backup to restore (a .db etcd.backup wrote)", code=2)
        options = Options(workers=number(workers, "workers", DEFAULT_WORKERS, 1), yes=yes, verbose=verbose,
                          quiet=quiet, dry_run=dry_run)
        inv = load(c, inventory, state_dir)
        code = _interruptible(lambda: backups.restore(inv, options, from_))
    if code:
        raise Exit(code=code)
