# kubefab's fact probe: every fact preflight needs, from one `sh -s -- ENDPOINT` per host.
#
# Run as root (or through sudo) with this script on stdin; ENDPOINT is the control-plane endpoint
# "host:port" to try a TCP connection to (empty: not tried). Prints one `key=value` line per fact
# between the lines "kubefab-probe 1" and "end"; kubefab/facts.py parses it strictly. POSIX sh only
# (dash, busybox ash); every tool is optional, and a missing one leaves its value empty. The probe
# only reads: it writes no file and changes nothing. Words between at-signs are filled in by
# facts.py from its tables before the script is sent.

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
endpoint=${1:-}

kv() { printf '%s=%s\n' "$1" "$2"; }
have() { command -v "$1" >/dev/null 2>&1; }
first() { [ -r "$1" ] && head -n 1 "$1" 2>/dev/null; }
# A command that may hang (a wedged binary, a dead NFS mount) gets a few seconds at most.
limited() { if have timeout; then timeout 5 "$@"; else "$@"; fi; }
# The first word of a command's first line that looks like a version (1.2.3...), without its "v".
version() {
    have "$1" || return 0
    limited "$@" 2>/dev/null | head -n 1 |
        awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^v?[0-9]+\.[0-9]+\.[0-9]+/) { sub(/^v/, "", $i); print $i; exit } }'
}

echo "kubefab-probe 1"

# -- the machine --------------------------------------------------------------------------------
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    (. /etc/os-release && kv os.id "${ID:-}" && kv os.version "${VERSION_ID:-}" && kv os.like "${ID_LIKE:-}" &&
        kv os.name "${PRETTY_NAME:-}")
else
    kv os.id ""; kv os.version ""; kv os.like ""; kv os.name ""
fi
pm=""
for p in apt-get dnf yum zypper apk; do
    if have "$p"; then pm=$p; break; fi
done
kv os.package_manager "$pm"
kv kernel "$(uname -r)"
kv arch "$(uname -m)"
kv init "$(first /proc/1/comm)"
kv uid "$(id -u)"
if awk '$2 == "/sys/fs/cgroup" && $3 == "cgroup2" { found = 1 } END { exit !found }' /proc/mounts 2>/dev/null; then
    kv cgroup.version 2
    kv cgroup.controllers "$(first /sys/fs/cgroup/cgroup.controllers)"
elif awk '$3 == "cgroup" { found = 1 } END { exit !found }' /proc/mounts 2>/dev/null; then
    kv cgroup.version 1
    kv cgroup.controllers "$(awk 'NR > 1 && $4 == 1 { printf "%s%s", sep, $1; sep = " " }' /proc/cgroups 2>/dev/null)"
else
    kv cgroup.version 0
    kv cgroup.controllers ""
fi
cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c '^processor' /proc/cpuinfo)
kv cpus "$cpus"
kv memory_kib "$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)"
awk 'NR > 1 && NF >= 3 { print "swap=" $1 " " $3 }' /proc/swaps 2>/dev/null
[ -r /etc/fstab ] && awk '$1 !~ /^#/ && $3 == "swap" { print "fstab.swap=" $1 }' /etc/fstab
kv hostname "$(first /proc/sys/kernel/hostname)"
kv machine_id "$(first /etc/machine-id)"
kv product_uuid "$(first /sys/class/dmi/id/product_uuid)"
# Interfaces that carry a global address, with their MAC: what must differ between nodes.
if have ip; then
    ip -o addr show scope global 2>/dev/null |
        awk '{ sub(/@.*/, "", $2); if (!($2 in a)) n[++c] = $2; a[$2] = a[$2] " " $4 }
             END { for (i = 1; i <= c; i++) print n[i] a[n[i]] }' |
        while read -r name addresses; do
            mac=$(first "/sys/class/net/$name/address")
            kv iface "$name ${mac:--} $addresses"
        done
fi
now=$(date +%s.%N 2>/dev/null)
case $now in
    *[!0-9.]* | *. | "") now=$(date +%s) ;;
esac
kv clock "$now"

# -- what kubeadm and the kubelet need -----------------------------------------------------------
for c in @COMMANDS@; do
    kv "command.$c" "$(command -v "$c" 2>/dev/null)"
done
modules=/lib/modules/$(uname -r)
for m in @MODULES@; do
    if grep -q "^$m " /proc/modules 2>/dev/null; then state=loaded
    elif grep -q "/$m\.ko" "$modules/modules.builtin" 2>/dev/null; then state=builtin
    elif grep -q "^[^:]*/$m\.ko" "$modules/modules.dep" 2>/dev/null; then state=available
    elif [ -d "/sys/module/$m" ]; then state=loaded
    else state=missing
    fi
    kv "module.$m" "$state"
done
for key in @SYSCTLS@; do
    kv "sysctl.$key" "$(first "/proc/sys/$(echo "$key" | tr . /)")"
done
# Listening TCP ports, as the kernel lists them (hex); no ss or netstat needed.
kv tcp.listen "$(awk '$4 == "0A" { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    sort -u | tr '\n' ' ')"
kv disk "$(df -Pk /var/lib 2>/dev/null | awk 'NR == 2 { print $2, $4, $6 }')"
for s in @CRI_SOCKETS@; do
    [ -S "$s" ] && kv cri "$s"
done
if [ -r /etc/containerd/config.toml ]; then
    kv containerd.systemd_cgroup "$(sed -n 's/^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*\([a-z]*\).*/\1/p' \
        /etc/containerd/config.toml | tail -n 1)"
    kv containerd.config present
else
    kv containerd.systemd_cgroup ""
    kv containerd.config absent
fi
case $(first /sys/fs/selinux/enforce) in
    1) selinux=enforcing ;;
    0) selinux=permissive ;;
    *) selinux=disabled ;;
esac
kv selinux "$selinux"
firewalld="" kubelet_service=""
if have systemctl && [ -d /run/systemd/system ]; then
    firewalld=$(systemctl is-active firewalld 2>/dev/null | head -n 1)
    kubelet_service=$(systemctl is-enabled kubelet 2>/dev/null | head -n 1)
fi
kv firewalld "$firewalld"
kv kubelet.service "$kubelet_service"
kv version.kubeadm "$(version kubeadm version -o short)"
kv version.kubelet "$(version kubelet --version)"
kv version.kubectl "$(version kubectl version --client)"
kv version.containerd "$(version containerd --version)"
kv version.runc "$(version runc --version)"

# -- is it a node already? -------------------------------------------------------------------------
for f in @KUBE_FILES@; do
    [ -e "$f" ] && kv kube.file "$f"
done
if [ ! -d /var/lib/etcd ]; then etcd=absent
elif [ -n "$(ls -A /var/lib/etcd 2>/dev/null)" ]; then etcd=nonempty
else etcd=empty
fi
kv kube.etcd "$etcd"
# The CA with all whitespace removed, hashed: compared with the same digest of this machine's CA.
ca=""
if [ -r @CA_CERT@ ]; then
    ca=$(tr -d ' \t\r\n' < @CA_CERT@ | sha256sum 2>/dev/null | awk '{ print $1 }')
fi
kv kube.ca_sha256 "$ca"

# -- can it reach the control-plane endpoint? ----------------------------------------------------
# open: something listens; refused: the address answers but nothing listens (normal before init);
# timeout, unreachable, unresolved: the network or DNS is in the way; unknown: nothing to try with.
connect() {
    if ! have timeout; then
        echo "unknown no timeout command"; return
    elif have bash; then
        # shellcheck disable=SC2016  # $1 and $2 are bash's own arguments
        out=$(timeout @ENDPOINT_TIMEOUT@ bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$1" "$2" 2>&1); rc=$?
    elif have socat; then
        out=$(timeout @ENDPOINT_TIMEOUT@ socat -u OPEN:/dev/null "TCP:$3" 2>&1); rc=$?
    else
        echo "unknown neither bash nor socat to connect with"; return
    fi
    case $rc:$out in
        0:*) echo "open" ;;
        124:* | 143:*) echo "timeout no answer within @ENDPOINT_TIMEOUT@ s" ;;
        *[Rr]efused*) echo "refused $out" ;;
        *[Uu]nreachable* | *"No route"*) echo "unreachable $out" ;;
        *[Nn]ame* | *resol* | *known*) echo "unresolved $out" ;;
        *) echo "unknown $out" ;;
    esac
}
address=${endpoint%:*} port=${endpoint##*:}
address=${address#[} address=${address%]}
result=unchecked
[ -n "$endpoint" ] && result=$(connect "$address" "$port" "$endpoint" | tr '\n' ' ' | cut -c 1-200)
kv endpoint.target "$endpoint"
state=${result%% *} detail=${result#"${result%% *}"}
kv endpoint.state "$state"
kv endpoint.detail "${detail# }"
echo end
