"""kubelet double: run as the `kubelet` service with kubeadm's drop-in flags.

Refuses what the real kubelet refuses at start (kubelet_checks.py: unknown flags, restricted
--node-labels, a config of the wrong kind, version or field types; then swap (failSwapOn), a cgroup
driver that differs from containerd's, a CRI endpoint that does not answer), serves healthz on
127.0.0.1:10248 and holds :10250, runs static pods from staticPodPath (kube-apiserver/-controller-
manager/-scheduler doubles, real etcd), performs TLS bootstrap with --bootstrap-kubeconfig, registers
its Node (labels from --node-labels, InternalIP from a valid --node-ip) and keeps its Ready condition
current: Ready only while the CNI configuration loads and its plugins exist.
"""

import base64
import hashlib
import ipaddress
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import cri, images, podrun
from . import flags as flagparse
from . import kubelet_checks as checks
from . import kubeconfig as kc
from .controllers import CSRS, KUBELET_SIGNER
from .hostfs import DoubleError, event, host, version, write_file
from .kubeclient import ApiStatus, Client

PKI_DIR = "/var/lib/kubelet/pki"
CURRENT_PEM = f"{PKI_DIR}/kubelet-client-current.pem"
DOUBLES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NOT_READY = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
             "message:Network plugin returns error: ")


def say(msg):
    print(f"I {msg}", flush=True)


def fail(msg):
    print(f"E run.go: \"command failed\" err=\"{msg}\"", file=sys.stderr, flush=True)
    return 1


# ---- start-up checks -----------------------------------------------------------------------

def check_swap(cfg):
    if cfg.get("failSwapOn", True) is False:
        return
    entries = [line for line in host("/proc/swaps").read_text().splitlines()[1:] if line.strip()]
    if entries:
        raise DoubleError("running with swap on is not supported, please disable swap or set --fail-swap-on flag "
                          f"to false. /proc/swaps contained: {entries}")


def containerd_cgroup_driver():
    """'systemd' or 'cgroupfs' as containerd's runc runtime is configured (1.x v2 and 2.x v3 layouts)."""
    try:
        conf = tomllib.loads(host("/etc/containerd/config.toml").read_text())
    except FileNotFoundError:
        return "cgroupfs"
    plugins = conf.get("plugins", {})
    cri = plugins.get("io.containerd.cri.v1.runtime") if conf.get("version") == 3 else \
        plugins.get("io.containerd.grpc.v1.cri") if conf.get("version") == 2 else plugins.get("cri")
    options = ((cri or {}).get("containerd", {}).get("runtimes", {}).get("runc", {}).get("options", {}))
    return "systemd" if options.get("SystemdCgroup") is True else "cgroupfs"


def check_cgroup_driver(cfg):
    mine, runtime = cfg.get("cgroupDriver", "cgroupfs"), containerd_cgroup_driver()
    if mine != runtime:
        raise DoubleError(f"failed to run Kubelet: misconfiguration: kubelet cgroup driver: \"{mine}\" is different "
                          f"from containerd cgroup driver: \"{runtime}\" (SystemdCgroup in "
                          "/etc/containerd/config.toml)")


class Healthz(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def serve_ports(cfg):
    address, port = cfg.get("healthzBindAddress", "127.0.0.1"), int(cfg.get("healthzPort", 10248))
    try:
        healthz = ThreadingHTTPServer((address, port), Healthz)
        kubelet = socket.socket()
        kubelet.bind(("0.0.0.0", int(cfg.get("port", 10250))))
        kubelet.listen()
    except OSError as e:
        raise DoubleError(f"failed to listen: {e}")
    threading.Thread(target=healthz.serve_forever, daemon=True).start()
    return kubelet


# ---- static pods ---------------------------------------------------------------------------

class StaticPods:
    """Runs each manifest's container command as a process; restarts on change or exit; stops a pod whose
    manifest left the directory. Every regular file whose name does not start with a dot is a manifest, whatever
    its suffix, as the kubelet's file source reads the directory (pkg/kubelet/config/file.go, extractFromDir:
    glob `[^.]*`): a manifest renamed to `etcd.yaml.bak` beside the others still runs; it stops only when moved
    out of the directory or hidden."""

    def __init__(self, manifest_dir, bin_dir):
        self.dir, self.bin_dir = manifest_dir, bin_dir
        self.running = {}   # pod name -> (digest, Popen, pod, restarts)
        self.parsed = {}    # manifest path -> (digest, pod): parsed again only when its bytes change
        self.lock = threading.Lock()
        # set when a pod (re)started: its mirror Pod's status is sent at once, as the kubelet's status manager
        # sends a changed pod status (status_manager.go, podStatusChannel), not at the next node status sync
        self.changed = threading.Event()

    def sync(self):
        wanted, parsed = {}, {}
        d = host(self.dir)
        for f in sorted(f for f in d.glob("[!.]*") if f.is_file()) if d.is_dir() else []:
            data = f.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:16]
            try:
                pod = self.parsed[f][1] if self.parsed.get(f, ("",))[0] == digest else yaml.safe_load(data)
                wanted[pod["metadata"]["name"]] = parsed[f] = (digest, pod)
            except (yaml.YAMLError, KeyError, TypeError) as e:
                say(f"static pod manifest {f} ignored: {e}")
        self.parsed = parsed
        with self.lock:
            for name in set(self.running) - set(wanted):
                self.stop(name)
            for name, (digest, pod) in wanted.items():
                current = self.running.get(name)
                if current and current[0] == digest and current[1] and current[1].poll() is None:
                    continue
                restarts = 0 if not current or current[0] != digest else current[3] + 1
                if current:
                    self.stop(name)
                self.running[name] = (digest, self.start(pod), pod, restarts)
                if self.running[name][1] is not None:
                    self.changed.set()

    def command(self, pod):
        container = pod["spec"]["containers"][0]
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        exe = os.path.basename(argv[0]) if argv else ""
        if exe in DOUBLES:
            return [str(self.bin_dir / exe), *argv[1:]]
        if exe == "etcd" and shutil.which("etcd"):
            # real etcd: host paths in its flags are mapped under a test root
            mapped = [a.split("=", 1)[0] + "=" + ",".join(str(host(v)) if v.startswith("/") else v
                                                         for v in a.split("=", 1)[1].split(","))
                      if a.startswith("--") and "=" in a else a for a in argv[1:]]
            return [shutil.which("etcd"), *mapped]
        return None

    def start(self, pod):
        argv = self.command(pod)
        name = pod["metadata"]["name"]
        if argv is None:
            say(f"static pod {name}: no runnable double or binary for {pod['spec']['containers'][0].get('image')}")
            return None
        tag = pod["spec"]["containers"][0].get("image", "").rpartition(":")[2]
        env = dict(os.environ)
        if name in DOUBLES and tag.startswith("v"):
            env["KUBEFAB_DOUBLE_VERSION"] = tag
        log_dir = host(f"/var/log/pods/kube-system_{name}")
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        say(f"started static pod {name} (pid {proc.pid})")
        return proc

    def stop(self, name):
        _, proc, _, _ = self.running.pop(name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self):
        with self.lock:
            for name in list(self.running):
                self.stop(name)

    def status(self):
        with self.lock:
            return {n: (p, proc is not None and proc.poll() is None, r) for n, (_, proc, p, r) in self.running.items()}


# ---- API: TLS bootstrap, registration, status ----------------------------------------------

def write_pem_and_kubeconfig(kubeconfig_path, server, ca_pem, cert_pem, key_pem):
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    pem = f"{PKI_DIR}/kubelet-client-{stamp}.pem"
    write_file(pem, cert_pem + key_pem, mode=0o600, dir_mode=0o755)
    current = host(CURRENT_PEM)
    current.unlink(missing_ok=True)
    current.symlink_to(host(pem))
    config = kc.build(server, ca_pem, "default-auth", "default-cluster", cert_file=CURRENT_PEM, key_file=CURRENT_PEM)
    config["contexts"][0]["name"] = config["current-context"] = "default-context"
    kc.write(kubeconfig_path, config)


def bootstrap(flags, node_name):
    """TLS bootstrap: CSR with the bootstrap token, wait for the signed cert, write kubelet.conf."""
    boot = kc.load(flags["bootstrap-kubeconfig"])
    cluster, _ = kc.current(boot, flags["bootstrap-kubeconfig"])
    client = Client.from_kubeconfig(flags["bootstrap-kubeconfig"])
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")])).sign(key, hashes.SHA256())
    obj = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"generateName": "node-csr-"},
           "spec": {"request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
                    "signerName": KUBELET_SIGNER, "usages": ["digital signature", "client auth"]}}
    created = client.create(CSRS, obj)
    name = created["metadata"]["name"]
    say(f"TLS bootstrap: created CSR {name}, waiting for it to be approved and signed")
    while True:
        status = client.get(f"{CSRS}/{name}").get("status") or {}
        if any(c.get("type") in ("Denied", "Failed") for c in status.get("conditions", [])):
            raise DoubleError(f"certificate signing request {name} was denied or failed")
        if status.get("certificate"):
            break
        time.sleep(0.5)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    write_pem_and_kubeconfig(flags["kubeconfig"], cluster["server"], kc.ca_data(cluster),
                             base64.b64decode(status["certificate"]), key_pem)
    say("TLS bootstrap complete: wrote kubelet.conf and kubelet-client-current.pem")


def ensure_client(flags, node_name):
    """The kubelet's API client, bootstrapping first if kubelet.conf is absent; None = standalone."""
    kubeconfig = flags.get("kubeconfig", "")
    if kubeconfig and host(kubeconfig).is_file():
        config = kc.load(kubeconfig)
        _, user = kc.current(config, kubeconfig)
        cert, key, _ = kc.client_material(user)
        if cert and key and not host(CURRENT_PEM).exists():
            write_file(f"{PKI_DIR}/kubelet-client-bootstrap.pem", cert + key, mode=0o600)
            host(CURRENT_PEM).symlink_to(host(f"{PKI_DIR}/kubelet-client-bootstrap.pem"))
        return Client.from_kubeconfig(kubeconfig)
    if flags.get("bootstrap-kubeconfig") and host(flags["bootstrap-kubeconfig"]).is_file():
        bootstrap(flags, node_name)
        return Client.from_kubeconfig(kubeconfig)
    return None


def node_ip(flags):
    """(InternalIP or None, the error the kubelet logs when --node-ip is not usable)."""
    given = [ip for ip in flags.get("node-ip", "").split(",") if ip]
    if given:
        try:
            ipaddress.ip_address(given[0])
        except ValueError:
            say(f'"Could not parse node IP. Ignoring" IP="{given[0]}"')
        else:
            error = checks.validate_node_ip(given[0])
            return (None, error) if error else (given[0], None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.18.0.1", 9))
            return s.getsockname()[0], None
        except OSError:
            return "127.0.0.1", None


_RUNTIME_VERSIONS = {}  # containerd's (path, inode, mtime, size) -> what its --version said


def runtime_version():
    """containerd://<version>, asked of the binary once for as long as it is the same file (each node status sync
    started a process otherwise; the real kubelet asks the runtime over CRI)."""
    path = shutil.which("containerd")
    try:
        st = os.stat(path or "")
    except OSError:
        return "containerd://unknown"
    key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
    if key not in _RUNTIME_VERSIONS:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            return "containerd://unknown"
        _RUNTIME_VERSIONS[key] = f"containerd://{out[2]}" if len(out) > 2 else "containerd://unknown"
    return _RUNTIME_VERSIONS[key]


def conditions():
    cni_error = checks.cni_status()
    ready = cni_error is None
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    base = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": m, "lastHeartbeatTime": now,
             "lastTransitionTime": now}
            for t, r, m in (("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
                            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))]
    ready_cond = {"type": "Ready", "status": "True" if ready else "False",
                  "reason": "KubeletReady" if ready else "KubeletNotReady",
                  "message": "kubelet is posting ready status" if ready else NOT_READY + cni_error,
                  "lastHeartbeatTime": now, "lastTransitionTime": now}
    return base + [ready_cond]


def addresses(name, flags):
    ip, error = node_ip(flags)
    if error:
        print(f'E "Failed to set some node status fields" err="{error}" node="{name}"', file=sys.stderr, flush=True)
        return []
    return [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]


def node_object(name, flags, cfg, labels):
    taints = []
    for spec in filter(None, flags.get("register-with-taints", "").split(",")):
        kv, _, effect = spec.partition(":")
        key, _, value = kv.partition("=")
        taints.append({"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect})
    taints += cfg.get("registerWithTaints") or []
    labels = {**labels, "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints} if taints else {},
            "status": {"addresses": addresses(name, flags),
                       "capacity": capacity(cfg), "allocatable": capacity(cfg),
                       "conditions": conditions(),
                       "nodeInfo": node_info(name)}}


def capacity(cfg):
    """What the node offers: the kubelet reports its maxPods (default 110) as the pods it takes."""
    return {"cpu": str(os.cpu_count()), "pods": str(cfg.get("maxPods", 110))}


def _read(path, default):
    try:
        return host(path).read_text().strip() or default
    except OSError:
        return default


def node_info(name):
    """Every NodeSystemInfo field (clients such as the kubernetes Python client require them all)."""
    fallback = hashlib.sha256(name.encode()).hexdigest()[:32]
    return {"kubeletVersion": version(), "kubeProxyVersion": "", "containerRuntimeVersion": runtime_version(),
            "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": platform.release(),
            "osImage": os_image(), "machineID": _read("/etc/machine-id", fallback),
            "systemUUID": _read("/sys/class/dmi/id/product_uuid", fallback),
            "bootID": _read("/proc/sys/kernel/random/boot_id", fallback)}


def os_image():
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def mirror_pod(pod, node_name, alive, restarts, ip):
    name = pod["metadata"]["name"]
    meta = {"name": f"{name}-{node_name}", "namespace": pod["metadata"].get("namespace", "kube-system"),
            "labels": pod["metadata"].get("labels", {}),
            "annotations": dict(pod["metadata"].get("annotations") or {},
                                **{"kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": "double"})}
    container = pod["spec"]["containers"][0]
    status = {"phase": "Running" if alive else "Pending", "hostIP": ip, "podIP": ip,
              "conditions": [{"type": "Ready", "status": "True" if alive else "False"}],
              "containerStatuses": [{"name": container["name"], "image": container.get("image", ""),
                                     "imageID": container.get("image", ""), "ready": alive,
                                     "restartCount": restarts, "started": alive}]}
    spec = dict(pod["spec"], nodeName=node_name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def api_loop(flags, cfg, node_name, pods, stop, labels):
    client = None
    registered = False
    socket_path = flags.get("container-runtime-endpoint", images.SOCKET).removeprefix("unix://")
    workers = podrun.PodWorkers(node_name, say, lambda: images.present(socket_path))
    while not stop.is_set():
        pods.changed.clear()
        try:
            if client is None:
                client = ensure_client(flags, node_name)
                if client is None:
                    stop.wait(2)
                    continue
            if not registered:
                try:
                    client.create("/api/v1/nodes", node_object(node_name, flags, cfg, labels))
                    say(f"Successfully registered node {node_name}")
                except ApiStatus as e:
                    if e.code != 409:
                        raise
                registered = True
            sync_bound_pods(workers, client, node_ip(flags)[0] or "")
            # nodeInfo too, as the real kubelet's status sync does: a kubelet restarted on a new binary reports it
            client.request("PATCH", f"/api/v1/nodes/{node_name}/status",
                           {"status": {"conditions": conditions(), "nodeInfo": node_info(node_name),
                                       "capacity": capacity(cfg), "allocatable": capacity(cfg)}},
                           "application/merge-patch+json")
            sync_mirror_pods(client, node_name, pods, node_ip(flags)[0] or "")
        except (DoubleError, ApiStatus, OSError) as e:
            say(f"API: {e}")
        pods.changed.wait(float(os.environ.get("KUBEFAB_DOUBLE_STATUS_SECONDS", "2")))


def sync_bound_pods(workers, client, ip):
    """The pods the API binds here, before the node status, so a CNI config their init containers write
    counts in the same round; their failure does not hold up the node status."""
    try:
        workers.sync(client, ip)
    except (DoubleError, ApiStatus, OSError) as e:
        say(f"pods: {e}")


def sync_mirror_pods(client, node_name, pods, ip):
    for name, (pod, alive, restarts) in pods.status().items():
        obj = mirror_pod(pod, node_name, alive, restarts, ip)
        ns, pod_name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            client.create(f"/api/v1/namespaces/{ns}/pods", obj)
        except ApiStatus as e:
            if e.code != 409:
                raise
            client.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod_name}/status", {"status": obj["status"]},
                           "application/merge-patch+json")


def check_runtime(flags):
    endpoint = flags.get("container-runtime-endpoint", "unix:///run/containerd/containerd.sock")
    error = cri.validation_error(endpoint)
    if error:
        raise DoubleError(f"failed to run Kubelet: {error}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    flags, _ = flagparse.parse(argv)
    try:
        checks.check_flags(flags)
        if "version" in flags:
            print(f"Kubernetes {version()}")
            return 0
        labels = checks.node_labels(flags)
        cfg = checks.load_config(flags.get("config", "/var/lib/kubelet/config.yaml"))
        check_swap(cfg)
        check_cgroup_driver(cfg)
        check_runtime(flags)
        listener = serve_ports(cfg)
    except DoubleError as e:
        return fail(e)
    node_name = (flags.get("hostname-override") or socket.gethostname()).lower()
    pods = StaticPods(cfg.get("staticPodPath", "/etc/kubernetes/manifests"), Path(sys.argv[0]).resolve().parent)
    stop = threading.Event()
    def stopping(*_):
        stop.set()
        pods.changed.set()      # the API loop waits on it between syncs: it sees the stop at once
    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    threading.Thread(target=api_loop, args=(flags, cfg, node_name, pods, stop, labels), daemon=True).start()
    say(f"kubelet double {version()} running as node {node_name}")
    event(f"kubelet-start {version()}")
    while not stop.is_set():
        pods.sync()
        stop.wait(1)
    pods.stop_all()
    listener.close()
    return 0
