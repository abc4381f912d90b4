"""`invoke cluster.*`: plan (offline), preflight (facts and checks), up (the phases on the hosts) and reset."""

from invoke import Exit, task

from kubefab.plan import build, prepare
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


@task(iterable=["only", "skip", "host"], help={**SELECT_HELP, "batch": BATCH_HELP})
def plan(c, inventory=None, state_dir=None, only=None, skip=None, host=None, batch=None):
    """Show what cluster.up would do, per phase and host, without touching any host."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        p = build(inv, prepare(inv), None, names(only), names(skip), names(host),
                  number(batch, "batch", 0, least=1))
        print(report.plan_text(p))


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


def _interruptible(run):
    """The run's exit code; Ctrl-C outside the host work (which the runner handles) still ends with 130, not a
    traceback."""
    try:
        return run().code
    except KeyboardInterrupt:
        print("interrupted")
        return 130
