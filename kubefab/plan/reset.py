"""cluster.reset: what runs on each host, and in what order, to leave it as it was before cluster.up.

`kubeadm reset -f` first (it stops the kubelet, removes a control plane's etcd member and empties
kubeadm's own files), then what kubeadm leaves behind (reference kubeadm.md §10): the CNI config and
interfaces, the iptables chains of kube-proxy and the CNIs with the rules that jump to them, IPVS state
when kube-proxy ran in IPVS mode (before its kube-ipvs0 interface goes), and /etc/kubernetes, /var/lib/kubelet, /var/lib/etcd. The iptables
tables are saved, those chains and rules dropped, and restored: every other rule stays as it was, with
its counters, so the operator's SSH session and firewall survive. The local state dir is never touched.
"""

from kubefab import paths
from kubefab.plan import balancers
from kubefab.steps import UNCHANGED_EXIT, Command, q

CHAINS = r"^(KUBE-|CNI-|FLANNEL|cali-)"     # kube-proxy's, the CNI plugins', flannel's and Calico's chains
INTERFACES = ("cni0", "flannel.1", "tunl0", "vxlan.calico", "kube-ipvs0")
DIRECTORIES = (paths.KUBERNETES, "/var/lib/kubelet", "/var/lib/etcd", "/etc/cni/net.d", "/var/lib/cni")
# what stays on a host that node.remove could not reach (what steps() would have removed)
LEFT = ("the kubelet and its static pods, if it runs", " ".join(DIRECTORIES), f"CNI interfaces ({', '.join(INTERFACES)})",
        "the kube-proxy and CNI iptables chains", "IPVS state")

# iptables-save's lines kept: every header, COMMIT and rule except those chains and the rules jumping to them
# (with -c a rule starts with its counters, "[packets:bytes] -A ...": `o` skips them)
_AWK = ('{ o = ($1 ~ /^\\[/) } '
        '$1 ~ /^:/ && substr($1, 2) ~ /RE/ { next } '
        '$(1 + o) == "-A" && $(2 + o) ~ /RE/ { next } '
        '$(1 + o) == "-A" { for (i = 3 + o; i < NF; i++) if (($i == "-j" || $i == "-g") && $(i + 1) ~ /RE/) next } '
        '{ print }').replace("RE", CHAINS)
_IPTABLES = ("for t in iptables ip6tables; do\n"
             "  command -v $t-save >/dev/null || continue\n"
             "  before=$($t-save -c) || exit 1\n"
             f"  after=$(printf '%s\\n' \"$before\" | awk '{_AWK}')\n"
             "  [ \"$before\" = \"$after\" ] && continue\n"
             "  printf '%s\\n' \"$after\" | $t-restore -c || exit 1\n"
             "  echo \"$t: removed kube-proxy and CNI chains\"; changed=1\n"
             "done\n")
_KUBEADM_LEFT = (f"{paths.KUBERNETES}/kubelet.conf", f"{paths.KUBERNETES}/admin.conf",
                 f"{paths.KUBERNETES}/manifests/*.yaml", "/var/lib/kubelet/config.yaml", "/var/lib/etcd/member")


def steps():
    """The reset steps of one host; each says `unchanged` when there was nothing to remove."""
    interfaces = " ".join(INTERFACES)
    return (
        Command("kubeadm reset", "kubeadm reset -f", timeout=300,
                guard="! command -v kubeadm >/dev/null || { for f in " + " ".join(_KUBEADM_LEFT) +
                      '; do [ -e "$f" ] && exit 1; done; true; }'),
        # kube-ipvs0 is kube-proxy's IPVS-mode interface: without it, IPVS state belongs to someone else
        Command("IPVS state", "if ip link show kube-ipvs0 >/dev/null 2>&1 && command -v ipvsadm >/dev/null; "
                              "then ipvsadm --clear; else exit 100; fi"),
        Command("CNI interfaces", f"for i in {interfaces} $(ip -o link show | awk -F': ' '$2 ~ /^cali/ "
                                  "{ sub(/@.*/, \"\", $2); print $2 }'); do\n"
                                  "  ip link show \"$i\" >/dev/null 2>&1 && ip link delete \"$i\" && changed=1\n"
                                  "done\n[ -n \"${changed:-}\" ] || exit 100"),
        Command("iptables chains", f"changed=\n{_IPTABLES}[ -n \"$changed\" ] || exit 100"),
        Command("remove files", f"for d in {' '.join(DIRECTORIES)}; do\n"
                                "  [ -e \"$d\" ] && rm -rf \"$d\" && echo \"removed $d\" && changed=1\n"
                                "done\n[ -n \"${changed:-}\" ] || exit 100"),
    )


def host_steps(inv, host):
    """What runs on `host` as it leaves the cluster (cluster.reset, node.remove): behind `[cluster.ha]` keepalived a
    control plane's balancers go first (the VIP moves before kubeadm reset), then steps(); in kube-vip mode, last,
    the VIP kube-vip may have left on its interface."""
    kube_vip = bool(inv.ha) and inv.ha.mode == "kube-vip" and host.is_control_plane
    return (balancers.down() * balancers.applies(inv, host) + steps()
            + ((_kube_vip_address(inv),) if kube_vip else ()))


def _kube_vip_address(inv):
    """kubeadm reset stops the kubelet, then its pods through the CRI, and containerd's StopPodSandbox kills their
    containers at once: kube-vip never gets to take the VIP off the leader's interface, which would go on answering
    ARP for it. Removed when it is there."""
    iface = q(inv.ha.interface)
    find = (f"a=$(ip -o addr show dev {iface} 2>/dev/null | awk -v v={q(inv.ha.vip)} "
            "'{ split($4, p, \"/\") } p[1] == v { print $4; exit }')")
    return Command("kube-vip's VIP", f'{find}\n[ -n "$a" ] || exit {UNCHANGED_EXIT}\n'
                                     f'ip addr del "$a" dev {iface} && echo "removed $a from "{iface}',
                   label=f"remove {inv.ha.vip} from {inv.ha.interface} if kube-vip left it there")


def order(inv, hosts):
    """Batches to reset `hosts` in: every worker at once, then the control planes one at a time, the first last."""
    workers = tuple(h for h in hosts if not h.is_control_plane)
    planes = tuple(reversed([h for h in inv.control_planes if h in hosts]))
    return ((workers,) if workers else ()) + tuple((h,) for h in planes)
