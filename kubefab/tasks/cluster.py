"""`invoke cluster.*`: plan (offline), preflight (facts and checks), up (the phases on the hosts), upgrade and reset."""

import dataclasses

from invoke import Exit, task

from kubefab import versions

from kubefab.api.drain import DRAIN_TIMEOUT
from kubefab.plan import build, prepare, upgrade as upgrading
from kubefab.preflight.checks import CHECKS
from kubefab.remote.runner import DEFAULT_WORKERS
from kubefab.run import execute, report
from kubefab.run.session import Options

from .common import INVENTORY_HELP, STATE_HELP, load, names, number, user_errors

SELECT_HELP = {
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "act on these hosts only (repeat or comma-separate)",
    "only": "run only these phases (repeat or comma-separate)", "skip": "skip these phases (repeat or comma-separate)"}
BATCH_HELP = "join this many workers at once (default: worker_batch_size of the inventory)"
RUN_HELP = {"workers": f"hosts worked on at once (default {DEFAULT_WORKERS})",
            "verbose": "show every step of every host", "quiet": "show only problems and the summary",
            "ignore": "let this preflight check's errors pass (repeat or comma-separate; 'all' for every check but "
                      + ", ".join(c.name for c in CHECKS if c.not_ignorable) + ")"}
DRY_RUN_HELP = "gather facts, print the plan that would run (as cluster.plan does) and change nothing"
LIVE_HELP = ("read the hosts (facts) and the API server, and show what cluster.up would change: a diff of each file "
             "per host (secret files masked) and of each object; exit 0 and 'no changes', 2 when it would change "
             "something, 1 when a host or the API server could not be read or the inventory is wrong")


@task(iterable=["only", "skip", "host"], help={**SELECT_HELP, "batch": BATCH_HELP, "live": LIVE_HELP,
                                                "workers": RUN_HELP["workers"]})
def plan(c, inventory=None, state_dir=None, only=None, skip=None, host=None, batch=None, live=False, workers=None):
    """Show what cluster.up would do, per phase and host, offline; --live: what it would change on the cluster.

    --live only reads (facts, the files that differ, the API server) and its exit code tells a cron job or CI:
    0 "no changes", 2 changes (each shown as a diff, secret files masked), 1 an error."""
    if live:
        return _live(c, inventory, state_dir, only, skip, host, batch, workers)
    with user_errors():
        inv = load(c, inventory, state_dir)
        p = build(inv, prepare(inv), None, names(only), names(skip), names(host),
                  number(batch, "batch", 0, least=1))
        print(report.plan_text(p))


def _live(c, inventory, state_dir, only, skip, host, batch, workers):
    with user_errors(code=1):       # 2 is "changes" here
        options = Options(only=names(only), skip=names(skip), hosts=names(host), quiet=True,
                          workers=number(workers, "workers", DEFAULT_WORKERS, 1, code=1),
                          batch=number(batch, "batch", 0, 1, code=1))
        code = _interruptible(lambda: execute.live(load(c, inventory, state_dir), options))
    if code:
        raise Exit(code=code)


@task(iterable=["ignore", "host"], help={**{k: v for k, v in SELECT_HELP.items() if k not in ("only", "skip")},
                                        **RUN_HELP})
def preflight(c, inventory=None, state_dir=None, host=None, ignore=None, workers=None, verbose=False, quiet=False):
    """Gather facts and run the preflight checks on the hosts; changes nothing, exits 1 on errors."""
    with user_errors():
        options = Options(hosts=names(host), ignore=names(ignore), verbose=verbose, quiet=quiet,
                          workers=number(workers, "workers", DEFAULT_WORKERS, 1))
        code = _interruptible(lambda: execute.preflight(load(c, inventory, state_dir), options))
    if code:
        raise Exit(code=code)


@task(iterable=["only", "skip", "host", "ignore"], help={
    **SELECT_HELP, **RUN_HELP, "yes": "do not ask before changing hosts (needed without a terminal)",
    "batch": BATCH_HELP, "dry-run": DRY_RUN_HELP,
    "max-failed": "workers that may fail to join while the others go on (default 0: the first failure stops)"})
def up(c, inventory=None, state_dir=None, only=None, skip=None, host=None, ignore=None, workers=None, batch=None,
       max_failed=None, yes=False, verbose=False, quiet=False, dry_run=False):
    """Bring the cluster up: facts, preflight, then the plan's phases on every host (asks first unless --yes)."""
    with user_errors():
        options = Options(only=names(only), skip=names(skip), hosts=names(host), ignore=names(ignore),
                          workers=number(workers, "workers", DEFAULT_WORKERS, 1), batch=number(batch, "batch", 0, 1),
                          max_failed=number(max_failed, "max-failed", 0), yes=yes, verbose=verbose, quiet=quiet,
                          dry_run=dry_run)
        code = _interruptible(lambda: execute.up(load(c, inventory, state_dir), options))
    if code:
        raise Exit(code=code)


@task(iterable=["host", "only", "skip"], help={
    **SELECT_HELP, "host": "reset these hosts only, each drained and deleted through the API first (repeat or "
    "comma-separate)", "yes": "do not ask first (needed without a terminal)",
    "dry-run": "print the plan that would run (as cluster.plan does) and change nothing",
    **{k: RUN_HELP[k] for k in ("workers", "verbose", "quiet")}})
def reset(c, inventory=None, state_dir=None, host=None, only=None, skip=None, yes=False, workers=None,
          verbose=False, quiet=False, dry_run=False):
    """Reset the hosts as before cluster.up (workers first, control planes last); the local state dir is kept."""
    with user_errors():
        options = Options(only=names(only), skip=names(skip), hosts=names(host),
                          workers=number(workers, "workers", DEFAULT_WORKERS, 1), yes=yes, verbose=verbose,
                          quiet=quiet, dry_run=dry_run)
        code = _interruptible(lambda: execute.reset(load(c, inventory, state_dir), options))
    if code:
        raise Exit(code=code)


@task(iterable=["only", "skip"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "only": SELECT_HELP["only"], "skip": SELECT_HELP["skip"],
    "to": "the Kubernetes version to upgrade to (default: the inventory's kubernetes_version): one minor above "
          "the cluster's at most, or a newer patch of it",
    "batch": "upgrade this many workers at once (instead of --max-unavailable)",
    "max-unavailable": "the share of the workers upgraded at once, e.g. 25% (default 10%, at least one worker)",
    "drain-timeout": f"seconds the eviction of a worker's pods may take (default {DRAIN_TIMEOUT}); a budget that "
                     "blocks longer stops the run and uncordons the batch",
    "no-backup": "upgrade without the etcd snapshot it otherwise takes into <state dir>/backups before the first "
                 "control-plane change (needed where the control planes have no etcdctl)",
    "runtime": "also upgrade containerd on each node in its turn (the same order and batches), from where the "
               "install source has it (packages: the hosts' own sources; offline: the directory has none, so the "
               "installed containerd is only restarted)",
    "yes": "do not ask before changing hosts (needed without a terminal)", "dry-run": DRY_RUN_HELP,
    **{k: RUN_HELP[k] for k in ("workers", "verbose", "quiet")}})
def upgrade(c, inventory=None, state_dir=None, to=None, batch=None, max_unavailable=None, drain_timeout=None,
            only=None, skip=None, workers=None, no_backup=False, runtime=False, yes=False, verbose=False,
            quiet=False, dry_run=False):
    """Upgrade Kubernetes: an etcd backup, control planes one at a time, then the workers in batches, drained first."""
    with user_errors():
        if batch is not None and max_unavailable is not None:
            raise Exit("error: give --batch or --max-unavailable, not both", code=2)
        options = Options(only=names(only), skip=names(skip), workers=number(workers, "workers", DEFAULT_WORKERS, 1),
                          batch=number(batch, "batch", 0, 1), yes=yes, verbose=verbose, quiet=quiet, dry_run=dry_run,
                          drain_timeout=number(drain_timeout, "drain-timeout", DRAIN_TIMEOUT, 1))
        share = number(max_unavailable.removesuffix("%"), "max-unavailable", 0, 1) if max_unavailable else None
        if share is not None and share > 100:
            raise Exit(f"error: --max-unavailable {max_unavailable!r}: give a share of the workers up to 100%", code=2)
        inv = with_version(load(c, inventory, state_dir), to)
        code = _interruptible(lambda: execute.upgrade(inv, options, share or upgrading.DEFAULT_MAX_UNAVAILABLE,
                                                      backup=not no_backup, containerd=runtime))
    if code:
        raise Exit(code=code)


def with_version(inv, to):
    """`inv` with kubernetes_version `to` (a release like 1.34.1); `inv` itself without one."""
    if to is None:
        return inv
    try:
        bare = versions.bare(to)
    except ValueError:
        raise Exit(f"error: --to {to!r}: give a Kubernetes release such as 1.34.1", code=2) from None
    return dataclasses.replace(inv, cluster=dataclasses.replace(inv.cluster, kubernetes_version=bare))


def _interruptible(run):
    """The run's exit code; Ctrl-C outside the host work (which the runner handles) still ends with 130, not a
    traceback."""
    try:
        return run().code
    except KeyboardInterrupt:
        print("interrupted")
        return 130
