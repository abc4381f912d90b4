"""Kubelet configuration and flags applied to running nodes: a step of cluster.up's reconfiguration phases.

kubeadm writes a node's /var/lib/kubelet/config.yaml and kubeadm-flags.env at init and join, and never again on its
own. kubefab renders each node's flags (kubelet/kubeadm-flags.env, which also carries the hash of the cluster's
KubeletConfiguration) into paths.KUBELET_FLAGS_WANTED. When that file differs from the copy last applied
(paths.KUBELET_FLAGS_APPLIED) or from the kubelet's own: `kubeadm upgrade node phase kubelet-config` writes
config.yaml from the kubelet-config ConfigMap (uploaded by the control planes' reconfiguration before), kubefab's
flags are put in place, the kubelet restarts and the step waits until a new kubelet process serves its health
port; then the gate: the Node Ready on a condition its new kubelet posted (lastHeartbeatTime not before the
kubelet's start, ApiSteps.kubelet_ready; a control plane: also its API server, etcd member and components), before
the next node. kubeadm init and join record the flags as applied: the kubelet they started read this very config.
"""

from kubefab import paths
from kubefab.plan import renewal
from kubefab.steps import Command, KubeletReady, q

HEALTHZ_PORT = 10248    # KubeletConfiguration healthzPort's default


def record():
    """Shell, after kubeadm init or join: kubefab's flags as the kubelet's, recorded as applied. kubeadm's own differ
    at most by --register-with-taints, which the kubelet reads only when it registers its Node."""
    wanted, live, applied = (q(p) for p in (paths.KUBELET_FLAGS_WANTED, paths.KUBELET_FLAGS,
                                            paths.KUBELET_FLAGS_APPLIED))
    return f"cp {wanted} {live}.kubefab && mv -f {live}.kubefab {live} && cp -p {wanted} {applied}"


def applied(host, bundle, facts):
    """True when the facts show the kubelet's flags and kubefab's record of them equal to the flags this run pushes."""
    if facts is None or bundle is None:
        return False
    want = next((f.sha256 for f in bundle.files[host.name] if f.path == paths.KUBELET_FLAGS_WANTED), "")
    have = [facts.files.get(p) for p in (paths.KUBELET_FLAGS, paths.KUBELET_FLAGS_APPLIED)]
    return bool(want) and all(h is not None and h.sha256 == want for h in have)


def steps(inv, host, bundle, facts):
    """The node's kubelet given its new configuration and flags and restarted, then its Node Ready again."""
    port = inv.cluster.kubelet.config.get("healthzPort", HEALTHZ_PORT)
    wanted, live, applied_ = paths.KUBELET_FLAGS_WANTED, paths.KUBELET_FLAGS, paths.KUBELET_FLAGS_APPLIED
    late = q(f"the kubelet did not serve port {port} again from a new process within {renewal.STOP_SECONDS} s "
             "(journalctl -u kubelet says why)")
    # healthzPort 0 turns the health port off: then only the Node's Ready condition tells
    started = (f"i=0; while now=$({renewal.listener(port)}); [ -z \"$now\" ] || [ \"$now\" = \"$p\" ]; do i=$((i+1)); "
               f"if [ $i -gt {renewal.STOP_SECONDS} ]; then echo {late} >&2; exit 1; fi; sleep 1; done; "
               if port else "")
    # a second between stop and start: every condition the old kubelet posted is then older, to the second that a
    # lastHeartbeatTime has, than the new kubelet's start, which the gate after this step waits beyond
    body = (f"p=$({renewal.listener(port)}) && kubeadm upgrade node phase kubelet-config && "
            f"cp {q(wanted)} {q(live)}.kubefab && mv -f {q(live)}.kubefab {q(live)} && "
            f"systemctl stop kubelet && sleep 1 && systemctl start kubelet && {started}cp -p {q(wanted)} {q(applied_)}")
    fresh = facts is not None and paths.kubeconfig("kubelet.conf") not in facts.kube_files
    done = ("not a node yet: kubeadm init or join writes the kubelet's files from this configuration" if fresh else
            "the kubelet runs on these flags and this configuration" if applied(host, bundle, facts) else "")
    step = Command("kubelet configuration", body, timeout=900, done=done,
                   guard=f"cmp -s {q(wanted)} {q(live)} && cmp -s {q(wanted)} {q(applied_)}",
                   compares=((live, wanted),),
                   label=f"if {wanted} (the kubelet's flags and the hash of its configuration) differs from the "
                         f"kubelet's: kubeadm upgrade node phase kubelet-config (config.yaml from ConfigMap "
                         f"kubelet-config), the flags to {live}, restart the kubelet")
    return step, KubeletReady(f"wait until node {host.name} is Ready again", done=step.done)
