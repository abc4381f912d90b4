"""How `cluster.plan` scales with the number of hosts, as ratios measured in one run.

    python bench/plan_scale.py [--hosts 3,50,200] [--runs 3] [--smoke] [--out DIR]

For each size: the first plan (PKI, kubeconfigs, token, every host's files) in a fresh state dir, a re-plan that
changes nothing, the marginal cost of one more host on a re-plan (wall and CPU, against the smallest size), the
re-plan's share of the first plan, and peak memory. The target: the marginal cost per host stays flat as the fleet
grows (the re-plan is linear).
"""

import tempfile
from pathlib import Path

import common
from kubefab import inventory, plan

CLUSTER = '[cluster]\nname = "bench"\nkubernetes_version = "1.33.5"\ncontrol_plane_endpoint = "10.9.0.1:6443"\n'
SMOKE_HOSTS = "3,4"


def inventory_of(size, base):
    """3 control-plane nodes and size - 3 workers on 10.1.0.0/16, its state dir in `base`."""
    hosts = [(f"cp-{i}", "control-plane") for i in range(1, 4)] + [(f"w-{i}", "worker") for i in range(1, size - 2)]
    tables = "".join(f'[hosts.{name}]\naddress = "10.1.{i // 250}.{i % 250 + 1}"\nroles = ["{role}"]\n'
                     for i, (name, role) in enumerate(hosts))
    path = base / f"inventory-{size}.toml"
    path.write_text(CLUSTER + tables)
    return inventory.load(path, state_dir=base / "state")


def one_run(size):
    """(first plan, re-plan) Samples for `size` hosts in a fresh state dir."""
    with tempfile.TemporaryDirectory() as tmp:
        inv = inventory_of(size, Path(tmp))
        first, _ = common.measure(lambda: plan.build(inv, plan.prepare(inv)))
        again, _ = common.measure(lambda: plan.build(inv, plan.prepare(inv)))
    return first, again


def _per_host(seconds, hosts):
    return 1000 * seconds / hosts if hosts else None


def main(argv=None):
    args = common.parser(__doc__)
    args.add_argument("--hosts", default="3,50,200", help="comma-separated fleet sizes, at least 3 (default 3,50,200)")
    opts = common.options(args, argv, smoke=[("hosts", SMOKE_HOSTS)])
    sizes = sorted({int(n) for n in opts.hosts.split(",")})
    if sizes[0] < 3:
        args.error(f"--hosts {opts.hosts}: every size needs at least 3 hosts (the 3 control-plane nodes)")
    rows = []
    for size in sizes:
        runs = [one_run(size) for _ in range(opts.runs)]
        rows.append({"hosts": size, "first": common.median(r[0] for r in runs),
                     "replan": common.median(r[1] for r in runs)})
    small = rows[0]
    for row in rows:
        extra = row["hosts"] - small["hosts"]
        row["marginal_ms_per_host"] = _per_host(row["replan"].wall_s - small["replan"].wall_s, extra)
        row["marginal_cpu_ms_per_host"] = _per_host(row["replan"].cpu_s - small["replan"].cpu_s, extra)
        row["replan_over_first"] = common.ratio(row["replan"].wall_s, row["first"].wall_s)
    print(common.table(
        ("hosts", "first s", "first cpu s", "re-plan s", "re-plan cpu s", "re-plan/first", "marginal ms/host",
         "marginal cpu ms/host", "peak MB"),
        [(r["hosts"], r["first"].wall_s, r["first"].cpu_s, r["replan"].wall_s, r["replan"].cpu_s,
          r["replan_over_first"], r["marginal_ms_per_host"], r["marginal_cpu_ms_per_host"],
          max(r["first"].peak_rss_mb, r["replan"].peak_rss_mb)) for r in rows]))
    path = common.write("plan_scale", opts, {"hosts": sizes, "control_planes": 3}, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
