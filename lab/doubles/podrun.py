"""The kubelet's part for pods the API binds to its node (a DaemonSet's pods): it sets up their volumes,
plays their init containers' effect on the host and reports the pod's status.

A pod on the pod network (no hostNetwork) is taken on once the node's network is ready (the CNI config loads, as
for the Node's Ready condition) and has no init containers the double cannot play; it gets an address from the
node's podCIDR (no init containers: the CNI manifests' pods, whose are played, use the host network), and is
reported running only when every image it names is in containerd's k8s.io namespace: otherwise its containers
wait with ErrImagePull and the error a pull from the unreachable registry gives (the lab has no route out), so a
missing mirror or pre-pull shows as it does on a real node.

The doubles run no images, so an init container is played only when its image and command are in
the tables below, which hold what kubefab's CNI manifests run: flannel's `cp` steps (install-cni-plugin,
install-cni) and calico's `/opt/cni/bin/install` (install-cni). A host-network pod (no CNI is needed for it)
is taken on only if every init container can be played; its main containers are
then reported running, not run, except that flanneld's effect on the host is played (flanneld.py) and
calico-node's address detection (caliconode.py), with `$(VAR)` in their command and args expanded from the
container's environment as the kubelet expands them.
Completed containers are recorded under /var/lib/kubelet/pods/<uid>/containers/<name> as the kubelet
records its containers, so a restarted
kubelet does not run them again, and after `kubeadm reset` (which empties /var/lib/kubelet) they run
again for the pod bound to the rejoined node. Files they wrote stay when the pod or its DaemonSet is
deleted, as on a real node.
"""

import hashlib
import ipaddress
import json
import posixpath
import re
import subprocess
import time
from urllib.parse import quote

from . import caliconode, cniplugins, flanneld, images, kubelet_checks
from .hostfs import host, write_file
from .kubeclient import ApiStatus

PODS_DIR = "/var/lib/kubelet/pods"
# calico/cni's /opt/cni/bin: its own plugins, the CNI release plugins it bundles and the installer
CALICO_CNI_BIN = ("bandwidth", "calico", "calico-ipam", "flannel", "host-local", "install", "loopback", "portmap",
                  "tuning")
# image (last path component, no tag) -> {path in the image: plugin whose stand-in lives there}
IMAGES = {"flannel-cni-plugin": {"/flannel": "flannel"},
          "flannel": {},
          "cni": {f"/opt/cni/bin/{n}": n for n in CALICO_CNI_BIN},
          "node": {}}


class ContainerError(Exception):
    """A container that fails (reason, message), reported in the pod status as the kubelet reports it."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


def image_name(image):
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- volumes and environment ---------------------------------------------------------------

def _configmap(client, namespace, name, optional=False):
    try:
        return client.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}").get("data") or {}
    except ApiStatus as e:
        if e.code == 404 and optional:
            return None
        if e.code == 404:
            raise ContainerError("ContainerCreating", f'configmap "{name}" not found')
        raise


def volumes(pod, client):
    """{name: ("host", path) | ("files", {key: text}) | ("private", None)} after the kubelet's volume set-up."""
    out, namespace = {}, pod["metadata"]["namespace"]
    for v in pod["spec"].get("volumes") or []:
        if "hostPath" in v:
            path, kind = v["hostPath"]["path"], v["hostPath"].get("type", "")
            real = host(path)
            if kind in ("", "DirectoryOrCreate") and not real.exists():
                real.mkdir(parents=True, mode=0o755)
            elif kind == "FileOrCreate" and not real.exists():
                real.parent.mkdir(parents=True, exist_ok=True)
                real.touch(0o644)
            out[v["name"]] = ("host", path)
        elif "configMap" in v:
            ref = v["configMap"]
            try:
                data = _configmap(client, namespace, ref["name"], ref.get("optional", False)) or {}
            except ContainerError:
                raise ContainerError("ContainerCreating", f'MountVolume.SetUp failed for volume "{v["name"]}" : '
                                                          f'configmap "{ref["name"]}" not found')
            items = ref.get("items")
            out[v["name"]] = ("files", {i["path"]: data[i["key"]] for i in items if i["key"] in data}
                              if items else data)
        else:
            out[v["name"]] = ("private", None)
    return out


def environment(container, pod, client, ip=""):
    """The container's environment as the kubelet builds it (envFrom, then env; configMap refs, fieldRefs; `ip` is
    the node's, so the host-network pod's status.hostIP and status.podIP)."""
    namespace, env = pod["metadata"]["namespace"], {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            data = _configmap(client, namespace, ref["name"], ref.get("optional", False))
            env.update(data or {})
    fields = {"spec.nodeName": pod["spec"].get("nodeName", ""), "metadata.name": pod["metadata"]["name"],
              "metadata.namespace": namespace, "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
              "status.hostIP": ip, "status.podIP": ip}
    for item in container.get("env") or []:
        source = item.get("valueFrom") or {}
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            try:
                data = _configmap(client, namespace, ref["name"], ref.get("optional", False))
            except ContainerError as e:
                raise ContainerError("CreateContainerConfigError", e.message)
            if data is not None and ref["key"] not in data and not ref.get("optional"):
                raise ContainerError("CreateContainerConfigError",
                                     f"couldn't find key {ref['key']} in ConfigMap {namespace}/{ref['name']}")
            if data is not None and ref["key"] in data:
                env[item["name"]] = data[ref["key"]]
        elif "fieldRef" in source:
            env[item["name"]] = fields.get(source["fieldRef"]["fieldPath"], "")
    return env


# ---- one container's filesystem view -------------------------------------------------------

class Container:
    """Paths as the container sees them: its mounts (host directories, configMap files) over its image."""

    def __init__(self, spec, vols, env):
        self.name, self.env = spec["name"], env
        self.image = IMAGES[image_name(spec.get("image", ""))]
        mounts = [(m["mountPath"].rstrip("/") or "/", vols[m["name"]], m.get("readOnly", False))
                  for m in spec.get("volumeMounts") or [] if m["name"] in vols]
        self.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    def locate(self, path):
        for mount, volume, read_only in self.mounts:
            if path == mount or path.startswith(mount + "/"):
                return volume, path[len(mount):].lstrip("/"), read_only
        return ("image", None), path, False

    def read(self, path):
        """(bytes, mode) of `path`, or None when it does not exist."""
        (kind, value), rel, _ = self.locate(path)
        if kind == "host":
            real = host(posixpath.join(value, rel))
            return (real.read_bytes(), real.stat().st_mode & 0o7777) if real.is_file() else None
        if kind == "files":
            return (value[rel].encode(), 0o644) if rel in value else None
        if kind == "image" and rel in self.image:
            return cniplugins.stand_in(self.image[rel]), 0o755
        return None

    def is_dir(self, path):
        (kind, value), rel, _ = self.locate(path)
        return kind == "host" and host(posixpath.join(value, rel)).is_dir()

    def write(self, path, data, mode, program):
        """Write `path`; only host mounts have an effect that outlives the container."""
        (kind, value), rel, read_only = self.locate(path)
        if read_only or kind == "files":
            raise ContainerError("Error", f"{program}: can't create '{path}': Read-only file system")
        if kind != "host":
            return
        target = posixpath.join(value, rel)
        if not host(posixpath.dirname(target)).is_dir():
            raise ContainerError("Error", f"{program}: can't create '{path}': No such file or directory")
        write_file(target, data, mode=mode)


# ---- the programs the CNI images run -------------------------------------------------------

def busybox_cp(c, args):
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) != 2:
        raise ContainerError("Error", "BusyBox cp: need a source and a destination")
    src, dst = paths
    found = c.read(src)
    if found is None:
        raise ContainerError("Error", f"cp: can't stat '{src}': No such file or directory")
    if c.is_dir(dst):
        dst = posixpath.join(dst, posixpath.basename(src))
    c.write(dst, found[0], found[1], "cp")


CALICO_DEFAULTS = {"__LOG_LEVEL__": ("LOG_LEVEL", "info"),
                   "__LOG_FILE_PATH__": ("LOG_FILE_PATH", "/var/log/calico/cni/cni.log"),
                   "__LOG_FILE_MAX_SIZE__": ("LOG_FILE_MAX_SIZE", "100"),
                   "__LOG_FILE_MAX_AGE__": ("LOG_FILE_MAX_AGE", "30"),
                   "__LOG_FILE_MAX_COUNT__": ("LOG_FILE_MAX_COUNT", "10"),
                   "__DATASTORE_TYPE__": ("DATASTORE_TYPE", "kubernetes"),
                   "__CNI_MTU__": ("CNI_MTU", "1500"),
                   "__KUBERNETES_SERVICE_HOST__": ("KUBERNETES_SERVICE_HOST", ""),
                   "__KUBERNETES_SERVICE_PORT__": ("KUBERNETES_SERVICE_PORT", ""),
                   "__ETCD_ENDPOINTS__": ("ETCD_ENDPOINTS", ""), "__ETCD_DISCOVERY_SRV__": ("ETCD_DISCOVERY_SRV", "")}


def calico_install(c, args):
    """calico/cni's installer (cni-plugin/pkg/install/install.go) with SLEEP=false: its binaries into
    /host/opt/cni/bin, the network config from CNI_NETWORK_CONFIG with its placeholders filled into
    /host/etc/cni/net.d/$CNI_CONF_NAME. No service-account token is mounted by the double, so, as
    install.go does outside a pod, no calico-kubeconfig is written."""
    (kind, _), _, _ = c.locate("/host/opt/cni/bin")
    if kind != "host":
        raise ContainerError("Error", "found no writeable directory, exiting")
    for path, plugin in sorted(c.image.items()):
        c.write(f"/host/opt/cni/bin/{plugin}", cniplugins.stand_in(plugin), 0o755, "install")
    env = c.env
    netconf = env.get("CNI_NETWORK_CONFIG", "")
    net_dir = env.get("CNI_NET_DIR", "/etc/cni/net.d")
    replacements = {k: env.get(name, default) for k, (name, default) in CALICO_DEFAULTS.items()}
    replacements.update({"__KUBERNETES_NODE_NAME__": env.get("KUBERNETES_NODE_NAME", ""),
                         "__KUBECONFIG_FILEPATH__": f"{net_dir}/calico-kubeconfig", "__SERVICEACCOUNT_TOKEN__": "",
                         "__ETCD_CERT_FILE__": "", "__ETCD_CA_CERT_FILE__": "", "__ETCD_KEY_FILE__": ""})
    for placeholder, value in replacements.items():
        netconf = netconf.replace(placeholder, value)
    try:
        if not isinstance(json.loads(netconf), dict):
            raise ValueError("json: cannot unmarshal into Go value of type map[string]interface {}")
    except ValueError as e:
        raise ContainerError("Error", f"{netconf} is not a valid json object\nerror: {e}")
    c.write(f"/host/etc/cni/net.d/{env.get('CNI_CONF_NAME') or '10-calico.conflist'}", netconf.encode(), 0o644,
            "install")


# (image, argv[0]) -> program
PROGRAMS = {("flannel-cni-plugin", "cp"): busybox_cp, ("flannel", "cp"): busybox_cp,
            ("cni", "/opt/cni/bin/install"): calico_install}


# main containers whose effect on the host the double plays, once per pod, after the init containers
MAIN_PROGRAMS = {("flannel", "/opt/bin/flanneld"): flanneld.run, ("node", ""): caliconode.run}
VARIABLE = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.-]*)\))")


def expand(text, env):
    """The kubelet's $(VAR) expansion of a command or argument: `$$` is `$`, an undefined $(VAR) stays as it is."""
    return VARIABLE.sub(lambda m: "$" if m[1] == "$" else env.get(m[2], m[0]), text)


def program(container):
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    key = (image_name(container.get("image", "")), argv[0] if argv else "")
    return PROGRAMS.get(key), argv[1:]


def playable(pod):
    """Why the double cannot run `pod`, or None."""
    if not pod["spec"].get("hostNetwork") and pod["spec"].get("initContainers"):
        return "the double plays no init containers of a pod on the pod network"
    for c in pod["spec"].get("initContainers") or []:
        if program(c)[0] is None:
            return f"init container {c['name']} ({c.get('image')}) is not one the double can play"
    return None


# ---- the pod worker ------------------------------------------------------------------------

class PodWorkers:
    """Runs the pods bound to this node, once per pod, and keeps their status in the API."""

    def __init__(self, node_name, say, held_images=images.present):
        self.node, self.say, self.skipped, self.held_images = node_name, say, set(), held_images

    def sync(self, client, ip):
        selector = quote(f"spec.nodeName={self.node}")
        pods = client.get(f"/api/v1/pods?fieldSelector={selector}").get("items", [])
        network = None
        for pod in pods:
            annotations = pod["metadata"].get("annotations") or {}
            if "kubernetes.io/config.mirror" in annotations or pod["metadata"].get("deletionTimestamp"):
                continue
            why = playable(pod)
            if why:
                if pod["metadata"]["uid"] not in self.skipped:
                    self.skipped.add(pod["metadata"]["uid"])
                    self.say(f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']} not run: {why}")
                continue
            if pod["spec"].get("hostNetwork"):
                status = self.run(client, pod, ip)
            else:
                network = network or self.pod_network(client, pods)
                if network is None:
                    continue
                status = self.run_networked(client, pod, ip, network)
            if _changed(pod.get("status") or {}, status):
                client.request("PATCH", f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/"
                                        f"{pod['metadata']['name']}/status", {"status": status},
                               "application/merge-patch+json")

    def pod_network(self, client, pods):
        """(podCIDR, addresses in use) once the node's pod network is ready, else None."""
        if kubelet_checks.cni_status() is not None:
            return None
        cidr = (client.get(f"/api/v1/nodes/{self.node}").get("spec") or {}).get("podCIDR")
        if not cidr:
            return None
        used = {(p.get("status") or {}).get("podIP") for p in pods if not p["spec"].get("hostNetwork")}
        return ipaddress.ip_network(cidr), used

    def run_networked(self, client, pod, ip, network):
        """A pod-network pod: its address, then its Secret volumes mounted (else it stays ContainerCreating, as
        the kubelet's FailedMount keeps it), then running when containerd holds its images, else ErrImagePull."""
        cidr, used = network
        started = (pod.get("status") or {}).get("startTime") or now()
        pod_ip = (pod.get("status") or {}).get("podIP") or pod_address(cidr, pod["metadata"]["uid"], used)
        used.add(pod_ip)
        unmounted = missing_secret(client, pod)
        if unmounted:
            if pod["metadata"]["uid"] not in self.skipped:
                self.skipped.add(pod["metadata"]["uid"])
                self.say(f"pod {pod['metadata']['name']}: {unmounted}")
            return creating_status(pod, ip, pod_ip, started)
        self.skipped.discard(pod["metadata"]["uid"])
        held = self.held_images()
        containers = (pod["spec"].get("initContainers") or []) + (pod["spec"].get("containers") or [])
        missing = [c for c in containers if images.normalize(c.get("image", "")) not in held]
        if missing:
            return image_pull_status(pod, ip, pod_ip, started, {c["name"] for c in missing})
        return running_status(pod, ip, started, pod_ip=pod_ip)

    def run(self, client, pod, ip):
        uid, started = pod["metadata"]["uid"], (pod.get("status") or {}).get("startTime") or now()
        done = host(f"{PODS_DIR}/{uid}/containers")
        inits = pod["spec"].get("initContainers") or []
        finished = []
        try:
            vols = volumes(pod, client)
            for spec in inits:
                if not (done / spec["name"]).is_dir():
                    run, args = program(spec)
                    run(Container(spec, vols, environment(spec, pod, client, ip)), args)
                    (done / spec["name"]).mkdir(parents=True, exist_ok=True)
                    self.say(f"pod {pod['metadata']['name']}: init container {spec['name']} completed")
                finished.append(spec)
        except ContainerError as e:
            self.say(f"pod {pod['metadata']['name']}: {e.reason}: {e.message}")
            failed = inits[len(finished)] if len(finished) < len(inits) else None
            return pending_status(pod, ip, started, finished, failed, e)
        except OSError as e:
            return pending_status(pod, ip, started, finished, inits[len(finished)],
                                  ContainerError("Error", str(e)))
        for spec in pod["spec"].get("containers") or []:
            command = list(spec.get("command") or [])
            play = MAIN_PROGRAMS.get((image_name(spec.get("image", "")), command[0] if command else ""))
            if play and not (done / spec["name"]).is_dir():
                try:
                    env = environment(spec, pod, client, ip)
                    args = [expand(a, env) for a in command[1:] + list(spec.get("args") or [])]
                    play(Container(spec, vols, env), args, client, self.node, ip)
                except (flanneld.FlannelError, caliconode.CalicoError, ContainerError, OSError,
                        subprocess.CalledProcessError) as e:
                    self.say(f"pod {pod['metadata']['name']}: container {spec['name']}: {e}")
                    return running_status(pod, ip, started, crashing=(spec["name"], str(e)))
                (done / spec["name"]).mkdir(parents=True, exist_ok=True)
        return running_status(pod, ip, started)


def _changed(old, new):
    keys = ("phase", "conditions", "initContainerStatuses", "containerStatuses")
    strip = json.loads(json.dumps({k: old.get(k) for k in keys}))
    fresh = {k: new.get(k) for k in keys}
    for doc in (strip, fresh):
        for c in doc["conditions"] or []:
            c.pop("lastTransitionTime", None)
    return strip != fresh


def _conditions(initialized, ready, when):
    return [{"type": t, "status": "True" if ok else "False", "lastTransitionTime": when}
            for t, ok in (("PodReadyToStartContainers", True), ("Initialized", initialized), ("Ready", ready),
                          ("ContainersReady", ready), ("PodScheduled", True))]


def _image(c):
    return {"name": c["name"], "image": c.get("image", ""), "imageID": c.get("image", ""), "restartCount": 0}


def pod_address(cidr, uid, used):
    """An address of `cidr` for the pod `uid` (stable for the pod), not `used` and not the network's first (the
    bridge's) or last."""
    hosts = cidr.num_addresses - 3
    start = int(hashlib.sha256(uid.encode()).hexdigest(), 16) % hosts
    for step in range(hosts):
        address = str(cidr.network_address + 2 + (start + step) % hosts)
        if address not in used:
            return address
    raise ContainerError("ContainerCreating", f"failed to allocate for range 0: no IP addresses available in range "
                                              f"set: {cidr}")


def missing_secret(client, pod):
    """The kubelet's FailedMount words for the first Secret volume whose Secret does not exist, else None."""
    namespace = pod["metadata"]["namespace"]
    for v in pod["spec"].get("volumes") or []:
        ref = v.get("secret")
        if ref and not ref.get("optional"):
            try:
                client.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['secretName']}")
            except ApiStatus as e:
                if e.code != 404:
                    raise
                return f'MountVolume.SetUp failed for volume "{v["name"]}" : secret "{ref["secretName"]}" not found'
    return None


def creating_status(pod, ip, pod_ip, started):
    """Volumes not set up: every container waits in ContainerCreating, the pod Pending."""
    def status(c):
        return dict(_image(c), ready=False, started=False, state={"waiting": {"reason": "ContainerCreating"}})
    return {"phase": "Pending", "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": started, "conditions": _conditions(False, False, started),
            "initContainerStatuses": [status(c) for c in pod["spec"].get("initContainers") or []],
            "containerStatuses": [status(c) for c in pod["spec"].get("containers") or []], "qosClass": "Burstable"}


def image_pull_status(pod, ip, pod_ip, started, missing):
    """Containers whose image the node lacks wait with ErrImagePull; the pod stays Pending."""
    def status(c):
        ref = images.normalize(c.get("image", ""))
        state = {"waiting": {"reason": "ErrImagePull", "message": images.pull_error(ref)}} if c["name"] in missing \
            else {"waiting": {"reason": "PodInitializing"}}
        return dict(_image(c), ready=False, started=False, state=state)
    return {"phase": "Pending", "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": started, "conditions": _conditions(not pod["spec"].get("initContainers"), False, started),
            "initContainerStatuses": [status(c) for c in pod["spec"].get("initContainers") or []],
            "containerStatuses": [status(c) for c in pod["spec"].get("containers") or []], "qosClass": "Burstable"}


def running_status(pod, ip, started, crashing=None, pod_ip=None):
    """Init containers completed; containers running, except `crashing` = (name, error) in back-off; `pod_ip` for
    a pod on the pod network (else the node's `ip`)."""
    inits = [dict(_image(c), ready=True, started=False, state={"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}})
        for c in pod["spec"].get("initContainers") or []]
    mains = [dict(_image(c), ready=True, started=True, state={"running": {"startedAt": started}})
             if not crashing or c["name"] != crashing[0] else
             dict(_image(c), ready=False, started=False, state={"waiting": {
                 "reason": "CrashLoopBackOff", "message": crashing[1]}})
             for c in pod["spec"].get("containers") or []]
    pod_ip = pod_ip or ip
    return {"phase": "Running", "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": started, "conditions": _conditions(True, crashing is None, started),
            "initContainerStatuses": inits, "containerStatuses": mains, "qosClass": "Burstable"}


def pending_status(pod, ip, started, finished, failed, error):
    """Init containers before `failed` completed; `failed` waits (volume/config errors) or terminated in error."""
    inits = []
    for c in pod["spec"].get("initContainers") or []:
        if c in finished:
            state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}}
        elif c is failed and error.reason == "Error":
            state = {"terminated": {"exitCode": 1, "reason": "Error", "message": error.message,
                                    "startedAt": started, "finishedAt": now()}}
        elif c is failed:
            state = {"waiting": {"reason": error.reason, "message": error.message}}
        else:
            state = {"waiting": {"reason": "PodInitializing"}}
        inits.append(dict(_image(c), ready=c in finished, started=False, state=state))
    mains = [dict(_image(c), ready=False, started=False, state={"waiting": {"reason": "PodInitializing"}})
             for c in pod["spec"].get("containers") or []]
    return {"phase": "Pending", "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": started, "conditions": _conditions(False, False, started),
            "initContainerStatuses": inits, "containerStatuses": mains, "qosClass": "Burstable"}
