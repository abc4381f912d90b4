"""`[cluster.ha]` as hosts leave and join, as data: cluster.reset stops keepalived and haproxy and removes
kubefab's configs (a second reset changes nothing) or takes the VIP a killed kube-vip left off its interface;
node.join of a control plane node.remove took out reloads the others with it before its own keepalived starts. The
host scripts run against a temporary directory and stand-ins for systemctl and ip."""

import os
import re
import subprocess

import pytest

from inventories import host_tables
from kubefab import inventory, paths, plan
from kubefab.plan import balancers, render, workflows
from kubefab.state import removal, tree
from kubefab.steps import UNCHANGED_EXIT

HA = '[cluster.ha]\nvip = "10.0.0.100"\n'


def load(tmp_path, ha=HA):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "inventory.toml"
    path.write_text(f'[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n{ha}\n' + host_tables(3, 1))
    return inventory.load(path, state_dir=tmp_path / "state")


def steps_by_host(p, phase=None):
    return {hs.host.name: hs.steps for pp in p.phases if phase in (None, pp.phase.name) for b in pp.batches
            for hs in b}


def servers(haproxy):
    return re.findall(r"\n    server (\S+) ", haproxy)


def peers(keepalived):
    return re.search(r"unicast_peer \{\n(.*?)\n    \}", keepalived, re.S).group(1).split()


def priority(keepalived):
    return int(re.search(r"\n    priority ([0-9]+)\n", keepalived).group(1))


# -- cluster.reset ---------------------------------------------------------------------------------

def test_reset_stops_keepalived_then_haproxy_and_removes_their_configs_on_each_control_plane_before_kubeadm(
        tmp_path):
    inv = load(tmp_path)
    names = {h: [s.name for s in steps] for h, steps in steps_by_host(plan.build(inv, None,
                                                                               workflow=workflows.reset())).items()}
    for cp in ("cp-1", "cp-2", "cp-3"):
        assert names[cp][:3] == ["stop keepalived and haproxy", "remove keepalived's and haproxy's configs",
                                 "kubeadm reset"], names[cp]
    assert names["w-1"][0] == "kubeadm reset"
    plain = load(tmp_path / "plain", ha="")
    shown = [s.name for steps in steps_by_host(plan.build(plain, None, workflow=workflows.reset())).values()
             for s in steps]
    assert not any("keepalived" in name for name in shown)


@pytest.fixture
def host(tmp_path):
    """A directory standing for a host's / and a PATH whose systemctl keeps each unit's state there as files."""
    root, bin_dir = tmp_path / "host", tmp_path / "bin"
    (root / "etc" / "haproxy").mkdir(parents=True)
    (root / "etc" / "keepalived").mkdir()
    (root / "units").mkdir()
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text('#!/bin/sh\nu="$KF_UNITS"\ncase $1 in\n'
                         '  is-active) [ -e "$u/$3.active" ] ;;\n'
                         '  is-enabled) [ -e "$u/$3.enabled" ] ;;\n'
                         '  disable) rm -f "$u/$4.active" "$u/$4.enabled" ;;\n'
                         '  *) exit 1 ;;\nesac\n')
    systemctl.chmod(0o755)

    def run(step):
        script = step.script.replace("/etc/", f"{root}/etc/")
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KF_UNITS": str(root / "units")}
        return subprocess.run(["sh", "-uc", script], capture_output=True, text=True, env=env)
    return root, run


def test_a_reset_hosts_balancers_go_and_a_second_reset_changes_nothing_keeping_a_config_kubefab_did_not_write(
        tmp_path, host):
    root, run = host
    inv = load(tmp_path)
    for unit in ("keepalived.active", "keepalived.enabled", "haproxy.active", "haproxy.enabled"):
        (root / "units" / unit).touch()
    cp = inv.host("cp-2")
    (root / paths.HAPROXY_CONFIG[1:]).write_text(render.haproxy(inv, cp))
    (root / paths.KEEPALIVED_CONFIG[1:]).write_text("# the operator's own keepalived.conf\n")
    (root / paths.KEEPALIVED_INTERFACE[1:]).write_text("interface eth1\n")
    stop, remove = balancers.down()
    first = [run(stop), run(remove)]
    assert [r.returncode for r in first] == [0, 0], first
    assert first[0].stdout == "stopped keepalived\nstopped haproxy\n"
    assert first[1].stdout == f"removed {root}{paths.HAPROXY_CONFIG}\nremoved {root}{paths.KEEPALIVED_INTERFACE}\n"
    assert list((root / "units").iterdir()) == []
    assert not (root / paths.HAPROXY_CONFIG[1:]).exists() and not (root / paths.KEEPALIVED_INTERFACE[1:]).exists()
    assert (root / paths.KEEPALIVED_CONFIG[1:]).read_text() == "# the operator's own keepalived.conf\n"
    again = [run(stop), run(remove)]
    assert [(r.returncode, r.stdout) for r in again] == [(UNCHANGED_EXIT, "")] * 2, again


def test_in_kube_vip_mode_a_reset_takes_the_vip_off_the_interface_after_kubeadm_killed_kube_vip(tmp_path):
    inv = load(tmp_path, ha=f'{HA}mode = "kube-vip"\ninterface = "eth1"\n')
    for p, phase in ((plan.build(inv, None, workflow=workflows.reset()), None),
                     (plan.build(inv, None, hosts=("cp-2",), workflow=workflows.remove("cp-2")), "reset")):
        names = {h: [s.name for s in steps] for h, steps in steps_by_host(p, phase).items()}
        assert names["cp-2"][-1] == "kube-vip's VIP" and not any("keepalived" in n for n in names["cp-2"])
        assert "kube-vip's VIP" not in names.get("w-1", [])
    [step] = [s for s in steps_by_host(p, "reset")["cp-2"] if s.name == "kube-vip's VIP"]
    state, bin_dir = tmp_path / "ip", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    (state / "vip").touch()
    ip = bin_dir / "ip"          # `ip -o addr show dev eth1` as iproute2 prints it, and `ip addr del A dev I`
    ip.write_text('#!/bin/sh\ncase "$1 $2" in\n'
                  '  "-o addr") [ -e "$KF_IP/vip" ] && echo "3: eth1    inet 10.0.0.100/32 scope global eth1\\  '
                  '     valid_lft forever preferred_lft forever"\n'
                  '             echo "3: eth1    inet 10.0.0.112/24 brd 10.0.0.255 scope global eth1" ;;\n'
                  '  "addr del") [ "$3 $4 $5" = "10.0.0.100/32 dev eth1" ] && rm "$KF_IP/vip" ;;\n'
                  '  *) exit 1 ;;\nesac\n')
    ip.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KF_IP": str(state)}
    runs = [subprocess.run(["sh", "-uc", step.script], capture_output=True, text=True, env=env) for _ in range(2)]
    assert (runs[0].returncode, runs[0].stdout) == (0, "removed 10.0.0.100/32 from eth1\n"), runs[0]
    assert not (state / "vip").exists() and runs[1].returncode == UNCHANGED_EXIT, runs[1]


def test_kubefabs_rendered_balancer_configs_open_with_the_mark_a_reset_removes_them_by(tmp_path):
    inv = load(tmp_path)
    cp = inv.host("cp-1")
    assert render.haproxy(inv, cp).startswith(balancers.MARK)
    assert render.keepalived(inv, cp).startswith(balancers.MARK)


# -- node.join of a control plane node.remove took out ------------------------------------------------

def test_joining_a_removed_control_plane_reloads_the_others_with_it_before_its_own_keepalived_starts(tmp_path):
    inv = load(tmp_path)
    removal.record(inv, "cp-2")
    bundle = plan.prepare(inv)
    p = plan.build(inv, bundle, hosts=("cp-2",), workflow=workflows.join(("cp-2",)))
    order = [(pp.phase.name, [hs.host.name for b in pp.batches for hs in b]) for pp in p.phases]
    assert order[:2] == [("load-balancers", ["cp-1", "cp-3"]), ("runtime", ["cp-2"])], order
    assert "keepalived running" in [s.name for s in steps_by_host(p, "runtime")["cp-2"]]
    assert workflows._join_intro(p) == ("node.join of cp-2; haproxy and keepalived on cp-1, cp-3 take the joining "
                                        "control planes in first")

    sent = {h: (steps[0].stdin, steps[1].stdin.reveal()) for h, steps in steps_by_host(p, "load-balancers").items()}
    assert [s.display() for s in steps_by_host(p, "load-balancers")["cp-1"]] == [
        f"cp-2's API server into haproxy's backends: {paths.HAPROXY_CONFIG} rewritten when it differs, haproxy "
        "reloaded (not restarted)",
        f"cp-2 into keepalived's unicast peers: {paths.KEEPALIVED_CONFIG} rewritten when it differs, keepalived "
        "reloaded (not restarted)"]
    own = tree.local_path(inv, "cp-2", paths.KEEPALIVED_CONFIG).read_text()
    confs = {"cp-1": sent["cp-1"][1], "cp-2": own, "cp-3": sent["cp-3"][1]}
    addresses = {h.name: h.internal_address for h in inv.control_planes}
    for name, conf in confs.items():
        assert peers(conf) == [a for h, a in addresses.items() if h != name], (name, conf)
        assert "    state BACKUP\n    nopreempt\n" in conf
    assert [priority(confs[h]) for h in ("cp-1", "cp-2", "cp-3")] == [200, 199, 198], "one priority each"
    assert all(servers(haproxy) == ["cp-1", "cp-2", "cp-3"] for haproxy, _ in sent.values())

    removal.forget(inv, "cp-2")         # what the verify phase does once the node is Ready
    plan.prepare(inv)
    for name, (haproxy, keepalived) in sent.items():
        assert tree.local_path(inv, name, paths.HAPROXY_CONFIG).read_text() == haproxy
        assert tree.local_path(inv, name, paths.KEEPALIVED_CONFIG).read_text() == keepalived, \
            "a later cluster.up changes nothing"


def test_a_control_plane_still_removed_is_neither_reloaded_nor_balanced_and_a_joining_worker_reloads_nothing(
        tmp_path):
    inv = load(tmp_path)
    removal.record(inv, "cp-2")
    removal.record(inv, "cp-3")
    bundle = plan.prepare(inv)
    p = plan.build(inv, bundle, hosts=("cp-2",), workflow=workflows.join(("cp-2",)))
    [(haproxy, keepalived)] = [(s[0].stdin, s[1].stdin.reveal()) for s in steps_by_host(p, "load-balancers").values()]
    assert list(steps_by_host(p, "load-balancers")) == ["cp-1"]
    assert servers(haproxy) == ["cp-1", "cp-2"] and peers(keepalived) == ["10.0.0.12"]
    worker = plan.build(inv, bundle, hosts=("w-1",), workflow=workflows.join(("w-1",)))
    assert steps_by_host(worker, "load-balancers") == {}
    gone = plan.build(inv, None, hosts=("cp-1",), workflow=workflows.remove("cp-1"))
    assert list(steps_by_host(gone, "load-balancers")) == [], "node.remove reloads no host it took out before"
