"""`invoke cluster.*`: plan (offline), preflight (facts and checks), up (the phases on the hosts) and reset."""

from invoke import Exit, task

from kubefab import plan as planning, report
from kubefab.checks import CHECKS
from kubefab.runner import DEFAULT_WORKERS
from kubefab.up import Options, Run

from .common import INVENTORY_HELP, STATE_HELP, load, names, user_errors

SELECT_HELP = {
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "act on these hosts only (repeat or comma-separate)",
    "only": "run only these phases (repeat or comma-separate)", "skip": "skip these phases (repeat or comma-separate)"}
BATCH_HELP = "join this many workers at once (default: worker_batch_size of the inventory)"
RUN_HELP = {"workers": f"hosts worked on at once (default {DEFAULT_WORKERS})",
            "verbose": "show every step of every host", "quiet": "show only problems and the summary",
            "ignore": "let this preflight check's errors pass (repeat or comma-separate; 'all' for every check but "
                      + ", ".join(c.name for c in CHECKS if c.not_ignorable) + ")"}


@task(iterable=["only", "skip", "host"], help={**SELECT_HELP, "batch": BATCH_HELP})
def plan(c, inventory=None, state_dir=None, only=None, skip=None, host=None, batch=0):
    """Show what cluster.up would do, per phase and host, without touching any host."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        p = planning.build(inv, planning.prepare(inv), None, names(only), names(skip), names(host), int(batch))
        print(report.plan_text(p))


@task(iterable=["ignore", "host"], help={**{k: v for k, v in SELECT_HELP.items() if k not in ("only", "skip")},
                                        **RUN_HELP})
def preflight(c, inventory=None, state_dir=None, host=None, ignore=None, workers=DEFAULT_WORKERS, verbose=False,
              quiet=False):
    """Gather facts and run the preflight checks on the hosts; changes nothing, exits 1 on errors."""
    with user_errors():
        options = Options(hosts=names(host), ignore=names(ignore), workers=int(workers), verbose=verbose, quiet=quiet)
        code = _interruptible(Run(load(c, inventory, state_dir), options).preflight)
    if code:
        raise Exit(code=code)


@task(iterable=["only", "skip", "host", "ignore"], help={
    **SELECT_HELP, **RUN_HELP, "yes": "do not ask before changing hosts (needed without a terminal)",
    "batch": BATCH_HELP,
    "max-failed": "workers that may fail to join while the others go on (default 0: the first failure stops)"})
def up(c, inventory=None, state_dir=None, only=None, skip=None, host=None, ignore=None, workers=DEFAULT_WORKERS,
       batch=0, max_failed=0, yes=False, verbose=False, quiet=False):
    """Bring the cluster up: facts, preflight, then the plan's phases on every host (asks first unless --yes)."""
    with user_errors():
        options = Options(only=names(only), skip=names(skip), hosts=names(host), ignore=names(ignore),
                          workers=int(workers), batch=int(batch), max_failed=int(max_failed), yes=yes,
                          verbose=verbose, quiet=quiet)
        code = _interruptible(Run(load(c, inventory, state_dir), options).up)
    if code:
        raise Exit(code=code)


@task(iterable=["host"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "reset these hosts only, each drained and deleted "
    "through the API first (repeat or comma-separate)", "yes": "do not ask first (needed without a terminal)",
    **{k: RUN_HELP[k] for k in ("workers", "verbose", "quiet")}})
def reset(c, inventory=None, state_dir=None, host=None, yes=False, workers=DEFAULT_WORKERS, verbose=False,
          quiet=False):
    """Reset the hosts as before cluster.up (workers first, control planes last); the local state dir is kept."""
    with user_errors():
        options = Options(hosts=names(host), workers=int(workers), yes=yes, verbose=verbose, quiet=quiet)
        code = _interruptible(Run(load(c, inventory, state_dir), options).reset)
    if code:
        raise Exit(code=code)


def _interruptible(run):
    """Ctrl-C outside the host work (which the runner handles) still ends with 130, not a traceback."""
    try:
        return run()
    except KeyboardInterrupt:
        print("interrupted")
        return 130
