"""`cluster.upgrade`, decided before any host changes: what the cluster runs (a Survey read through the API), the
refusals (a downgrade, a skipped minor, a target kubefab or the install source cannot give, kubelets too old), the
worker batches, and each host's steps, marked done from the survey so that a re-run skips what is upgraded.

A control plane is upgraded when its API server, controller-manager and scheduler run the target's images and its
kubelet reports the target; a worker when its kubelet does. `kubeadm upgrade apply` runs once, on the first control
plane, while kubeadm-config still names an older version; every other node runs `kubeadm upgrade node`.
"""

import math
import re
from dataclasses import dataclass

from kubefab import paths, versions
from kubefab.errors import KubefabError
from kubefab.plan import reconfigure, runtime, snapshots
from kubefab.steps import UNCHANGED_EXIT, BackupEtcd, Command, CordonBatch, DrainInBatch, UncordonUpgraded, \
    VerifyKubelets, WaitUpgraded, q, unless

KUBELET_SKEW = 3            # a kubelet may be three minors older than its control plane (version skew policy)
DEFAULT_MAX_UNAVAILABLE = 10    # percent of the workers upgraded at once
UPGRADED = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")     # etcd keeps its own tag
CORDONED = "kubefab.io/cordoned-for-upgrade"    # on a Node the upgrade cordoned, until it uncordons it


@dataclass(frozen=True)
class Survey:
    """What the cluster runs, read through the API server before the plan is built."""

    cluster: str            # kubeadm-config's kubernetesVersion, bare ('1.33.5'): what `upgrade apply` last set
    kubelets: dict          # node name -> the version its kubelet reports, bare
    images: dict            # control-plane node name -> {component: image its static pod runs}
    schedulable: frozenset = frozenset()    # nodes without a NoSchedule taint: a control plane there runs workloads
    cordoned: frozenset = frozenset()       # nodes an upgrade cordoned and has not uncordoned yet (CORDONED)

    def control_plane_at(self, node, target):
        images = self.images.get(node) or {}
        return all(images.get(c, "").rpartition(":")[2] == f"v{target}" for c in UPGRADED)

    def upgraded(self, host, target):
        """True when `host` needs nothing: its kubelet (and, on a control plane, its components) at `target`, and not
        left cordoned by an upgrade that stopped (Ctrl-C) between its kubelet's restart and its uncordon."""
        at = self.kubelets.get(host.name) == target and host.name not in self.cordoned
        return at and (not host.is_control_plane or self.control_plane_at(host.name, target))


def minor_path(current, target):
    """'1.33 → 1.34 → 1.35': the minors an upgrade from `current` to `target` goes through, one at a time."""
    major, low, high = versions.parse(current)[0], versions.parse(current)[1], versions.parse(target)[1]
    return " → ".join(f"{major}.{m}" for m in range(low, high + 1))


def unknown(target):
    """Why kubefab cannot upgrade to `target` whatever the cluster runs, or ''."""
    minor = versions.parse(target)[1]
    if minor in versions.RELEASES:
        return ""
    return f"{target}: kubefab knows Kubernetes {versions.SUPPORTED} (their images and configs), not 1.{minor}"


def refusals(target, survey, provided=None):
    """Why `target` cannot be upgraded to from what `survey` shows, as sentences (empty: it can). `provided` is the
    version the offline directory's kubeadm reports, when known."""
    t, c = versions.parse(target), versions.parse(survey.cluster)
    found = []
    newer = sorted(n for n, v in survey.kubelets.items() if versions.parse(v) > t)
    if t < c or newer:
        found.append(f"{target} is older than what the cluster runs ({survey.cluster}"
                     + (f"; kubelets of {', '.join(newer)}" if newer else "") + ") — kubefab does not downgrade")
    elif t[1] > c[1] + 1:
        found.append(f"{survey.cluster} → {target} skips a minor: kubeadm upgrades one minor at a time — go "
                     f"{minor_path(survey.cluster, target)}, running cluster.upgrade --to each (a release of "
                     f"1.{c[1] + 1} first)")
    found += [unknown(target)] if unknown(target) else []
    if provided and versions.parse(provided) < t:
        found.append(f"{target} is newer than the offline directory provides (its kubeadm is {provided}) — put "
                     f"the {target} binaries in a directory and name it in [install] directory")
    old = sorted(n for n, v in survey.kubelets.items() if t[1] - versions.parse(v)[1] > KUBELET_SKEW)
    if old:
        found.append(f"kubelets more than {KUBELET_SKEW} minors older than {target}: "
                     f"{', '.join(f'{n} ({survey.kubelets[n]})' for n in old)} — upgrade them first")
    return tuple(found)


def without_etcdctl(inv, facts):
    """Why the upgrade cannot take its etcd backup: the control planes whose facts show no etcdctl, or ''."""
    missing = [h.name for h in inv.control_planes if facts.get(h.name) and not facts[h.name].commands["etcdctl"]]
    if not missing:
        return ""
    return (f"etcdctl is not installed on {', '.join(missing)}: cluster.upgrade takes an etcd backup before it "
            "changes a control plane — install etcd's client tools there (Debian: apt-get install etcd-client), "
            "or pass --no-backup to upgrade without one")


def backup_steps(inv, host, survey):
    """The etcd snapshot taken before the first control-plane change; none when every control plane is upgraded."""
    target = inv.cluster.kubernetes_version
    if all(survey.upgraded(h, target) for h in inv.control_planes):
        return ()
    return (BackupEtcd(f"etcd snapshot into {inv.state_dir / snapshots.BACKUPS} (from {host.name}'s member, else the "
                       "next healthy one) before any control plane changes"),)


def batch_size(workers, batch=0, max_unavailable=DEFAULT_MAX_UNAVAILABLE):
    """Workers upgraded at once: `batch` when given, else `max_unavailable` percent of them, at least one."""
    if batch:
        return batch
    return max(1, math.floor(workers * max_unavailable / 100))


def batches(hosts, size):
    return tuple(tuple(hosts[i:i + size]) for i in range(0, len(hosts), size))


def _names_image(component, target):
    """A shell test: the component's manifest names its image of `target`."""
    pattern = f"image: .*/{component}:v{re.escape(target)}$"
    return f"grep -Eq {q(pattern)} {q(paths.manifest(component))}"


def _upgraded_images(target):
    return " && ".join(_names_image(c, target) for c in UPGRADED)


def _plan_agrees(target):
    v = q(f"v{target}")
    script = (f"out=$(kubeadm upgrade plan {v} 2>&1) || {{ printf '%s\\n' \"$out\" | tail -n 8; exit 1; }}; "
              f"printf '%s\\n' \"$out\" | grep -qF \"kubeadm upgrade apply \"{v} || {{ printf '%s\\n' \"$out\" | "
              f"tail -n 8; echo \"kubeadm upgrade plan does not offer \"{v}; exit 1; }}")
    return Command("kubeadm upgrade plan", script, label=f"kubeadm upgrade plan v{target} offers v{target}")


def _kubeadm_upgrade(host, target, first, survey):
    guard = _upgraded_images(target)
    done = survey.control_plane_at(host.name, target) and f"its components run v{target}"
    if first and survey.cluster != target:
        apply = Command("kubeadm upgrade apply", f"kubeadm upgrade apply {q(f'v{target}')} --yes "
                        f"--certificate-renewal=false && {reconfigure.refresh_kept()}", guard=guard, timeout=900,
                        label=f"kubeadm upgrade apply v{target} (certificates stay kubefab's)")
        return (unless(_plan_agrees(target), done), unless(apply, done))
    if host.is_control_plane:
        node = Command("kubeadm upgrade node", f"kubeadm upgrade node --certificate-renewal=false && "
                       f"{reconfigure.refresh_kept()}", guard=guard,
                       timeout=900, label=f"kubeadm upgrade node: this control plane's static pods to v{target}")
        return (unless(node, done),)
    return (Command("kubeadm upgrade node", "kubeadm upgrade node --certificate-renewal=false", timeout=900,
                    label="kubeadm upgrade node: the kubelet configuration from the cluster"),)


def _restart_kubelet(host, target, survey):
    step = Command("restart kubelet", "systemctl daemon-reload && systemctl restart kubelet",
                   label=f"restart the kubelet on its v{target} binary")
    return unless(step, survey.kubelets.get(host.name) == target and f"the kubelet reports {target}")


def _containerd(inv, facts, containerd):
    return (runtime.upgrade_containerd(inv, facts),) if containerd else ()


def control_plane_steps(inv, host, bundle, facts, survey, containerd=False):
    """The new binaries from the install source, kubeadm upgrade apply (the first control plane, once) or node,
    containerd when asked, the kubelet restarted, then its API server, etcd member and node checked before the next
    control plane. One that runs workloads (no NoSchedule taint) is cordoned and drained first, uncordoned after."""
    target = inv.cluster.kubernetes_version
    if survey.upgraded(host, target):
        return ()
    first = host is inv.first_control_plane
    drained = host.name in survey.schedulable
    drain = (CordonBatch(f"cordon {host.name}: it runs workloads (no NoSchedule taint)", nodes=(host.name,)),
             DrainInBatch(f"drain {host.name} through the Eviction API (PodDisruptionBudgets hold it)",
                          nodes=(host.name,))) if drained else ()
    return (*drain, *runtime.install(inv, host, bundle, facts), *_kubeadm_upgrade(host, target, first, survey),
            *_containerd(inv, facts, containerd), _restart_kubelet(host, target, survey),
            WaitUpgraded(f"wait for {host.name}'s API server (/readyz), its etcd member, its components and its node "
                         f"Ready at v{target}", version=target),
            *((_uncordon(host, target),) if drained else ()))


def _uncordon(host, target):
    return UncordonUpgraded(f"uncordon {host.name} once Ready with kubelet v{target} and its DaemonSet pods Ready",
                            version=target)


def worker_steps(inv, host, bundle, facts, survey, batch, containerd=False):
    """The whole batch cordoned, this node drained through the Eviction API, the new binaries, kubeadm upgrade
    node, containerd when asked, the kubelet restarted, then uncordoned once Ready at the target with its DaemonSet
    pods Ready."""
    target = inv.cluster.kubernetes_version
    if survey.upgraded(host, target):
        return ()
    return (CordonBatch(f"cordon the batch: {', '.join(batch)}", nodes=batch),
            DrainInBatch(f"drain {host.name} through the Eviction API (PodDisruptionBudgets hold it)", nodes=batch),
            *runtime.install(inv, host, bundle, facts), *_kubeadm_upgrade(host, target, False, survey),
            *_containerd(inv, facts, containerd), _restart_kubelet(host, target, survey), _uncordon(host, target))


def verify_steps(inv, host, bundle, facts):
    """On each control plane: every upgraded component's manifest names the target's image; once, every
    node's kubelet at the target."""
    target = inv.cluster.kubernetes_version
    script = " && ".join(f"{{ {_names_image(c, target)} || {{ echo {q(c)}.yaml names $(grep -m1 'image:' "
                         f"{q(paths.manifest(c))}); exit 1; }}; }}" for c in UPGRADED)
    checked = Command("manifests at target", f"{script} && exit {UNCHANGED_EXIT}",
                      label=f"kube-apiserver, kube-controller-manager and kube-scheduler manifests name v{target}")
    if host is not inv.first_control_plane:
        return (checked,)
    return (checked, VerifyKubelets(f"every node's kubelet reports v{target}", version=target))


def check(target, survey, provided=None, unbacked=""):
    """KubefabError listing every refusal (`unbacked`: why no etcd backup can be taken, when it would be), or None."""
    found = refusals(target, survey, provided) + ((unbacked,) if unbacked else ())
    if found:
        raise KubefabError("cluster.upgrade refused:\n  " + "\n  ".join(found))
