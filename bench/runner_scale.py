"""How the SSH runner scales: facts and push on N plain lab hosts, wall time and client CPU per host.

    python bench/runner_scale.py [--hosts 50,200] [--workers 32]     (root: it builds labs)

For each size: cluster.preflight (facts over one connection per host, then the checks) and the push
phase, first run (every file changed) and second run (every file unchanged). Client CPU is this
process's CPU time: on real fleets the hosts have their own CPUs and it is what limits scale.
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubefab import inventory, plan, up  # noqa: E402
from lab import Lab  # noqa: E402


def measured(fn):
    wall, cpu = time.monotonic(), time.process_time()
    code = fn()
    return code, time.monotonic() - wall, time.process_time() - cpu


def stage(inv, workers, **options):
    def run():
        return up.Run(inv, up.Options(workers=workers, yes=True, **options), console=io.StringIO()).up()
    return run


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--hosts", default="50,200", help="comma-separated fleet sizes")
    args.add_argument("--workers", type=int, default=32)
    opts = args.parse_args()
    print(f"{'hosts':>6} {'what':<22} {'wall s':>7} {'CPU s':>7} {'CPU ms/host':>12}")
    for size in (int(n) for n in opts.hosts.split(",")):
        with Lab.up(hosts=size, control_planes=3, flavour="plain") as lab, tempfile.TemporaryDirectory() as tmp:
            inv = inventory.load(lab.inventory, state_dir=Path(tmp) / "state")
            plan.prepare(inv)
            runs = (("facts + preflight", dict(only=("facts", "preflight"))),
                    ("push, first", dict(only=("push",))), ("push, second", dict(only=("push",))))
            for what, options in runs:
                code, wall, cpu = measured(stage(inv, opts.workers, **options))
                print(f"{size:>6} {what:<22} {wall:>7.2f} {cpu:>7.2f} {1000 * cpu / size:>12.1f}"
                      + ("" if code == 0 else f"  (exit {code})"))


if __name__ == "__main__":
    main()
