"""kubefab's command line (Invoke's `tasks/` package layout): thin wiring over the kubefab package.

The lab's tasks (`lab.*`) and the benchmarks (`bench.*`) are development tools: they are listed only in a
checkout, where `lab/` and `bench/` sit beside this package, and the lab itself is imported only when one of them runs.
"""

from pathlib import Path

from invoke import Collection

from . import cluster, pki

ns = Collection(cluster, pki)
if (Path(__file__).resolve().parent.parent / "lab" / "__init__.py").exists():
    from . import lab

    ns.add_collection(lab)
if (Path(__file__).resolve().parent.parent / "bench").is_dir():
    from . import bench

    ns.add_collection(bench)
ns.configure({"kubefab": {"inventory": "inventory.toml", "state_dir": None}})
