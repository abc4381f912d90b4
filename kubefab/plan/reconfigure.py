"""Inventory changes applied to a running control plane: cluster.up's `reconfigure-control-planes` phase.

kubeadm documents no reconfiguration of a running control plane, but its own phases do it. On each control plane,
one at a time: `kubeadm init phase control-plane all --config` rewrites the static pod manifests from the node's
control-plane config (its init config without the bootstrap token, paths.CONTROL_PLANE_CONFIG: a new token alone
changes no manifest), and the kubelet restarts each static pod whose manifest changed, and only those (the step
waits until each listens again from a new process); then the gate (this control plane's API server answers
/readyz, its etcd member is healthy, its components are Ready); then `kubeadm init phase upload-config all
--config` stores the ClusterConfiguration and the kubelet configuration in their ConfigMaps (after the gate: the
API server it talks to may be the one just restarted); then its kubelet, when its configuration or flags changed
(kubefab.plan.kubelets), and the gate again.

Both commands are done when the control-plane config on the host is the one its manifests were last made from:
kubeadm init, kubeadm join and the upload step each leave a copy of it beside it (paths.APPLIED_CONFIG).
"""

from kubefab import paths
from kubefab.plan import kubelets, renewal
from kubefab.steps import Command, WaitReconfigured, q

# the static pods `kubeadm init phase control-plane` writes (etcd's manifest is not among them)
COMPONENTS = tuple((c.name, c.port) for c in renewal.COMPONENTS if c.name != "etcd")


def record_applied():
    """The shell that records the control-plane config as the one the manifests were made from (after init or join)."""
    return f"cp -p {q(paths.CONTROL_PLANE_CONFIG)} {q(paths.APPLIED_CONFIG)}"


def refresh_kept():
    """Shell: the copies of the manifests kubefab keeps (paths.KEPT_MANIFESTS) taken again from those kubeadm just
    wrote, so that the next cluster.up does not put the old ones back as if they were hand edits."""
    return " && ".join((f"mkdir -p -m 700 {q(paths.KEPT_MANIFESTS)}",
                        *(f"cp -p {q(c.manifest)} {q(paths.kept_manifest(c.name))}" for c in renewal.COMPONENTS)))


def _restarted(name, port):
    """Shell: when `name`'s manifest changed, wait until a new process listens on its port."""
    m, was = q(paths.manifest(name)), f'"$d"/{name}.yaml'
    late = q(f"{name} did not listen again from a new process within {renewal.STOP_SECONDS} s")
    return (f"if ! cmp -s {was} {m}; then i=0; "
            f"while now=$({renewal.listener(port)}); [ -z \"$now\" ] || [ \"$now\" = \"$p{port}\" ]; do i=$((i+1)); "
            f"if [ $i -gt {renewal.STOP_SECONDS} ]; then echo {late} >&2; exit 1; fi; sleep 1; done; "
            f"echo {q(f'{name}: manifest changed, restarted by the kubelet')}; fi")


def _guarded(name, body, label, facts, made):
    """A Command done when the control-plane config is the one the manifests were made from (`made`, from the facts; the
    host checks it again), or when the host is no control plane yet: kubeadm init or join then makes its manifests
    from this very config."""
    fresh = facts is not None and paths.manifest("kube-apiserver") not in facts.kube_files
    done = ("not a control plane yet: kubeadm makes its manifests from this config" if fresh else
            "its manifests were made from this control-plane config" if made else "")
    return Command(name, body, timeout=900, guard=f"cmp -s {q(paths.CONTROL_PLANE_CONFIG)} {q(paths.APPLIED_CONFIG)}",
                   done=done, label=f"if {paths.CONTROL_PLANE_CONFIG} changed since its manifests were made: {label}")


def applied(host, bundle, facts):
    """True when the facts show the host's record of the control-plane config its manifests were made from (hashed
    by the probe) equal to the one this run pushes there."""
    if facts is None or bundle is None:
        return False
    want = next((f.sha256 for f in bundle.files[host.name] if f.path == paths.CONTROL_PLANE_CONFIG), "")
    have = facts.files.get(paths.APPLIED_CONFIG)
    return bool(want) and have is not None and have.sha256 == want


def manifests_step(facts, made=False):
    """`kubeadm init phase control-plane all`, then each component whose manifest changed listening again from a
    new process (the kubelet restarts it)."""
    keep = " ".join(q(paths.manifest(n)) for n, _ in COMPONENTS)
    pids = " && ".join(f"p{port}=$({renewal.listener(port)})" for _, port in COMPONENTS)
    body = (f"d=$(mktemp -d) && cp -p {keep} \"$d\"/ && {pids} && "
            f"kubeadm init phase control-plane all --config {q(paths.CONTROL_PLANE_CONFIG)} && "
            + " && ".join(_restarted(n, port) for n, port in COMPONENTS) + ' && rm -rf "$d" && '
            + refresh_kept())
    return _guarded("regenerate the control-plane manifests", body, "kubeadm init phase control-plane all --config "
                    "it, then wait for each component whose manifest changed to listen again", facts, made)


def upload_step(facts, made=False):
    """`kubeadm init phase upload-config all` (kubeadm-config and kubelet-config), then the config recorded as
    applied."""
    body = f"kubeadm init phase upload-config all --config {q(paths.CONTROL_PLANE_CONFIG)} && {record_applied()}"
    return _guarded("upload the kubeadm and kubelet configuration", body, "kubeadm init phase upload-config all "
                    "--config it, then record it as applied", facts, made)


def _healthy(host, done):
    return WaitReconfigured(f"wait for {host.name}'s API server (/readyz), its etcd member and its components",
                            done=done)


def steps(inv, host, bundle, facts):
    """A control plane's steps: its manifests regenerated, its API server, etcd member and components healthy,
    then the cluster's configuration uploaded, then its kubelet on a changed configuration and healthy again, all
    before the next control plane."""
    made = applied(host, bundle, facts)
    first = manifests_step(facts, made)
    kubelet, ready = kubelets.steps(inv, host, bundle, facts)
    return (first, _healthy(host, first.done), upload_step(facts, made), kubelet, ready,
            _healthy(host, kubelet.done))
