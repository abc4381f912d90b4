"""kubefab's command line (Invoke's `tasks/` package layout): thin wiring over the kubefab package.

The lab's tasks (`lab.*`) and the benchmarks (`bench.*`) are development tools: they are listed only in a
checkout, where `lab/` and `bench/` sit beside this package, and the lab itself is imported only when one of them runs.
"""

import sys
from pathlib import Path

from invoke import Collection

from . import cluster, cluster_api, node, pki, vagrant

ns = Collection(cluster, node, pki, vagrant)
for api_task in (cluster_api.status, cluster_api.kubeconfig_file):  # cluster.* tasks that talk to the API server
    ns.collections["cluster"].add_task(api_task)
CHECKOUT = Path(__file__).resolve().parent.parent
if (CHECKOUT / "lab" / "__init__.py").exists():
    # Invoke puts tasks/ itself on sys.path, so this module is not named `lab` (it would hide the lab
    # package), and the checkout goes on the path so `import lab` finds the package with any launcher.
    if str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))
    from . import lab_tasks

    ns.add_collection(Collection.from_module(lab_tasks, name="lab"))
if (CHECKOUT / "bench").is_dir():
    from . import bench_tasks  # named as lab_tasks is, so no module of tasks/ shadows a directory of the checkout

    ns.add_collection(Collection.from_module(bench_tasks, name="bench"))
ns.configure({"kubefab": {"inventory": "inventory.toml", "state_dir": None}})
