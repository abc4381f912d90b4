"""`invoke node.*`: add hosts of the inventory to the running cluster, or take one out."""

from invoke import Exit, task

from kubefab.api.drain import DRAIN_TIMEOUT
from kubefab.remote.runner import DEFAULT_WORKERS
from kubefab.run import execute
from kubefab.run.session import Options

from .cluster import DRY_RUN_HELP, RUN_HELP, SELECT_HELP, _interruptible
from .common import INVENTORY_HELP, STATE_HELP, load, names, number, user_errors


@task(iterable=["host", "ignore", "only", "skip"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "the host to join (repeat or comma-separate)",
    "only": SELECT_HELP["only"], "skip": SELECT_HELP["skip"], "dry-run": DRY_RUN_HELP,
    "yes": "do not ask before changing hosts (needed without a terminal)", **RUN_HELP})
def join(c, inventory=None, state_dir=None, host=None, only=None, skip=None, ignore=None, yes=False,
         workers=None, verbose=False, quiet=False, dry_run=False):
    """Join hosts to the cluster: facts, preflight, runtime and push on them only, then kubeadm join with a fresh token."""
    with user_errors():
        options = Options(only=names(only), skip=names(skip), hosts=names(host), ignore=names(ignore),
                          workers=number(workers, "workers", DEFAULT_WORKERS, 1), yes=yes, verbose=verbose, quiet=quiet, dry_run=dry_run)
        code = _interruptible(lambda: execute.join(load(c, inventory, state_dir), options))
    if code:
        raise Exit(code=code)


@task(iterable=["only", "skip"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "the host to take out of the cluster",
    "unreachable": "the host is dead: no SSH; its Node and etcd member go, and the run says what stays on it",
    "drain-timeout": f"seconds the eviction of the node's pods may take (default {DRAIN_TIMEOUT})",
    "only": SELECT_HELP["only"], "skip": SELECT_HELP["skip"],
    "dry-run": "print the plan that would run (as cluster.plan does) and change nothing",
    "yes": "do not ask first (needed without a terminal)", **{k: RUN_HELP[k] for k in ("verbose", "quiet")}})
def remove(c, inventory=None, state_dir=None, host=None, unreachable=False, drain_timeout=None, only=None,
           skip=None, yes=False, verbose=False, quiet=False, dry_run=False):
    """Take a host out of the cluster: drain, kubeadm reset and cleanup, Node and etcd member deleted (quorum kept)."""
    with user_errors():
        options = Options(only=names(only), skip=names(skip), hosts=names((host,) if host else ()), yes=yes,
                          verbose=verbose, quiet=quiet, dry_run=dry_run,
                          drain_timeout=number(drain_timeout, "drain-timeout", DRAIN_TIMEOUT, 1))
        code = _interruptible(lambda: execute.remove(load(c, inventory, state_dir), options, unreachable))
    if code:
        raise Exit(code=code)
