"""`invoke pki.*`: the cluster's certificates, read from the local state directory."""

from invoke import task

from kubefab import bundle, report

from .common import INVENTORY_HELP, STATE_HELP, load, number, user_errors


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
            "days": "warn about certificates expiring within this many days (default 30)"})
def show(c, inventory=None, state_dir=None, days=None):
    """List every certificate with subject, issuer, SANs and expiry, soonest first."""
    with user_errors():
        print(report.certs(bundle.certificates(load(c, inventory, state_dir)), warn_days=number(days, "days", 30)))
