"""`invoke pki.*`: the cluster's certificates, read from the local state directory, and their renewal."""

from invoke import Exit, task

from kubefab.remote.runner import DEFAULT_WORKERS
from kubefab.run import execute, report
from kubefab.run.session import Options
from kubefab.state import bundle

from .cluster import RUN_HELP, _interruptible
from .common import INVENTORY_HELP, STATE_HELP, load, names, number, user_errors


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
            "days": "warn about certificates expiring within this many days (default 30)",
            "nodes": "also read each node's kubelet client certificate over SSH (the facts probe, read only); "
                     "exit 1 when a host cannot be reached"})
def show(c, inventory=None, state_dir=None, days=None, nodes=False):
    """List every certificate with subject, issuer, SANs and expiry, soonest first; exit 1 when one cannot be read."""
    with user_errors():
        warn = number(days, "days", 30)
        inv = load(c, inventory, state_dir)
        infos, unreadable = bundle.survey(inv, warn)
        print(report.certs(infos, warn_days=warn, unreadable=unreadable))
        if nodes:
            outcome = execute.survey(inv, Options(quiet=True))
            print(report.kubelet_certs({r.host: getattr(r, "facts", None) for r in outcome.results}, warn_days=warn))
    if unreadable or (nodes and outcome.code):
        raise Exit(code=1)


@task(iterable=["host", "add_san"], help={
    "inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
    "days": "renew what expires within this many days (default 0: every leaf certificate and kubeconfig)",
    "add-san": "add this DNS name or IP address to the apiserver certificate, keeping the others (repeatable)",
    "host": "push and restart on these control planes only (repeat or comma-separate)",
    "yes": "do not ask before restarting components (needed without a terminal)",
    "dry-run": "gather facts, print what would be reissued and the plan, and change nothing",
    **{k: RUN_HELP[k] for k in ("workers", "verbose", "quiet")}})
def renew(c, inventory=None, state_dir=None, days=None, add_san=None, host=None, yes=False, workers=None,
          verbose=False, quiet=False, dry_run=False):
    """Reissue leaf certificates and kubeconfigs from the same CAs; push them, restart control planes one by one."""
    with user_errors():
        options = Options(hosts=names(host), workers=number(workers, "workers", DEFAULT_WORKERS, 1), yes=yes,
                          verbose=verbose, quiet=quiet, dry_run=dry_run)
        inv = load(c, inventory, state_dir)
        code = _interruptible(lambda: execute.renew(inv, options, number(days, "days", 0), names(add_san)))
    if code:
        raise Exit(code=code)
