"""kubefab's command line: the tasks of the `kubefab` command and, in a checkout, of `invoke` (thin wiring over the
kubefab package; a task's signature is its options, its docstring its help)."""

from invoke import Collection

from . import addons, cluster, cluster_api, etcd, node, pki, state, vagrant


def collection():
    """A new collection of kubefab's tasks, with its configuration defaults (invoke.yaml and INVOKE_KUBEFAB_*)."""
    ns = Collection(addons, cluster, etcd, node, pki, state, vagrant)
    for api_task in (cluster_api.status, cluster_api.kubeconfig_file):  # cluster.* tasks that talk to the API server
        ns.collections["cluster"].add_task(api_task)
    ns.configure({"kubefab": {"inventory": "inventory.toml", "state_dir": None}})
    return ns
