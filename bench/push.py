"""kubefab's push of every host's files against parallel scp, rsync and Ansible's copy, on N plain lab hosts.

    python bench/push.py [--hosts 10,50,100] [--megabytes 50] [--workers 32] [--ansible-venv DIR] [--runs 3]
                         [--smoke] [--out DIR]     (root: it builds labs)

What travels to each host: its rendered tree of the push phase (kubeadm config, certificates, kubeconfigs, as
`cluster.plan` made them for that host) plus an offline-binaries directory of --megabytes MB (random bytes, so
nothing compresses; kubefab's offline install source layout). In each run, side by side, onto hosts wiped before
each contender (every run is a first push):
- kubefab: the runner's pool (--workers), one connection per host, one script per host (kubefab/remote/script.py) whose
  Push step carries every file in a tar beside the script, staged and renamed into place — what cluster.up does for a
  phase; the files land at their real paths;
- scp: one `scp -r` process per host, all started together, of a directory holding the same files;
- rsync: one `rsync -a` (over ssh) process per host, all started together, of that directory;
- Ansible copy: `ansible all -m copy -f N` of that directory;
and kubefab again onto hosts that already hold every file, as a re-run of `cluster.up` does it: the facts probe
on each host (plan.probe: it reports mode, owner, size and mtime of every file kubefab pushes, and the sha256 of
the rendered ones), then a push of only the files not in place (steps.push) — none, so no second round trip.
The contenders' files land under /var/tmp/kubefab-bench. Wall times include the hosts' sshd and disk work (they
share this machine's cores); client CPU is what an operator's machine spends.
"""

import io
import os
import shlex

import common
import contenders
from kubefab import inventory, plan, steps
from kubefab.remote.work import host_phase, probe
from kubefab.run import session
from kubefab.steps import Push

NAMES = ("kubefab", "scp", "rsync", "ansible_copy")
AGAIN = "kubefab_again"
EXTRA = (AGAIN,)
DEST = "/var/tmp/kubefab-bench"
SMOKE = [("hosts", "3"), ("megabytes", 5)]
# the offline directory's binaries, as shares of --megabytes
BINARIES = (("kubeadm", 0.24), ("kubelet", 0.30), ("kubectl", 0.20), ("crictl", 0.16), ("cni/bridge", 0.10))
UNITS = {"kubelet.service": "[Service]\nExecStart=/usr/bin/kubelet\n",
         "10-kubeadm.conf": "[Service]\nEnvironment=KUBELET_EXTRA_ARGS=\n"}


def offline_dir(root, megabytes):
    """An offline install directory of `megabytes` MB of random binaries and the kubelet unit files."""
    for name, share in BINARIES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(int(share * megabytes * 2 ** 20)))
        path.chmod(0o755)
    for name, text in UNITS.items():
        (root / name).write_text(text)
    return root


def pushed(bundle, host):
    """The files kubefab pushes to `host` in this benchmark: its push-phase tree and the offline directory."""
    return tuple(f for f in bundle.files[host.name] if f.phase == "push" or f.source.startswith("offline:"))


def contender_tree(files, root):
    """The same files for the contenders, hard-linked under `root` at their on-host paths."""
    for f in files:
        target = root / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(f.local, target)
    return root


def kubefab_push(s, files, again=False):
    """One script per host carrying its files, as cluster.up's push phase runs it over session `s`'s pool;
    SystemExit naming failed hosts. `again`: the facts probe first and only the files it shows missing, as a
    re-run of cluster.up."""
    def push(host):
        step = Push("push files", files[host.name])
        if again:
            probed = probe(s, host)
            if probed.failed:
                return probed
            step = steps.push("push files", files[host.name], probed.facts)
        return host_phase(s, "push", host, (step,))
    results = s.runner.phase("push", (s.inv.hosts,), push)
    failed = [f"{r.host}: {r.detail}" for r in results if r.failed]
    if failed:
        raise SystemExit(f"kubefab's push failed on {len(failed)} hosts:\n" + "\n".join(failed[:10]))


def scp(lab, trees, work):
    options = contenders.ssh_options(lab)
    contenders.together([(["scp", "-r", "-q", *options, str(trees / h.name), f"{h.address}:{DEST}"], None)
                         for h in lab.hosts], work)


def rsync(lab, trees, work):
    shell = "ssh " + shlex.join(contenders.ssh_options(lab))
    contenders.together([(["rsync", "-a", "-e", shell, f"{trees / h.name}/", f"{h.address}:{DEST}/"], None)
                         for h in lab.hosts], work)


def wipe(lab, files):
    """Remove what any contender wrote, so that the next one pushes everything again."""
    for h in lab.hosts:
        lab.run(h.name, f"rm -rf {DEST} && rm -f {shlex.join(f.path for f in files[h.name])}")


def delivered(lab, files, under=""):
    """Fail unless the first host holds every file, byte for byte as large as here."""
    h = lab.hosts[0]
    sizes = lab.run(h.name, "wc -c " + shlex.join(under + f.path for f in files[h.name])).stdout.split()
    have = dict(zip(sizes[1::2], map(int, sizes[0::2])))
    missing = [f.path for f in files[h.name] if have.get(under + f.path) != f.local.stat().st_size]
    if missing:
        raise SystemExit(f"{h.name} lacks or holds short copies of {missing[:5]}")


def one_run(lab, inv, files, trees, work, opts, ansible):
    """A Sample per contender, side by side; each contender but the second push starts on wiped hosts."""
    n = len(lab.hosts)
    inventory_ini, env = contenders.ansible_setup(lab, work / "ansible")
    runs = (  # name, what to run, where the files land, whether the hosts are wiped first
        ("kubefab", None, "", True),        # in a session opened beforehand, as the task opens it
        (AGAIN, None, "", False),
        ("scp", lambda: scp(lab, trees, work / "scp"), DEST, True),
        ("rsync", lambda: rsync(lab, trees, work / "rsync"), DEST, True),
        ("ansible_copy", lambda: contenders.run_ansible(ansible, inventory_ini, env, n, "copy",
                                                        f"src={trees}/{{{{ inventory_hostname }}}}/ dest={DEST}/",
                                                        work / "copy.out"), DEST, True),
    )
    samples = {}
    for name, fn, under, fresh in runs:
        if fresh:
            wipe(lab, files)
        if fn is None:
            with session.opened(inv, session.Options(workers=opts.workers, quiet=True), console=io.StringIO()) as s:
                samples[name] = common.measure(lambda: kubefab_push(s, files, again=name == AGAIN))[0]
        else:
            samples[name] = common.measure(fn)[0]
        delivered(lab, files, under)
    wipe(lab, files)
    return samples


def size_row(n, opts, ansible):
    """The row of one lab size: the medians of --runs runs and the ratios."""
    with contenders.plain_lab(n) as (lab, work):
        offline = offline_dir(work / "offline", opts.megabytes)
        path = contenders.inventory_file(lab, work / "inventory.toml", source="offline", directory=str(offline))
        inv = inventory.load(path, state_dir=work / "state")
        bundle = plan.prepare(inv)
        files = {h.name: pushed(bundle, h) for h in inv.hosts}
        trees = work / "trees"
        for h in inv.hosts:
            contender_tree(files[h.name], trees / h.name)
        samples = [one_run(lab, inv, files, trees, work / f"run-{i}", opts, ansible)
                   for i in range(opts.runs)]
        per_host = files[inv.hosts[0].name]
    row = {"hosts": n, "lab": contenders.lab_record(lab), "workers": opts.workers, "files_per_host": len(per_host),
           "mb_per_host": sum(f.size for f in per_host) / 2 ** 20}
    row.update({name: common.median(s[name] for s in samples) for name in (*NAMES, *EXTRA)})
    for other in NAMES[1:]:
        row[f"kubefab_over_{other}"] = common.ratio(row["kubefab"].wall_s, row[other].wall_s)
        row[f"kubefab_over_{other}_cpu"] = common.ratio(row["kubefab"].cpu_s, row[other].cpu_s)
    row["again_over_first"] = common.ratio(row[AGAIN].wall_s, row["kubefab"].wall_s)
    row["cpu_ms_per_host"] = {name: 1000 * row[name].cpu_s / n for name in (*NAMES, *EXTRA)}
    return row


def main(argv=None):
    args = common.parser(__doc__)
    args.add_argument("--hosts", default="10,50,100", help="comma-separated lab sizes (default 10,50,100)")
    args.add_argument("--megabytes", type=int, default=50, help="size of the offline-binaries directory (default 50)")
    contenders.add_options(args)
    opts = common.options(args, argv, smoke=SMOKE)
    sizes = sorted({int(n) for n in opts.hosts.split(",")})
    if sizes[0] < 1 or opts.workers < 1 or opts.megabytes < 1:
        args.error(f"--hosts {opts.hosts} --workers {opts.workers} --megabytes {opts.megabytes}: "
                   "give sizes, workers and megabytes of at least 1")
    contenders.need_rsync()
    ansible = contenders.ansible(opts.ansible_venv)
    rows = [size_row(n, opts, ansible) for n in sizes]
    print(common.table(
        ("hosts", "files/host", "MB/host", *(f"{name} s" for name in (*NAMES, *EXTRA)), "/scp", "/rsync", "/copy"),
        [(r["hosts"], r["files_per_host"], r["mb_per_host"], *(r[name].wall_s for name in (*NAMES, *EXTRA)),
          r["kubefab_over_scp"], r["kubefab_over_rsync"], r["kubefab_over_ansible_copy"]) for r in rows]))
    print(common.table(
        ("hosts", *(f"{name} cpu s" for name in (*NAMES, *EXTRA)), "kubefab peak MB"),
        [(r["hosts"], *(r[name].cpu_s for name in (*NAMES, *EXTRA)), r["kubefab"].peak_rss_mb) for r in rows]))
    path = common.write("push", opts, {"hosts": sizes, "megabytes": opts.megabytes, "workers": opts.workers,
                        "contenders": contenders.versions(ansible)}, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
