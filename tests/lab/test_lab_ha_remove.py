"""node.remove behind a VIP on the lab: three control planes only (no worker), keepalived and haproxy real, etcd
real. The first control plane, made the VIP holder, is removed while a client polls /readyz through the VIP: the VIP
moves to one of the two others, haproxy and keepalived there are reloaded without it, two etcd members stay healthy
and the API answers through the VIP throughout. Its table is then put back after the others and node.join brings it
back: the others take it in first, the VIP stays where it is and every haproxy balances over all three. Last,
cluster.reset: no host holds the VIP, nothing listens on haproxy's port, and a second reset changes nothing."""

import re
import shutil
import time

import pytest
import toml

from kubefab import inventory, paths
from kubefab.api import kube, members, nodes
from kubefab.plan import balancers
from kubefab.remote import ssh
from kubefab.state import removal
from kubefab.steps import UNCHANGED
from test_lab_ha import backend_states, failure_windows, holders, readyz, sampled, wait
from test_lab_up import run_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
GONE = "kf-cp1"
WINDOW_AT_MOST = 6.0        # seconds a client polling through the VIP may see failing, as in the failover test


def test_the_first_control_plane_holding_the_vip_goes_and_the_vip_the_balancers_and_etcd_follow_then_it_joins_again(
        new_lab, tmp_path):
    lab = new_lab(hosts=3, control_planes=3, flavour="node", ha=True)
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    code, text, _ = run_of(lab, tmp_path, yes=True)
    assert code == 0, text
    stay = [h for h in inv.control_planes if h.name != GONE]
    if holders(lab, inv) != [GONE]:     # nopreempt: with the others' keepalived stopped it takes the VIP and keeps it
        for h in stay:
            lab.run(h.name, "systemctl stop keepalived")
        assert wait(lambda: holders(lab, inv) == [GONE], 10) is not None, holders(lab, inv)
        for h in stay:
            lab.run(h.name, "systemctl start keepalived")
        time.sleep(3)
    assert holders(lab, inv) == [GONE]

    with sampled(lambda: ((time.monotonic(), readyz(inv)), holders(lab, inv)), 0.2) as polled:
        start = time.monotonic()
        code, text, r = run_of(lab, tmp_path, "remove", yes=True, hosts=(GONE,))
        seconds = time.monotonic() - start
        time.sleep(2)
    samples, seen = [a for a, _ in polled], [b for _, b in polled]
    print(f"\n{text}\nnode.remove of {GONE}, the VIP holder: {seconds:.1f} s; failure windows through the VIP (s): "
          f"{[round(w, 2) for _, w in failure_windows(samples)]} of {len(samples)} requests")
    assert code == 0, text
    assert "remove its [hosts.kf-cp1] table (kubefab does not edit the inventory, and cluster.up refuses" in text
    assert [(x.phase, x.host) for x in r.results] == [
        ("drain", GONE), ("reset", GONE), ("delete-node", GONE), ("etcd-member", GONE),
        ("load-balancers", stay[0].name), ("load-balancers", stay[1].name)], text

    now = holders(lab, inv)
    assert len(now) == 1 and now[0] != GONE, now
    moved = [i for i, h in enumerate(seen) if h and h != [GONE]]
    assert moved and all(len(h) == 1 and h[0] == now[0] for h in seen[moved[0]:]), \
        f"the VIP left {GONE} once and stayed on one host through the reloads: {seen}"
    assert all(w <= WINDOW_AT_MOST for _, w in failure_windows(samples)), failure_windows(samples)
    assert lab.run(GONE, "systemctl is-active keepalived haproxy", check=False).stdout.split() == ["inactive"] * 2

    hosts = ssh.Hosts()
    try:
        left = members.Etcd(inv, hosts).members()
    finally:
        hosts.close()
    assert sorted(m.name for m in left) == [h.name for h in stay] and all(m.healthy for m in left), left

    gone_address = inv.host(GONE).internal_address
    for h in stay:
        haproxy = lab.run(h.name, f"cat {paths.HAPROXY_CONFIG}").stdout
        assert re.findall(r"\n    server (\S+) ", haproxy) == [s.name for s in stay], haproxy
        peers = re.search(r"unicast_peer \{\n(.*?)\n    \}", lab.run(h.name, f"cat {paths.KEEPALIVED_CONFIG}").stdout,
                          re.S).group(1).split()
        assert peers == [s.internal_address for s in stay if s is not h] and gone_address not in peers
    assert sorted(backend_states(lab, now[0])) == [h.name for h in stay], "haproxy runs the reloaded config"

    admin = inv.state_dir / "kubeconfigs" / "admin.conf"
    assert f"server: https://{inv.endpoint}\n" in admin.read_text() and inv.endpoint == f"{inv.ha.vip}:{inv.ha.port}"
    api = kube.connect(admin)
    assert sorted(n.name for n in nodes.list_nodes(api)) == [h.name for h in stay]
    api.create("/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                         "metadata": {"name": "after-the-removal"}})
    assert api.get("/api/v1/namespaces/default/configmaps/after-the-removal")["metadata"]["name"] == "after-the-removal"
    assert readyz(inv)

    rejoined = joined_again(lab, tmp_path, now[0])
    reset_leaves_no_vip(lab, tmp_path, rejoined)


def etcd_members(inv):
    hosts = ssh.Hosts()
    try:
        return members.Etcd(inv, hosts).members()
    finally:
        hosts.close()


def joined_again(lab, tmp_path, holder):
    """The user puts kf-cp1's table back after the others' (the first control plane is where kubeadm init ran) and
    runs node.join: the others' balancers take it in before its keepalived starts; the VIP never has two holders."""
    raw = toml.loads(lab.inventory.read_text())
    raw["hosts"][GONE] = raw["hosts"].pop(GONE)
    lab.inventory.write_text(toml.dumps(raw))
    inv = inventory.load(lab.inventory, state_dir=tmp_path / "state")
    assert inv.first_control_plane.name != GONE and removal.read(inv).keys() == {GONE}
    with sampled(lambda: holders(lab, inv), 0.2) as seen:
        start = time.monotonic()
        code, text, r = run_of(lab, tmp_path, "join", yes=True, hosts=(GONE,))
        seconds = time.monotonic() - start
        time.sleep(3)           # keepalived's advertisements settle: three intervals
    others = [h.name for h in inv.control_planes if h.name != GONE]
    print(f"\n{text}\nnode.join of {GONE} behind the VIP: {seconds:.1f} s; VIP holders seen every 0.2 s: "
          f"{sorted({tuple(h) for h in seen})}")
    assert code == 0, text
    phases = [(x.phase, x.host) for x in r.results if x.phase not in ("facts", "preflight")]
    assert phases[:3] == [("load-balancers", others[0]), ("load-balancers", others[1]), ("runtime", GONE)], phases
    assert all(h == [holder] for h in seen), f"the VIP stayed on {holder}, never two holders: {seen}"
    assert holders(lab, inv) == [holder]
    for h in inv.control_planes:
        haproxy = lab.run(h.name, f"cat {paths.HAPROXY_CONFIG}").stdout
        assert re.findall(r"\n    server (\S+) ", haproxy) == [c.name for c in inv.control_planes], (h.name, haproxy)
        keepalived = lab.run(h.name, f"cat {paths.KEEPALIVED_CONFIG}").stdout
        peers = re.search(r"unicast_peer \{\n(.*?)\n    \}", keepalived, re.S).group(1).split()
        assert peers == [c.internal_address for c in inv.control_planes if c is not h], (h.name, keepalived)
    everyone = sorted(c.name for c in inv.control_planes)
    assert wait(lambda: sorted(s for s, state in backend_states(lab, holder).items() if state.startswith("UP"))
                == everyone, 30) is not None, backend_states(lab, holder)
    left = etcd_members(inv)
    assert sorted(m.name for m in left) == everyone and all(m.healthy for m in left), left
    assert removal.read(inv) == {} and readyz(inv)
    return inv


def reset_leaves_no_vip(lab, tmp_path, inv):
    """cluster.reset stops keepalived and haproxy on each control plane and removes kubefab's configs: the VIP is
    gone and nothing listens on haproxy's port; a second reset changes nothing."""
    start = time.monotonic()
    code, text, r = run_of(lab, tmp_path, "reset", yes=True)
    print(f"\n{text}\ncluster.reset of 3 control planes behind the VIP: {time.monotonic() - start:.1f} s")
    assert code == 0, text
    assert holders(lab, inv) == [] and not readyz(inv, timeout=1)
    listening = {h.name: lab.run(h.name, f"ss -Hltn 'sport = :{inv.ha.port}'").stdout for h in inv.control_planes}
    assert listening == {h.name: "" for h in inv.control_planes}, listening
    for h in inv.control_planes:
        state = lab.run(h.name, "systemctl is-active keepalived haproxy; systemctl is-enabled keepalived haproxy",
                        check=False).stdout.split()
        assert state == ["inactive", "inactive", "disabled", "disabled"], (h.name, state)
        left = lab.run(h.name, f"ls {' '.join((*balancers.RENDERED, paths.KEEPALIVED_INTERFACE))}", check=False)
        assert left.stdout == "", (h.name, left.stdout)
    code, text, r = run_of(lab, tmp_path, "reset", yes=True)
    assert code == 0, text
    again = [(x.host, s.name, s.status) for x in r.results for s in x.steps if "keepalived" in s.name]
    assert len(again) == 2 * len(inv.control_planes) and {s for _, _, s in again} == {UNCHANGED}, again
