"""`invoke pki.*`: the cluster's certificates, read from the local state directory."""

from invoke import Exit, task

from kubefab import bundle, report

from .common import INVENTORY_HELP, STATE_HELP, load, number, user_errors


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
            "days": "warn about certificates expiring within this many days (default 30)"})
def show(c, inventory=None, state_dir=None, days=None):
    """List every certificate with subject, issuer, SANs and expiry, soonest first; exit 1 when one cannot be read."""
    with user_errors():
        warn = number(days, "days", 30)
        infos, unreadable = bundle.survey(load(c, inventory, state_dir), warn)
        print(report.certs(infos, warn_days=warn, unreadable=unreadable))
    if unreadable:
        raise Exit(code=1)
