"""kubefab's whole `cluster.up` on lab clusters of node hosts with the doubles: seconds per phase, worker joins one
at a time against batches, a second `up` that changes nothing, and the client's memory and CPU per host.

    python bench/up.py [--hosts 3,50] [--batches 10,50] [--workers 32] [--ignore EndpointReachable] [--runs 3]
                       [--large-runs 1] [--first-batch N] [--smoke] [--out DIR]     (root: it builds labs)

Each run of a size N builds a fresh lab of N node hosts (systemd, containerd, and the doubles of kubeadm, the
kubelet, etcd and the control plane, installed by the runtime phase from the lab's offline directory; 1 control
plane below 10 hosts, 3 from 10 on, the rest workers) and a fresh state dir, then runs in this process, as
`invoke cluster.up --yes` does (kubefab.run.execute.up, kubefab's default pool or --workers):
- first: `cluster.up` on the new hosts, workers joined one at a time (the inventory's worker_batch_size = 1), or
  --first-batch at a time (to reach the later measurements of a large lab sooner), and with --first-tries N run
  again while a host failed, up to N times in all (the failures recorded: a loaded lab's doubles time out);
  wall, client CPU, this process's peak RSS, and the seconds of each stage and phase (the runner's wall seconds per
  phase; preflight: its checks and their table, which make no round trip, timed in this process);
- again: a second `cluster.up`, with nothing to change (its results after facts and preflight that are not
  `unchanged` are counted), its SSH round trips per host and API requests, and its ratio to one facts round trip
  (the facts phase of the same run) and to a `cluster.preflight` measured next;
- live: `cluster.plan --live` next (kubefab.execute.live), which should find no changes: its ratio to one facts
  round trip (its own facts stage), its API requests, and what it found (on a loaded lab a host's probe can miss a
  fact it bounds in time, e.g. the image list past 5 s: the step it would have shown done is then a change, reported
  and counted, not a failure of the benchmark; an error is);
The load average (1 minute) is recorded as the no-change up and --live start: the machine is shared.
- for each --batches size below the number of workers: `cluster.reset` of every host, then `cluster.up --batch B`;
  its join-workers seconds against the first up's one at a time. A reset host joins again as a new one (kubeadm's
  files, the kubelet's state and the node object are gone); what the runtime phase installed stays, so only
  join-workers is compared.
The lab hosts share this machine's cores with the client and with each other (every joined kubelet double
heartbeats to the API server doubles), so wall times grow with the lab; client CPU is what an operator's machine
spends. Labs of more than 10 hosts run --large-runs times (default once: a 50-host run takes 10 to 15 minutes
here, half of it workers joining one at a time), smaller ones --runs times. Memory per host is the growth
of the first up's peak RSS between two sizes, per extra host. The runs after the first ignore the preflight
checks named by --ignore (see IGNORED below: the loaded lab, not kubefab, fails EndpointReachable there), and so do
the --first-tries retries; the first try ignores none.

Node hosts each hold ~6 inotify instances (systemd, logind): the kernel's default of 128 per user allows ~20, so
labs beyond that need `sysctl -w fs.inotify.max_user_instances=1024` first; the benchmark says so before it starts.
"""

import collections
import contextlib
import io
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import common
import contenders
from kubefab import inventory, preflight
from kubefab.api import kube
from kubefab.errors import KubefabError
from kubefab.plan import workflows
from kubefab.remote import ssh
from kubefab.remote.runner import DEFAULT_WORKERS
from kubefab.run import execute, live, logs
from kubefab.run.session import Options
from kubefab.steps import CHANGED, FAILED

SMOKE = [("hosts", "3"), ("batches", "1")]
LARGE = 10                  # labs of more than this many hosts run --large-runs times
HA_FROM = 10                # labs of this many hosts and more have 3 control planes, smaller ones 1
INOTIFY_PER_HOST = 6        # inotify instances of root a booted node host holds (systemd 5, logind 1)
STAGED = ("facts", "preflight")
# On a 50-host lab with its cluster running, the hosts' probes (sharing 2 cores with 50 kubelet and 3 API server
# doubles) do not finish their TCP connect to the endpoint within the probe's 3 s: the runs after the first would
# stop at preflight. The check only reads; ignoring it changes nothing else that runs.
IGNORED = ("EndpointReachable",)


class Tally:
    """What runs did beyond their phases' seconds: SSH round trips per host, API requests, preflight's seconds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ssh = collections.Counter()
        self.api = 0
        self.preflight_s = 0.0


@contextlib.contextmanager
def tallied():
    """A Tally of what the runs inside do, counted around kubefab's own ssh.Hosts.run, kube.Api.request and
    preflight.evaluate/table (each called as before)."""
    tally = Tally()

    def counting_ssh(original):
        def run(self, host, *args, **kwargs):
            with tally.lock:
                tally.ssh[host.name] += 1
            return original(self, host, *args, **kwargs)
        return run

    def counting_api(original):
        def request(self, *args, **kwargs):
            with tally.lock:
                tally.api += 1
            return original(self, *args, **kwargs)
        return request

    def timing(original):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                tally.preflight_s += time.perf_counter() - start
        return timed
    wrapped = ((ssh.Hosts, "run", counting_ssh), (kube.Api, "request", counting_api),
               (preflight, "evaluate", timing), (preflight, "table", timing))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in wrapped]
    for owner, name, wrap in wrapped:
        setattr(owner, name, wrap(getattr(owner, name)))
    try:
        yield tally
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


@contextlib.contextmanager
def node_lab(hosts, kubelet_seconds=None, control_plane_weight=1):
    """A lab of `hosts` node hosts and a temp dir, both gone on exit (a SIGTERM or SIGHUP too); `kubelet_seconds`:
    the kubelet doubles' status period (None: the double's own 2 s); `control_plane_weight`: each control plane's
    CPU share in workers'."""
    from lab import Lab, down_on_termination
    down_on_termination()
    with Lab.up(hosts=hosts, control_planes=control_planes(hosts), flavour="node",
                kubelet_status_seconds=kubelet_seconds, control_plane_weight=control_plane_weight) as lab, \
            tempfile.TemporaryDirectory(prefix="kubefab-bench-") as tmp:
        yield lab, Path(tmp)


def kubelet_option(args):
    args.add_argument("--kubelet-seconds", type=float, default=None,
                      help="how often each kubelet double posts its node status and syncs its pods (default the "
                           "double's 2 s; 10 is the real kubelet's nodeStatusUpdateFrequency: at 2 s, 100 nodes' "
                           "kubelets keep the API server doubles and 2 cores saturated)")


def control_planes(hosts):
    return 1 if hosts < HA_FROM else 3


def inotify_room(sizes):
    """SystemExit when the biggest lab would run out of inotify instances (systemd in a host cannot start)."""
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    used = sum(1 for fd in Path("/proc").glob("[0-9]*/fd/*") if _inotify_of_root(fd))
    need = used + INOTIFY_PER_HOST * max(sizes)
    if need > limit:
        raise SystemExit(f"a lab of {max(sizes)} node hosts needs about {need} inotify instances of root ({used} in use"
                         f", ~{INOTIFY_PER_HOST} per host) but fs.inotify.max_user_instances is {limit}: raise it "
                         f"first, e.g. `sysctl -w fs.inotify.max_user_instances={max(1024, 2 * need)}`")


def _inotify_of_root(fd):
    try:
        return fd.readlink().name == "anon_inode:inotify" and fd.parent.parent.stat().st_uid == 0
    except OSError:     # a process or descriptor gone meanwhile
        return False


@contextlib.contextmanager
def kept_log(log, keep, failures):
    """kubefab's log copied to `keep` (the state dir goes with the lab) when the run failed or `failures` holds any."""
    try:
        yield
    except SystemExit as e:
        shutil.copyfile(log, keep)
        raise SystemExit(f"{e}\nkubefab's log of the run: {keep}") from None
    if failures:
        shutil.copyfile(log, keep)
        print(f"{len(failures)} hosts failed in runs after the first, see {keep}:\n" + "\n".join(failures[:10]))


def run_up(inv, action="up", **options):
    """(execute.Outcome, Tally, failures) of one `cluster.<action>` in this process; a failure is
    'HOST PHASE: cause'."""
    console = io.StringIO()
    with tallied() as tally:
        run = getattr(execute, action)(inv, Options(**options), console=console)
        code = run.code
    failures = [f"{r.host} {r.phase}: {r.detail[-1500:]}" for r in run.results if r.status == FAILED]
    return run, tally, failures or ([f"exit {code}: {console.getvalue()[-3000:]}"] if code else [])


def succeeded(outcome, what):
    """(execute.Outcome, Tally) of a run that must succeed; SystemExit naming the hosts that failed."""
    run, tally, failures = outcome
    if failures:
        raise SystemExit(f"{what} failed:\n" + "\n".join(failures[:10]))
    return run, tally


def phase_seconds(run, tally, wall):
    """Seconds of each stage and phase (None: no host in it), and the rest of the run ('other')."""
    seconds = {name: run.seconds.get(name) for name in workflows.UP.names}
    seconds["preflight"] = tally.preflight_s
    seconds["other"] = wall - sum(s for s in seconds.values() if s)
    return seconds


def one_run(n, opts):
    """One fresh lab of `n` node hosts: the first up, a no-change up, a preflight, then reset and up per batch.

    The first up, the preflight and the resets must succeed; the hosts that fail in the other ups are recorded."""
    failures = []
    with node_lab(n, opts.kubelet_seconds, opts.control_plane_weight) as (lab, work), \
            kept_log(work / "state" / logs.FILE, opts.out / f"up-{n}-hosts.log", failures):
        inv = inventory.load(lab.inventory, state_dir=work / "state")
        options = {"yes": True, "workers": opts.workers}
        first, outcome = common.measure(lambda: run_up(inv, batch=opts.first_batch, **options))
        retried = []
        options["ignore"] = opts.ignore     # a retry, like every run after the first, runs on a loaded lab
        while outcome[2] and len(retried) < opts.first_tries - 1:
            retried.append(outcome[2])
            first, outcome = common.measure(lambda: run_up(inv, batch=opts.first_batch, **options))
        run, tally = succeeded(outcome, "the first cluster.up")
        result = {"lab": contenders.lab_record(lab), "first": first, "first_retried": retried,
                  "first_phases": phase_seconds(run, tally, first.wall_s)}
        result["load_at_again"] = load()
        again, (run, tally, failed) = common.measure(lambda: run_up(inv, **options))
        failures += failed
        acted = [r for r in run.results if r.phase not in STAGED]
        result.update(again=again, again_phases=phase_seconds(run, tally, again.wall_s),
                      again_changed=sum(r.status == CHANGED for r in acted), again_failed=failed,
                      again_ssh_runs=dict(tally.ssh), again_api_requests=tally.api)
        result["preflight"], outcome = common.measure(lambda: run_up(inv, "preflight", **options))
        succeeded(outcome, "cluster.preflight")
        result["load_at_live"] = load()
        try:
            result["live"], (run, tally, failed) = common.measure(lambda: run_up(inv, "live", workers=opts.workers))
        except KubefabError as e:       # kubefab's log kept, as for the runs before
            raise SystemExit(f"cluster.plan --live failed right after cluster.up: {e}") from None
        if run.code not in (0, live.EXIT_CHANGES):
            raise SystemExit("cluster.plan --live failed right after cluster.up:\n" + "\n".join(failed[:10]))
        result.update(live_facts_s=run.seconds["facts"], live_api_requests=tally.api, live_changes=failed)
        result["batches"] = {}
        for batch in batches(n, opts.batches):
            succeeded(run_up(inv, "reset", **options), "cluster.reset")
            sample, (run, tally, failed) = common.measure(lambda: run_up(inv, batch=batch, **options))
            failures += failed
            result["batches"][str(batch)] = {"wall_s": sample.wall_s, "failed": failed,
                                             "join_workers_s": run.seconds.get("join-workers")}
    return result


def load():
    """The machine's load average over the last minute, now."""
    return round(os.getloadavg()[0], 2)


def batches(n, sizes):
    """The --batches sizes below the number of workers of a lab of `n` hosts (a larger one joins them all at once)."""
    return [b for b in sizes if b < n - control_planes(n)]


def median_of(dicts):
    """Key by key median of the numbers in dicts; None where every value is None."""
    dicts = list(dicts)
    return {k: (statistics.median(v) if (v := [d[k] for d in dicts if d.get(k) is not None]) else None)
            for k in dicts[0] if not isinstance(dicts[0][k], list)}


def size_row(n, opts):
    """The row of one lab size: medians over its runs."""
    runs = [one_run(n, opts) for _ in range(opts.runs if n <= LARGE else opts.large_runs)]
    row = {"hosts": n, "control_planes": control_planes(n), "workers": n - control_planes(n), "runs": len(runs),
           "lab": runs[-1]["lab"], "pool": opts.workers}
    for key in ("first", "again", "preflight", "live"):
        row[key] = common.median(r[key] for r in runs)
    for key in ("first_phases", "again_phases"):
        row[key] = median_of(r[key] for r in runs)
    ssh_runs = [v for r in runs for v in r["again_ssh_runs"].values()]
    row.update(again_changed=max(r["again_changed"] for r in runs),
               again_failed=[f for r in runs for f in r["again_failed"]],
               first_retried=[f for r in runs for failed in r["first_retried"] for f in failed],
               batch_failed=[f for r in runs for b in r["batches"].values() for f in b["failed"]],
               again_ssh_runs_per_host=max(ssh_runs) if ssh_runs else 0,
               again_api_requests=statistics.median(r["again_api_requests"] for r in runs),
               again_over_facts=common.ratio(row["again"].wall_s, row["again_phases"]["facts"]),
               again_over_preflight=common.ratio(row["again"].wall_s, row["preflight"].wall_s),
               live_facts_s=statistics.median(r["live_facts_s"] for r in runs),
               live_api_requests=statistics.median(r["live_api_requests"] for r in runs),
               live_changes=[f for r in runs for f in r["live_changes"]],
               load_at_again=[r["load_at_again"] for r in runs], load_at_live=[r["load_at_live"] for r in runs],
               cpu_ms_per_host=1000 * row["first"].cpu_s / n, again_cpu_ms_per_host=1000 * row["again"].cpu_s / n,
               join_workers={"first": row["first_phases"]["join-workers"],
                             **{b: median_of(r["batches"][b] for r in runs)["join_workers_s"]
                                for b in runs[0]["batches"]}})
    return row


def per_host_growth(rows):
    """Each row's growth over the previous size per extra host: the first up's peak RSS in bytes and its client CPU
    in ms (None for the first size)."""
    for before, row in zip([None, *rows], rows):
        if before is None:
            row["rss_bytes_per_extra_host"] = row["cpu_ms_per_extra_host"] = None
            continue
        extra = row["hosts"] - before["hosts"]
        row["rss_bytes_per_extra_host"] = (row["first"].peak_rss_mb - before["first"].peak_rss_mb) * 2 ** 20 / extra
        row["cpu_ms_per_extra_host"] = 1000 * (row["first"].cpu_s - before["first"].cpu_s) / extra


def main(argv=None):
    args = common.parser(__doc__)
    args.add_argument("--hosts", default="3,50", help="comma-separated lab sizes (default 3,50)")
    args.add_argument("--batches", default="10,50",
                      help="comma-separated worker batch sizes compared with one at a time (default 10,50)")
    args.add_argument("--large-runs", type=int, default=1, help=f"runs for labs of more than {LARGE} hosts (default 1)")
    args.add_argument("--first-batch", type=int, default=0,
                      help="workers the first up joins at once (default 0: the inventory's, one at a time)")
    args.add_argument("--first-tries", type=int, default=1,
                      help="times the first up may run until no host fails (default 1; on a loaded machine the "
                           "doubles' reads can time out at verify: a second run finishes it, and its numbers are "
                           "the first up's)")
    args.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                      help=f"kubefab's pool size (default {DEFAULT_WORKERS}, kubefab's own)")
    kubelet_option(args)
    args.add_argument("--control-plane-weight", type=int, default=1,
                      help="each control plane's CPU share in workers' (default 1: equal). The lab's hosts share "
                           "the machine's cores where real control planes have their own: while 100 hosts probe at "
                           "once an equal share leaves the API server a hundredth of them (8 for 100 hosts: the 3 "
                           "control planes weigh as 24 workers)")
    args.add_argument("--ignore", default=",".join(IGNORED),
                      help=f"preflight checks ignored by the runs after the first (default {','.join(IGNORED)}; "
                           "'' for none)")
    opts = common.options(args, argv, smoke=SMOKE)
    opts.ignore = tuple(filter(None, opts.ignore.split(",")))
    sizes = sorted({int(n) for n in opts.hosts.split(",")})
    opts.batches = sorted({int(b) for b in opts.batches.split(",")})
    if sizes[0] < 2 or opts.batches[0] < 1 or opts.workers < 1 or opts.large_runs < 1 or opts.control_plane_weight < 1:
        args.error(f"--hosts {opts.hosts} --batches {opts.batches} --workers {opts.workers} --large-runs "
                   f"{opts.large_runs} --control-plane-weight {opts.control_plane_weight}: give sizes of at least 2 "
                   "hosts, and batches, workers, runs and weight of at least 1")
    inotify_room(sizes)
    rows = []
    for n in sizes:
        rows.append(size_row(n, opts))
        print(f"{n} hosts done", flush=True)
    per_host_growth(rows)
    for row in rows:
        row["live_over_facts"] = common.ratio(row["live"].wall_s, row["live_facts_s"])
    report(rows, opts)
    path = common.write("up", opts, {"hosts": sizes, "batches": opts.batches, "workers": opts.workers,
                                     "large_runs": opts.large_runs, "large_above": LARGE,
                                     "kubelet_seconds": opts.kubelet_seconds,
                                     "control_plane_weight": opts.control_plane_weight,
                                     "ignored_after_first": opts.ignore}, rows)
    print(f"wrote {path}")


def report(rows, opts):
    print(common.table(
        ("hosts", "cp", "first up s", "cpu s", "again s", "cpu s", "again/facts", "again/preflight", "changed",
         "failed", "peak MB", "B/extra host", "cpu ms/host", "/extra host"),
        [(r["hosts"], r["control_planes"], r["first"].wall_s, r["first"].cpu_s, r["again"].wall_s, r["again"].cpu_s,
          r["again_over_facts"], r["again_over_preflight"], r["again_changed"], len(r["again_failed"]),
          r["first"].peak_rss_mb,
          r["rss_bytes_per_extra_host"] and round(r["rss_bytes_per_extra_host"]), r["cpu_ms_per_host"],
          r["cpu_ms_per_extra_host"]) for r in rows]))
    names = (*workflows.UP.names, "other")
    print(common.table(("hosts", "run", *names),
                       [(r["hosts"], run, *(r[f"{run}_phases"][p] for p in names))
                        for r in rows for run in ("first", "again")]))
    print(common.table(("hosts", "live s", "cpu s", "its facts s", "live/facts", "API requests", "found changes",
                        "load at again", "load at live"),
                       [(r["hosts"], r["live"].wall_s, r["live"].cpu_s, r["live_facts_s"], r["live_over_facts"],
                         r["live_api_requests"], len(r["live_changes"]), max(r["load_at_again"]),
                         max(r["load_at_live"])) for r in rows]))
    print(common.table(("hosts", "workers", "join-workers s: first up, one at a time",
                        *(f"after a reset, batch {b}" for b in opts.batches)),
                       [(r["hosts"], r["workers"],
                         *(r["join_workers"].get(b) for b in ("first", *map(str, opts.batches)))) for r in rows]))


if __name__ == "__main__":
    main()
