"""kubefab's facts stage against Ansible, parallel OpenSSH and the bare Fabric floor, on N plain lab hosts.

    python bench/facts.py [--hosts 10,50,100,200] [--workers 32] [--ansible-venv DIR] [--runs 3] [--smoke] [--out DIR]
    (root: it builds labs)

For each size, one lab of plain hosts (sshd only), and in each run, side by side:
- kubefab facts: the facts stage as `cluster.up` runs it — kubefab's runner pool (--workers, kubefab's default),
  its ssh.Hosts (one connection per host, host keys checked against the lab's known_hosts), the probe of
  kubefab/facts/probe.sh on `sh -s`, and facts.parse of every answer;
- kubefab preflight: the whole `cluster.preflight` (kubefab.run.execute.preflight: lock, bundle check, the facts
  stage, the checks and their table) on a state dir prepared beforehand;
- Ansible setup: `ansible all -m setup -f N`, Ansible's own facts;
- Ansible raw: `ansible all -m raw -f N` running kubefab's probe, the same work as kubefab's;
- OpenSSH: one `ssh HOST sh -s -- ENDPOINT < probe` process per host, all started together;
- floor: a bare Fabric ThreadingGroup running `true` (a thread and a connection per host).
Every contender opens its connections within the measurement. The lab hosts share this machine's cores with the
client, so wall times include the hosts' sshd work; client CPU (this process and its children) is what an operator's
machine spends on a real fleet.
"""

import base64
import io
import shlex

import paramiko
from fabric import ThreadingGroup

import common
import contenders
from kubefab import facts, inventory, plan
from kubefab.remote.work import probe
from kubefab.run import execute, session

NAMES = ("kubefab", "preflight", "ansible_setup", "ansible_raw", "openssh", "floor")
SMOKE = [("hosts", "3")]


def kubefab_facts(s):
    """The facts stage as cluster.up runs it in session `s` (opened beforehand, no connection yet): its pool, one
    connection per host, the probe on each. Facts by host name; SystemExit naming the hosts that failed."""
    results = s.runner.phase("facts", (s.inv.hosts,), lambda host: probe(s, host))
    _all_ok("kubefab facts", results)
    return {r.host: r.facts for r in results}


def kubefab_preflight(inv, workers):
    """`cluster.preflight` as the task runs it (exit 1 is expected: plain hosts lack kubeadm); facts must all
    arrive."""
    run = execute.preflight(inv, session.Options(workers=workers, yes=True, quiet=True), console=io.StringIO())
    _all_ok("kubefab preflight", [r for r in run.results if r.phase == "facts"])


def _all_ok(what, results):
    failed = [f"{r.host}: {r.detail}" for r in results if r.failed]
    if failed:
        raise SystemExit(f"{what} failed on {len(failed)} hosts:\n" + "\n".join(failed[:10]))


def openssh(lab, probe_file, endpoint, work):
    """One `ssh HOST sh -s -- ENDPOINT < probe` per host, all started together."""
    options = contenders.ssh_options(lab)
    contenders.together([(["ssh", *options, h.address, "sh", "-s", "--", shlex.quote(endpoint)], probe_file)
                         for h in lab.hosts], work)


def floor(lab):
    """A bare Fabric ThreadingGroup running `true`: a thread, a connection and a command per host."""
    group = ThreadingGroup(*(h.address for h in lab.hosts), user=lab.ssh_user.name,
                           connect_kwargs={"key_filename": [str(lab.identity_file)], "allow_agent": False,
                                           "look_for_keys": False})
    for c in group:
        c.client.get_host_keys().load(str(lab.known_hosts))
        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        group.run("true", hide=True)
    finally:
        group.close()


def one_run(lab, inv, work, opts, ansible):
    """A Sample per contender, each run once, side by side."""
    n = len(lab.hosts)
    work.mkdir(parents=True)
    probe_file = work / "probe.sh"
    probe_file.write_text(facts.PROBE)
    encoded = base64.b64encode(f"set -- {shlex.quote(inv.endpoint)}\n{facts.PROBE}".encode()).decode()
    inventory_ini, env = contenders.ansible_setup(lab, work / "ansible")
    with session.opened(inv, session.Options(workers=opts.workers, quiet=True), console=io.StringIO()) as s:
        measured = {"kubefab": common.measure(lambda: kubefab_facts(s))[0]}
    runs = {
        "preflight": lambda: kubefab_preflight(inv, opts.workers),
        # raw: the probe travels on the command line (raw has no stdin), decoded and run by sh on the host
        "ansible_raw": lambda: contenders.run_ansible(ansible, inventory_ini, env, n, "raw",
                                                      f"echo {encoded} | base64 -d | sh -s", work / "raw.out"),
        "ansible_setup": lambda: contenders.run_ansible(ansible, inventory_ini, env, n, "setup", "",
                                                        work / "setup.out"),
        "openssh": lambda: openssh(lab, probe_file, inv.endpoint, work / "openssh"),
        "floor": lambda: floor(lab),
    }
    return {**measured, **{name: common.measure(runs[name])[0] for name in NAMES if name in runs}}


def size_row(n, opts, ansible):
    """The row of one lab size: the medians of --runs runs, the ratios and the CPU per host."""
    with contenders.plain_lab(n) as (lab, work):
        inv = inventory.load(contenders.inventory_file(lab, work / "inventory.toml"), state_dir=work / "state")
        plan.prepare(inv)  # the PKI and rendered tree exist before any measurement, as after a first plan
        samples = [one_run(lab, inv, work / f"run-{i}", opts, ansible) for i in range(opts.runs)]
    row = {"hosts": n, "lab": contenders.lab_record(lab), "workers": opts.workers}
    row.update({name: common.median(s[name] for s in samples) for name in NAMES})
    for other in ("ansible_setup", "ansible_raw", "openssh", "floor"):
        row[f"kubefab_over_{other}"] = common.ratio(row["kubefab"].wall_s, row[other].wall_s)
        row[f"kubefab_over_{other}_cpu"] = common.ratio(row["kubefab"].cpu_s, row[other].cpu_s)
    row["cpu_ms_per_host"] = {name: 1000 * row[name].cpu_s / n for name in NAMES}
    row["kubefab_cpu_ms_per_host_beyond_floor"] = 1000 * (row["kubefab"].cpu_s - row["floor"].cpu_s) / n
    return row


def main(argv=None):
    args = common.parser(__doc__)
    args.add_argument("--hosts", default="10,50,100,200", help="comma-separated lab sizes (default 10,50,100,200)")
    contenders.add_options(args)
    opts = common.options(args, argv, smoke=SMOKE)
    sizes = sorted({int(n) for n in opts.hosts.split(",")})
    if sizes[0] < 1 or opts.workers < 1:
        args.error(f"--hosts {opts.hosts} --workers {opts.workers}: give sizes and workers of at least 1")
    ansible = contenders.ansible(opts.ansible_venv)
    rows = [size_row(n, opts, ansible) for n in sizes]
    print(common.table(
        ("hosts", "kubefab s", "cpu s", "preflight s", "ansible setup s", "ansible raw s", "openssh s", "floor s",
         "/setup", "/raw", "/openssh", "/floor", "cpu ms/host", "beyond floor"),
        [(r["hosts"], r["kubefab"].wall_s, r["kubefab"].cpu_s, r["preflight"].wall_s, r["ansible_setup"].wall_s,
          r["ansible_raw"].wall_s, r["openssh"].wall_s, r["floor"].wall_s, r["kubefab_over_ansible_setup"],
          r["kubefab_over_ansible_raw"], r["kubefab_over_openssh"], r["kubefab_over_floor"],
          r["cpu_ms_per_host"]["kubefab"], r["kubefab_cpu_ms_per_host_beyond_floor"]) for r in rows]))
    print(common.table(
        ("hosts", *(f"{name} cpu s" for name in NAMES)),
        [(r["hosts"], *(r[name].cpu_s for name in NAMES)) for r in rows]))
    path = common.write("facts", opts, {"hosts": sizes, "workers": opts.workers,
                        "contenders": contenders.versions(ansible)}, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
