"""The stages and phases of `cluster.up`, in order (kubefab.plan.workflows lists them, and node.join's).

`facts` and `preflight` are stages: they feed the plan (facts) or gate it (preflight) and are not
steps inside it. Every phase after them is a row of PHASES: which hosts, in what order (all at once,
one at a time, or in batches) and which steps each host runs, in order: its commands and pushes, run
on it as one script, and its `Api` steps, run from this machine (kubefab.api.apisteps: waiting for the API
server after init and for a joined control plane's components, applying the CNI, checking each node
is Ready).
"""

from dataclasses import dataclass, replace
from typing import Callable

from kubefab import inventory, paths
from kubefab.components import addons, kubeadm, templates
from kubefab.pki import kubeconfig
from kubefab.plan import kubelets, reconfigure, renewal, runtime
from kubefab.secret import Secret
from kubefab.state import applied_addons
from kubefab.steps import UNCHANGED_EXIT, AddonsAvailable, ApplyAddons, ApplyCni, ApplyKubeProxy, Command, \
    EndpointKubeconfigs, NodeReady, WaitApiServer, WaitControlPlane, push, q, unless

PARALLEL, SERIAL, BATCHES = "parallel", "serial", "batches"
STAGES = {"facts": "Gather facts from every host (one probe per host)",
          "preflight": "Check every host against kubeadm's preflight and kubefab's own checks"}


@dataclass(frozen=True)
class Phase:
    """One titled step of the workflow: which hosts, in what order, doing what on each."""

    name: str
    title: str
    hosts: str               # a key of inventory.HOST_SETS
    order: str               # PARALLEL | SERIAL | BATCHES
    steps: Callable          # (inventory, host, bundle, facts of that host or None) -> its steps, in order
    last_first: bool = False     # the hosts in reverse inventory order
    beside: bool = False         # on the hosts of its set the run did not select (node.remove: those that stay)

    def host_list(self, inv):
        hosts = inventory.HOST_SETS[self.hosts](inv)
        return tuple(reversed(hosts)) if self.last_first else hosts


def _push(inv, host, bundle, facts):
    return (push("push files", tuple(f for f in bundle.files[host.name] if f.phase == "push"), facts),)


def _already(facts, path, what):
    """Why the facts say a kubeadm step is done: the file it leaves behind is there."""
    return what if facts and path in facts.kube_files else ""


def _init(inv, host, bundle, facts):
    manifest = paths.manifest("kube-apiserver")
    return (Command("kubeadm init", f"{_kube_vip_from(paths.KUBE_VIP_INIT) + ' && ' if _kube_vip(inv) else ''}"
                    f"kubeadm init --config {paths.INIT_CONFIG} && {reconfigure.record_applied()} && "
                    f"{kubelets.record()}",
                    timeout=900, guard=f"[ -f {manifest} ]",
                    done=_already(facts, manifest, "already a control-plane node")),
            *_kube_vip_in_place(inv, "kube-vip's static pod switched from super-admin.conf to admin.conf, now that "
                                     "kubeadm init has bound admin.conf's group (kube-vip #684)"),
            kept_manifests(facts),
            WaitApiServer(f"wait for the API server, then for {host.name}'s control-plane components"))


def _kube_vip(inv):
    return bool(inv.ha) and inv.ha.mode == "kube-vip"


def _kube_vip_from(staged):
    """Shell: kube-vip's static pod replaced by `staged`, moved in whole so the kubelet never reads half of it."""
    aside = q(f"{renewal.ASIDE}/kube-vip.yaml")
    return f"mkdir -p {q(renewal.ASIDE)} && cp {q(staged)} {aside} && mv -f {aside} {q(paths.KUBE_VIP)}"


def _kube_vip_in_place(inv, label):
    """kube-vip mode: its static pod on admin.conf put in place after kubeadm init or join — init binds admin.conf's
    group (kubeadm:cluster-admins) only while it runs (kube-vip #684), join's preflight (DirAvailable) wants the
    manifest directory empty."""
    if not _kube_vip(inv):
        return ()
    return (Command("kube-vip on admin.conf", _kube_vip_from(paths.KUBE_VIP_STAGED),
                    guard=f"cmp -s {q(paths.KUBE_VIP_STAGED)} {q(paths.KUBE_VIP)}",
                    compares=((paths.KUBE_VIP, paths.KUBE_VIP_STAGED),), label=label),)


JOINED_KUBE_VIP = ("kube-vip's static pod (on admin.conf) put in place now that kubeadm join, whose preflight wants "
                   "the manifest directory empty, is done")


def manifest_pairs():
    """(static pod manifest, kubefab's copy of it as kubeadm wrote it), for each of kubeadm's components."""
    return tuple((c.manifest, paths.kept_manifest(c.name)) for c in renewal.COMPONENTS)


def kept_manifests(facts):
    """After kubeadm wrote a control plane's static pod manifests: a copy of each is kept; a later run puts it back
    over a hand edit, the pod stopped first as pki.renew restarts one (the kubelet may not see a quick change, and
    the API server must not be checked before its restart). Run where kubeadm writes them."""
    def one(c):
        live, kept, aside = q(c.manifest), q(paths.kept_manifest(c.name)), q(renewal.aside(c))
        return (f"{{ [ -f {live} ] || [ ! -f {aside} ] || mv {aside} {live}; }} && "
                f"if [ ! -f {live} ]; then :; elif [ ! -f {kept} ]; then cp -p {live} {kept} || exit 1; changed=1; "
                f"elif ! cmp -s {kept} {live}; then {renewal.stop(c)}; cp -p {kept} {aside} && mv -f {aside} {live} "
                f"|| exit 1; echo \"put back {c.manifest}\"; changed=1; fi")
    pairs = manifest_pairs()
    script = "\n".join((f"mkdir -p -m 700 {q(paths.KEPT_MANIFESTS)} {q(renewal.ASIDE)} || exit 1", "changed=",
                        *(one(c) for c in renewal.COMPONENTS), f'[ -n "$changed" ] || exit {UNCHANGED_EXIT}'))
    files = facts.files if facts else {}
    edited = [live for live, kept in pairs if live in files and kept in files
              and files[live].sha256 != files[kept].sha256]
    kept = facts and all(live in files and kept in files for live, kept in pairs)
    guard = " && ".join(f"[ ! -e {q(renewal.aside(c))} ] && {{ [ ! -f {q(c.manifest)} ] || cmp -s "
                        f"{q(paths.kept_manifest(c.name))} {q(c.manifest)}; }}" for c in renewal.COMPONENTS)
    step = Command("static pod manifests", script, compares=pairs, guard=guard, timeout=renewal.STOP_SECONDS * 5,
                   label=(f"put back {', '.join(edited)} as kubeadm wrote it ({paths.KEPT_MANIFESTS})" if edited else
                          f"keep a copy of kubeadm's static pod manifests in {paths.KEPT_MANIFESTS}; put back one "
                          "edited by hand"))
    return unless(step, kept and not edited and "static pod manifests as kubeadm wrote them")


def join_step(inv, host, bundle, facts):
    kubelet_conf = paths.kubeconfig("kubelet.conf")
    recorded = f" && {reconfigure.record_applied()}" * host.is_control_plane + f" && {kubelets.record()}"
    return Command("kubeadm join", f"kubeadm join --config {paths.JOIN_CONFIG}{recorded}", timeout=900,
                   guard=f"[ -f {kubelet_conf} ]", done=_already(facts, kubelet_conf, "already a node"))


def fresh_join(inv, host, facts, fresh):
    """node.join's steps for `host`: kubeadm join with its join config rendered with token `fresh` (a Secret),
    given on stdin into a private temp file and removed after; a control plane waits for its components.
    Without a token (a dry run) the config is left out: the steps are shown, not run."""
    template, values = (("kubeadm/join-control-plane.yaml", kubeadm.join_control_plane_values) if host.is_control_plane
                        else ("kubeadm/join.yaml", kubeadm.join_values))
    config = fresh and Secret(templates.fill(template, {**values(inv, host), "token": fresh.reveal()}))
    step = replace(join_step(inv, host, None, facts), stdin=config, label="kubeadm join --config <its join config, "
                   "with a fresh token>", script='f=$(mktemp) && cat > "$f" && kubeadm join --config "$f"; rc=$?; '
                   'rm -f "$f"; [ $rc = 0 ] || exit $rc; '
                   + f"{reconfigure.record_applied()} && " * host.is_control_plane + kubelets.record())
    return (step, *((*_kube_vip_in_place(inv, JOINED_KUBE_VIP), kept_manifests(facts), _components_ready(host))
                    if host.is_control_plane else ()))


def _components_ready(host):
    # the next control plane joins only once this one's etcd member and API server are healthy
    return WaitControlPlane(f"wait for {host.name}'s etcd, API server, controller-manager and scheduler")


def _join_control_plane(inv, host, bundle, facts):
    return (join_step(inv, host, bundle, facts), *_kube_vip_in_place(inv, JOINED_KUBE_VIP), kept_manifests(facts),
            _components_ready(host))


def _join_worker(inv, host, bundle, facts):
    return (join_step(inv, host, bundle, facts),)


def _cni(inv, host, bundle, facts):
    c = inv.cluster
    if c.cni == "none":
        return ()
    source = c.cni_manifest or f"kubefab's {c.cni} manifest"
    return (ApplyCni(f"apply {source} for pods in {c.pod_subnet}"),)


def _kube_proxy(inv, host, bundle, facts):
    return (ApplyKubeProxy(f"bring ConfigMap kube-system/kube-proxy to mode {inv.cluster.kube_proxy.mode!r} and "
                           "[cluster.kube_proxy] config; when it changed, recreate kube-proxy's pods"),)


def _addons(inv, host, bundle, facts):
    chosen = addons.enabled(inv)
    if chosen:
        return (ApplyAddons(f"apply {', '.join(a.component for a in chosen)} server-side, recording what was "
                            "applied"),)
    left = sorted(applied_addons.read(inv))
    # nothing to apply, but add-ons kubefab installed are still there: the run says how to remove them
    return (ApplyAddons(f"no add-on in [addons]; still installed: {', '.join(left)}"),) if left else ()


def _verify(inv, host, bundle, facts):
    ready = "registered (cni = none: Ready once your network runs)" if inv.cluster.cni == "none" else "Ready"
    node = NodeReady(f"wait until node {host.name} is {ready}, then apply its labels and taints")
    checks = (node, *(_kubeconfigs_at_endpoint(inv, host, facts) if inv.ha else ()))
    deployments = [f"{ns}/{name}" for a in addons.enabled(inv) for ns, name in a.deployments]
    if host != inv.first_control_plane or not deployments:
        return checks
    gateway = f"; gateway {'/'.join(addons.WEB)} programmed" if addons.GATEWAY in addons.enabled(inv) else ""
    return (*checks, AddonsAvailable(f"wait until the add-ons' Deployments are available: {', '.join(deployments)}"
                                     + gateway))


def _kubeconfigs_at_endpoint(inv, host, facts):
    """HA: every kubeconfig on the host names the server it should (the endpoint, or the node's own API server where
    kubeadm puts that); read again on the host unless the facts already showed them so. The first control plane
    also checks the state dir's admin.conf and kube-proxy's kubeconfig (its ConfigMap)."""
    want = kubeconfig.servers(inv, host)
    one = ("f={file}; s=$(sed -n 's/^[[:space:]]*server:[[:space:]]*//p' \"$f\" 2>/dev/null | head -n 1); "
           "case \"$s\" in {allowed}) ;; '') echo {host}\": $f is missing or names no server\"; bad=1 ;; "
           "*) echo {host}\": $f points at $s, not \"{shown}; bad=1 ;; esac")
    script = "\n".join(("bad=", *(one.format(file=q(f), allowed="|".join(q(u) for u in urls), host=q(host.name),
                                              shown=q(" or ".join(urls))) for f, urls in want.items()),
                         f'[ -z "$bad" ] || exit 1; exit {UNCHANGED_EXIT}'))
    shown = facts is not None and not kubeconfig.misdirected(inv, host, facts.kube_servers)
    step = Command("kubeconfigs", script, check=True,
                   label=f"{', '.join(f.rpartition('/')[2] for f in want)} name the endpoint https://{inv.endpoint}"
                         + (" (controller-manager.conf and scheduler.conf: this node's own API server, as kubeadm "
                            "writes them)" if host.is_control_plane else ""))
    checked = (unless(step, shown and "every kubeconfig names the server it should"),)
    if host != inv.first_control_plane:
        return checked
    return (*checked, EndpointKubeconfigs(f"the state dir's admin.conf and kube-proxy's kubeconfig (ConfigMap "
                                          f"kube-system/kube-proxy) name https://{inv.endpoint}"))


RUNTIME = Phase("runtime", "Set up the hostname, swap, modules, sysctls, containerd and the kubelet", "all", PARALLEL,
                runtime.steps)
PUSH = Phase("push", "Push the PKI bundle, kubeconfigs and kubeadm configs", "all", PARALLEL, _push)
VERIFY = Phase("verify", "Every node Ready, with the inventory's labels and taints", "all", PARALLEL, _verify)
PHASES = (
    RUNTIME,
    PUSH,
    Phase("init", "kubeadm init on the first control-plane node", "first-control-plane", SERIAL, _init),
    Phase("join-control-plane", "Join the other control-plane nodes, one at a time", "other-control-planes",
          SERIAL, _join_control_plane),
    Phase("reconfigure-control-planes", "Apply a changed control-plane configuration through kubeadm's phases, "
          "one control plane at a time, each healthy before the next", "control-planes", SERIAL, reconfigure.steps),
    Phase("join-workers", "Join the workers", "non-control-planes", BATCHES, _join_worker),
    Phase("reconfigure-workers", "Apply a changed kubelet configuration or flags to the workers in their batches, "
          "each kubelet restarted and its node Ready before the next batch", "non-control-planes", BATCHES,
          kubelets.steps),
    Phase("kube-proxy", "Apply a changed kube-proxy configuration to its ConfigMap and recreate its pods",
          "first-control-plane", SERIAL, _kube_proxy),
    Phase("cni", "Install the pod network", "first-control-plane", SERIAL, _cni),
    Phase("addons", "Install the add-ons of [addons]", "first-control-plane", SERIAL, _addons),
    VERIFY,
)


def batches(phase, inv, batch=0):
    """The host groups of `phase`, run one group after another; `batch` overrides worker_batch_size."""
    hosts = phase.host_list(inv)
    if not hosts:
        return ()
    if phase.order == PARALLEL:
        return (hosts,)
    size = (batch or inv.cluster.worker_batch_size) if phase.order == BATCHES else 1
    return tuple(hosts[i:i + size] for i in range(0, len(hosts), size))
