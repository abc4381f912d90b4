"""`invoke cluster.status` and `cluster.kubeconfig`: the cluster as its API server reports it, and the
admin kubeconfig for the user. Both need only the local state directory (and, for status, the API
server's endpoint reachable from this machine, or a forward to it with --via)."""

from invoke import Exit, task

from kubefab import state
from kubefab.api import health, kube
from kubefab.pki import kubeconfig
from kubefab.run import execute
from kubefab.run.session import Options
from kubefab.state import kubeconfig_merge

from .common import INVENTORY_HELP, STATE_HELP, load, number, user_errors

VIA_HELP = "reach the API server through this local forward, HOST:PORT (e.g. an `ssh -L` tunnel)"


def _admin_conf(inv):
    state.check(inv)
    return kubeconfig.path(inv, kubeconfig.BY_FILE["admin.conf"])


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "via": VIA_HELP,
            "days": "warn about certificates expiring within this many days (default 30)",
            "timeout": "seconds to wait for the API server to be ready (default 30)"})
def status(c, inventory=None, state_dir=None, via=None, days=None, timeout=None):
    """Show nodes, control-plane components, the VIP's holder and haproxy's backends, certificates; exit 1 on a problem.

    With [cluster.ha] (keepalived or kube-vip) the control planes' facts are read over SSH for the VIP and haproxy."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        api = kube.connect(_admin_conf(inv), via=via)
        report = health.gather(api, inv, kube.wait_ready(api, number(timeout, "timeout", 30, 1)),
                               number(days, "days", 30), _balancer(inv))
        print(health.text(report))
    if report.problems:
        raise Exit(code=1)


def _balancer(inv):
    """With [cluster.ha] (not external): the control planes' facts, read over SSH, as a health.LoadBalancer."""
    if not inv.ha or inv.ha.mode == "external":
        return None
    outcome = execute.survey(inv, Options(quiet=True, hosts=tuple(h.name for h in inv.control_planes)))
    found = {r.host: getattr(r, "facts", None) for r in outcome.results}
    return health.load_balancer(inv, {h.name: found.get(h.name) for h in inv.control_planes})


@task(name="kubeconfig", help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
                              "output": "write the admin kubeconfig here (default ./<cluster>.conf); not with --merge",
                              "merge": "merge into your kubeconfig (KUBECONFIG, else ~/.kube/config) and switch to it",
                              "context": "name of the context, cluster and user entries (default: the cluster's name)"})
def kubeconfig_file(c, inventory=None, state_dir=None, output=None, merge=False, context=None):
    """Write the cluster's admin kubeconfig (0600) to a file, or merge it into your kubeconfig."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        source = _admin_conf(inv)
        if not source.is_file():
            raise Exit(f"error: {source}: no admin kubeconfig yet — run `invoke cluster.plan` first", code=2)
        if merge and output:
            raise Exit("error: --merge writes to your kubeconfig; leave out --output, or set KUBECONFIG", code=2)
        name = context or inv.cluster.name
        text = source.read_text()
        if merge:
            path = kubeconfig_merge.default_path()
            what = kubeconfig_merge.merge_into(path, text, name)
            print(f"{path}: context {name!r} {what}; current context is now {name!r}")
        else:
            path = output or f"{inv.cluster.name}.conf"
            changed = kubeconfig_merge.export(path, text, context)
            print(f"{path}: {'written' if changed else 'unchanged'} (0600); use it with "
                  f"`kubectl --kubeconfig {path} get nodes`")
