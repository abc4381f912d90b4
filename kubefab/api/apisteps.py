"""The Api steps of cluster.up, run from this machine through the API server with the local admin.conf.

One executor for every phase: `ApiSteps.run(step, host)` runs the function RUNNERS holds for the step's
type (kubefab.steps: WaitApiServer, ..., RemoveNode) and returns a StepResult, as a host's script steps
come back. The connection is opened once per run, on first use: directly when the endpoint answers from
here, else through a local forward over the SSH connection of the first control plane node.remove did not take out
(its certificate still checked for the endpoint's name). Waiting and checking change nothing (`unchanged`); the CNI apply and
node labels or taints are `changed` when an object was written.
"""

import datetime
import socket
import threading
import time

import yaml

from kubefab import net, pki
from kubefab.api import addons, apply, drain, health, kube, kubeproxy, members, nodes, upgrade
from kubefab.components import cni
from kubefab.errors import KubefabError
from kubefab.pki import kubeconfig, x509
from kubefab.plan import renewal
from kubefab.remote import ssh
from kubefab.state import removal
from kubefab.steps import CHANGED, FAILED, SKIPPED, UNCHANGED, AddonsAvailable, ApplyAddons, ApplyCni, \
    ApplyKubeProxy, BackupEtcd, CordonBatch, DeleteNode, DrainInBatch, DrainNode, EndpointKubeconfigs, KubeletReady, \
    NodeReady, RemoveMember, RemoveNode, StepResult, UncordonUpgraded, VerifyKubelets, WaitApiServer, \
    WaitControlPlane, WaitReconfigured, WaitRenewed, WaitRestored, WaitUpgraded

REACH_TIMEOUT = 3
STARTED_TIMEOUT = 30        # seconds to read when a host's kubelet started
# the kubelet's start by systemd's record and the host's clock, in UTC; nothing when the kubelet does not run
KUBELET_STARTED = ('t=$(TZ=UTC systemctl show -p ExecMainStartTimestamp --value kubelet) && [ -n "$t" ] && '
                   'date -u -d "$t" +%Y-%m-%dT%H:%M:%SZ\n')
ADVERTISE_TIMEOUT = 120     # a CNI pod records the node's address within seconds of starting
DELETE_WITHIN = 30          # seconds node.remove's DELETE of a Node may go unanswered before the step fails


def admin_conf(inv):
    return kubeconfig.path(inv, kubeconfig.BY_FILE["admin.conf"])


def reachable(address, port, timeout=REACH_TIMEOUT):
    """True when a TCP connection to address:port is answered from here (accepted or refused)."""
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return True


class ApiSteps:
    """The run's connection to the API server and the functions behind each Api step."""

    def __init__(self, inv, ssh_hosts, log, stop=None, drain_timeout=drain.DRAIN_TIMEOUT):
        self.inv, self.ssh, self.log, self.drain_timeout = inv, ssh_hosts, log, drain_timeout
        self.stop = stop or threading.Event()       # set on Ctrl-C: every wait on the API server ends
        self._api = None
        self._lock = threading.Lock()
        self._listed, self._listing = None, threading.Lock()   # the Nodes of one LIST, by name, for verify

    def api(self):
        """The Api of this run, connected on first use (directly, or forwarded through the first control plane that
        node.remove did not take out)."""
        with self._lock:
            if self._api is None:
                address, port = net.endpoint_parts(self.inv.endpoint)
                via = None
                if not reachable(address, port):
                    removed = removal.read(self.inv)      # a control plane node.remove took out may be gone
                    through = next((h for h in self.inv.control_planes if h.name not in removed),
                                   self.inv.first_control_plane)
                    local, local_port = self.ssh.forward(through, address, port)
                    via = f"{local}:{local_port}"
                    self.log.info("the API server %s does not answer from here: reaching it through %s's SSH "
                                  "connection (%s)", self.inv.endpoint, through.name, via)
                self._api = kube.connect(admin_conf(self.inv), via=via, stop=self.stop)
            return self._api

    def run(self, step, host):
        """Do Api step `step` for `host`: its StepResult (failed with the cause on an API error or timeout)."""
        start = time.monotonic()
        try:
            by_step = STEP_RUNNERS.get(type(step))
            status, detail = by_step(self, host, step) if by_step else RUNNERS[type(step)](self, host)
        except kube.Stopped as e:
            status, detail = SKIPPED, str(e)
        except KubefabError as e:
            status, detail = FAILED, str(e)
        return StepResult(step.name, status, detail, time.monotonic() - start)

    def api_server(self, host):
        version = kube.wait_ready(self.api())
        health.wait_control_plane(self.api(), host.name)
        return UNCHANGED, f"API server {version} ready; {host.name}'s control-plane components Ready"

    def control_plane(self, host):
        health.wait_control_plane(self.api(), host.name)
        return UNCHANGED, f"{host.name}'s etcd, API server, controller-manager and scheduler Ready"

    def cni(self, host):
        applied = apply.apply(self.api(), cni.manifest(self.inv), self.inv.cluster.cni_manifest or self.inv.cluster.cni)
        written = [str(a) for a in applied if a.action != apply.UNCHANGED]
        if not written:
            return UNCHANGED, f"{len(applied)} objects unchanged"
        return CHANGED, f"{len(written)} of {len(applied)} objects written: {', '.join(written)}"

    def kube_proxy(self, host):
        changed, detail = kubeproxy.reconcile(self.api(), self.inv, self.stop)
        return (CHANGED if changed else UNCHANGED), detail

    def addons(self, host):
        installed = addons.install(self.api(), self.inv)
        lines = [f"{i.addon.component}: " + (f"{len(i.written)} of {len(i.applied)} objects written: "
                                             f"{', '.join(map(str, i.written))}" if i.written else
                                             f"{len(i.applied)} objects unchanged") for i in installed]
        lines += [f"add-on {name!r} is no longer in [addons] but still installed — `invoke addons.remove {name}` "
                  "removes it" for name in addons.left_over(self.inv)]
        return (CHANGED if any(i.written for i in installed) else UNCHANGED), "; ".join(lines)

    def addons_available(self, host):
        return UNCHANGED, addons.wait_available(self.api(), self.inv)

    def node(self, host):
        none = self.inv.cluster.cni == "none"      # no Ready before the user's own pod network runs
        obj = self._listed_node(host.name, ready=not none) or nodes.wait_node(self.api(), host.name, ready=not none)
        view = nodes.view(obj)
        state = "Ready" if view.ready else "registered, Ready once your pod network runs (cni = \"none\")"
        change = nodes.reconcile_one(self.api(), self.inv, host, read=obj)
        address = self._advertised(host, obj)
        changes = (*change.changes, *(("no longer recorded as removed",) if removal.forget(self.inv, host.name)
                                      else ()))
        if changes:
            return CHANGED, f"{state} ({view.version}){address}; {'; '.join(changes)}"
        return UNCHANGED, f"{state} ({view.version}){address}, labels and taints as the inventory says"

    def kubelet_ready(self, host):
        """After a kubelet restart: its Node Ready on a condition the new kubelet posted, not one left from the old
        (lastHeartbeatTime not before the kubelet's start, both by the host's clock)."""
        since = self._kubelet_started(host)
        view = nodes.view(nodes.wait_node(self.api(), host.name, since=since))
        return UNCHANGED, (f"Ready ({view.version}), {view.pods} pods at most, as its kubelet started at "
                           f"{since:%H:%M:%S} posted")

    def _kubelet_started(self, host):
        """When the host's kubelet process started, by the host's clock (systemd's record), to the second."""
        try:
            out = self.ssh.run(host, KUBELET_STARTED.encode(), STARTED_TIMEOUT)
        except ssh.Unreachable as e:
            raise KubefabError(f"{host.name}: when its kubelet started could not be read: {e}") from None
        try:
            return datetime.datetime.strptime(out.stdout.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            raise KubefabError(f"{host.name}: systemd has no start time for the kubelet (is it running? "
                               f"systemctl status kubelet): {(out.stderr or out.stdout).strip()}") from None

    def _listed_node(self, name, ready):
        """Node `name` as one LIST of every Node (made by the first verify step of the run: one request for the
        phase, not one a host) shows it, when it is already what verify waits for; None otherwise, and for a node
        asked about again (then it is waited for on its own)."""
        with self._listing:
            if self._listed is None:
                try:
                    self._listed = {n["metadata"]["name"]: n for n in self.api().get(nodes.NODES)["items"]}
                except KubefabError:         # not answering yet (a restart, a restore): each node waits on its own
                    self._listed = {}
            obj = self._listed.pop(name, None)
        return obj if obj is not None and (nodes.view(obj).ready or not ready) else None

    def _advertised(self, host, read):
        """', advertises <address>' once the CNI recorded the node's address (looked for first in the Node as
        `read`, then read again until it is there); KubefabError naming the host and what it advertises when that
        is not its internal_address."""
        spec = cni.ADVERTISED.get(self.inv.cluster.cni)
        if spec is None:
            return ""
        first = [read]

        def check():
            node = first.pop() if first else self.api().find(f"{nodes.NODES}/{host.name}") or {}
            address = cni.advertised(node, spec)
            return (True, address) if address else (False, f"no {spec.annotation} annotation yet")
        address = kube.until(check, ADVERTISE_TIMEOUT, f"{host.name}: the {self.inv.cluster.cni} pod did not record "
                             "the address the node advertises", self.stop)
        problem = cni.advertise_problem(self.inv, host, address)
        if problem:
            raise KubefabError(problem)
        return f", advertises {address} to the pod network"

    def endpoint_kubeconfigs(self, host):
        """HA: the state dir's admin.conf and kube-proxy's kubeconfig, from its ConfigMap, name the endpoint."""
        want = f"https://{self.inv.endpoint}"
        found = {str(admin_conf(self.inv)): kubeconfig.parse(admin_conf(self.inv).read_bytes()).server,
                 "ConfigMap kube-system/kube-proxy kubeconfig.conf": kube_proxy_server(self.api())}
        wrong = [f"{where} points at {server or 'no server'}, not {want}" for where, server in found.items()
                 if server != want]
        if wrong:
            raise KubefabError("; ".join(wrong) + " — every client must reach the API servers through the endpoint: "
                               "run `invoke cluster.up` again after fixing it, or see the README's high availability")
        return UNCHANGED, f"admin.conf and kube-proxy's kubeconfig name {want}"

    def renewed(self, host):
        """This control plane's own API server (not the endpoint), reached with the renewed admin.conf: /readyz, the
        renewed serving certificate, /readyz/etcd (its local etcd member), then its components Ready. Also the gate
        after a reconfiguration: the serving certificate is then the one in the bundle all along."""
        api = kube.connect(admin_conf(self.inv), via=net.join_endpoint(host.internal_address), stop=self.stop)
        version = kube.wait_ready(api)
        want = x509.view(pki.paths(self.inv, pki.BY_NAME["apiserver"], host)[0].read_bytes()).serial

        def serving():
            try:
                have = renewal.serving_serial(host.internal_address)
            except OSError as e:
                return False, str(e)
            return have == want, f"it presents serial {have:x}, the renewed certificate has {want:x}"
        kube.until(serving, kube.READY_TIMEOUT, f"{host.name}: the API server did not present its renewed "
                   "certificate", self.stop)
        etcd = api.request("GET", "/readyz/etcd", timeout=(3, 10)).strip()
        if etcd != "ok":
            raise KubefabError(f"{host.name}: /readyz/etcd says {etcd!r}: its etcd member is not healthy")
        health.wait_control_plane(api, host.name)
        return UNCHANGED, (f"API server {version} ready on {host.internal_address}, serving certificate serial "
                           f"{want:x}, etcd healthy, components Ready")

    def restored(self, host):
        """This control plane's own API server (not the endpoint) after etcd.restore: /readyz, then /readyz/etcd."""
        api = kube.connect(admin_conf(self.inv), via=net.join_endpoint(host.internal_address), stop=self.stop)
        version = kube.wait_ready(api)
        etcd = api.request("GET", "/readyz/etcd", timeout=(3, 10)).strip()
        if etcd != "ok":
            raise KubefabError(f"{host.name}: /readyz/etcd says {etcd!r}: the API server does not reach etcd")
        return UNCHANGED, f"API server {version} ready on {host.internal_address}, etcd reached"

    def remove(self, host):
        gone = drain.remove(self.api(), host.name)
        if not gone.deleted:
            return UNCHANGED, "not a node of the cluster"
        return CHANGED, f"drained ({len(gone.evicted)} pods evicted) and deleted"


    def drain(self, host):
        """node.remove: cordon, then evict through the Eviction API within the drain timeout."""
        api = self.api()
        if api.find(f"{nodes.NODES}/{host.name}") is None:
            return UNCHANGED, "not a node of the cluster"
        cordoned = drain.cordon(api, host.name)
        evicted, left = drain.drain(api, host.name, self.drain_timeout)
        detail = (f"{'cordoned' if cordoned else 'already cordoned'}, {len(evicted)} pods evicted"
                  + (f"; left to the reset: {', '.join(left)}" if left else ""))
        return (CHANGED if cordoned or evicted else UNCHANGED), detail

    def delete_node(self, host):
        # the endpoint may not answer for a moment right after a control plane's reset: behind a VIP it held, the
        # VIP has just moved and haproxy still counts its API server until its checks fail
        deleted = kube.until(lambda: (True, self.api().delete(f"{nodes.NODES}/{host.name}")), DELETE_WITHIN,
                             f"Node {host.name} was not deleted", self.stop)
        removal.record(self.inv, host.name)
        return (CHANGED, "deleted") if deleted else (UNCHANGED, "not a node of the cluster")

    def member(self, host):
        """A control plane's etcd member, removed through another control plane when kubeadm reset left it (or did
        not run: an unreachable host)."""
        etcd = members.Etcd(self.inv, self.ssh)
        listed = etcd.members(skip=(host.name,), health=False)
        mine = members.judge(listed, host).member
        if mine is None:
            return UNCHANGED, f"not a member of etcd's {len(listed)}"
        etcd.remove(mine, skip=(host.name,))
        return CHANGED, f"member {mine.name or mine.id} ({mine.peer_url}) removed, {len(listed) - 1} left"


def kube_proxy_server(api):
    """The server kube-proxy's kubeconfig names (kubeadm's ConfigMap kube-system/kube-proxy), "" without one."""
    cm = api.find(kubeproxy.CONFIGMAP) or {}
    try:
        doc = yaml.safe_load(cm.get("data", {}).get("kubeconfig.conf", "")) or {}
        return doc["clusters"][0]["cluster"]["server"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return ""


RUNNERS = {WaitApiServer: ApiSteps.api_server, WaitControlPlane: ApiSteps.control_plane, ApplyCni: ApiSteps.cni,
           ApplyKubeProxy: ApiSteps.kube_proxy, ApplyAddons: ApiSteps.addons, AddonsAvailable: ApiSteps.addons_available,
           NodeReady: ApiSteps.node, KubeletReady: ApiSteps.kubelet_ready, RemoveNode: ApiSteps.remove,
           EndpointKubeconfigs: ApiSteps.endpoint_kubeconfigs,
           WaitRenewed: ApiSteps.renewed, WaitReconfigured: ApiSteps.renewed, WaitRestored: ApiSteps.restored,
           DrainNode: ApiSteps.drain, DeleteNode: ApiSteps.delete_node, RemoveMember: ApiSteps.member}
# the steps that carry what their runner needs (a batch's nodes, a version): (ApiSteps, host, step) -> status, detail
STEP_RUNNERS = {BackupEtcd: upgrade.backup_etcd, CordonBatch: upgrade.cordon_batch, DrainInBatch: upgrade.drain_node,
                WaitUpgraded: upgrade.wait_upgraded, UncordonUpgraded: upgrade.uncordon_upgraded,
                VerifyKubelets: upgrade.verify_kubelets}
