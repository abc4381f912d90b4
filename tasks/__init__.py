"""kubefab's command line (Invoke's `tasks/` package layout): thin wiring over the kubefab package.

The lab's tasks (`lab.*`) are development tools: they are listed only in a checkout, where the `lab`
package sits beside this one, and the lab itself is imported only when one of them runs.
"""

import sys
from pathlib import Path

from invoke import Collection

from . import cluster, pki

ns = Collection(cluster, pki)
CHECKOUT = Path(__file__).resolve().parent.parent
if (CHECKOUT / "lab" / "__init__.py").exists():
    # Invoke puts tasks/ itself on sys.path, so this module is not named `lab` (it would hide the lab
    # package), and the checkout goes on the path so `import lab` finds the package with any launcher.
    if str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))
    from . import lab_tasks

    ns.add_collection(Collection.from_module(lab_tasks, name="lab"))
ns.configure({"kubefab": {"inventory": "inventory.toml", "state_dir": None}})
