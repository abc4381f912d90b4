"""[cluster.ha]: the inventory's table, keepalived's and haproxy's rendered configs, the VRRP secret, kube-vip's
static pods, the plan."""

import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from inventories import host_tables
from kubefab import facts, inventory, paths, pki, plan
from kubefab.api import health
from kubefab.errors import InventoryError, KubefabError
from kubefab.inventory import ha as ha_table
from kubefab.pki import kubeconfig, vrrp
from kubefab.plan import phases, render, runtime
from kubefab.run import report
from kubefab.state import tree

HA = '[cluster.ha]\nvip = "10.0.0.100"\n'


def write(tmp_path, ha=HA, cluster="", hosts=host_tables(3, 1)):
    path = tmp_path / "inventory.toml"
    path.write_text(f'[cluster]\nname = "t"\nkubernetes_version = "1.33.5"\n{cluster}{ha}\n{hosts}')
    return path


def problems(tmp_path, **kw):
    with pytest.raises(InventoryError) as e:
        inventory.load(write(tmp_path, **kw))
    return e.value.problems


KUBE_VIP = f'{HA}mode = "kube-vip"\ninterface = "eth1"\n'


@pytest.mark.parametrize("mode,port", [("keepalived", 8443), ("kube-vip", 6443), ("external", 6443)])
def test_the_endpoint_is_the_vip_at_the_modes_port(tmp_path, mode, port):
    extra = 'interface = "eth1"\n' if mode == "kube-vip" else ""
    inv = inventory.load(write(tmp_path, ha=f'{HA}mode = "{mode}"\n{extra}'))
    assert (inv.endpoint, inv.ha.mode, inv.ha.port) == (f"10.0.0.100:{port}", mode, port)
    assert not any("control_plane_endpoint" in w for w in inv.warnings)   # three control planes, one address


def test_an_inventory_without_the_table_has_no_ha_and_keeps_the_first_control_planes_address(tmp_path):
    inv = inventory.load(write(tmp_path, ha=""))
    assert inv.ha is None and inv.endpoint == "10.0.0.11:6443"


@pytest.mark.parametrize("ha,cluster,expected", [
    ("[cluster.ha]\nmode = \"keepalived\"\n", "", "line 4: [cluster.ha] vip is missing"),
    ('[cluster.ha]\nvip = "10.0.0"\n', "", "line 5: [cluster.ha] vip '10.0.0' is not an IP address"),
    ('[cluster.ha]\nvip = "127.0.0.9"\n', "", "line 5: [cluster.ha] vip '127.0.0.9' is a loopback address"),
    (f'{HA}mode = "vrrp"\n', "", "line 6: [cluster.ha] mode is 'vrrp' — choose one of 'keepalived', 'kube-vip', "
                                  "'external'"),
    (f'{HA}mode = "kube-vip"\n', "", "line 4: [cluster.ha] interface is missing — kube-vip needs the control "),
    (f"{KUBE_VIP}port = 8443\n", "", "line 8: [cluster.ha] port is 8443, but kube-vip puts the VIP on one control"),
    (f'{HA}mode = "kube-vip"\ninterface = "eth1; reboot"\n', "",
     "line 7: [cluster.ha] interface 'eth1; reboot' is not a network interface name"),
    (f'{HA}interface = "eth1"\n', "", "line 6: [cluster.ha] interface is set for mode 'keepalived', which does not"),
    (f"{HA}port = 6443\n", "", "line 6: [cluster.ha] port is 6443, which a control plane's own components"),
    (f"{HA}port = 70000\n", "", "line 6: [cluster.ha] port is 70000 — give a TCP port from 1 to 65535"),
    ('[cluster.ha]\nvip = "10.0.0.12"\n', "", "line 5: [cluster.ha] vip 10.0.0.12 is the address of [hosts.cp-2]"),
    ('[cluster.ha]\nvip = "fd00::100"\n', "", "line 5: [cluster.ha] vip fd00::100 is IPv6 but [hosts.cp-1] talks"),
    (HA, 'control_plane_endpoint = "api.example.com:6443"\n',
     "line 4: [cluster] control_plane_endpoint is set beside [cluster.ha]"),
    ('[cluster.ha]\nvip = "10.0.0.100"\nprot = 8443\n', "", "line 6: [cluster.ha] prot is not a known key"),
])
def test_a_bad_ha_table_is_reported_at_its_line_with_the_fix(tmp_path, ha, cluster, expected):
    found = problems(tmp_path, ha=ha, cluster=cluster)
    assert any(p.startswith(expected) for p in found), found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = write(tmp_path_factory.mktemp("ha"))
    inv = inventory.load(path)
    pki.ensure(inv)
    kubeconfig.ensure(inv)
    render.render(inv)
    return inv


def text(inv, host, path):
    return tree.local_path(inv, host, path).read_text()


def test_keepalived_talks_vrrp_only_to_the_other_control_planes_with_the_clusters_id_and_password(rendered):
    inv = rendered
    router_id, password = vrrp.credentials(inv)
    for i, cp in enumerate(inv.control_planes):
        conf = text(inv, cp.name, "/etc/keepalived/keepalived.conf")
        peers = re.search(r"unicast_peer \{\n(.*?)\n    \}", conf, re.S).group(1).split()
        assert peers == [h.internal_address for h in inv.control_planes if h is not cp]
        assert f"unicast_src_ip {cp.internal_address}\n" in conf and "10.0.0.100/32" in conf
        assert f"virtual_router_id {router_id}\n" in conf and f"auth_pass {password.reveal()}\n" in conf
        assert f"priority {render.VRRP_TOP_PRIORITY - i}\n" in conf and "nopreempt" in conf
        assert oct(tree.local_path(inv, cp.name, "/etc/keepalived/keepalived.conf").stat().st_mode & 0o777) == "0o600"
    assert not tree.local_path(inv, "w-1", "/etc/keepalived/keepalived.conf").exists()


def test_haproxy_balances_the_vips_port_over_every_api_server_checking_readyz_over_tls(rendered):
    conf = text(rendered, "cp-2", "/etc/haproxy/haproxy.cfg")
    assert "bind :8443\n" in conf and "option httpchk GET /readyz\n" in conf
    assert "default-server check check-ssl verify none inter 1s fall 3 rise 2\n" in conf
    assert re.findall(r"server (\S+) (\S+)\n", conf) == [("cp-1", "10.0.0.11:6443"), ("cp-2", "10.0.0.12:6443"),
                                                       ("cp-3", "10.0.0.13:6443")]


@pytest.mark.skipif(not shutil.which("haproxy") or not shutil.which("keepalived"), reason="needs Debian's packages")
def test_haproxy_and_keepalived_accept_the_rendered_configs(rendered, tmp_path):
    haproxy = subprocess.run(["haproxy", "-c", "-f", str(tree.local_path(rendered, "cp-1",
                                                                          "/etc/haproxy/haproxy.cfg"))],
                             capture_output=True, text=True)
    assert haproxy.returncode == 0, haproxy.stderr
    conf = text(rendered, "cp-1", "/etc/keepalived/keepalived.conf")
    (tmp_path / "interface.conf").write_text("interface eth0\n")
    (tmp_path / "k.conf").write_text(conf.replace("/etc/keepalived/kubefab-interface.conf",
                                                  str(tmp_path / "interface.conf")))
    keepalived = subprocess.run(["keepalived", "-t", "-f", str(tmp_path / "k.conf")], capture_output=True, text=True)
    assert keepalived.returncode == 0, keepalived.stderr


def test_the_vrrp_secret_is_drawn_once_kept_private_and_masked(rendered):
    first = vrrp.credentials(rendered)
    assert vrrp.credentials(rendered) == first and 1 <= first[0] <= 255
    assert os.stat(vrrp.path(rendered)).st_mode & 0o077 == 0
    assert str(first[1]) == "***"


def test_a_damaged_vrrp_file_is_refused_with_the_fix(rendered, tmp_path):
    inv = inventory.load(write(tmp_path), state_dir=tmp_path / "state")
    (tmp_path / "state").mkdir()
    vrrp.path(inv).write_text("300 short\n")
    with pytest.raises(KubefabError, match="is not a VRRP router id and password .* delete it to draw new ones"):
        vrrp.credentials(inv)


def test_the_plan_starts_the_load_balancer_on_control_planes_only_and_never_shows_the_password(rendered):
    bundle = plan.prepare(rendered)
    steps = {h.name: [s.name for s in runtime.steps(rendered, h, bundle, None)] for h in rendered.hosts}
    ha_steps = ["keepalived and haproxy installed", "haproxy running", "keepalived running"]
    assert all(steps[cp.name][-4:-1] == ha_steps for cp in rendered.control_planes)
    assert not set(ha_steps) & set(steps["w-1"])
    shown = report.plan_text(plan.build(rendered, bundle))
    assert vrrp.credentials(rendered)[1].reveal() not in shown


@pytest.fixture(scope="module")
def kube_vip(tmp_path_factory):
    inv = inventory.load(write(tmp_path_factory.mktemp("kube-vip"), ha=KUBE_VIP,
                               cluster='image_repository = "registry.example:5000/k8s"\n'))
    pki.ensure(inv)
    kubeconfig.ensure(inv)
    render.render(inv)
    return inv


def pod(inv, host, path):
    doc = yaml.safe_load(text(inv, host, path))
    [container] = doc["spec"]["containers"]
    return doc, container, {e["name"]: e.get("value") for e in container["env"]}


def test_kube_vip_holds_the_vip_by_arp_on_the_interface_with_a_lease_and_its_upstream_image(kube_vip):
    doc, container, env = pod(kube_vip, "cp-2", paths.KUBE_VIP_STAGED)
    assert (doc["kind"], doc["metadata"]["namespace"], doc["spec"]["hostNetwork"]) == ("Pod", "kube-system", True)
    assert env["address"] == "10.0.0.100" and env["port"] == "6443" and env["vip_interface"] == "eth1"
    assert env["vip_arp"] == env["cp_enable"] == env["vip_leaderelection"] == "true"
    assert env["vip_leasename"] == "plndr-cp-lock"
    # the image keeps its upstream name: image_repository is kubeadm's, a ghcr.io mirror in [mirrors] serves it
    assert container["image"] == render.KUBE_VIP_IMAGE and re.fullmatch(r"ghcr\.io/kube-vip/kube-vip:v[0-9.]+",
                                                                         container["image"])
    assert container["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert doc["spec"]["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}]
    assert not tree.local_path(kube_vip, "w-1", paths.KUBE_VIP_STAGED).exists()
    assert not tree.local_path(kube_vip, "cp-1", "/etc/haproxy/haproxy.cfg").exists()


def kubeconfig_mounted(inv, host, path):
    doc, container, _ = pod(inv, host, path)
    [mount] = container["volumeMounts"]
    [volume] = [v for v in doc["spec"]["volumes"] if v["name"] == mount["name"]]
    return mount["mountPath"], volume["hostPath"]["path"]


def test_kube_vip_mounts_super_admin_conf_on_the_first_control_plane_during_init_and_admin_conf_everywhere_else(
        kube_vip):
    inside = "/etc/kubernetes/admin.conf"
    assert kubeconfig_mounted(kube_vip, "cp-1", paths.KUBE_VIP_INIT) == (inside, "/etc/kubernetes/super-admin.conf")
    for cp in ("cp-1", "cp-2", "cp-3"):
        assert kubeconfig_mounted(kube_vip, cp, paths.KUBE_VIP_STAGED) == (inside, inside)
        # none is pushed into the manifest dir: kubeadm join's preflight (DirAvailable) wants it empty
        assert not tree.local_path(kube_vip, cp, paths.KUBE_VIP).exists()
    assert not tree.local_path(kube_vip, "cp-2", paths.KUBE_VIP_INIT).exists()


def test_the_plan_puts_kube_vip_on_super_admin_conf_for_init_then_on_admin_conf_and_after_each_join(kube_vip):
    bundle = plan.prepare(kube_vip)
    first = kube_vip.first_control_plane
    init, switch = phases._init(kube_vip, first, bundle, None)[:2]
    assert init.script.index(paths.KUBE_VIP_INIT) < init.script.index("kubeadm init")
    assert init.script.index(paths.KUBE_VIP) < init.script.index("kubeadm init")
    assert switch.name == "kube-vip on admin.conf" and paths.KUBE_VIP_STAGED in switch.script
    assert switch.guard == f"cmp -s {paths.KUBE_VIP_STAGED} {paths.KUBE_VIP}"
    join = [s.name for s in phases._join_control_plane(kube_vip, kube_vip.control_planes[1], bundle, None)]
    assert join[:2] == ["kubeadm join", "kube-vip on admin.conf"]
    shown = report.plan_text(plan.build(kube_vip, bundle))
    assert "switched from super-admin.conf to admin.conf" in shown and paths.KUBE_VIP_INIT in shown
    assert shown.count(phases.JOINED_KUBE_VIP) == 2
    assert "keepalived" not in shown and "haproxy" not in shown


def test_every_kubeconfig_names_the_endpoint_except_the_two_kubeadm_points_at_the_nodes_own_api_server(rendered):
    inv, endpoint = rendered, "https://10.0.0.100:8443"
    cp1, cp2, worker = inv.control_planes[0], inv.control_planes[1], inv.hosts[-1]
    assert kubeconfig.servers(inv, cp1) == {
        "/etc/kubernetes/admin.conf": (endpoint,), "/etc/kubernetes/super-admin.conf": (endpoint,),
        "/etc/kubernetes/controller-manager.conf": ("https://10.0.0.11:6443",),
        "/etc/kubernetes/scheduler.conf": ("https://10.0.0.11:6443",),
        "/etc/kubernetes/kubelet.conf": (endpoint, "https://10.0.0.11:6443")}
    assert "/etc/kubernetes/super-admin.conf" not in kubeconfig.servers(inv, cp2)
    assert kubeconfig.servers(inv, worker) == {"/etc/kubernetes/kubelet.conf": (endpoint,)}
    assert kubeconfig.misdirected(inv, worker, {"/etc/kubernetes/kubelet.conf": "https://10.0.0.11:6443"}) == (
        f"w-1: /etc/kubernetes/kubelet.conf points at https://10.0.0.11:6443, not {endpoint}",)
    assert kubeconfig.misdirected(inv, worker, {}) == ("w-1: /etc/kubernetes/kubelet.conf is missing or names no "
                                                       "server",)


def test_verify_reads_each_hosts_kubeconfigs_and_names_the_file_that_misses_the_endpoint(rendered, tmp_path):
    inv, worker = rendered, rendered.hosts[-1]
    [_, check] = phases._verify(inv, worker, None, None)
    assert check.name == "kubeconfigs" and check.check and not check.done
    run = lambda: subprocess.run(["dash", "-c", check.script.replace("/etc/kubernetes", str(tmp_path))],
                                 capture_output=True, text=True)
    (tmp_path / "kubelet.conf").write_text("clusters:\n- cluster:\n    server: https://10.0.0.11:6443\n")
    wrong = run()
    assert wrong.returncode == 1
    assert wrong.stdout == (f"w-1: {tmp_path}/kubelet.conf points at https://10.0.0.11:6443, not "
                            "https://10.0.0.100:8443\n")
    (tmp_path / "kubelet.conf").write_text("clusters:\n- cluster:\n    server: https://10.0.0.100:8443\n")
    assert run().returncode == 100 and run().stdout == ""
    # facts that already show every server right leave nothing to read again on the host
    ready = (Path(__file__).parent.parent / "data" / "facts" / "ready.txt").read_text()
    seen = facts.parse("w-1", ready.replace("\nend", "\nkube.server=/etc/kubernetes/kubelet.conf "
                                                     "https://10.0.0.100:8443\nend"))
    assert phases._verify(inv, worker, None, seen)[1].done
    first = phases._verify(inv, inv.first_control_plane, None, None)
    assert [s.name for s in first] == ["node", "kubeconfigs", "endpoint kubeconfigs"]


def facts_with(vip=False, servers=()):
    """ready.txt's facts, with the VIP on its interface and haproxy's answers as the probe prints them."""
    ready = (Path(__file__).parent.parent / "data" / "facts" / "ready.txt").read_text()
    lines = [f"haproxy.server={name} {state}" for name, state in servers]
    f = facts.parse("h", ready.replace("\nend", "".join(f"\n{line}" for line in lines) + "\nend"))
    if vip:
        f = replace(f, interfaces=(*f.interfaces, facts.Interface("eth1", "-", ("10.0.0.100/32",))))
    return f


UP3 = (("cp-1", "UP"), ("cp-2", "UP"), ("cp-3", "UP"))


def test_status_names_the_vip_holder_and_each_haproxys_view_of_every_api_server(rendered):
    found = {"cp-1": facts_with(servers=UP3), "cp-2": facts_with(vip=True, servers=(*UP3[:2], ("cp-3", "UP 2/3"))),
             "cp-3": facts_with(servers=(("cp-1", "UP"), ("cp-2", "UP"), ("cp-3", "DOWN 1/3")))}
    lb = health.load_balancer(rendered, found)
    assert lb.holders == ("cp-2",)
    assert lb.problems == ("cp-3's haproxy: API server cp-3 is DOWN 1/3 — it fails /readyz (or does not answer)",)
    shown = health._balancer_text(lb)
    assert shown[1] == "virtual IP 10.0.0.100 (keepalived): held by cp-2"
    assert shown[4] == "  haproxy on cp-3                 cp-1 UP, cp-2 UP, cp-3 DOWN 1/3"


@pytest.mark.parametrize("holders,unreached,expected", [
    ((), (), "no control plane holds the VIP 10.0.0.100 — check keepalived (systemctl status keepalived)"),
    (("cp-1", "cp-3"), (), "cp-1, cp-3 all hold the VIP 10.0.0.100 — the control planes do not hear each other"),
    (("cp-1",), ("cp-3",), "cp-3: not reached over SSH — its VIP and load balancer are unknown"),
])
def test_status_says_when_no_one_or_two_hold_the_vip_or_a_control_plane_was_not_reached(rendered, holders, unreached,
                                                                                       expected):
    found = {cp.name: None if cp.name in unreached else facts_with(cp.name in holders, UP3)
             for cp in rendered.control_planes}
    assert any(p.startswith(expected) for p in health.load_balancer(rendered, found).problems)


def test_haproxys_admin_socket_is_root_only_and_the_control_planes_get_socat_to_read_it(rendered):
    conf = text(rendered, "cp-1", "/etc/haproxy/haproxy.cfg")
    assert f"stats socket {paths.HAPROXY_SOCKET} mode 600 level admin\n" in conf
    assert "socat" in ha_table.PACKAGES


OFFLINE = ["kubeadm", "kubelet", "kubelet.service", "10-kubeadm.conf"]
DEBS = ["debs/keepalived_1%3a2.2.7-1+b2_amd64.deb", "debs/haproxy_2.6.12-1+deb12u4_amd64.deb",
        "debs/socat_1.7.4.4-2_amd64.deb"]


def offline_inventory(tmp_path, names):
    for name in names:
        (tmp_path / "off" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "off" / name).write_text(f"{name}\n")
    return inventory.load(write(tmp_path, cluster="", ha=HA + '[install]\nsource = "offline"\ndirectory = "off"\n'))


def test_offline_keepalived_haproxy_and_socat_come_from_the_offline_directorys_debs_on_control_planes_only(tmp_path):
    inv = offline_inventory(tmp_path, OFFLINE + DEBS)
    bundle = plan.prepare(inv)
    landed = "/opt/kubefab/offline/debs/keepalived_2.2.7-1+b2_amd64.deb"      # the epoch's %3a cannot travel
    cp, worker = inv.control_planes[1], inv.hosts[-1]
    assert landed in {f.path for f in bundle.files[cp.name]}
    assert not [f for f in bundle.files[worker.name] if "/debs/" in f.path]
    [install] = [s for s in runtime.steps(inv, cp, bundle, None) if s.name == "keepalived and haproxy installed"]
    assert install.script.endswith("apt-get install -qy --no-install-recommends " + " ".join(
        sorted(f"/opt/kubefab/offline/debs/{d[5:]}".replace("_1%3a", "_") for d in DEBS)))
    assert "dnf" not in install.script and "from the offline directory's debs/" in install.label
    assert install.guard == "command -v keepalived && command -v haproxy && command -v socat"


def test_an_offline_directory_without_the_load_balancers_debs_is_refused_with_the_fix(tmp_path):
    inv = offline_inventory(tmp_path, OFFLINE + DEBS[1:2])
    with pytest.raises(KubefabError, match=r"lacks debs/ for keepalived, socat — \[cluster.ha\] keepalived installs "
                                           r"them from there: `apt-get download keepalived haproxy socat`"):
        plan.prepare(inv)
