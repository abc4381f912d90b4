"""Preflight as data: a healthy cluster's probe output, one edit per case, and the finding each check gives."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inventories import host_tables
from kubefab import facts, inventory, pki, preflight, state
from kubefab.components import requirements
from kubefab.errors import KubefabError
from kubefab.preflight import checks
from kubefab.preflight.checks import DONE, ERROR, FIX, OK, WARNING
from kubefab.remote.work import FactsResult
from kubefab.run import execute
from kubefab.run.session import Options

READY = (Path(__file__).parent.parent / "data" / "facts" / "ready.txt").read_text()
LOCAL_CA = facts.ca_fingerprint(b"-----BEGIN CERTIFICATE-----\nthis cluster\n-----END CERTIFICATE-----\n")
OTHER_CA = facts.ca_fingerprint(b"left by an earlier cluster\n")
ADDRESSES = {"cp-1": "10.0.0.11", "cp-2": "10.0.0.12", "w-1": "10.0.0.21"}
CLOCK = 1795960000.25
INVENTORIES = {  # name: (more [cluster] keys, more tables)
    "default": ("", ""),
    "ipvs": ("", '[cluster.kube_proxy]\nmode = "ipvs"\n'),
    "1.31": ('kubernetes_version = "1.31.4"\n', ""),
    "1.34": ('kubernetes_version = "1.34.2"\n', ""),
    "swap allowed": ("", "[cluster.kubelet]\nconfig = { failSwapOn = false }\n"),
    "ha": ("", '[cluster.ha]\nvip = "10.0.0.100"\n'),
    "kube-vip": ("", '[cluster.ha]\nvip = "10.0.0.100"\nmode = "kube-vip"\ninterface = "eth1"\n'),
    "ipv6": ('cni = "none"\npod_subnet = "10.244.0.0/16,fd00:10::/56"\n'
             'service_subnet = "10.96.0.0/12,fd00:20::/112"\n', ""),
}


def edit(text, changes):
    """Probe output `text` with keys replaced: a str sets a single key, a list replaces every line of a key."""
    lines = text.splitlines()
    for key, value in changes.items():
        if isinstance(value, list):
            lines = [line for line in lines if not line.startswith(f"{key}=")]
            lines[-1:-1] = [f"{key}={v}" for v in value]
        else:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
            lines[at] = f"{key}={value}"
    return "\n".join(lines) + "\n"


def identity(name):
    n = list(ADDRESSES).index(name) + 1
    return {"hostname": name, "machine_id": f"{n:032x}", "product_uuid": f"00000000-0000-0000-0000-{n:012x}",
            "iface": [f"eth0 52:54:00:00:00:{n:02x} {ADDRESSES[name]}/24"]}


def load(directory, cluster="", tables=""):
    path = directory / "inventory.toml"
    version = "" if "kubernetes_version" in cluster else 'kubernetes_version = "1.33.5"\n'
    path.write_text(f'[cluster]\nname = "t"\n{version}{cluster}\n{tables}\n' + host_tables(2, 1))
    return inventory.load(path)


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    return {name: load(tmp_path_factory.mktemp("inv"), *extra) for name, extra in INVENTORIES.items()}


def cluster_facts(edits):
    """Facts of cp-1, cp-2 and w-1: the ready host with each one's identity, then `edits[host]`."""
    out = {}
    for name in ADDRESSES:
        text = edit(READY, {**identity(name), **edits.get(name, {})})
        out[name] = facts.parse(name, text, window=(CLOCK - 0.05, CLOCK + 0.05))
    return out


def findings(inv, edits=None, **kwargs):
    kwargs.setdefault("ca_sha256", LOCAL_CA)
    return {(f.host, f.check): f for f in preflight.evaluate(inv, cluster_facts(edits or {}), **kwargs)}


def listening(*ports):
    """tcp.listen as the probe reports it: hexadecimal, as in /proc/net/tcp."""
    return " ".join(f"{p:04X}" for p in ports)


MEMBER = {"kube.file": [facts.KUBELET_CONF], "kube.ca_sha256": LOCAL_CA}
VIP = {"endpoint.target": "10.0.0.100:8443"}
CP_MEMBER = {"kube.file": [facts.KUBELET_CONF, facts.APISERVER_MANIFEST, facts.CA_CERT], "kube.ca_sha256": LOCAL_CA,
             "tcp.listen": listening(22, 6443, 2379, 2380, 10250, 10257, 10259), "kube.etcd": "nonempty",
             "endpoint.state": "open"}


@dataclass(frozen=True)
class Case:
    check: str
    host: str
    edits: dict                 # probe keys changed on `host`
    status: str
    says: str                   # in the finding's reason
    inventory: str = "default"
    prepared: bool = True
    others: dict = field(default_factory=dict)  # host -> edits, for whole-cluster cases


CASES = (
    Case("IsPrivilegedUser", "w-1", {"uid": "1000"}, ERROR, "uid 1000"),
    Case("ClusterMember", "w-1", MEMBER, DONE, "already a node of this cluster"),
    Case("ClusterMember", "w-1", {**MEMBER, "kube.ca_sha256": OTHER_CA}, ERROR, "another cluster"),
    Case("ClusterMember", "cp-2", MEMBER, ERROR, "as a worker"),
    Case("ClusterCA", "w-1", {"kube.file": [facts.CA_CERT], "kube.ca_sha256": OTHER_CA}, ERROR, "is another CA"),
    Case("ClusterCA", "cp-1", {**CP_MEMBER, "kube.ca_sha256": OTHER_CA}, ERROR, "is another CA"),
    Case("ClusterMember", "cp-1", CP_MEMBER, DONE, "already a node of this cluster"),
    Case("NumCPU", "cp-1", {"cpus": "1"}, ERROR, "1 CPU"),
    Case("Mem", "cp-1", {"memory_kib": "1048576"}, ERROR, "1024 MB"),
    Case("Mem", "w-1", {"memory_kib": "1048576"}, WARNING, "1024 MB"),
    Case("SystemVerification", "w-1", {"kernel": "4.15.0-213-generic"}, ERROR, "older than 4.19"),
    Case("SystemVerification", "w-1", {"kernel": "4.15.0-213-generic"}, WARNING, "older than 4.19", inventory="1.34"),
    Case("SystemVerification", "w-1", {"cgroup.version": "1", "cgroup.controllers":
                                       "cpuset cpu cpuacct blkio memory devices freezer pids"}, WARNING, "cgroup v1"),
    Case("SystemVerification", "w-1", {"cgroup.version": "0", "cgroup.controllers": ""}, ERROR, "no cgroup"),
    Case("SystemVerification", "w-1", {"cgroup.controllers": "cpu memory"}, ERROR, "cpuset, pids are not enabled"),
    Case("InitSystem", "w-1", {"init": "sshd"}, ERROR, "PID 1 is sshd"),
    Case("Swap", "w-1", {"swap": ["/swapfile 2097148"]}, FIX, "swap is on (/swapfile)"),
    Case("Swap", "w-1", {"swap": ["/swapfile 2097148"]}, ERROR, "the kubelet will not start", prepared=False),
    Case("Swap", "w-1", {"fstab.swap": ["UUID=0a1b2c3d"]}, FIX, "at boot (UUID=0a1b2c3d)"),
    Case("Swap", "w-1", {"swap": ["/swapfile 2097148"]}, WARNING, "the kubelet runs with it", inventory="swap allowed"),
    Case("FileExisting-conntrack", "w-1", {"command.conntrack": ""}, ERROR, "conntrack not found", inventory="1.31"),
    *(Case(f"FileExisting-{c}", "w-1", {f"command.{c}": ""}, ERROR, f"{c} not found")
      for c in requirements.REQUIRED_COMMANDS),
    *(Case(f"FileExisting-{c}", "w-1", {f"command.{c}": ""}, WARNING, f"{c} not found")
      for c in requirements.WANTED_COMMANDS),
    Case("KernelModules", "w-1", {"module.br_netfilter": "available"}, FIX, "br_netfilter is not loaded"),
    Case("KernelModules", "w-1", {"module.overlay": "missing"}, ERROR, "no module overlay"),
    Case("KernelModules", "w-1", {"module.ip_vs_sh": "missing"}, OK, ""),
    Case("KernelModules", "w-1", {"module.ip_vs_sh": "missing"}, ERROR, "no module ip_vs_sh", inventory="ipvs"),
    Case("FileContent--proc-sys-net-ipv4-ip_forward", "w-1", {"sysctl.net.ipv4.ip_forward": "0"}, FIX, "is 0"),
    Case("FileContent--proc-sys-net-ipv4-ip_forward", "w-1", {"sysctl.net.ipv4.ip_forward": "0"}, ERROR, "must be 1",
         prepared=False),
    Case("FileContent--proc-sys-net-ipv6-conf-default-forwarding", "w-1", {}, FIX, "is 0", inventory="ipv6"),
    Case("FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", "w-1",
         {"sysctl.net.bridge.bridge-nf-call-iptables": ""}, FIX, "br_netfilter is not loaded"),
    Case("FileContent--proc-sys-net-bridge-bridge-nf-call-ip6tables", "w-1",
         {"sysctl.net.bridge.bridge-nf-call-ip6tables": "0"}, FIX, "is 0"),
    Case("Port-6443", "cp-1", {"tcp.listen": listening(22, 6443)}, ERROR, "port 6443 is in use"),
    Case("Port-10259", "cp-1", {"tcp.listen": listening(10259)}, ERROR, "port 10259"),
    Case("Port-10257", "cp-1", {"tcp.listen": listening(10257)}, ERROR, "port 10257"),
    Case("Port-2379", "cp-2", {"tcp.listen": listening(2379)}, ERROR, "port 2379"),
    Case("Port-2380", "cp-2", {"tcp.listen": listening(2380)}, ERROR, "port 2380"),
    Case("Port-10250", "w-1", {"tcp.listen": listening(10250)}, ERROR, "port 10250"),
    Case("Port-6443", "cp-1", CP_MEMBER, DONE, "a node of this cluster"),
    *(Case("FileAvailable-" + p.replace("/", "-"), "cp-1", {"kube.file": [p]}, ERROR, f"{p} already exists")
      for p in facts.KUBE_FILES[:4]),
    Case("FileAvailable--etc-kubernetes-kubelet.conf", "w-1", {"kube.file": [facts.KUBELET_CONF]}, ERROR,
         "kubelet.conf already exists"),
    Case("FileAvailable--etc-kubernetes-bootstrap-kubelet.conf", "cp-2",
         {"kube.file": ["/etc/kubernetes/bootstrap-kubelet.conf"]}, ERROR, "already exists"),
    Case("FileAvailable--etc-kubernetes-pki-ca.crt", "w-1", {"kube.file": [facts.CA_CERT]}, ERROR, "already exists"),
    Case("FileAvailable--etc-kubernetes-pki-ca.crt", "w-1", MEMBER, DONE, "a node of this cluster"),
    Case("DirAvailable--var-lib-etcd", "cp-1", {"kube.etcd": "nonempty"}, ERROR, "/var/lib/etcd is not empty"),
    Case("CRI", "w-1", {"cri": [], "version.containerd": ""}, FIX, "no container runtime"),
    Case("CRI", "w-1", {"cri": []}, ERROR, "installed but not running", prepared=False),
    Case("CRI", "w-1", {"cri": ["/var/run/crio/crio.sock"]}, WARNING, "/var/run/crio/crio.sock"),
    Case("CgroupDriver", "w-1", {"containerd.systemd_cgroup": "false"}, FIX, "cgroupfs driver"),
    Case("KubernetesVersion", "w-1", {"version.kubeadm": "1.32.9"}, FIX, "kubeadm 1.32.9 is installed"),
    Case("KubeletVersion", "w-1", {"version.kubelet": ""}, FIX, "not installed"),
    Case("KubeletVersion", "w-1", {"version.kubelet": "1.34.1"}, ERROR, "asks for 1.33.5", prepared=False),
    Case("KubeletVersion", "w-1", {"version.kubelet": "1.33.50"}, FIX, "kubelet 1.33.50 is installed"),
    Case("KubeletVersion", "w-1", {**MEMBER, "version.kubelet": "1.32.9"}, ERROR, "cluster.up does not upgrade running "
         "nodes"),
    Case("PackageRepository", "w-1", {"version.kubeadm": "", "repo.state": "failed",
                                      "repo.detail": "curl: (7) Failed to connect to 10.0.0.9 port 80"}, ERROR,
         "v1.33 does not answer: curl: (7) Failed to connect"),
    Case("PackageRepository", "w-1", {"version.kubelet": "", "repo.versions": "1.33.3-1.1 1.33.4-1.1"}, ERROR,
         "holds 1.33.3-1.1, 1.33.4-1.1, not kubeadm 1.33.5"),
    Case("PackageRepository", "w-1", {"version.kubelet": "", "repo.versions": "?"}, OK, ""),
    Case("PackageRepository", "w-1", {"repo.state": "failed"}, OK, ""),     # installed already: nothing to fetch
    Case("Service-Kubelet", "w-1", {"kubelet.service": "disabled"}, FIX, "is disabled"),
    Case("Hostname", "w-1", {"hostname": "debian"}, FIX, "'debian'"),
    Case("Firewalld", "w-1", {"firewalld": "active"}, FIX, "firewalld is active"),
    Case("SELinux", "w-1", {"selinux": "enforcing"}, FIX, "enforcing"),
    Case("DiskSpace", "w-1", {"disk": "262144 1024 /"}, ERROR, "1 MiB free"),
    Case("DiskSpace", "w-1", {"disk": "262144 261120 /"}, WARNING, "255 MiB free"),
    Case("InternalAddress", "w-1", {"iface": ["eth0 52:54:00:00:00:03 192.168.1.5/24"]}, ERROR, "not on the host"),
    Case("EndpointReachable", "w-1", {"endpoint.state": "timeout"}, ERROR, "not reachable"),
    Case("EndpointReachable", "w-1", {"endpoint.state": "unresolved", "endpoint.detail": "Name not known"}, ERROR,
         "unresolved: Name not known"),
    Case("EndpointReachable", "w-1", {"endpoint.state": "unchecked", "endpoint.target": ""}, WARNING, "did not try"),
    Case("EndpointReachable", "w-1", {"endpoint.state": "unknown", "endpoint.detail": "no timeout command"}, WARNING,
         "no timeout command"),
    Case("EndpointReachable", "w-1", {"endpoint.state": "open"}, OK, ""),
    Case("EndpointReachable", "w-1", {}, ERROR, "cp-1 is a control plane already", others={"cp-1": CP_MEMBER}),
    # [cluster.ha] keepalived: the VIP is kubefab's to bring up, so before that nothing may answer at it
    *(Case("EndpointReachable", "w-1", {**VIP, "endpoint.state": state}, OK, "", inventory="ha")
      for state in ("timeout", "unreachable")),
    Case("EndpointReachable", "w-1", {**VIP, "endpoint.state": "refused"}, ERROR, "no control plane holds it",
         inventory="ha"),
    Case("EndpointReachable", "w-1", {**VIP, "endpoint.state": "open"}, OK, "", inventory="ha",
         others={"cp-1": {**CP_MEMBER, **VIP, "iface": ["eth0 52:54:00:00:00:01 10.0.0.11/24 10.0.0.100/32"]}}),
    Case("EndpointReachable", "w-1", {**VIP, "endpoint.state": "timeout"}, ERROR, "cp-1 is a control plane already",
         inventory="ha", others={"cp-1": {**CP_MEMBER, **VIP}}),
    Case("VirtualIPSubnet", "cp-2", {"iface": ["eth0 52:54:00:00:00:02 10.0.0.12/28"]}, ERROR,
         "10.0.0.100 is outside 10.0.0.0/28", inventory="ha"),
    Case("VirtualIPSubnet", "cp-2", {}, OK, "", inventory="ha"),
    # kube-vip: [cluster.ha] interface is on every control plane, with an address or not
    Case("VirtualIPInterface", "cp-2", {}, ERROR, "no interface 'eth1', where kube-vip is to hold 10.0.0.100: this "
         "host has eth0, lo", inventory="kube-vip"),
    Case("VirtualIPInterface", "cp-2", {"net.interfaces": "eth0 eth1 lo"}, OK, "", inventory="kube-vip"),
    # haproxy's port: free before the runtime phase starts haproxy, or already kubefab's haproxy over these API servers
    Case("Port-HAProxy", "cp-2", {"tcp.listen": listening(22, 8443)}, ERROR,
         "port 8443, where haproxy is to listen for the endpoint, is in use by something else", inventory="ha"),
    Case("Port-HAProxy", "cp-2", {"tcp.listen": listening(22, 8443),
                                  "haproxy.server": ["cp-1 UP", "cp-2 DOWN", "cp-3 UP"]}, ERROR,
         "in use by something else", inventory="ha"),
    Case("Port-HAProxy", "cp-2", {"tcp.listen": listening(22, 8443), "haproxy.server": ["cp-1 UP", "cp-2 DOWN"]},
         OK, "", inventory="ha"),
    Case("Port-HAProxy", "cp-1", {**CP_MEMBER, "tcp.listen": listening(22, 8443, 6443)}, DONE,
         "a node of this cluster already", inventory="ha"),
    Case("Port-HAProxy", "cp-2", {}, OK, "", inventory="ha"),
    Case("HostnameUnique", "w-1", {"hostname": "cp-1"}, FIX, "hostname cp-1 is shared with cp-1"),
    Case("HostnameUnique", "cp-1", {}, FIX, "shared with w-1", others={"w-1": {"hostname": "cp-1"}}),
    Case("MachineIDUnique", "w-1", {"machine_id": identity("cp-1")["machine_id"]}, ERROR, "is shared with cp-1"),
    Case("MachineIDUnique", "w-1", {"machine_id": ""}, WARNING, "empty or missing"),
    Case("ProductUUIDUnique", "cp-2", {"product_uuid": identity("cp-1")["product_uuid"].upper()}, ERROR,
         "is shared with cp-1"),
    Case("ProductUUIDUnique", "cp-2", {"product_uuid": ""}, OK, "", others={"cp-1": {"product_uuid": ""}}),
    Case("MACUnique", "cp-2", {"iface": ["eth0 52:54:00:00:00:01 10.0.0.12/24"]}, ERROR, "is also on cp-1"),
    Case("ClockSkew", "w-1", {"clock": f"{CLOCK + 5.55}"}, WARNING, "5.5 s ahead"),
    Case("ClockSkew", "w-1", {"clock": f"{CLOCK + 3600}"}, ERROR, "3600.0 s ahead"),
    Case("ClockSkew", "w-1", {"clock": f"{CLOCK - 20:.0f}"}, ERROR, "behind"),
    Case("ClockSkew", "w-1", {"clock": f"{CLOCK + 0.04}"}, OK, ""),
)


def test_a_ready_cluster_passes_every_check(inventories):
    got = findings(inventories["default"])
    assert {f for f in got.values() if f.status != OK} == set()
    assert {check for host, check in got if host == "w-1"} < set(preflight.NAMES)
    assert ("cp-1", "Port-6443") in got and ("w-1", "Port-6443") not in got  # control-plane ports on control planes
    assert ("cp-1", "FileAvailable--etc-kubernetes-kubelet.conf") not in got  # kubeadm init does not check it


def test_every_check_has_a_case_that_fails_it():
    failing = {c.check for c in CASES if c.status != OK}
    assert failing == set(preflight.NAMES) - {"Reachable"}  # Reachable: test_a_host_without_facts_...


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.check}-{c.status}-{c.host}")
def test_check(inventories, case):
    edits = {**case.others, case.host: case.edits}
    got = findings(inventories[case.inventory], edits, prepared=case.prepared)[(case.host, case.check)]
    assert (got.status, case.says in got.reason) == (case.status, True), got
    if got.status == FIX:
        assert got.fix.startswith("the runtime phase ")
    elif got.status in (ERROR, WARNING):
        assert got.fix, f"{case.check} fails without saying what to do"


def test_a_node_of_this_cluster_is_done_where_a_running_node_fails(inventories):
    got = findings(inventories["default"], {"cp-1": CP_MEMBER})
    done = sorted(check for (host, check), f in got.items() if host == "cp-1" and f.status == DONE)
    assert done == sorted(["ClusterMember", "Port-6443", "Port-10259", "Port-10257", "Port-2379", "Port-2380",
                           "Port-10250", "DirAvailable--var-lib-etcd",
                           *("FileAvailable-" + p.replace("/", "-") for p in facts.KUBE_FILES[:4])])
    assert all(f.status == OK for (host, _), f in got.items() if host == "cp-1" and f.check not in done)


def test_a_node_of_another_cluster_fails_every_check_a_running_node_fails(inventories):
    got = findings(inventories["default"], {"cp-1": CP_MEMBER}, ca_sha256="")  # no local CA yet: a new cluster
    assert got[("cp-1", "ClusterMember")].status == ERROR
    assert got[("cp-1", "Port-6443")].status == ERROR
    assert got[("cp-1", "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml")].status == ERROR


def test_a_host_without_facts_is_one_reachable_error_and_left_out_of_comparisons(inventories):
    inv = inventories["default"]
    hosts = cluster_facts({"w-1": {"machine_id": identity("cp-1")["machine_id"]}})
    del hosts["cp-1"]
    got = preflight.evaluate(inv, hosts, failures={"cp-1": "connection refused (sshd is not running)"})
    mine = [f for f in got if f.host == "cp-1"]
    assert mine == [preflight.Finding("cp-1", "Reachable", ERROR, "connection refused (sshd is not running)",
                                      "check the address, sshd and the [ssh] settings")]
    assert {f.status for f in got if f.check == "MachineIDUnique"} == {OK}


def test_ignore_turns_named_errors_into_warnings(inventories):
    edits = {"cp-1": {"tcp.listen": listening(6443), "cpus": "1"}}
    got = findings(inventories["default"], edits, ignore=["port-6443"])
    assert (got[("cp-1", "Port-6443")].status, got[("cp-1", "Port-6443")].ignored) == (WARNING, True)
    assert "ignored error Port-6443 on cp-1: port 6443 is in use" in preflight.table(got.values())
    assert got[("cp-1", "NumCPU")].status == ERROR
    everything = findings(inventories["default"], edits, ignore=["all"]).values()
    assert not preflight.errors(everything) and sum(f.ignored for f in everything) == 2


def test_a_host_with_another_ca_is_refused_whatever_is_ignored_naming_both_ca_and_the_restore(inventories):
    planted = {"w-1": {"kube.file": [facts.CA_CERT], "kube.ca_sha256": OTHER_CA}}
    inv = inventories["default"]
    got = findings(inv, planted, ignore=["all"])
    assert [(f.host, f.check) for f in preflight.errors(got.values())] == [("w-1", "ClusterCA")]
    text = preflight.table(got.values())
    assert f"error ClusterCA on w-1: /etc/kubernetes/pki/ca.crt on the host is another CA (sha256 {OTHER_CA}) than " \
           f"this state dir's {inv.state_dir / 'pki' / 'ca.crt'} (sha256 {LOCAL_CA})" in text
    assert f"or restore it: copy your backup of {inv.state_dir / 'pki'} (and " \
           f"{inv.state_dir / 'cluster.json'}) back into {inv.state_dir}" in text
    with pytest.raises(KubefabError, match="--ignore ClusterCA: this check cannot be ignored: the push phase would "
                                           "overwrite that CA"):
        preflight.resolve_ignore(["clusterca"])
    same = findings(inv, {"w-1": {"kube.file": [facts.CA_CERT], "kube.ca_sha256": LOCAL_CA}})
    assert same[("w-1", "ClusterCA")].status == OK


@pytest.mark.parametrize("name, says", [
    ("Swp", "did you mean 'Swap'?"),
    ("FileAvailable--etc-kubernetes-kubelet", "did you mean 'FileAvailable--etc-kubernetes-kubelet.conf'?"),
    ("xyzzy", "checks are: Reachable, IsPrivilegedUser"),
])
def test_an_unknown_check_name_is_refused_with_a_suggestion(name, says):
    with pytest.raises(KubefabError, match="no preflight check of that name") as e:
        preflight.resolve_ignore(["Swap", name])
    assert says in str(e.value) and f"--ignore {name.lower()}" in str(e.value)


def test_a_clock_not_measured_is_a_warning(inventories):
    hosts = cluster_facts({})
    hosts["w-1"] = facts.parse("w-1", edit(READY, identity("w-1")))  # no window
    got = {(f.host, f.check): f for f in preflight.evaluate(inventories["default"], hosts)}
    assert got[("w-1", "ClockSkew")].status == WARNING


def test_the_table_spells_out_only_what_is_not_ok(inventories):
    edits = {"cp-1": {"tcp.listen": listening(6443)},
             "w-1": {"swap": ["/swapfile 2097148"], "tcp.listen": listening(10250)}}
    got = preflight.evaluate(inventories["default"], cluster_facts(edits), ca_sha256=LOCAL_CA)
    text = preflight.table(got)
    lines = text.splitlines()
    assert lines[0] == "preflight: 3 hosts, 2 errors, 0 warnings, 1 to fix in the runtime phase, 0 done"
    assert lines[1].split() == ["1", "2", "3"]
    assert lines[2].split() == ["cp-1", ".", "ERROR", "."] and lines[3].split() == ["w-1", "fix", "-", "ERROR"]
    assert lines[4] == "(1 other hosts: every check passed)"
    assert lines[5] == "1=Swap  2=Port-6443  3=Port-10250"
    assert "error Port-6443 on cp-1: port 6443 is in use — stop what listens on it (ss -ltnp 'sport = :6443')" in text
    assert "fix Swap on w-1: swap is on (/swapfile): the kubelet will not start — the runtime phase turns" in text
    assert "cp-2" not in text


def test_alike_cells_are_spelled_out_once(inventories):
    got = preflight.evaluate(inventories["default"], cluster_facts({h: {"init": "sshd"} for h in ADDRESSES}))
    text = preflight.table(got)
    assert text.count("InitSystem on cp-1, cp-2, w-1: PID 1 is sshd") == 1


def test_a_clean_table_says_so(inventories):
    text = preflight.table(preflight.evaluate(inventories["default"], cluster_facts({})))
    assert text.splitlines() == ["preflight: 3 hosts, 0 errors, 0 warnings, 0 to fix in the runtime phase, 0 done",
                                 "every check passed on every host"]


def test_check_table_invariants():
    assert len(set(preflight.NAMES)) == len(preflight.NAMES)
    for c in checks.CHECKS:
        assert c.severity in (ERROR, WARNING) and c.roles in checks.ROLES, c
        assert not (c.node_fails and c.runtime), f"{c.name}: a running node's failure is not the runtime's to fix"
    kubeadm_names = {c.name for c in checks.CHECKS if c.kubeadm}
    assert {"Swap", "NumCPU", "Mem", "CRI", "Port-6443", "DirAvailable--var-lib-etcd", "Hostname",
            "FileContent--proc-sys-net-ipv4-ip_forward", "FileExisting-nsenter"} <= kubeadm_names


def test_the_local_ca_fingerprint_matches_what_the_probe_computes(tmp_path):
    inv = load(tmp_path)
    assert state.ca_fingerprint(inv) == ""
    pki.ensure(inv)
    crt, _ = pki.paths(inv, pki.BY_NAME["ca"])
    assert state.ca_fingerprint(inv) == facts.ca_fingerprint(crt.read_bytes())
    assert facts.ca_fingerprint(crt.read_bytes().replace(b"\n", b"\r\n")) == state.ca_fingerprint(inv)


def test_a_new_kubernetes_version_on_a_running_cluster_points_at_cluster_upgrade_and_cannot_be_ignored(inventories):
    got = findings(inventories["default"], {"w-1": {**MEMBER, "version.kubelet": "1.32.9"}})[("w-1", "KubeletVersion")]
    assert got.fix == "run `invoke cluster.upgrade` to move the cluster to 1.33.5 node by node, or set " \
                      "kubernetes_version back to 1.32.9"
    with pytest.raises(KubefabError, match="--ignore KubeletVersion: this check cannot be ignored: on a node of this "
                                           "cluster the runtime phase would install the new kubelet outside any drain"):
        preflight.resolve_ignore(["kubeletversion"])


def test_kube_vips_missing_interface_names_the_host_what_it_has_and_the_interface_carrying_its_address(inventories):
    got = findings(inventories["kube-vip"], {"cp-1": {"net.interfaces": "eth1 lo"}})
    assert got[("cp-1", "VirtualIPInterface")].status == OK and ("w-1", "VirtualIPInterface") not in got
    text = preflight.table(got.values())
    assert ("error VirtualIPInterface on cp-2: no interface 'eth1', where kube-vip is to hold 10.0.0.100: this host "
            "has eth0, lo — set [cluster.ha] interface to the control planes' interface that carries the VIP's "
            "subnet (cp-2 has 10.0.0.12 on eth0); every control plane needs one of that name") in text
    assert ("cp-2", "VirtualIPInterface") not in findings(inventories["ha"])     # keepalived finds its own


def test_cluster_plan_live_refuses_a_kube_vip_interface_a_control_plane_lacks(inventories, monkeypatch):
    inv = inventories["kube-vip"]
    gathered = cluster_facts({"cp-1": {"net.interfaces": "eth1 lo"}})
    monkeypatch.setattr(execute, "probe", lambda s, host: FactsResult(host.name, "facts", OK,
                                                                      facts=gathered[host.name]))
    monkeypatch.setattr(execute.drifts, "start", lambda s: None)
    with pytest.raises(KubefabError) as e:
        execute.live(inv, Options(quiet=True))
    assert str(e.value) == ("cp-2: no interface 'eth1', where kube-vip is to hold 10.0.0.100: this host has eth0, lo "
                            "— set [cluster.ha] interface to the control planes' interface that carries the VIP's "
                            "subnet (cp-2 has 10.0.0.12 on eth0); every control plane needs one of that name")


def test_a_vip_answering_while_the_control_planes_were_not_probed_is_theirs_as_node_join_probes_only_the_joining(
        inventories):
    joining = {name: f for name, f in cluster_facts({"w-1": {**VIP, "endpoint.state": "open"}}).items()
               if name == "w-1"}
    got = {(f.host, f.check): f for f in preflight.evaluate(inventories["ha"], joining, ca_sha256=LOCAL_CA)}
    assert got[("w-1", "EndpointReachable")].status == OK
    everyone = findings(inventories["ha"], {"w-1": {**VIP, "endpoint.state": "open"}})
    assert "no control plane holds it" in everyone[("w-1", "EndpointReachable")].reason
