"""How `cluster.plan` scales with the number of hosts, as ratios measured in one run.

    python bench/plan_scale.py [--hosts 3,50,200]

For each size: the first plan (PKI, kubeconfigs, token, every host's files), a re-plan that changes
nothing, the marginal cost of one more host on a re-plan (against the smallest size), and peak memory.
The target: the marginal cost per host stays flat as the fleet grows (the re-plan is linear).
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

from kubefab import inventory, plan

CLUSTER = '[cluster]\nname = "bench"\nkubernetes_version = "1.33.5"\ncontrol_plane_endpoint = "10.9.0.1:6443"\n'


def inventory_of(size, base):
    """3 control-plane nodes and size - 3 workers on 10.1.0.0/16."""
    hosts = [(f"cp-{i}" if i <= 3 else f"w-{i - 3}", "control-plane" if i <= 3 else "worker") for i in range(1, size + 1)]
    tables = "".join(f'[hosts.{name}]\naddress = "10.1.{i // 250}.{i % 250 + 1}"\nroles = ["{role}"]\n'
                     for i, (name, role) in enumerate(hosts))
    path = base / f"inventory-{size}.toml"
    path.write_text(CLUSTER + tables)
    return inventory.load(path)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--hosts", default="3,50,200", help="comma-separated fleet sizes")
    sizes = sorted(int(n) for n in args.parse_args().hosts.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            inv = inventory_of(size, Path(tmp))
            first = timed(lambda: plan.build(inv, plan.prepare(inv)))
            again = timed(lambda: plan.build(inv, plan.prepare(inv)))
            rows.append((size, first, again, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    small = rows[0]
    print(f"{'hosts':>6} {'first s':>8} {'re-plan s':>10} {'marginal ms/host':>17} {'peak MB':>8}")
    for size, first, again, peak in rows:
        marginal = f"{1000 * (again - small[2]) / (size - small[0]):>17.2f}" if size > small[0] else f"{'-':>17}"
        print(f"{size:>6} {first:>8.2f} {again:>10.2f} {marginal} {peak:>8.0f}")


if __name__ == "__main__":
    main()
