"""kubefab's command line: thin Invoke wiring over the kubefab package."""

from contextlib import contextmanager

from invoke import Collection, Exit, task

from kubefab import inventory, pki, plan as planning, report
from kubefab.errors import KubefabError
from tests.lab import tasks as lab_tasks

INVENTORY_HELP = "inventory file (default: inventory.toml, or kubefab.inventory in invoke.yaml)"
STATE_HELP = "state directory holding the PKI and rendered files (default: .kubefab/<cluster> next to the inventory)"


@contextmanager
def user_errors():
    """A user's mistake ends the task with its message and exit code 2, never a traceback."""
    try:
        yield
    except KubefabError as e:
        raise Exit(f"error: {e}", code=2)


def load(c, inventory_path, state_dir):
    cfg = c.config.kubefab
    return inventory.load(inventory_path or cfg.inventory, state_dir or cfg.state_dir)


def names(value):
    return tuple(n for part in value or () for n in part.split(",") if n)


@task(iterable=["only", "skip", "host"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "host": "show only this host (repeat or comma-separate)",
    "only": "run only these phases (repeat or comma-separate)", "skip": "skip these phases (repeat or comma-separate)"})
def plan(c, inventory=None, state_dir=None, only=None, skip=None, host=None):
    """Show what cluster.up would do, per phase and host, without touching any host."""
    with user_errors():
        p = planning.build(load(c, inventory, state_dir), names(only), names(skip), names(host))
        print(report.plan(p))


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
            "days": "warn about certificates expiring within this many days (default 30)"})
def show(c, inventory=None, state_dir=None, days=30):
    """List every certificate with subject, issuer, SANs and expiry, soonest first."""
    with user_errors():
        print(report.certs(pki.certificates(load(c, inventory, state_dir)), warn_days=int(days)))


cluster = Collection("cluster", plan)
pki_tasks = Collection("pki", show)
ns = Collection(cluster, pki_tasks, lab_tasks.ns)
ns.configure({"kubefab": {"inventory": "inventory.toml", "state_dir": None}})
