"""kubefab's command line (Invoke's `tasks/` package layout): thin wiring over the kubefab package.

The lab's tasks (`lab.*`) are development tools: they are listed only in a checkout, where the `lab`
package sits beside this one, and the lab itself is imported only when one of them runs.
"""

from pathlib import Path

from invoke import Collection

from . import cluster, pki, vagrant

ns = Collection(cluster, pki, vagrant)
if (Path(__file__).resolve().parent.parent / "lab" / "__init__.py").exists():
    from . import lab

    ns.add_collection(lab)
ns.configure({"kubefab": {"inventory": "inventory.toml", "state_dir": None}})
