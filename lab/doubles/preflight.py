"""kubeadm preflight checks (reference §6.1), by name so --ignore-preflight-errors works."""

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass

from . import cri
from .hostfs import exists, host, log, systemctl, systemd_running, warn


def _root(ctx):
    if os.geteuid() != 0:
        yield "user is not running as root"


def _num_cpu(ctx):
    n = os.cpu_count() or 1
    if n < 2:
        yield f"the number of available CPUs {n} is less than the required 2"


def _mem(ctx):
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    if total_kb // 1024 < 1700:
        yield f"the system RAM ({total_kb // 1024} MB) is less than the minimum 1700 MB"


def _port(port):
    def check(ctx):
        # Go's net.Listen(":port") sets SO_REUSEADDR: a port left in TIME_WAIT (after `kubeadm reset`) is free
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            yield f"Port {port} is in use"
        finally:
            s.close()
    return check


def _file_available(path):
    def check(ctx):
        if exists(path):
            yield f"{path} already exists"
    return check


def _dir_available(path):
    def check(ctx):
        p = host(path)
        if p.is_dir() and any(p.iterdir()):
            yield f"{path} is not empty"
    return check


def _binary(name):
    def check(ctx):
        if shutil.which(name) is None:
            yield f"{name} not found in system path"
    return check


def _ip_forward(ctx):
    try:
        value = host("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    except OSError as e:
        yield f"/proc/sys/net/ipv4/ip_forward: {e}"
        return
    if value != "1":
        yield "/proc/sys/net/ipv4/ip_forward contents are not set to 1"


def _swap(ctx):
    lines = host("/proc/swaps").read_text().splitlines()[1:]
    if any(line.strip() for line in lines):
        yield ("swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please "
               "refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on "
               "the node")


def _cri(ctx):
    """CRICheck: added only once kubeadm could connect to the runtime, so it passes here."""
    return iter(())


def _kubelet_version(ctx):
    try:
        out = subprocess.run(["kubelet", "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        yield f"couldn't get kubelet version: {e}"
        return
    kubelet = out.strip().split()[-1] if out.strip() else ""
    cp = ctx["kubernetes_version"]
    if kubelet and _minor(kubelet) > _minor(cp):
        yield (f"the kubelet version is higher than the control plane version. This is not a supported version "
               f"skew and may lead to a malfunctional cluster. Kubelet version: \"{kubelet.lstrip('v')}\" Control "
               f"plane version: \"{cp.lstrip('v')}\"")


def _minor(v):
    return int(v.lstrip("v").split(".")[1])


def _service_kubelet(ctx):
    if systemd_running() and systemctl("is-enabled", "kubelet", check=False).returncode != 0:
        yield "kubelet service is not enabled, please run 'systemctl enable kubelet.service'"


@dataclass(frozen=True)
class Check:
    name: str
    run: object
    error: bool = True


def control_plane_checks(ctx):
    port = ctx["bind_port"]
    checks = [Check("NumCPU", _num_cpu), Check("Mem", _mem), Check(f"Port-{port}", _port(port)),
              Check("Port-10259", _port(10259)), Check("Port-10257", _port(10257))]
    for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        checks.append(Check(f"FileAvailable--etc-kubernetes-manifests-{c}.yaml",
                            _file_available(f"/etc/kubernetes/manifests/{c}.yaml")))
    if ctx["local_etcd"]:
        checks += [Check("Port-2379", _port(2379)), Check("Port-2380", _port(2380)),
                   Check("DirAvailable--var-lib-etcd", _dir_available(ctx["etcd_data_dir"]))]
    return checks


def common_checks(ctx):
    failure = cri.connect_error(ctx["cri_socket"])
    if failure:
        warn(f"[preflight] WARNING: Couldn't create the interface used for talking to the container runtime: "
             f"{failure}")
    checks = ([] if failure else [Check("CRI", _cri)]) + [Check("Swap", _swap, error=False)]
    if _minor(ctx["kubernetes_version"]) < 32:
        checks.append(Check("FileExisting-conntrack", _binary("conntrack")))
    checks += [Check(f"FileExisting-{b}", _binary(b)) for b in ("ip", "iptables", "mount", "nsenter")]
    checks += [Check(f"FileExisting-{b}", _binary(b), error=False) for b in ("ebtables", "ethtool", "socat", "tc",
                                                                           "touch")]
    checks += [Check("KubeletVersion", _kubelet_version), Check("Service-Kubelet", _service_kubelet, error=False),
               Check("Port-10250", _port(10250)),
               Check("FileContent--proc-sys-net-ipv4-ip_forward", _ip_forward)]
    return checks


def init_checks(ctx):
    return [Check("IsPrivilegedUser", _root)] + control_plane_checks(ctx) + common_checks(ctx)


def join_checks(ctx, control_plane):
    """JoinNodeChecks; a control-plane joiner's extra checks run later, once the cluster config is known."""
    checks = [Check("IsPrivilegedUser", _root)] + common_checks(ctx)
    checks += [Check("FileAvailable--etc-kubernetes-kubelet.conf", _file_available("/etc/kubernetes/kubelet.conf")),
               Check("FileAvailable--etc-kubernetes-bootstrap-kubelet.conf",
                     _file_available("/etc/kubernetes/bootstrap-kubelet.conf"))]
    if not control_plane:
        ca = ctx["ca_cert_path"]
        checks.append(Check("FileAvailable--" + ca.strip("/").replace("/", "-"), _file_available(ca)))
    return checks


def pull_images(ctx):
    """RunPullImagesCheck (init, control-plane join): it connects to the runtime again, and that failure is
    fatal whatever --ignore-preflight-errors says. Images are not pulled in the lab."""
    log("[preflight] Pulling images required for setting up a Kubernetes cluster")
    failure = cri.connect_error(ctx["cri_socket"])
    if failure:
        return (f"[preflight] Some fatal errors occurred:\n{failure}[preflight] If you know what you are doing, you "
                "can make a check non-fatal with `--ignore-preflight-errors=...`")
    return None


def run(checks, ctx, ignored):
    """Run `checks`; returns the error text kubeadm would print, or None. Warnings are printed."""
    ignored = {i.lower() for i in ignored}
    errors = []
    log("[preflight] Running pre-flight checks")
    for check in checks:
        for message in check.run(ctx):
            fatal = check.error and "all" not in ignored and check.name.lower() not in ignored
            if fatal:
                errors.append(f"\t[ERROR {check.name}]: {message}")
            else:
                log(f"\t[WARNING {check.name}]: {message}")
    if not errors:
        return None
    return ("[preflight] Some fatal errors occurred:\n" + "\n".join(errors) + "\n[preflight] If you know what you "
            "are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")
