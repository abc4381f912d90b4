"""kubefab's `cluster.upgrade` (1.33.5 → 1.34.1) on lab clusters of node hosts with the doubles: the upgrade's wall
time with the workers one at a time (--batch 1) against --batch 10, the ratio, and each phase's seconds.

    python bench/upgrade.py [--hosts 20] [--batches 1,10] [--first-batch 10] [--workers 32] [--smoke] [--out DIR]
                                                                                            (root: it builds labs)

For each lab size N and each --batches size B, a fresh lab of N node hosts at 1.33.5 (1 control plane below 10
hosts, 3 from 10 on, the rest workers; as bench/up.py builds them) gets `cluster.up` (workers joined --first-batch
at a time: not measured), then its inventory is moved to 1.34.1 and `cluster.upgrade --batch B --yes` runs in this
process as the task does (kubefab.run.execute.upgrade): its etcd backup, the control planes one at a time, the
workers in batches of B (each cordoned whole, drained, upgraded, uncordoned once Ready with its DaemonSet pods),
then the check of every kubelet and manifest. An upgrade is one-way, so each batch size gets its own lab. The lab's
hosts share this machine's cores with the client (and the other labs of a shared machine): the load average at the
start and end is recorded with the numbers.
"""

import io
import os

import common
import contenders
import up
from kubefab import inventory
from kubefab.plan import workflows
from kubefab.remote.runner import DEFAULT_WORKERS
from kubefab.run import execute
from kubefab.run.session import Options
from kubefab.steps import FAILED

SMOKE = [("hosts", "3"), ("batches", "1")]
NEW = "1.34.1"


def one_run(n, batch, opts):
    """One fresh lab of `n` hosts brought up, then upgraded with workers `batch` at a time: its row."""
    with up.node_lab(n, opts.kubelet_seconds) as (lab, work):
        inv = inventory.load(lab.inventory, state_dir=work / "state")
        up.succeeded(up.run_up(inv, batch=opts.first_batch, yes=True, workers=opts.workers), "the first cluster.up")
        lab.write_inventory(NEW)
        inv = inventory.load(lab.inventory, state_dir=work / "state")
        console = io.StringIO()
        load = [round(x, 2) for x in os.getloadavg()]
        sample, run = common.measure(lambda: execute.upgrade(inv, Options(yes=True, workers=opts.workers,
                                                                          batch=batch), console=console))
        failed = [f"{r.host} {r.phase}: {r.detail[-800:]}" for r in run.results if r.status == FAILED]
        if run.code:
            raise SystemExit(f"cluster.upgrade --batch {batch} on {n} hosts exited {run.code}:\n"
                             + "\n".join(failed[:10] or [console.getvalue()[-3000:]]))
        names = workflows.upgrade(None, batch).names
        return {"hosts": n, "control_planes": up.control_planes(n), "workers": n - up.control_planes(n),
                "batch": batch, "lab": contenders.lab_record(lab), "upgrade": sample, "load_before": load,
                "phases": {p: run.seconds.get(p) for p in names}}


def median_row(runs):
    """The last run's row with the median upgrade sample and phase seconds of `runs`."""
    return {**runs[-1], "runs": len(runs), "upgrade": common.median(r["upgrade"] for r in runs),
            "phases": up.median_of(r["phases"] for r in runs)}


def main(argv=None):
    args = common.parser(__doc__, runs=1)
    args.add_argument("--hosts", default="20", help="comma-separated lab sizes (default 20)")
    args.add_argument("--batches", default="1,10", help="comma-separated worker batch sizes (default 1,10)")
    args.add_argument("--first-batch", type=int, default=10,
                      help="workers the cluster.up before each upgrade joins at once (default 10)")
    args.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                      help=f"kubefab's pool size (default {DEFAULT_WORKERS}, kubefab's own)")
    up.kubelet_option(args)
    opts = common.options(args, argv, smoke=SMOKE)
    sizes = sorted({int(n) for n in opts.hosts.split(",")})
    batches = sorted({int(b) for b in opts.batches.split(",")})
    if sizes[0] < 2 or batches[0] < 1 or opts.first_batch < 1:
        args.error(f"--hosts {opts.hosts} --batches {opts.batches} --first-batch {opts.first_batch}: give sizes of "
                   "at least 2 hosts and batches of at least 1")
    up.inotify_room(sizes)
    rows = []
    for n in sizes:
        by_batch = {b: median_row([one_run(n, b, opts) for _ in range(opts.runs)]) for b in batches}
        for b, row in by_batch.items():
            row["over_batch_1"] = common.ratio(row["upgrade"].wall_s, by_batch[batches[0]]["upgrade"].wall_s)
            rows.append(row)
        print(f"{n} hosts done", flush=True)
    print(common.table(("hosts", "workers", "batch", "upgrade s", "cpu s", f"/batch {batches[0]}",
                        "control planes s", "workers s", "load before"),
                       [(r["hosts"], r["workers"], r["batch"], r["upgrade"].wall_s, r["upgrade"].cpu_s,
                         r["over_batch_1"], sum(r["phases"][p] or 0 for p in ("control-plane-first",
                                                                               "control-planes")),
                         r["phases"]["workers"], " ".join(map(str, r["load_before"]))) for r in rows]))
    path = common.write("upgrade", opts, {"hosts": sizes, "batches": batches, "first_batch": opts.first_batch,
                                          "workers": opts.workers, "to": NEW, "kubelet_seconds": opts.kubelet_seconds},
                        rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
