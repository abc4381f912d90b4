"""`invoke` in a checkout (Invoke's `tasks/` package layout): the tasks the `kubefab` command ships
(kubefab.tasks), and the development tools beside them.

The lab's tasks (`lab.*`) and the benchmarks (`bench.*`) are listed only in a checkout, where `lab/` and `bench/`
sit beside this package, and the lab itself is imported only when one of them runs.
"""

import sys
from pathlib import Path

from invoke import Collection

from kubefab.tasks import collection

ns = collection()
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
