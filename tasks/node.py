"""`invoke node.*`: add hosts of the inventory to the running cluster."""

from invoke import Exit, task

from kubefab.runner import DEFAULT_WORKERS
from kubefab.up import Options, Run

from .cluster import RUN_HELP, _interruptible
from .common import INVENTORY_HELP, STATE_HELP, load, names, number, user_errors


@task(iterable=["host", "ignore"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "the host to join (repeat or comma-separate)",
    "yes": "do not ask before changing hosts (needed without a terminal)", **RUN_HELP})
def join(c, inventory=None, state_dir=None, host=None, ignore=None, yes=False, workers=None, verbose=False,
         quiet=False):
    """Join hosts to the cluster: facts, preflight, runtime and push on them only, then kubeadm join with a fresh token."""
    with user_errors():
        options = Options(hosts=names(host), ignore=names(ignore), yes=yes, verbose=verbose, quiet=quiet,
                          workers=number(workers, "workers", DEFAULT_WORKERS, 1))
        code = _interruptible(Run(load(c, inventory, state_dir), options).join)
    if code:
        raise Exit(code=code)
