"""`invoke cluster.*`: plan (and, with the runner, the tasks that act on hosts)."""

from invoke import task

from kubefab import plan as planning, report

from .common import INVENTORY_HELP, STATE_HELP, load, names, user_errors


@task(iterable=["only", "skip", "host"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "show only this host (repeat or comma-separate)",
    "only": "run only these phases (repeat or comma-separate)", "skip": "skip these phases (repeat or comma-separate)"})
def plan(c, inventory=None, state_dir=None, only=None, skip=None, host=None):
    """Show what cluster.up would do, per phase and host, without touching any host."""
    with user_errors():
        p = planning.build(load(c, inventory, state_dir), names(only), names(skip), names(host))
        print(report.plan(p))
