"""kubeadm's kubelet-start work: the kubelet's config.yaml, kubeadm-flags.env, and (re)starting it
through systemd, or as a detached process under a test root (no service manager there)."""

import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import time

import yaml

from .config import args_dict
from .hostfs import DoubleError, host, log, systemctl, systemd_running, warn, write_file

KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
PID_FILE = "/run/kubelet-double.pid"
DROPIN_ARGS = ["--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
               "--kubeconfig=/etc/kubernetes/kubelet.conf", f"--config={KUBELET_CONFIG}"]


def kubelet_configuration(doc, cluster):
    """The KubeletConfiguration kubeadm uploads and writes (its defaults under the user's values)."""
    net = cluster["networking"]
    svc = ipaddress.ip_network(net["serviceSubnet"].split(",")[0], strict=False)
    base = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"cacheTTL": "0s", "enabled": True},
                               "x509": {"clientCAFile": f"{cluster['certificatesDir']}/ca.crt"}},
            "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s",
                                                             "cacheUnauthorizedTTL": "0s"}},
            "cgroupDriver": "systemd", "clusterDNS": [str(svc.network_address + 10)],
            "clusterDomain": net["dnsDomain"], "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
            "rotateCertificates": True, "staticPodPath": "/etc/kubernetes/manifests"}
    base.update({k: v for k, v in (doc or {}).items()})
    return base


def write_kubelet_files(kubelet_config, node_registration, hostname, register_taints=False):
    """config.yaml and kubeadm-flags.env; joining nodes register their taints through the flag."""
    write_file(KUBELET_CONFIG, yaml.safe_dump(kubelet_config, sort_keys=False))
    args = {"container-runtime-endpoint": node_registration["criSocket"]}
    if node_registration["name"] != hostname:
        args["hostname-override"] = node_registration["name"]
    taints = node_registration.get("taints") or []
    if register_taints and taints:
        args["register-with-taints"] = ",".join(
            f"{t['key']}={t['value']}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}"
            for t in taints)
    args.update(args_dict(node_registration.get("kubeletExtraArgs")))
    line = " ".join(f"--{k}={v}" for k, v in args.items())
    write_file(FLAGS_ENV, f'KUBELET_KUBEADM_ARGS="{line}"\n')
    log(f'[kubelet-start] Writing kubelet environment file with flags to file "{FLAGS_ENV}"')
    log(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_CONFIG}"')


def read_flags_env():
    try:
        text = host(FLAGS_ENV).read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        if line.startswith("KUBELET_KUBEADM_ARGS="):
            return shlex.split(shlex.split(line.partition("=")[2])[0]) if line.partition("=")[2] else []
    return []


def start_kubelet():
    log("[kubelet-start] Starting the kubelet")
    if systemd_running():
        result = systemctl("restart", "kubelet", check=False)
        if result.returncode != 0:
            warn(f"[kubelet-start] WARNING: unable to start the kubelet service: [{result.stderr.strip()}]")
            warn("[kubelet-start] Please ensure kubelet is reloaded and running manually.")
        return
    stop_kubelet()
    kubelet = shutil.which("kubelet")
    if kubelet is None:
        raise DoubleError('exec: "kubelet": executable file not found in $PATH')
    log_path = host("/var/log/kubelet-double.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([kubelet, *DROPIN_ARGS, *read_flags_env()], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    write_file(PID_FILE, f"{proc.pid}\n")


def stop_kubelet():
    if systemd_running():
        systemctl("stop", "kubelet", check=False)
        return
    pid_file = host(PID_FILE)
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
