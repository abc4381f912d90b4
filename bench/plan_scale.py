"""How `cluster.plan` scales with the number of hosts, as ratios measured in one run.

    python bench/plan_scale.py [--hosts 1000,5000] [--runs 3] [--smoke] [--out DIR]

Each measurement is what `invoke cluster.plan` does: load the inventory, prepare the bundle (PKI, kubeconfigs,
token, every host's files), build the plan and print it as text. For each size: the first plan in a fresh state
dir, a re-plan that changes nothing, the marginal cost of one more host on a re-plan (wall and CPU, against the
smallest size), the re-plan's share of the first plan, and peak memory against the smallest size's. The targets
(issue 15): a linear plan, so the largest fleet's peak memory is at most 5x the smallest's and under 400 MB, and
its re-plan takes under 15 s.
"""

import tempfile
from pathlib import Path

import common
from kubefab import inventory, plan
from kubefab.run import report

CLUSTER = '[cluster]\nname = "bench"\nkubernetes_version = "1.33.5"\ncontrol_plane_endpoint = "10.9.0.1:6443"\n'
SMOKE_HOSTS = "3,4"
PEAK_RATIO, PEAK_MB, REPLAN_S = 5, 400, 15


def inventory_file(size, base):
    """An inventory of 3 control-plane nodes and size - 3 workers on 10.1.0.0/16, written into `base`."""
    hosts = [(f"cp-{i}", "control-plane") for i in range(1, 4)] + [(f"w-{i}", "worker") for i in range(1, size - 2)]
    tables = "".join(f'[hosts.{name}]\naddress = "10.1.{i // 250}.{i % 250 + 1}"\nroles = ["{role}"]\n'
                     for i, (name, role) in enumerate(hosts))
    path = base / f"inventory-{size}.toml"
    path.write_text(CLUSTER + tables)
    return path


def cluster_plan(path, state_dir):
    """The plan's text, made as `invoke cluster.plan -i PATH --state-dir STATE_DIR` makes it."""
    inv = inventory.load(path, state_dir=state_dir)
    return report.plan_text(plan.build(inv, plan.prepare(inv)))


def one_run(size):
    """(first plan, re-plan) Samples for `size` hosts in a fresh state dir."""
    with tempfile.TemporaryDirectory() as tmp:
        path = inventory_file(size, Path(tmp))
        first, _ = common.measure(lambda: cluster_plan(path, Path(tmp) / "state"))
        again, _ = common.measure(lambda: cluster_plan(path, Path(tmp) / "state"))
    return first, again


def _per_host(seconds, hosts):
    return 1000 * seconds / hosts if hosts else None


def _peak(row):
    return max(row["first"].peak_rss_mb, row["replan"].peak_rss_mb)


def verdicts(rows):
    """The targets, each as (what, measured, target, met), for the largest size against the smallest."""
    small, large = rows[0], rows[-1]
    ratio = common.ratio(_peak(large), _peak(small))
    return (
        (f"peak memory at {large['hosts']} hosts over {small['hosts']}", ratio, f"<= {PEAK_RATIO}",
         ratio is not None and ratio <= PEAK_RATIO),
        (f"peak memory at {large['hosts']} hosts, MB", _peak(large), f"< {PEAK_MB}", _peak(large) < PEAK_MB),
        (f"re-plan of {large['hosts']} hosts, s", large["replan"].wall_s, f"< {REPLAN_S}",
         large["replan"].wall_s < REPLAN_S),
    )


def main(argv=None):
    args = common.parser(__doc__)
    args.add_argument("--hosts", default="1000,5000", help="comma-separated fleet sizes, at least 3 "
                                                           "(default 1000,5000)")
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
        row["peak_rss_mb"] = _peak(row)
        row["peak_over_smallest"] = common.ratio(_peak(row), _peak(small))
    print(common.table(
        ("hosts", "first s", "first cpu s", "re-plan s", "re-plan cpu s", "re-plan/first", "marginal ms/host",
         "marginal cpu ms/host", "peak MB", "peak/smallest"),
        [(r["hosts"], r["first"].wall_s, r["first"].cpu_s, r["replan"].wall_s, r["replan"].cpu_s,
          r["replan_over_first"], r["marginal_ms_per_host"], r["marginal_cpu_ms_per_host"], r["peak_rss_mb"],
          r["peak_over_smallest"]) for r in rows]))
    checks = verdicts(rows)
    notes = [f"{what}: {'-' if value is None else f'{value:.2f}'} (target {target}): {'met' if met else 'MISSED'}"
             for what, value, target, met in checks]
    print("\n".join(notes))
    path = common.write("plan_scale", opts, {"hosts": sizes, "control_planes": 3}, rows, notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
