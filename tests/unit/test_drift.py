"""`cluster.plan --live`'s findings from a facts-fed plan, and their text: diffs of what differs, secrets masked."""

import concurrent.futures as cf
from dataclasses import replace
from types import SimpleNamespace

import pytest
import yaml

from kubefab import paths, plan
from kubefab.api import apisteps, apply, kube, kubeproxy, nodes
from kubefab.components import kubeadm
from kubefab.pki import token
from kubefab.plan import drift, phases, runtime
from kubefab.run import live
from kubefab.secret import MASK
from kubefab.steps import ApplyCni, ApplyKubeProxy, Command
from test_plan import ha, settled  # noqa: F401  (ha is a fixture)


def gathered(inv, bundle):
    return {h.name: settled(inv, bundle, h) for h in inv.hosts}


def edited(facts, path, **state):
    return replace(facts, files={**facts.files, path: replace(facts.files[path], **state)})


def test_a_settled_fleet_has_no_changes_and_each_edit_is_named_alone(ha):
    inv, p = ha
    facts = gathered(inv, p.bundle)
    assert drift.changes(plan.build(inv, p.bundle, facts, only=("runtime", "push"))) == drift.Changes((), (), ())
    facts["w-1"] = edited(facts["w-1"], paths.CONTAINERD_CONFIG, sha256="0" * 64)
    facts["w-2"] = replace(facts["w-2"], sysctls={**facts["w-2"].sysctls, "net.ipv4.ip_forward": "0"})
    found = drift.changes(plan.build(inv, p.bundle, facts, only=("runtime", "push")))
    assert [(c.host, c.file.path) for c in found.files] == [("w-1", paths.CONTAINERD_CONFIG)]
    assert [(s.host, s.what) for s in found.steps] == [
        ("w-1", "enable containerd; restart it when its config changed"),
        ("w-2", "sysctl -p /etc/sysctl.d/99-kubernetes.conf (net.ipv4.ip_forward is 0, kubefab's file sets 1)")]
    assert drift.fetched_paths(found) == {"w-1": (paths.CONTAINERD_CONFIG,)}


def test_a_changed_file_is_shown_as_a_unified_diff_from_the_host_to_kubefabs(ha):
    inv, p = ha
    facts = gathered(inv, p.bundle)
    facts["w-1"] = edited(facts["w-1"], paths.CONTAINERD_CONFIG, sha256="0" * 64, mode=0o664)
    found = drift.changes(plan.build(inv, p.bundle, facts, only=("runtime",)))
    want = next(f for f in p.bundle.files["w-1"] if f.path == paths.CONTAINERD_CONFIG).local.read_text()
    have = want.replace("SystemdCgroup = true", "SystemdCgroup = false").encode()
    text = drift.text(found, {("w-1", paths.CONTAINERD_CONFIG): have}, ())
    assert f"w-1: {paths.CONTAINERD_CONFIG}: mode 0664 owner 0:0, would be 0644 owner 0:0\n" in text
    assert f"--- w-1:{paths.CONTAINERD_CONFIG} (on the host)\n" in text
    assert "\n-          SystemdCgroup = false\n+          SystemdCgroup = true\n" in text
    assert sum(line.startswith(("-", "+")) and line[1:3] not in ("--", "++") for line in text.splitlines()) == 2


def test_a_secret_file_is_never_fetched_nor_shown(ha):
    inv, p = ha
    facts = gathered(inv, p.bundle)
    secrets = [f for f in p.bundle.files["cp-1"] if f.mode == 0o600]
    assert {paths.INIT_CONFIG, paths.in_pki("ca.key"), paths.kubeconfig("admin.conf")} <= {f.path for f in secrets}
    for f in secrets:
        facts["cp-1"] = edited(facts["cp-1"], f.path, sha256="0" * 64)
    found = drift.changes(plan.build(inv, p.bundle, facts, only=("push",)))
    assert {c.file.path for c in found.files} == {f.path for f in secrets}
    assert drift.fetched_paths(found) == {}
    text = drift.text(found, {}, ())
    assert text.count(drift.SECRET) == len(secrets)
    assert "PRIVATE KEY" not in text and token.bootstrap_token(inv).reveal() not in text and "client-key" not in text


def test_a_missing_file_is_shown_whole_unless_secret(ha):
    inv, p = ha
    facts = gathered(inv, p.bundle)
    facts["cp-1"] = replace(facts["cp-1"], files={k: v for k, v in facts["cp-1"].files.items()
                                                if k not in (paths.CONTAINERD_CONFIG, paths.INIT_CONFIG)})
    text = drift.text(drift.changes(plan.build(inv, p.bundle, facts, only=("runtime", "push"))), {}, ())
    assert f"cp-1: {paths.CONTAINERD_CONFIG}: missing, would be written (mode 0644)\n--- /dev/null\n" in text
    assert "+          SystemdCgroup = true\n" in text
    assert f"cp-1: {paths.INIT_CONFIG}: missing, would be written (mode 0600, secret)\n" in text
    assert "bootstrapTokens" not in text


def test_an_edited_static_pod_manifest_is_diffed_against_kubeadms_copy(ha):
    inv, p = ha
    pairs = phases.manifest_pairs()
    files = {path: replace(next(iter(settled(inv, p.bundle, inv.hosts[0]).files.values())), sha256=f"{n:064x}")
             for n, pair in enumerate(pairs) for path in pair}
    facts = gathered(inv, p.bundle)
    facts["cp-1"] = replace(facts["cp-1"], kube_files=frozenset({paths.manifest("kube-apiserver")}),
                           files={**facts["cp-1"].files, **files})
    step = next(s for s in plan.build(inv, p.bundle, facts, only=("init",)).phases[0].batches[0][0].steps
                if s.name == "static pod manifests")
    assert step.done == "static pod manifests as kubeadm wrote them"
    apiserver, kept = next(pair for pair in pairs if pair[0] == paths.manifest("kube-apiserver"))
    facts["cp-1"] = edited(facts["cp-1"], apiserver, sha256="f" * 64)
    found = drift.changes(plan.build(inv, p.bundle, facts, only=("init",)))
    assert [s.what for s in found.steps] == [f"put back {apiserver} as kubeadm wrote it ({paths.KEPT_MANIFESTS})"]
    assert drift.fetched_paths(found) == {"cp-1": tuple(path for pair in pairs for path in pair)}
    manifest = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --allow-privileged=true\n"
    fetched = {("cp-1", path): manifest.encode() for pair in pairs for path in pair}
    fetched[("cp-1", apiserver)] = manifest.replace("true\n", "true\n    - --v=4\n").encode()
    text = drift.text(found, fetched, ())
    assert f"+++ cp-1:{apiserver} (as {kept} holds it)\n" in text and "\n-    - --v=4\n" in text
    assert text.count("\n-") + text.count("\n+") == 3       # the two headers and the one line


def test_unified_masks_private_keys_and_an_object_secret_is_not_shown():
    key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\n"
    text = drift.unified("a: 1\n", f"a: 2\n{key}", "old", "new")
    assert "MHcCAQEEI" not in text and f"+{MASK}\n" in text
    assert drift.object_text(drift.ObjectChange("secret/x", "data: {}\n", "data: {a: b}\n", secret=True)) == \
        f"secret/x: {drift.SECRET}\n"


def test_a_node_missing_an_inventory_label_or_taint_is_diffed_as_the_verify_step_would_patch_it(ha):
    inv, _ = ha
    host = replace(inv.hosts[3], labels={"node-role.kubernetes.io/gpu": "", "tier": "gold"})
    node = {"metadata": {"name": host.name, "labels": {"kubernetes.io/hostname": host.name, "tier": "gold"}},
            "spec": {"taints": [{"key": "example.com/other", "effect": "NoSchedule"}]}}
    change = live._node(inv, host, node)
    assert change.what == f"Node {host.name}"
    text = drift.object_text(change)
    assert "\n+  node-role.kubernetes.io/gpu: ''\n" in text and "tier" not in text.replace("  tier: gold\n", "").replace("gpu,tier", "")
    assert "+  kubefab.io/applied-labels: node-role.kubernetes.io/gpu,tier\n" in text   # what the step records
    labelled = {**node, "metadata": {**node["metadata"], "labels": {**node["metadata"]["labels"],
                                                                      "node-role.kubernetes.io/gpu": ""},
                                     "annotations": {nodes.APPLIED_LABELS: "node-role.kubernetes.io/gpu,tier",
                                                     nodes.APPLIED_TAINTS: ""}}}
    assert live._node(inv, host, labelled) is None      # another's taint is left alone, as the step leaves it
    dropped = replace(host, labels={"tier": "gold"})       # the inventory no longer lists the gpu label
    text = drift.object_text(live._node(inv, dropped, labelled))
    assert "\n-  node-role.kubernetes.io/gpu: ''\n" in text and "null" not in text


class Objects:
    """An API server holding `live` objects by path; records every write."""

    def __init__(self, live):
        self.live, self.writes = live, []

    def resource(self, api_version, kind):
        return kube.Resource(api_version, kind, kind.lower() + "s", kind != "Namespace")

    def find(self, path):
        return self.live.get(path)

    def patch(self, path, body, content_type, query=None):
        self.writes.append(path)


def test_compare_reads_what_apply_would_write_and_writes_nothing():
    manifest = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: net}\n---\n"
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf, namespace: net}\ndata: {mode: vxlan}\n---\n"
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: net}\n")
    api = Objects({"/api/v1/namespaces/net": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "net"}},
                   "/api/v1/namespaces/net/configmaps/conf": {"metadata": {"name": "conf", "namespace": "net",
                                                                           "uid": "1"}, "data": {"mode": "udp"}}})
    compared = apply.compare(api, manifest)
    assert [(str(a), live is not None) for a, live, _ in compared] == [
        ("namespace/net unchanged", True), ("configmap/conf configured", True), ("serviceaccount/sa created", False)]
    assert api.writes == []
    _, live_map, want = compared[1]
    assert drift.projected(live_map, want) == {"metadata": {"name": "conf", "namespace": "net"},
                                                "data": {"mode": "udp"}}     # the uid is not the manifest's
    assert [str(a) for a in apply.apply(api, manifest)] == [str(a) for a, _, _ in compared]
    assert api.writes == ["/api/v1/namespaces/net/configmaps/conf", "/api/v1/namespaces/net/serviceaccounts/sa"]



def test_a_check_the_facts_could_not_settle_is_not_a_change(ha):
    inv, p = ha
    assert runtime._versions(inv, None).check and runtime._runtime_present(None).check   # a busy host's probe may
    install = Command("install packages", "apt-get install -qy kubeadm")                # miss a version
    steps = plan.HostSteps(inv.hosts[0], (runtime._versions(inv, None), install))
    found = drift.changes(replace(p, facts={}, phases=(plan.PhasePlan(phases.RUNTIME, ((steps,),)),)))
    assert [s.what for s in found.steps] == ["apt-get install -qy kubeadm"]


class Cluster(Objects):
    """Objects, and the nodes' LIST (raising `listing` when given: an API server that does not answer it)."""

    def __init__(self, live, listed=(), listing=None):
        super().__init__(live)
        self.listed, self.listing = listed, listing

    def get(self, path):
        assert path == nodes.NODES
        if self.listing:
            raise self.listing
        return {"items": list(self.listed)}


def session(inv, api, connected):
    return SimpleNamespace(inv=inv, api=SimpleNamespace(api=lambda: connected.append(1) or api))


def test_live_reads_begin_before_the_plan_and_only_those_it_needs_are_awaited(ha, monkeypatch):
    inv, p = ha
    monkeypatch.setattr(apisteps, "reachable", lambda address, port: True)
    api = Cluster({}, listing=kube.Unreachable("https://10.0.0.10:6443: no answer to GET /api/v1/nodes"))
    reads = live.start(session(inv, api, []))
    created = reads.cni.result(timeout=30)      # read with no plan built yet: they overlap the facts round trip
    assert created and {a.action for a, _, _ in created} == {apply.CREATED}
    checks = drift.changes(p).api
    network = tuple(c for c in checks if isinstance(c.step, ApplyCni))
    objects = live.read_objects(inv, network, lambda: reads)
    assert [o.what for o in objects] == [str(a) for a, _, _ in created]     # the LIST's failure is not awaited
    with pytest.raises(kube.Unreachable, match="GET /api/v1/nodes"):
        live.read_objects(inv, checks, lambda: reads)
    assert live.read_objects(inv, (), lambda: pytest.fail("nothing to compare, nothing read")) == ()


def test_live_reads_through_the_first_control_planes_ssh_wait_for_the_facts(ha, monkeypatch):
    inv, p = ha
    monkeypatch.setattr(apisteps, "reachable", lambda address, port: False)
    listed = [{"metadata": {"name": h.name, "labels": {"kubernetes.io/hostname": h.name}}} for h in inv.hosts]
    connected = []
    s = session(inv, Cluster({}, listed), connected)
    reads = live.start(s)
    assert reads.api.result(timeout=30) is None and reads.nodes.result(timeout=30) is None
    assert connected == []      # no connection beside the facts' own to the first control plane
    objects = live.read_objects(inv, drift.changes(p).api, lambda: live._begun(s, reads))
    assert connected == [1]
    # the listed control planes lack their taint, the listed workers hold what they should
    assert [o.what for o in objects if o.what.startswith("Node")] == [f"Node {h.name}" for h in inv.control_planes]


def test_a_kube_proxy_restart_left_pending_by_a_stopped_run_is_a_change(ha):
    inv, p = ha
    checks = tuple(c for c in drift.changes(p).api if isinstance(c.step, ApplyKubeProxy))
    conf = yaml.safe_dump(kubeadm.kube_proxy_configuration(inv.cluster))
    cm = {"metadata": {"annotations": {kubeproxy.PENDING: "true"}}, "data": {kubeproxy.KEY: conf}}
    read = cf.Future()
    read.set_result(cm)
    reads = SimpleNamespace(cni=None, addons={}, nodes=None, kube_proxy=read)
    [change] = live.read_objects(inv, checks, lambda: reads)
    assert change.what == "DaemonSet kube-system/kube-proxy"
    assert change.before == "# its pods started before config.conf last changed\n"
    cm["metadata"]["annotations"] = {}
    assert live.read_objects(inv, checks, lambda: reads) == ()
