"""Inventory changes applied to a running control plane: cluster.up's `reconfigure-control-planes` phase.

kubeadm documents no reconfiguration of a running control plane, but its own phases do it: `kubeadm init phase
control-plane all --config` rewrites the static pod manifests from the node's init config, and `kubeadm init phase
upload-config all --config` stores the ClusterConfiguration and the kubelet configuration in their ConfigMaps. The
kubelet restarts a static pod whose manifest changed, and only that one; the step waits until each such component
listens again from a new process, and the gate after it (this control plane's API server answers /readyz, its etcd
member is healthy, its components are Ready) passes before the next control plane starts.

The step is done when the init config on the host is the one its manifests were last made from: kubeadm init,
kubeadm join and this step each leave a copy of it beside it (paths.APPLIED_CONFIG).
"""

from kubefab import paths
from kubefab.plan import renewal
from kubefab.steps import Command, WaitReconfigured, q

PID_OF = r"s/.*pid=\([0-9]*\).*/\1/p"       # sed: the PID in ss -p's users:(("name",pid=N,fd=M))
# the static pods `kubeadm init phase control-plane` writes (etcd's manifest is not among them)
COMPONENTS = tuple((c.name, c.port) for c in renewal.COMPONENTS if c.name != "etcd")


def record_applied():
    """The shell that records the init config as the one the manifests were made from (after init or join)."""
    return f"cp -p {q(paths.INIT_CONFIG)} {q(paths.APPLIED_CONFIG)}"


def _listener(port):
    """Shell: the PID of the process listening on `port` (empty when none)."""
    return f"ss -Hltnp {q(f'sport = :{port}')} | sed -n {q(PID_OF)} | head -n 1"


def _restarted(name, port):
    """Shell: when `name`'s manifest changed, wait until a new process listens on its port."""
    m, was = q(paths.manifest(name)), f'"$d"/{name}.yaml'
    late = q(f"{name} did not listen again from a new process within {renewal.STOP_SECONDS} s")
    return (f"if ! cmp -s {was} {m}; then i=0; "
            f"while now=$({_listener(port)}); [ -z \"$now\" ] || [ \"$now\" = \"$p{port}\" ]; do i=$((i+1)); "
            f"if [ $i -gt {renewal.STOP_SECONDS} ]; then echo {late} >&2; exit 1; fi; sleep 1; done; "
            f"echo {q(f'{name}: manifest changed, restarted by the kubelet')}; fi")


def apply_step(host, facts):
    """The Command regenerating `host`'s control-plane manifests and the cluster's ConfigMaps through kubeadm's
    phases when its init config changed, each changed component restarted before it ends."""
    cfg = q(paths.INIT_CONFIG)
    keep = " ".join(q(paths.manifest(n)) for n, _ in COMPONENTS)
    pids = " && ".join(f"p{port}=$({_listener(port)})" for _, port in COMPONENTS)
    body = (f"d=$(mktemp -d) && cp -p {keep} \"$d\"/ && {pids} && "
            f"kubeadm init phase control-plane all --config {cfg} && "
            f"kubeadm init phase upload-config all --config {cfg} && "
            + " && ".join(_restarted(n, port) for n, port in COMPONENTS)
            + f" && {record_applied()} && rm -rf \"$d\"")
    manifest = paths.manifest("kube-apiserver")
    fresh = facts is not None and manifest not in facts.kube_files
    return Command("apply the control-plane configuration", body, timeout=900,
                   guard=f"cmp -s {cfg} {q(paths.APPLIED_CONFIG)}",
                   done="not a control plane yet: kubeadm makes its manifests from this config" if fresh else "",
                   label=f"if {paths.INIT_CONFIG} changed since its manifests were made: kubeadm init phase "
                         "control-plane all, kubeadm init phase upload-config all (--config it), then wait for each "
                         "component whose manifest changed to listen again")


def steps(inv, host, bundle, facts):
    """A control plane's steps: the configuration applied, then its API server, etcd member and components
    healthy before the next control plane."""
    step = apply_step(host, facts)
    return (step, WaitReconfigured(f"wait for {host.name}'s API server (/readyz), its etcd member and its components",
                                   done=step.done))
