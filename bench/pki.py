"""kubefab's PKI bundle against the openssl CLI making the same certificates, and a re-run that must change nothing.

    python bench/pki.py [--control-planes 1,5] [--algorithms RSA-2048,ECDSA-P256] [--runs 3] [--smoke] [--out DIR]

The bundle is what `cluster.plan` ensures before rendering: kubeadm's cert tree (three CAs, the shared leaves, each
control-plane node's apiserver and etcd server/peer), the service-account key pair, the kubeconfigs with their client
certificates, and the bootstrap token. The contender is bench/openssl_pki.sh, one `openssl req -x509` per
certificate, fed the same subjects and SANs; its first tree must pass kubefab's own checks (chain, key, SANs). The
re-run ensures the bundle again on the first run's state dir: it must keep every file (bytes, mode and mtime).
kubefab runs in this process (import cost excluded) and fsyncs every file it writes; the contender's time includes
its shell and processes, and it does not fsync.
"""

import subprocess
import tempfile
from pathlib import Path

import common
from kubefab import inventory, pki
from kubefab.pki import kubeconfig, token, x509
from kubefab.secret import Secret

SCRIPT = Path(__file__).resolve().parent / "openssl_pki.sh"
CLUSTER = """\
[cluster]
name = "bench"
kubernetes_version = "1.33.5"
control_plane_endpoint = "api.bench.internal:6443"
encryption_algorithm = "{algorithm}"

[cluster.apiserver]
cert_sans = ["k8s.example.com", "10.1.0.100"]
"""
SMOKE = [("control_planes", "1"), ("algorithms", "RSA-2048,ECDSA-P256")]
EKUS = {x509.SERVER: "serverAuth", x509.CLIENT: "clientAuth"}


def inventory_of(control_planes, algorithm, base):
    """`control_planes` control-plane nodes and one worker, the state dir in `base`/state."""
    hosts = [(f"cp-{i}", "control-plane") for i in range(1, control_planes + 1)] + [("w-1", "worker")]
    tables = "".join(f'[hosts.{name}]\naddress = "10.1.0.{i + 11}"\nroles = ["{role}"]\n'
                     for i, (name, role) in enumerate(hosts))
    path = base / "inventory.toml"
    path.write_text(CLUSTER.format(algorithm=algorithm) + tables)
    return inventory.load(path, state_dir=base / "state")


def bundle(inv):
    """The bundle as `plan.build` ensures it; the actions taken."""
    actions = pki.ensure(inv) + kubeconfig.ensure(inv)
    token.bootstrap_token(inv)
    token.ca_cert_hash(inv)
    return actions


def snapshot(root):
    """Every file under `root`: relative path -> (bytes, mtime in ns, mode)."""
    return {p.relative_to(root): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- the openssl contender ------------------------------------------------------------------------

def openssl_plan(inv):
    """bench/openssl_pki.sh's plan for `inv`: the same files, subjects, usages and SANs kubefab makes."""
    lines = []
    for spec, host in pki.targets(inv):
        want = pki.request(inv, spec, host)
        crt, _ = pki.paths(inv, spec, host)
        ca = _relative(inv, pki.paths(inv, pki.BY_NAME[spec.ca])[0]) if spec.ca else "-"
        sans = [f"DNS:{d}" for d in want.dns + ((want.cn,) if spec.is_ca else ())] + [f"IP:{i}" for i in want.ips]
        lines.append(("cert", _relative(inv, crt), ca, _subject(want.cn, want.org),
                      ",".join(EKUS[u] for u in want.usages) or "-", ",".join(sans) or "-", want.days))
    lines.append(("sa", _relative(inv, pki.sa_paths(inv)[0])))
    for spec, host in kubeconfig.targets(inv):
        lines.append(("kubeconfig", str(kubeconfig.path(inv, spec, host).relative_to(inv.state_dir)),
                      _subject(spec.cn, spec.org), inv.cluster.name, spec.cn, spec.server(inv, host),
                      inv.cluster.cert_validity_days))
    lines.append(("token", str(token.path(inv).relative_to(inv.state_dir))))
    return "".join("\t".join(map(str, line)) + "\n" for line in lines)


def _relative(inv, file):
    return str(file.relative_to(inv.state_dir).with_suffix(""))


def _subject(cn, org):
    return f"/O={org}/CN={cn}" if org else f"/CN={cn}"


def run_openssl(plan_file, out, algorithm):
    run = subprocess.run(["bash", str(SCRIPT), str(plan_file), str(out), algorithm], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{SCRIPT.name} failed ({run.returncode}):\n{run.stderr}")


def check_openssl_tree(inv, out):
    """Fail unless `out` holds the files kubefab made and each passes kubefab's own checks against the inventory."""
    made, want = sorted(snapshot(out)), sorted(snapshot(inv.state_dir))
    if made != want:
        raise SystemExit(f"openssl tree differs from kubefab's: only openssl {sorted(set(made) - set(want))}, "
                         f"only kubefab {sorted(set(want) - set(made))}")
    problems = []
    for spec, host in pki.targets(inv):
        crt, key = (out / p.relative_to(inv.state_dir) for p in pki.paths(inv, spec, host))
        if spec.is_ca:
            ok = x509.is_ca(crt.read_bytes()) and x509.key_matches(crt.read_bytes(), Secret(key.read_bytes()))
            problems += [] if ok else [f"{crt}: not a CA matching its key"]
            continue
        ca = out / pki.paths(inv, pki.BY_NAME[spec.ca])[0].relative_to(inv.state_dir)
        want = pki.request(inv, spec, host)
        problem = pki.check_leaf(crt.read_bytes(), Secret(key.read_bytes()), ca.read_bytes(), want)
        problems += [f"{crt}: {problem}"] if problem else []
    ca_pem = (out / "pki" / "ca.crt").read_bytes()
    for spec, host in kubeconfig.targets(inv):
        have = kubeconfig.parse((out / kubeconfig.path(inv, spec, host).relative_to(inv.state_dir)).read_bytes())
        want = x509.Request(cn=spec.cn, org=spec.org, usages=(x509.CLIENT,))
        problem = pki.check_leaf(have.cert, have.key, ca_pem, want)
        problems += [f"{spec.file} ({host.name if host else 'shared'}): {problem}"] if problem else []
    if problems:
        raise SystemExit("openssl tree fails kubefab's checks:\n" + "\n".join(problems))


# -- one case -------------------------------------------------------------------------------------

def one_run(control_planes, algorithm, check):
    """kubefab first, kubefab re-run and openssl Samples, in fresh dirs; `check` verifies the openssl tree too."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        inv = inventory_of(control_planes, algorithm, base)
        first, _ = common.measure(lambda: bundle(inv))
        before = snapshot(inv.state_dir)
        again, actions = common.measure(lambda: bundle(inv))
        after = snapshot(inv.state_dir)
        changed = sorted(str(p) for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        redone = [f"{a.name} ({a.node or 'shared'}): {a.what}, {a.reason}" for a in actions if a.what != pki.KEPT]
        if changed or redone:
            raise SystemExit(f"the re-run changed the bundle: files {changed}, actions {redone}")
        plan_file = base / "openssl.plan"
        plan_file.write_text(openssl_plan(inv))
        contender, _ = common.measure(lambda: run_openssl(plan_file, base / "openssl", algorithm))
        if check:
            check_openssl_tree(inv, base / "openssl")
        certificates = sum(line.split("\t")[0] in ("cert", "kubeconfig") for line in plan_file.read_text().splitlines())
    return {"kubefab": first, "rerun": again, "openssl": contender, "files": len(before), "certificates": certificates}


def case(control_planes, algorithm, runs):
    """The row of one case: the medians of `runs` runs, and their ratios."""
    results = [one_run(control_planes, algorithm, check=i == 0) for i in range(runs)]
    row = {"control_planes": control_planes, "algorithm": algorithm, "certificates": results[0]["certificates"],
           "files": results[0]["files"]}
    row.update({name: common.median(r[name] for r in results) for name in ("kubefab", "rerun", "openssl")})
    row["kubefab_over_openssl"] = common.ratio(row["kubefab"].wall_s, row["openssl"].wall_s)
    row["kubefab_over_openssl_cpu"] = common.ratio(row["kubefab"].cpu_s, row["openssl"].cpu_s)
    row["rerun_over_first"] = common.ratio(row["rerun"].wall_s, row["kubefab"].wall_s)
    row["rerun_over_first_cpu"] = common.ratio(row["rerun"].cpu_s, row["kubefab"].cpu_s)
    return row


def main(argv=None):
    args = common.parser(__doc__)
    args.add_argument("--control-planes", default="1,5", help="comma-separated control-plane counts (default 1,5)")
    args.add_argument("--algorithms", default="RSA-2048,ECDSA-P256",
                      help="comma-separated key algorithms: RSA-2048, ECDSA-P256 (default both)")
    opts = common.options(args, argv, smoke=SMOKE)
    counts = sorted({int(n) for n in opts.control_planes.split(",")})
    algorithms = opts.algorithms.split(",")
    unknown = [a for a in algorithms if a not in ("RSA-2048", "ECDSA-P256")]
    if unknown or counts[0] < 1:
        args.error(f"--control-planes {opts.control_planes} --algorithms {opts.algorithms}: "
                   "give counts of at least 1 and algorithms among RSA-2048, ECDSA-P256")
    rows = [case(n, algorithm, opts.runs) for algorithm in algorithms for n in counts]
    print(common.table(
        ("algorithm", "control planes", "certs", "kubefab s", "cpu s", "openssl s", "cpu s", "kubefab/openssl",
         "cpu ratio", "re-run s", "re-run/first", "cpu ratio", "peak MB"),
        [(r["algorithm"], r["control_planes"], r["certificates"], r["kubefab"].wall_s, r["kubefab"].cpu_s,
          r["openssl"].wall_s, r["openssl"].cpu_s, r["kubefab_over_openssl"], r["kubefab_over_openssl_cpu"],
          r["rerun"].wall_s, r["rerun_over_first"], r["rerun_over_first_cpu"], r["kubefab"].peak_rss_mb)
         for r in rows]))
    path = common.write("pki", opts, {"control_planes": counts, "algorithms": algorithms}, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
