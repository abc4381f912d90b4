"""cluster.up's whole sequence on lab node hosts: init, joins, CNI and verify, then a second up that changes
nothing, and a worker that fails to join while the others go on, finished by the next run.

The doubles do not run flannel's DaemonSet: until they lay its effect themselves, each test puts flannel's
conflist and plugin binaries on the nodes first, as test_lab_api.py does (the kubelet double is Ready only
with them)."""

import re
import shutil
import socket
import threading
import time

import pytest

from kubefab import inventory, net, plan
from kubefab.api import bootstrap, health, kube, nodes
from kubefab.components import kubeadm
from kubefab.pki import token
from kubefab.remote import ssh
from kubefab.run import logs
from test_lab_up import run_of

pytestmark = [pytest.mark.lab, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]


def load(lab, tmp_path):
    return inventory.load(lab.inventory, state_dir=tmp_path / "state")


def cells(r):
    return {(x.host, x.phase): x for x in r.results}


KEEP = "-p tcp --dport 9999 -m comment --comment operator-rule -j ACCEPT"


def test_up_makes_a_ready_cluster_a_second_up_changes_nothing_and_reset_leaves_the_hosts_as_before(
        new_lab, tmp_path, monkeypatch):
    lab = new_lab(hosts=3, control_planes=1, flavour="node")
    inv = load(lab, tmp_path)
    lab.run("kf-w1", f"iptables -A INPUT {KEEP}")
    start = time.monotonic()
    code, text, r = run_of(lab, tmp_path, yes=True)
    first = time.monotonic() - start
    assert code == 0, text
    results = cells(r)
    assert results["kf-cp1", "init"].status == "changed"
    assert [s.name for s in results["kf-cp1", "init"].steps] == ["kubeadm init", "static pod manifests", "api-server"]
    assert {results[h, "join-workers"].status for h in ("kf-w1", "kf-w2")} == {"changed"}
    assert "objects written" in results["kf-cp1", "cni"].detail or results["kf-cp1", "cni"].status == "changed"
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    listed = {n.name: n for n in nodes.list_nodes(api)}
    assert sorted(listed) == ["kf-cp1", "kf-w1", "kf-w2"] and all(n.ready for n in listed.values())
    assert listed["kf-cp1"].roles == ("control-plane",)
    assert api.find("/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds") is not None
    hosts = ssh.Hosts()     # the way in when the endpoint does not answer from here: a forward over SSH
    try:
        local, port = hosts.forward(inv.first_control_plane, *net.endpoint_parts(inv.endpoint))
        tunnelled = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf", via=f"{local}:{port}")
        assert kube.wait_ready(tunnelled, timeout=30).startswith("v1.") and local == "127.0.0.1"
        assert {n.name for n in nodes.list_nodes(tunnelled)} == set(listed)
    finally:
        hosts.close()

    requested, request = [], kube.Api.request

    def recorded(self, method, path, *args, **kwargs):
        requested.append((method, path))
        return request(self, method, path, *args, **kwargs)
    monkeypatch.setattr(kube.Api, "request", recorded)
    start = time.monotonic()
    code, again, r = run_of(lab, tmp_path, yes=True)
    second = time.monotonic() - start
    monkeypatch.undo()
    # verify reads every node in one LIST, not one GET a node
    assert [p for m, p in requested if m == "GET" and p.startswith(f"{nodes.NODES}/")] == [], requested
    assert requested.count(("GET", nodes.NODES)) == 1, requested
    assert code == 0, again
    after_facts = {k: x for k, x in cells(r).items() if k[1] not in ("facts", "preflight")}
    assert {x.status for x in after_facts.values()} == {"unchanged"}, again
    # runtime, push; init; reconfigure-control-planes; join-workers, reconfigure-workers; kube-proxy; cni; verify
    assert len(after_facts) == 3 * 2 + 1 + 1 + 2 * 2 + 1 + 1 + 3
    assert results["kf-w1", "join-workers"].steps[0].detail != "already a node"
    assert cells(r)["kf-w1", "join-workers"].steps[0].detail == "already a node"
    assert "done: nothing changed" in again
    untouched = [cells(r)[h.name, p] for h in inv.hosts for p in ("runtime", "push", "join-workers")
                 if (h.name, p) in cells(r)]
    ran = [(x.host, x.phase, s.name, s.detail) for x in untouched if x.seconds for s in x.steps if s.seconds]
    assert len(untouched) == 8 and not ran, f"{ran}\n{again}"      # the facts showed every step done
    assert {s.detail for x in untouched for s in x.steps} >= {f"all {len(kubeadm.images(inv))} images present",
                                                              "containerd enabled and running, its config in place",
                                                              "already a node"}
    assert re.search(r"kf-w2 +ok .* unchanged", again), again
    print(f"\ncluster.up on 1 control plane + 2 workers: first {first:.1f} s, second (no change) {second:.1f} s")

    # what kube-proxy and the bridge plugin leave on a node beside flanneld's own (its chains and flannel.1,
    # made by the flannel DaemonSet's effect): a chain, a jump into it, a CNI interface
    assert "FLANNEL-FWD" in lab.run("kf-w1", "iptables-save").stdout
    assert "flannel.1" in lab.run("kf-w1", "ip -o link").stdout
    lab.run("kf-w1", "iptables -t nat -N KUBE-SERVICES && iptables -t nat -A PREROUTING -j KUBE-SERVICES && "
                     "ip link add cni0 type bridge")
    code, text, r = run_of(lab, tmp_path, "reset", yes=True)
    assert code == 0, text
    assert [x.host for x in r.results][-1] == "kf-cp1", text
    rules = lab.run("kf-w1", "iptables-save").stdout
    assert f"-A INPUT {KEEP}" in rules.replace('"', "") or "operator-rule" in rules, rules
    assert "KUBE-" not in rules and "FLANNEL" not in rules, rules
    links = lab.run("kf-w1", "ip -o link").stdout
    assert "cni0" not in links and "flannel.1" not in links, links
    for h in inv.hosts:
        assert lab.run(h.name, "ls -A /etc/kubernetes /var/lib/kubelet /var/lib/etcd /etc/cni/net.d 2>&1 | "
                               "grep -vc 'No such file'", check=False).stdout.strip() == "0"
    assert (inv.state_dir / "pki" / "ca.key").is_file()
    code, again, r = run_of(lab, tmp_path, "reset", yes=True)       # SSH works after the reset
    assert code == 0, again
    assert {s.status for x in r.results for s in x.steps} == {"unchanged"}, again
    assert "operator-rule" in lab.run("kf-w1", "iptables-save").stdout


def test_a_worker_cut_off_after_push_fails_with_its_cause_the_others_join_and_a_rerun_finishes_it(
        new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=1, flavour="node")
    load(lab, tmp_path)
    log = tmp_path / "state" / logs.FILE

    def cut_after_push():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if log.exists() and re.search(r"push kf-w2 push files: changed", log.read_text()):
                lab.cut("kf-w2")
                return
            time.sleep(0.05)
    cutter = threading.Thread(target=cut_after_push)
    cutter.start()
    code, text, r = run_of(lab, tmp_path, yes=True, max_failed=1)
    cutter.join()
    results = cells(r)
    assert code == 1, text
    assert results["kf-w1", "join-workers"].status == "changed"
    assert results["kf-w2", "join-workers"].status == "failed"
    assert "kf-w2" in text and re.search(r"FAILED kf-w2 join-workers: .*(lost|timed out|no answer)", text), text
    # the link stopped acknowledging while kubeadm join's session opened: lost after connect_timeout, not after the
    # step's 900 s (a busy host's sshd, whose kernel still acknowledges, is waited for: test_lab_up.py)
    cut = results["kf-w2", "join-workers"].detail
    assert "nothing sent was acknowledged for 10 s" in cut, cut
    assert results["kf-w2", "verify"].status == "skipped" and results["kf-w1", "verify"].status != "failed"
    assert "done, except on kf-w2" in text

    lab.connect("kf-w2")
    code, again, r = run_of(lab, tmp_path, yes=True)
    assert code == 0, again
    results = cells(r)
    assert results["kf-w2", "join-workers"].status == "changed"
    assert results["kf-w1", "join-workers"].status == "unchanged"
    assert results["kf-cp1", "init"].status == "unchanged"


def test_node_join_adds_a_late_worker_with_a_fresh_token_and_reset_of_that_worker_leaves_the_others_ready(new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=1, flavour="node")
    inv = load(lab, tmp_path)
    code, text, _ = run_of(lab, tmp_path, yes=True, hosts=("kf-cp1", "kf-w1"))
    assert code == 0, text
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    assert bootstrap.delete(api, token.bootstrap_token(inv)), "the init token was in the cluster"
    stored = (inv.state_dir / "bootstrap-token").read_text()

    code, text, r = run_of(lab, tmp_path, "join", yes=True, hosts=("kf-w2", "kf-w1"))
    assert code == 0, text
    results = cells(r)
    assert results["kf-w2", "join"].status == "changed"
    assert results["kf-w1", "join"].status == "unchanged" and "kf-w1: already a node" in text
    assert results["kf-w2", "verify"].status in ("changed", "unchanged")
    assert nodes.wait_ready(api, ["kf-w2"], timeout=30)[0].ready
    assert not [s for s in api.get(bootstrap.SECRETS)["items"] if s.get("type") == bootstrap.TYPE], \
        "the fresh token was removed"
    assert (inv.state_dir / "bootstrap-token").read_text() == stored
    assert "kf-cp1" not in {x.host for x in r.results}

    code, text, r = run_of(lab, tmp_path, "reset", yes=True, hosts=("kf-w2",))    # and out again
    assert code == 0, text
    assert [(s.name, s.status) for s in cells(r)["kf-w2", "reset-workers"].steps][:2] == [
        ("remove node", "changed"), ("kubeadm reset", "changed")]
    assert api.find("/api/v1/nodes/kf-w2") is None
    assert [n.name for n in nodes.wait_ready(api, ["kf-cp1", "kf-w1"], timeout=30)] == ["kf-cp1", "kf-w1"]


def test_a_forward_to_a_closed_port_closes_the_local_connection_and_the_next_one_still_works(new_lab, tmp_path):
    lab = new_lab(hosts=1, flavour="plain")
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    hosts = ssh.Hosts()
    try:
        closed = hosts.forward(inv.hosts[0], "127.0.0.1", 1)
        with socket.create_connection(closed, timeout=10) as s:
            assert s.recv(100) == b""
        sshd = hosts.forward(inv.hosts[0], "127.0.0.1", 22)
        with socket.create_connection(sshd, timeout=10) as s:
            assert s.recv(100).startswith(b"SSH-2.0-")
    finally:
        hosts.close()
    with pytest.raises(OSError):
        socket.create_connection(sshd, timeout=2)


def test_a_failed_join_shows_kubeadms_words_the_hosts_journals_and_a_hint(new_lab, tmp_path):
    lab = new_lab(hosts=2, control_planes=1, flavour="node")
    load(lab, tmp_path)
    code, text, _ = run_of(lab, tmp_path, yes=True, only=("facts", "preflight", "runtime", "push"))
    assert code == 0, text
    # a join config pinning another CA (a host prepared for another cluster): kubeadm's discovery refuses it
    lab.run("kf-w1", f"sed -i 's/sha256:[0-9a-f]*/sha256:{'0' * 64}/' /etc/kubernetes/kubefab/join.yaml")
    code, text, r = run_of(lab, tmp_path, yes=True, skip=("push",))
    assert code == 1, text
    detail = cells(r)["kf-w1", "join-workers"].detail
    assert "none of the public keys" in detail and "are pinned" in detail, detail
    assert "--- journalctl -u kubelet" in detail and "--- journalctl -u containerd" in detail, detail
    assert "hint (CA hash mismatch)" in detail and "FAILED kf-w1 join-workers" in text
    assert "join-workers failed on some hosts: the run stops before the next phase" in text
    assert ("kf-cp1", "cni") not in cells(r)


def test_three_control_planes_join_one_at_a_time_with_real_etcd_members_and_six_workers_in_batches_of_two(
        new_lab, tmp_path):
    lab = new_lab(hosts=9, control_planes=3, flavour="node")
    inv = load(lab, tmp_path)
    built = plan.build(inv, plan.prepare(inv), batch=2)
    assert [[hs.host.name for hs in b] for pp in built.phases if pp.phase.name == "join-workers"
            for b in pp.batches] == [["kf-w1", "kf-w2"], ["kf-w3", "kf-w4"], ["kf-w5", "kf-w6"]]
    code, text, r = run_of(lab, tmp_path, yes=True, batch=2)
    assert code == 0, text
    results = cells(r)
    for cp in ("kf-cp2", "kf-cp3"):
        assert [(s.name, s.status) for s in results[cp, "join-control-plane"].steps] == [
            ("kubeadm join", "changed"), ("static pod manifests", "changed"), ("control-plane", "unchanged")]
    api = kube.connect(inv.state_dir / "kubeconfigs" / "admin.conf")
    etcd = api.get(health.PODS, {"labelSelector": "component=etcd"})["items"]
    assert sorted(p["spec"]["nodeName"] for p in etcd) == ["kf-cp1", "kf-cp2", "kf-cp3"]
    assert all(n.ready for n in nodes.list_nodes(api)) and len(nodes.list_nodes(api)) == 9
    assert {results[f"kf-w{i}", "join-workers"].status for i in range(1, 7)} == {"changed"}
