"""`python -m lab setup`: install the Debian packages labs need and build the lab's package repository (idempotent;
what `invoke lab.setup` runs)."""

import sys

from . import LabError, packages, repo


def main(argv):
    if argv != ["setup"]:
        print("usage: python -m lab setup   (install the Debian packages the lab needs; a no-op when present)",
              file=sys.stderr)
        return 2
    try:
        installed = packages.ensure()
        root = repo.ensure()
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"lab set-up: installed {' '.join(installed)}" if installed else "lab set-up: every package is present")
    print(f"lab set-up: package repository in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
