"""`cluster.plan`: the whole plan computed locally, before any host changes."""

import hashlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from inventories import host_tables
from kubefab import facts, inventory, paths, plan
from kubefab.components import kubeadm
from kubefab.errors import KubefabError
from kubefab.pki import token
from kubefab.run import report
from kubefab.steps import KubeletReady, Push, WaitReconfigured

ROOT = Path(__file__).resolve().parents[2]

HA = """\
[cluster]
name = "ha"
kubernetes_version = "1.33.5"
control_plane_endpoint = "api.ha.internal:6443"
worker_batch_size = 2

""" + host_tables(3, 3)


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    path = tmp_path_factory.mktemp("ha") / "inventory.toml"
    path.write_text(HA)
    inv = inventory.load(path)
    return inv, plan.build(inv, plan.prepare(inv))


def tree(root):
    return {p.relative_to(root): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def hosts_of(p, name):
    pp = next(pp for pp in p.phases if pp.phase.name == name)
    return [[hs.host.name for hs in batch] for batch in pp.batches]


def test_phases_run_in_order_with_the_right_hosts_and_batches(ha):
    _, p = ha
    assert p.stages == ("facts", "preflight")
    assert [pp.phase.name for pp in p.phases] == ["runtime", "push", "init", "join-control-plane",
                                                  "reconfigure-control-planes", "join-workers", "reconfigure-workers",
                                                  "kube-proxy", "cni", "addons", "verify"]
    assert hosts_of(p, "runtime") == [["cp-1", "cp-2", "cp-3", "w-1", "w-2", "w-3"]]
    assert hosts_of(p, "init") == [["cp-1"]]
    assert hosts_of(p, "join-control-plane") == [["cp-2"], ["cp-3"]]
    assert hosts_of(p, "reconfigure-control-planes") == [["cp-1"], ["cp-2"], ["cp-3"]]
    assert hosts_of(p, "join-workers") == hosts_of(p, "reconfigure-workers") == [["w-1", "w-2"], ["w-3"]]
    assert hosts_of(p, "kube-proxy") == [["cp-1"]]


def test_skip_and_only_select_phases_and_reject_unknown_names(ha):
    inv, p = ha
    assert [pp.phase.name for pp in plan.build(inv, p.bundle, only=("init", "cni")).phases] == ["init", "cni"]
    assert "cni" not in [pp.phase.name for pp in plan.build(inv, p.bundle, skip=("cni",)).phases]
    assert plan.build(inv, p.bundle, only=("facts", "runtime")).stages == ("facts",)
    with pytest.raises(KubefabError, match="unknown phase 'jion'.*phases are: facts, preflight"):
        plan.build(inv, p.bundle, skip=("jion",))


def test_workers_are_pushed_nothing_that_breaks_kubeadm_join(ha):
    _, p = ha
    for name in ("w-1", "w-2", "w-3"):
        paths = {f.path for f in p.bundle.files[name]}
        assert not any(path.startswith("/etc/kubernetes/pki") for path in paths)
        assert not paths & {"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf"}
        assert not any(path.startswith("/etc/kubernetes/manifests") for path in paths)


def test_every_rendered_file_is_pushed_exactly_once(ha):
    _, p = ha
    for host, files in p.bundle.files.items():
        pushed = [f.path for pp in p.phases for batch in pp.batches for hs in batch if hs.host.name == host
                  for step in hs.steps if isinstance(step, Push) for f in step.files]
        assert sorted(pushed) == sorted(f.path for f in files)


def test_plan_text_masks_the_token_and_lists_files_and_commands(ha):
    inv, p = ha
    text = report.plan_text(p)
    secret = (inv.state_dir / "bootstrap-token").read_text().strip()
    token_id, token_secret = secret.split(".")
    assert token_secret not in text and f"{token_id}.***" in text
    assert "kubeadm init --config /etc/kubernetes/kubefab/init.yaml" in text
    assert "0600" in text and "/etc/kubernetes/pki/ca.key" in text
    assert "batch 2: w-3" in text
    assert p.bundle.ca_hash in text


def test_state_dir_keeps_secrets_private(ha):
    inv, _ = ha
    for path in (inv.state_dir, inv.state_dir / "hosts", inv.state_dir / "pki"):
        assert path.stat().st_mode & 0o777 == 0o700, path
    secrets = [*inv.state_dir.rglob("*.key"), *(inv.state_dir / "kubeconfigs").rglob("*.conf"),
               inv.state_dir / "bootstrap-token", *inv.state_dir.glob("hosts/*/etc/kubernetes/kubefab/*.yaml")]
    assert len(secrets) > 20
    for key in secrets:
        assert key.stat().st_mode & 0o777 == 0o600, key


def test_second_plan_changes_nothing_and_says_so(ha):
    inv, _ = ha
    before = tree(inv.state_dir)
    again = plan.prepare(inv)
    assert {a.what for a in again.actions} == {"kept"}
    assert tree(inv.state_dir) == before


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True)


def test_cluster_plan_on_the_committed_inventory(tmp_path):
    run = cli("cluster.plan", "--state-dir", str(tmp_path / "state"))
    assert run.returncode == 0, run.stderr
    assert "kubefab plan for cluster 'vagrant'" in run.stdout
    assert (tmp_path / "state" / "hosts" / "k8s-master" / "etc" / "kubernetes" / "pki" / "apiserver.crt").is_file()
    assert (tmp_path / "state" / "hosts" / "k8s-s2" / "etc" / "kubernetes" / "kubefab" / "join.yaml").is_file()


def test_task_list_and_help_document_every_task_and_option():
    listing = cli("--list")
    assert listing.returncode == 0
    for name in ("cluster.plan", "pki.show"):
        line = next(line for line in listing.stdout.splitlines() if line.strip().startswith(name))
        assert len(line.split(name, 1)[1].strip()) > 10, f"{name} has no one-line help"
    help_text = cli("--help", "cluster.plan").stdout
    for option in ("--inventory", "--state-dir", "--only", "--skip"):
        assert option in help_text


def test_pki_show_lists_every_certificate_soonest_first_and_warns(ha):
    inv, _ = ha
    run = cli("pki.show", "-i", str(inv.path), "--days", "400")
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line[:4].isdigit()]
    assert [r[:16] for r in rows] == sorted(r[:16] for r in rows)
    assert any("pki/nodes/cp-2/apiserver.crt" in r for r in rows)
    assert any("kubeconfigs/admin.conf" in r and "O=kubeadm:cluster-admins" in r for r in rows)
    leaves = [r for r in rows if "ca.crt" not in r]
    assert all("WARNING" in r for r in leaves) and not any("WARNING" in r for r in rows if "/ca.crt" in r)
    assert "SANs: cp-1, kubernetes" in run.stdout


def test_plan_for_one_host_and_an_unknown_host(ha):
    inv, _ = ha
    p = plan.build(inv, plan.prepare(inv), hosts=("w-3",))
    assert {hs.host.name for pp in p.phases for batch in pp.batches for hs in batch} == {"w-3"}
    run = cli("cluster.plan", "-i", str(inv.path), "--host", "w-4")
    assert run.returncode == 2
    assert "no host named 'w-4'" in run.stderr and "did you mean 'w-3'" in run.stderr
    assert "Traceback" not in run.stderr


READY = (Path(__file__).parent.parent / "data" / "facts" / "ready.txt").read_text()


def facts_of(host, package_manager="dnf", kubernetes_files=()):
    """A ready host's facts (tests/data/facts), with its package manager and kubeadm's files as given."""
    ready = facts.parse(host, READY)
    return replace(ready, os=replace(ready.os, package_manager=package_manager), kube_files=frozenset(kubernetes_files))


def test_facts_decide_steps_the_offline_plan_leaves_open(ha):
    inv, p = ha
    gathered = {h.name: facts_of(h.name) for h in inv.hosts}
    gathered["w-2"] = facts_of("w-2", "apt-get", ("/etc/kubernetes/kubelet.conf",))
    with_facts = plan.build(inv, p.bundle, gathered)

    def step(pl, phase, host, name):
        pp = next(pp for pp in pl.phases if pp.phase.name == phase)
        return next(s for b in pp.batches for hs in b if hs.host.name == host for s in hs.steps if s.name == name)

    offline_install = step(p, "runtime", "w-1", "install packages").script
    assert "apt-get" in offline_install and "dnf install" in offline_install
    assert "dnf install" in step(with_facts, "runtime", "w-1", "install packages").script
    assert "apt-get" not in step(with_facts, "runtime", "w-1", "install packages").script
    assert "dnf" not in step(with_facts, "runtime", "w-2", "install packages").script
    assert step(with_facts, "join-workers", "w-2", "kubeadm join").done == "already a node"
    assert step(with_facts, "join-workers", "w-1", "kubeadm join").done == ""
    assert "[done: already a node]" in report.plan_text(with_facts)
    assert plan.build(inv, p.bundle, gathered) == with_facts


def settled(inv, bundle, host):
    """The facts of `host` once a run finished on it: every file pushed, every step's effect in place."""
    f = facts_of(host.name, "apt-get", ("/etc/kubernetes/kubelet.conf",))
    block = "\n".join((paths.HOSTS_BEGIN, *(f"{h.internal_address} {h.name}" for h in inv.hosts), paths.HOSTS_END))
    version = inv.cluster.kubernetes_version
    return replace(
        f, hostname=host.name, etc_hostname=host.name, hosts_block=hashlib.sha256(f"{block}\n".encode()).hexdigest(),
        swaps=(), fstab_swaps=(), containerd_service="enabled", containerd_active="active",
        images=frozenset(kubeadm.images(inv)), versions={**f.versions, "kubeadm": version, "kubelet": version,
                                                          "kubectl": version},
        files={r.path: facts.FileState(r.mode, 0, 0, r.size, r.mtime, r.sha256) for r in bundle.files[host.name]})


def test_what_the_facts_show_in_place_is_left_out_and_the_rest_is_marked_done(ha):
    inv, p = ha
    gathered = {h.name: settled(inv, p.bundle, h) for h in inv.hosts}
    config = next(r for r in p.bundle.files["w-1"] if r.path == paths.CONTAINERD_CONFIG)
    gathered["w-1"] = replace(gathered["w-1"], files={**gathered["w-1"].files, config.path: replace(
        gathered["w-1"].files[config.path], sha256="0" * 64)})          # someone edited containerd's config
    settled_plan = plan.build(inv, p.bundle, gathered, only=("runtime", "push", "join-workers"))

    def steps(phase, host):
        pp = next(pp for pp in settled_plan.phases if pp.phase.name == phase)
        return {s.name: s for b in pp.batches for hs in b if hs.host.name == host for s in hs.steps}
    assert all(s.done for phase in ("runtime", "push") for s in steps(phase, "w-2").values())
    assert steps("runtime", "w-2")["pull images"].done == f"all {len(kubeadm.images(inv))} images present"
    assert steps("push", "w-2")["push files"].done.startswith("all ")
    w1 = steps("runtime", "w-1")
    assert [f.path for f in w1["files"].files] == [paths.CONTAINERD_CONFIG] and not w1["files"].done
    assert not w1["containerd running"].done                              # restarted after its config is put back
    assert [n for n, s in w1.items() if not s.done] == ["files", "containerd running"]
    assert "push 1 files, each only when it differs (" in report.plan_text(settled_plan)
    gathered["w-2"] = replace(gathered["w-2"], firewalld="active", swaps=(("/swapfile", 1024),))
    runtime = plan.build(inv, p.bundle, gathered, only=("runtime",)).phases[0]
    w2 = {s.name: s for hs in runtime.batches[0] if hs.host.name == "w-2" for s in hs.steps}
    assert not w2["firewalld ports"].done and not w2["swap off"].done and w2["hostname"].done


def test_each_control_plane_applies_a_changed_init_config_through_kubeadms_phases_then_waits_for_its_health(ha):
    inv, p = ha
    pp = next(pp for pp in p.phases if pp.phase.name == "reconfigure-control-planes")
    cp2 = next(hs for b in pp.batches for hs in b if hs.host.name == "cp-2")
    manifests, gate, upload, kubelet, ready, again = cp2.steps
    assert isinstance(ready, KubeletReady) and isinstance(again, WaitReconfigured)
    assert manifests.guard == upload.guard == f"cmp -s {paths.CONTROL_PLANE_CONFIG} {paths.APPLIED_CONFIG}"
    assert not manifests.done and not upload.done and isinstance(gate, WaitReconfigured)
    assert f"kubeadm init phase control-plane all --config {paths.CONTROL_PLANE_CONFIG} && " in manifests.script
    assert upload.script == f"kubeadm init phase upload-config all --config {paths.CONTROL_PLANE_CONFIG} && " \
                            f"cp -p {paths.CONTROL_PLANE_CONFIG} {paths.APPLIED_CONFIG}"
    # kubeadm init and a control plane's join record the config its manifests were made from; a worker has none
    recorded = f"cp -p {paths.CONTROL_PLANE_CONFIG} {paths.APPLIED_CONFIG}"
    scripts = {(pp.phase.name, hs.host.name): hs.steps[0].script for pp in p.phases for b in pp.batches for hs in b
               if pp.phase.name.startswith(("init", "join"))}
    assert recorded in scripts["init", "cp-1"] and recorded in scripts["join-control-plane", "cp-2"]
    assert recorded not in scripts["join-workers", "w-1"]
    # and every node the kubelet flags kubeadm started its kubelet with (kubefab's, from the same configuration)
    kubelet_recorded = f"cp -p {paths.KUBELET_FLAGS_WANTED} {paths.KUBELET_FLAGS_APPLIED}"
    assert all(s.endswith(kubelet_recorded) for s in scripts.values())
    # a host that is no control plane yet gets its manifests from kubeadm init or join, made from this very config
    gathered = {h.name: facts_of(h.name, kubernetes_files=(paths.manifest("kube-apiserver"),) * (h.name == "cp-1"))
                for h in inv.hosts}
    done = plan.build(inv, p.bundle, gathered, only=("reconfigure-control-planes",)).phases[0]
    steps = {hs.host.name: hs.steps for b in done.batches for hs in b}
    assert not any(s.done for s in steps["cp-1"][:3])
    assert steps["cp-2"][0].done.startswith("not a control plane yet") and all(s.done for s in steps["cp-2"])


def test_live_plan_with_a_bad_number_exits_1_not_2_which_means_changes(tmp_path):
    run = cli("cluster.plan", "--live", "--workers", "x", "--state-dir", str(tmp_path / "state"))
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert "--workers 'x': give a whole number of at least 1" in run.stderr


def test_a_new_bootstrap_token_alone_reconfigures_no_control_plane(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text(HA)
    inv = inventory.load(path)
    before = plan.prepare(inv)

    def applied(bundle):         # the facts of control planes whose manifests were made from `bundle`'s config
        def one(host):
            made = next(r for r in bundle.files[host.name] if r.path == paths.CONTROL_PLANE_CONFIG)
            return replace(facts_of(host.name, kubernetes_files=(paths.manifest("kube-apiserver"),)),
                           files={paths.APPLIED_CONFIG: facts.FileState(0o600, 0, 0, made.size, 0, made.sha256)})
        return {h.name: one(h) for h in inv.control_planes}

    def pending(bundle, gathered):
        pp = plan.build(inv, bundle, gathered, only=("reconfigure-control-planes",)).phases[0]
        return [hs.host.name for b in pp.batches for hs in b if not all(s.done for s in hs.steps)]

    gathered = applied(before)
    assert pending(before, gathered) == []
    token.path(inv).write_text("abcdef.0123456789abcdef\n")
    after = plan.prepare(inv)
    init = [next(r.sha256 for r in b.files["cp-1"] if r.path == paths.INIT_CONFIG) for b in (before, after)]
    assert init[0] != init[1]                           # kubeadm init's config carries the new token
    assert pending(after, gathered) == []
    text = (inv.state_dir / "hosts" / "cp-2" / paths.CONTROL_PLANE_CONFIG.lstrip("/")).read_text()
    assert "abcdef" not in text and "bootstrapTokens" not in text and "kubeletExtraArgs" in text
    # what does change a control plane's manifests still reconfigures it
    path.write_text(HA + '\n[cluster.apiserver]\nextra_args = { audit-log-maxage = "30" }\n')
    inv = inventory.load(path)
    assert pending(plan.prepare(inv), gathered) == ["cp-1", "cp-2", "cp-3"]


def test_a_changed_kubelet_setting_restarts_each_kubelet_once_control_planes_one_at_a_time_workers_in_batches(tmp_path):
    path = tmp_path / "inventory.toml"
    path.write_text(HA)
    inv = inventory.load(path)
    before = plan.prepare(inv)

    def kubelets_of(bundle):     # nodes whose kubelet runs on `bundle`'s flags, as the probe reports them
        def one(host):
            flags = next(r for r in bundle.files[host.name] if r.path == paths.KUBELET_FLAGS_WANTED)
            state = facts.FileState(0o644, 0, 0, flags.size, 0, flags.sha256)
            return replace(facts_of(host.name, kubernetes_files=(paths.kubeconfig("kubelet.conf"),)),
                           files={paths.KUBELET_FLAGS: state, paths.KUBELET_FLAGS_APPLIED: state})
        return {h.name: one(h) for h in inv.hosts}

    def restarted(bundle, gathered):
        p = plan.build(inv, bundle, gathered, only=("reconfigure-control-planes", "reconfigure-workers"))
        return [[hs.host.name for hs in b if any(s.name == "kubelet configuration" and not s.done for s in hs.steps)]
                for pp in p.phases for b in pp.batches]

    gathered = kubelets_of(before)
    assert restarted(before, gathered) == [[], [], [], [], []]
    path.write_text(HA.replace("[cluster]\n", "[cluster.kubelet]\nconfig = { maxPods = 150 }\n\n[cluster]\n"))
    inv = inventory.load(path)
    after = plan.prepare(inv)
    assert restarted(after, gathered) == [["cp-1"], ["cp-2"], ["cp-3"], ["w-1", "w-2"], ["w-3"]]
    flags = (inv.state_dir / "hosts" / "w-1" / paths.KUBELET_FLAGS_WANTED.lstrip("/")).read_text()
    assert flags.splitlines()[-1] == ('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
                                      'containerd.sock --node-ip=10.0.0.21"')
    # a host that is no node yet gets its kubelet's files from kubeadm init or join
    fresh = {**gathered, "w-3": facts_of("w-3")}
    assert restarted(after, fresh)[-1] == []
