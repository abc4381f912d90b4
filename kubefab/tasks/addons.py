"""`invoke addons.remove NAME` and `addons.ui-token`: the add-ons kubefab installed ([addons] in the inventory),
through the API server with the state dir's admin kubeconfig."""

from invoke import Exit, task

from kubefab import state
from kubefab.api import addons, kube
from kubefab.components import addons as catalogue
from kubefab.digits import go_duration_ns
from kubefab.pki import kubeconfig

from .common import INVENTORY_HELP, STATE_HELP, load, user_errors

VIA_HELP = "reach the API server through this local forward, HOST:PORT (e.g. an `ssh -L` tunnel)"
NS_PER_SECOND = 10 ** 9


def _api(inv, via):
    state.check(inv)
    return kube.connect(kubeconfig.path(inv, kubeconfig.BY_FILE["admin.conf"]), via=via)


@task(help={"name": f"the add-on: {', '.join(a.name for a in (*catalogue.ADDONS, catalogue.SAMPLE))} (its "
                    "[addons] key, or sample)",
            "dry-run": "list what would be deleted; delete nothing",
            "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "via": VIA_HELP})
def remove(c, name, dry_run=False, inventory=None, state_dir=None, via=None):
    """Delete exactly what kubefab applied for add-on NAME (recorded in the state dir), and nothing else."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        gone = addons.remove(_api(inv, via), inv, name, dry_run=dry_run)
        said = f"would be removed: {len(gone)} objects would be deleted" if dry_run else \
            f"removed: {len(gone)} objects deleted"
        print(f"add-on {name!r} {said}"
              + "".join(f"\n  {kind} {f'{ns}/' if ns else ''}{obj}" for kind, ns, obj in gone))
        if not dry_run and name in {a.name for a in catalogue.enabled(inv)}:
            print(f"note: [addons] in {inv.path} still turns {name!r} on — the next cluster.up installs it again "
                  "unless you turn it off there")


@task(help={"dry-run": "list what would be applied; change nothing", "inventory": INVENTORY_HELP,
            "state-dir": STATE_HELP, "via": VIA_HELP})
def sample(c, dry_run=False, inventory=None, state_dir=None, via=None):
    """Put a sample echo server behind the gateway's HTTPS listener (an HTTPRoute); `addons.remove sample` undoes it."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        done = addons.sample(_api(inv, via), inv, dry_run=dry_run)
        if dry_run:
            print(f"sample would be applied: {len(done.written)} of {len(done.applied)} objects would be written"
                  + "".join(f"\n  {a} (dry run)" for a in done.applied))
            return
        print(f"sample: {len(done.written)} of {len(done.applied)} objects written"
              + "".join(f"\n  {a}" for a in done.applied))
        print(addons.sample_hint(inv))


@task(name="ui-token", help={"ttl": "how long the token lives, a Go duration (default 1h, at least 10m)",
                             "inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "via": VIA_HELP})
def ui_token(c, ttl="1h", inventory=None, state_dir=None, via=None):
    """Print a short-lived login token for the UI's ServiceAccount (TokenRequest API; nothing stored) and its URL."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        if inv.addons.ui == "none":
            raise Exit(f"error: {inv.path}: [addons] ui is 'none' — set ui = \"headlamp\" and run cluster.up first",
                       code=2)
        ns = go_duration_ns(ttl)
        if ns is None or ns <= 0:
            raise Exit(f"error: --ttl {ttl!r}: give a Go duration such as 30m or 2h", code=2)
        token, expires = addons.ui_token(_api(inv, via), ns // NS_PER_SECOND)
        print(token.reveal())
        print(f"# expires {expires}; log in to the UI with it: {addons.ui_url(inv)}")
