"""`kubeadm upgrade plan|apply|node` as kubeadm 1.33/1.34 do them for the files: the version policy of
phases/upgrade/policy.go in its words, static pod manifests rewritten with the target's image tags (backed up
first, then waited for until the kubelet runs them), the kubeadm-config and kubelet-config ConfigMaps updated,
the node's kubelet config.yaml rewritten from kubelet-config, the kube-proxy and CoreDNS images moved on."""

import datetime
import re
import socket
import sys
import time

import yaml

from . import manifests
from .certs import PhaseError
from .hostfs import DoubleError, event, exists, host, log, version, warn, write_file
from .kubeadm_util import ADMIN_CONF, KUBELET_CONF, duration
from .kubeclient import ApiStatus, Client
from .kubelet_setup import KUBELET_CONFIG, read_flags_env

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
UPGRADE_SKEW, DOWNGRADE_SKEW = 1, 1   # policy.go: MaximumAllowedMinorVersion{Upgrade,Downgrade}Skew
KUBELET_SKEW = 3                      # the kubelet may be three minors older than the control plane (1.28+)
_VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)")


def parse(v):
    m = _VERSION.fullmatch(v or "")
    if not m:
        raise DoubleError(f'unable to parse normalized version "{v}" as a semantic version')
    return tuple(int(g) for g in m.groups())


def on(flags, *names, default=False):
    """A boolean flag by any of its names: `--x`, `--x=true`, `--x=false`."""
    for name in names:
        if name in flags:
            return flags[name] != "false"
    return default


def enforce_policies(new, cluster_v, kubeadm_v, kubelets):
    """(mandatory, skippable) errors of EnforceVersionPolicies, in its order and words."""
    n, c, k = parse(new), parse(cluster_v), parse(kubeadm_v)
    mandatory, skippable = [], []
    if n < (k[0], k[1] - 1, 0):     # constants.MinimumControlPlaneVersion: kubeadm's minor - 1
        mandatory.append(f'Specified version to upgrade to "{new}" is equal to or lower than the minimum supported '
                         f'version "{cluster_v}". Please specify a higher version to upgrade to')
    if n[1] > c[1] + UPGRADE_SKEW:
        mandatory.append(f'Specified version to upgrade to "{new}" is too high; kubeadm can upgrade only '
                         f'{UPGRADE_SKEW} minor version at a time')
    if n[1] < c[1] - DOWNGRADE_SKEW:
        mandatory.append(f'Specified version to downgrade to "{new}" is too low; kubeadm can downgrade only '
                         f'{DOWNGRADE_SKEW} minor version at a time')
    if k < n:
        if n[1] > k[1]:
            mandatory.append(f'Specified version to upgrade to "{new}" is at least one minor release higher than the '
                             f'kubeadm minor release ({n[1]} > {k[1]}). Such an upgrade is not supported')
        else:
            skippable.append(f'Specified version to upgrade to "{new}" is higher than the kubeadm version '
                             f'"{kubeadm_v}". Upgrade kubeadm first using the tool you used to install kubeadm')
    if k[0] > n[0] or k[1] > n[1]:
        skippable.append(f"Kubeadm version {kubeadm_v} can only be used to upgrade to Kubernetes version "
                         f"{k[0]}.{k[1]}")
    old = sorted({v for v in kubelets if n[1] > parse(v)[1] + KUBELET_SKEW})
    if old:
        skippable.append(f"There are kubelets in this cluster that are too old that have these versions "
                         f"[{' '.join(old)}]")
    return mandatory, skippable


def check_policies(new, cluster_v, kubeadm_v, kubelets, force):
    log(f'[upgrade/preflight] You have chosen to upgrade the cluster version to "{new}"')
    log(f"[upgrade/versions] Cluster version: {cluster_v}")
    log(f"[upgrade/versions] kubeadm version: {kubeadm_v}")
    mandatory, skippable = enforce_policies(new, cluster_v, kubeadm_v, kubelets)
    listed = lambda errors: "".join(f"\t- {e}\n" for e in errors)   # noqa: E731 (kubeadmutil.FormatErrMsg)
    if mandatory:
        raise PhaseError("preflight", "the version argument is invalid due to these fatal errors:\n\n"
                         f"{listed(mandatory)}\nPlease fix the misalignments highlighted above and try upgrading "
                         "again")
    if skippable and not force:
        raise PhaseError("preflight", "the version argument is invalid due to these errors:\n\n"
                         f"{listed(skippable)}\nCan be bypassed if you pass the --force flag")
    if skippable:
        log(f"[upgrade/version] Found {len(skippable)} potential version compatibility errors but skipping since "
            f"the --force flag is set: \n\n{listed(skippable)}")


class Session:
    """What every upgrade command reads first: a client, the cluster's configuration and versions."""

    def __init__(self, flags):
        conf = flags.get("kubeconfig") or (ADMIN_CONF if exists(ADMIN_CONF) else KUBELET_CONF)
        self.client = Client.from_kubeconfig(conf)
        log('[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
        log("[upgrade] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.")
        stored = self.client.get(f"{CONFIGMAPS}/kubeadm-config")["data"]["ClusterConfiguration"]
        self.cluster = yaml.safe_load(stored)
        self.node_name = node_name()
        self.control_plane = exists(f"{manifests.MANIFEST_DIR}/kube-apiserver.yaml")

    def cluster_version(self):
        return self.client.get("/version")["gitVersion"]

    def kubelets(self):
        """{node name: kubelet version} from the Node objects."""
        return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"]
                for n in self.client.get("/api/v1/nodes")["items"]}


def node_name():
    """The node this kubelet registered as: --hostname-override in kubeadm-flags.env, else the hostname."""
    for arg in read_flags_env():
        if arg.startswith("--hostname-override="):
            return arg.partition("=")[2]
    return socket.gethostname().lower()


def plan(flags, args):
    s = Session(flags)
    log("[upgrade/preflight] Running preflight checks")
    log("[upgrade] Running cluster health checks")
    log("[upgrade] Fetching available versions to upgrade to")
    cluster_v, kubeadm_v = s.cluster_version(), version()
    log(f"[upgrade/versions] Cluster version: {cluster_v}")
    log(f"[upgrade/versions] kubeadm version: {kubeadm_v}")
    if args:
        target = "v" + ".".join(str(p) for p in parse(args[0]))
    else:
        warn('[upgrade/versions] WARNING: Couldn\'t fetch latest stable version from the internet: unable to get URL '
             '"https://dl.k8s.io/release/stable.txt"')
        warn("[upgrade/versions] WARNING: Falling back to current kubeadm version as latest stable version")
        target = kubeadm_v
    log(f"[upgrade/versions] Target version: {target}")
    if parse(target) <= parse(cluster_v):
        log("\nAwesome, you're up-to-date! Enjoy!")
        return
    kubelets = s.kubelets()
    rows = [("kubelet", n, v, target) for n, v in sorted(kubelets.items())]
    log("Components that must be upgraded manually after you have upgraded the control plane with "
        "'kubeadm upgrade apply':")
    log(table(rows))
    imgs = manifests.images(dict(s.cluster, kubernetesVersion=target))
    rows = [(pod["metadata"]["labels"]["component"], pod["spec"].get("nodeName", ""),
             tag(pod["spec"]["containers"][0]["image"]), tag(imgs[pod["metadata"]["labels"]["component"]]))
            for pod in s.client.get("/api/v1/namespaces/kube-system/pods")["items"]
            if (pod["metadata"].get("labels") or {}).get("component") in COMPONENTS]
    log("\nUpgrade to the latest stable version:\n")
    log(table(sorted(rows, key=lambda r: (COMPONENTS.index(r[0]), r[1]))))
    log(f"\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {target}\n")
    if parse(kubeadm_v) < parse(target):
        log(f"Note: Before you can perform this upgrade, you have to update kubeadm to {target}.\n")


def table(rows):
    rows = [("COMPONENT", "NODE", "CURRENT", "TARGET"), *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def tag(image):
    return image.rpartition(":")[2]


def apply(flags, args):
    if not args:
        raise DoubleError("[upgrade/version] FATAL: missing one or more required arguments. Required arguments: "
                          "[version]")
    s = Session(flags)
    target = "v" + ".".join(str(p) for p in parse(args[0]))
    log("[upgrade/preflight] Running preflight checks")
    log("[upgrade] Running cluster health checks")
    force, dry_run = on(flags, "force", "f"), on(flags, "dry-run")
    check_policies(target, s.cluster_version(), version(), s.kubelets().values(), force)
    if not (force or dry_run or on(flags, "yes", "y")):
        confirm()
    cluster = dict(s.cluster, kubernetesVersion=target)
    log(f'[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version "{target}" '
        '(timeout: 5m0s)...')
    if not dry_run:
        event(f"upgrade-apply-start {target}")
    upgrade_static_pods(s, cluster, flags, dry_run)
    if not dry_run:
        upload_config(s.client, cluster)
        write_kubelet_config(s.client)
        upgrade_addons(s.client, cluster)
        event(f"upgrade-apply-end {target}")
    log(f'\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".\n')
    log("[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.")


def confirm():
    sys.stdout.write("[upgrade] Are you sure you want to proceed? [y/N]: ")
    sys.stdout.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise PhaseError("preflight", "won't proceed; the user didn't answer (Y|y) in order to continue")


def node(flags):
    s = Session(flags)
    dry_run = on(flags, "dry-run")
    if not dry_run:
        event(f"upgrade-node-start {s.cluster['kubernetesVersion']}")
    log("[upgrade/preflight] Running pre-flight checks")
    if not s.control_plane:
        log("[upgrade/preflight] Skipping prepull. Not a control plane node.")
        log("[upgrade/control-plane] Skipping phase. Not a control plane node.")
    else:
        target = s.cluster["kubernetesVersion"]
        log(f'[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version "{target}"'
            '...')
        upgrade_static_pods(s, s.cluster, flags, dry_run)
    if not dry_run:
        write_kubelet_config(s.client)
        event(f"upgrade-node-end {s.cluster['kubernetesVersion']}")
    log("[upgrade] The configuration for this node was successfully upgraded!")
    log("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")


# `kubeadm upgrade node phase <name>`: the phases the double implements, with the flags each inherits
# (cmd/kubeadm/app/cmd/phases/upgrade/node/kubeletconfig.go: --dry-run, --kubeconfig, --patches)
NODE_PHASES = {"kubelet-config": {"kubeconfig"}}


def node_phase(flags, args):
    """`kubeadm upgrade node phase kubelet-config`: config.yaml backed up to /etc/kubernetes/tmp, then written from
    the kubelet-config ConfigMap; the kubelet is not restarted (the operator does that)."""
    name = args[0] if args else ""
    if name not in NODE_PHASES:
        raise DoubleError(f"unknown command \"{name}\" for \"kubeadm upgrade node phase\"")
    for flag in flags:
        if flag not in NODE_PHASES[name] | {"v", "rootfs"}:
            raise DoubleError(f"unknown flag: --{flag}" if flag not in ("dry-run", "patches") else
                              f"kubeadm double: --{flag} of `upgrade node phase {name}` is not implemented")
    s = Session(flags)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    backup = f"/etc/kubernetes/tmp/kubeadm-kubelet-config-{stamp}/config.yaml"
    log(f"[upgrade] Backing up kubelet config file to {backup}")
    if exists(KUBELET_CONFIG):
        write_file(backup, host(KUBELET_CONFIG).read_text(), mode=0o600, dir_mode=0o700)
        host(KUBELET_CONFIG).unlink()
    kubelet = s.client.get(f"{CONFIGMAPS}/kubelet-config")["data"]["kubelet"]
    write_file(KUBELET_CONFIG, kubelet)
    log(f'[upgrade/kubelet-config] Writing kubelet configuration to file "{KUBELET_CONFIG}"')
    log("[upgrade] The configuration for this node was successfully updated!")
    log("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")


def upgrade_static_pods(s, cluster, flags, dry_run):
    """Rewrite each component's manifest with the target image (etcd only when newer and --etcd-upgrade), backing
    up the old one, and wait until the kubelet runs it: the component's mirror Pod shows the new image."""
    imgs = manifests.images(cluster)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    backup = f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}"
    timeout = duration((cluster.get("timeouts") or {}).get("upgradeManifests"), 300)
    for name in COMPONENTS:
        path = f"{manifests.MANIFEST_DIR}/{name}.yaml"
        if not exists(path) or (name == "etcd" and not on(flags, "etcd-upgrade", default=True)):
            continue
        text = host(path).read_text()
        pod = yaml.safe_load(text)
        old, new = pod["spec"]["containers"][0]["image"], imgs[name]
        if old == new or (name == "etcd" and etcd_key(new) <= etcd_key(old)):
            log(f"[upgrade/staticpods] Current and new manifests of {name} are equal, skipping upgrade")
            continue
        if dry_run:
            log(f"[dryrun] Would upgrade {name} from {old} to {new}")
            continue
        write_file(f"{backup}/{name}.yaml", text, mode=0o600, dir_mode=0o700)
        pod["spec"]["containers"][0]["image"] = new
        manifests.write(name, pod)
        log(f'[upgrade/staticpods] Moved new manifest to "{path}" and backed up old manifest to '
            f'"{backup}/{name}.yaml"')
        log("[upgrade/staticpods] Waiting for the kubelet to restart the component")
        wait_mirror(s.client, f"{name}-{s.node_name}", new, timeout)
        log(f'[upgrade/staticpods] Component "{name}" upgraded successfully!')


def etcd_key(image):
    return tuple(int(p) for p in re.findall(r"[0-9]+", tag(image)))


def wait_mirror(client, pod_name, image, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = client.get(f"/api/v1/namespaces/kube-system/pods/{pod_name}").get("status") or {}
            containers = status.get("containerStatuses") or [{}]
            if containers[0].get("image") == image and containers[0].get("ready"):
                return
        except (DoubleError, ApiStatus):
            pass            # the API server itself is restarting
        if time.monotonic() > deadline:
            raise PhaseError("control-plane", f"couldn't upgrade control plane. kubeadm has tried to recover "
                             f"everything into the earlier state. Errors faced: static Pod hash for component "
                             f"{pod_name} did not change after {timeout:.0f}s: timed out waiting for the condition")
        time.sleep(0.3)


def upload_config(client, cluster):
    stored = dict(cluster, apiVersion="kubeadm.k8s.io/v1beta4", kind="ClusterConfiguration")
    log('[upgrade/upload-config] Uploading the kubeadm ClusterConfiguration to a ConfigMap called "kubeadm-config" '
        'in the "kube-system" Namespace')
    client.patch(f"{CONFIGMAPS}/kubeadm-config", {"data": {
        "ClusterConfiguration": yaml.safe_dump(stored, sort_keys=False)}})


def write_kubelet_config(client):
    kubelet = client.get(f"{CONFIGMAPS}/kubelet-config")["data"]["kubelet"]
    write_file(KUBELET_CONFIG, kubelet)
    log(f'[upgrade/kubelet-config] Writing kubelet configuration to file "{KUBELET_CONFIG}"')
    log("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")


ADDONS = (("CoreDNS", "/apis/apps/v1/namespaces/kube-system/deployments/coredns", "coredns"),
          ("kube-proxy", "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", "kube-proxy"))


def upgrade_addons(client, cluster):
    imgs = manifests.images(cluster)
    for title, path, image in ADDONS:
        try:
            obj = client.get(path)
        except ApiStatus as e:
            if e.code == 404:
                continue    # disabled at init (dns.disabled, proxy.disabled)
            raise
        containers = obj["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = imgs[image]
        client.patch(path, {"spec": {"template": {"spec": {"containers": containers}}}})
        log(f"[upgrade/addon] Applied essential addon: {title}")


def upgrade(flags, args):
    sub, rest = (args[0] if args else ""), args[1:]
    if sub == "plan":
        return plan(flags, rest)
    if sub == "apply":
        return apply(flags, rest)
    if sub == "node" and rest[:1] == ["phase"]:
        return node_phase(flags, rest[1:])
    if sub == "node":
        return node(flags)
    raise DoubleError(f"unknown command \"{sub}\" for \"kubeadm upgrade\"")
