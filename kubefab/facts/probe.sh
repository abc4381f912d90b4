# kubefab's fact probe: every fact preflight needs, from one `sh -s -- ENDPOINT` per host.
#
# Run as root (or through sudo) with this script on stdin; ENDPOINT is the control-plane endpoint
# "host:port" to try a TCP connection to (empty: not tried). Prints one `key=value` line per fact
# between the lines "kubefab-probe 1" and "end"; kubefab/facts/__init__.py parses it strictly. POSIX sh only
# (dash, busybox ash); every tool is optional, and a missing one leaves its value empty. The probe
# only reads: it writes no file and changes nothing. Words between at-signs are filled in by
# facts.py from its tables before the script is sent.
#
# Files are read with the `read` builtin and each source goes through one awk: every process
# started costs milliseconds on a busy host, and this runs on every host before anything else.

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
endpoint=${1:-}

nl='
'
kv() { printf '%s=%s\n' "$1" "$2"; }
have() { command -v "$1" >/dev/null 2>&1; }
# kv KEY with the first line of FILE ("" when it cannot be read).
kvfile() {
    line=""
    [ -r "$2" ] && IFS= read -r line < "$2"
    kv "$1" "$line"
}
# $found: the path of command $1 in PATH, or "".
lookup() {
    found="" saved_ifs=$IFS
    IFS=:
    for dir in $PATH; do
        if [ -f "$dir/$1" ] && [ -x "$dir/$1" ]; then found=$dir/$1; break; fi
    done
    IFS=$saved_ifs
}
# A command that may hang (a wedged binary, a dead network mount) gets a few seconds at most.
bounded() { if have timeout; then timeout 5 "$@"; else "$@"; fi; }
# kv KEY with the first word of a command's first line that looks like a version (1.2.3...), without its
# "v"; "" when the command is missing or prints none.
version() {
    key=$1 word=""
    shift
    if have "$1"; then
        line=$(bounded "$@" 2>/dev/null)
        set -f
        for word in ${line%%"$nl"*} ""; do
            case $word in
                v[0-9]*.[0-9]*.[0-9]* | [0-9]*.[0-9]*.[0-9]*) word=${word#v}; break ;;
            esac
        done
    fi
    kv "$key" "$word"
}

# Can the host reach the control-plane endpoint? open: something listens; refused: the address
# answers but nothing listens (normal before init); timeout, unreachable, unresolved: the network
# or DNS is in the way; unknown: nothing to try with.
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
probe_endpoint() {
    address=${endpoint%:*} port=${endpoint##*:}
    address=${address#[} address=${address%]}
    result=unchecked
    [ -n "$endpoint" ] && result=$(connect "$address" "$port" "$endpoint")
    # its lines as one (facts.py keeps the first 200 characters)
    set -f
    IFS=$nl
    # shellcheck disable=SC2086
    set -- $result
    IFS=' '
    result="$*"
    state=${result%% *} detail=${result#"${result%% *}"}
    kv endpoint.target "$endpoint"
    kv endpoint.state "$state"
    kv endpoint.detail "${detail# }"
}

# The body of URL $1 on standard output, or the fetcher's last words and a non-zero exit: curl, or apt's own
# helper (on a host without curl), which writes to a temporary file, removed at once.
fetch() {
    if have curl; then
        bounded curl -fsSL --max-time 5 "$1" 2>&1
    elif [ -x /usr/lib/apt/apt-helper ] && tmp=$(mktemp 2>/dev/null); then
        out=$(bounded /usr/lib/apt/apt-helper -o APT::Sandbox::User=root -o Acquire::Retries=0 \
              download-file "$1" "$tmp" 2>&1) && cat "$tmp"
        rc=$?
        rm -f "$tmp"
        case $rc in
            0) ;;
            124) echo "no answer within 5 s" ;;
            *) printf '%s\n' "$out" | grep '^E:' | head -n 1 ;;
        esac
        return $rc
    else
        echo "neither curl nor apt-helper to fetch it with"
        return 1
    fi
}
# The package repository kubefab installs from ($kf_repo, "" when it installs none): does it answer, and
# which kubeadm versions does it hold (apt: its Packages index; "?" when it has no plain index to read).
probe_repo() {
    state=unchecked detail="" versions=""
    if [ -n "${kf_repo:-}" ]; then
        index=$kf_repo/rpm/repodata/repomd.xml
        have apt-get && index=$kf_repo/deb/Packages
        if body=$(fetch "$index"); then
            state=ok
            case $index in
                */Packages) versions=$(printf '%s\n' "$body" | awk '$1 == "Package:" { p = $2 }
                    $1 == "Version:" && p == "kubeadm" { printf "%s%s", s, $2; s = " " }') ;;
                *) versions="?" ;;
            esac
        elif fetch "$kf_repo/deb/InRelease" >/dev/null; then
            state=ok versions="?"
        else
            state=failed detail=$(printf '%s\n' "$body" | tail -n 1)
        fi
    fi
    kv repo.state "$state"
    kv repo.detail "$detail"
    kv repo.versions "$versions"
}

echo "kubefab-probe 1"

# The slow parts (Go binaries printing their version, a connection that may time out) run in the
# background meanwhile; each job prints whole key=value lines, in any order, before "end".
probe_endpoint &
probe_repo &
version version.kubeadm kubeadm version -o short &
version version.kubelet kubelet --version &
version version.kubectl kubectl version --client &
version version.containerd containerd --version &
version version.runc runc --version &
# The images the kubelet's runtime holds (what `kubeadm config images pull` leaves), one line each.
if have ctr && [ -S /run/containerd/containerd.sock ]; then
    (set -f
     images=""
     for i in $(bounded ctr -n k8s.io images ls -q 2>/dev/null); do images="${images}image=$i$nl"; done
     printf '%s' "$images") &
fi

# Everything else, gathered while they run and printed in one piece after them, so that no line
# of it is cut by theirs.
gather() {
    # -- the machine --------------------------------------------------------------------------------
    ID="" VERSION_ID="" ID_LIKE="" PRETTY_NAME=""
    # shellcheck disable=SC1091
    [ -r /etc/os-release ] && . /etc/os-release
    kv os.id "$ID"
    kv os.version "$VERSION_ID"
    kv os.like "$ID_LIKE"
    kv os.name "$PRETTY_NAME"
    pm=""
    for p in apt-get dnf yum zypper apk; do
        if have "$p"; then pm=$p; break; fi
    done
    kv os.package_manager "$pm"
    kernel=""
    [ -r /proc/sys/kernel/osrelease ] && read -r kernel < /proc/sys/kernel/osrelease
    kv kernel "${kernel:=$(uname -r)}"
    kv arch "$(uname -m)"
    kvfile init /proc/1/comm
    uid=""
    while read -r key _ effective _; do
        [ "$key" = Uid: ] && { uid=$effective; break; }
    done < /proc/self/status
    kv uid "${uid:-$(id -u)}"
    kv cpus "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
    # One awk over the kernel's tables and two config files: the cgroup version (and v1's controllers),
    # memory, swap, listening TCP ports (hexadecimal, as the kernel lists them: no ss or netstat needed),
    # containerd's cgroup driver (its last SystemdCgroup) and whether SELinux's config enforces.
    tables=""
    for f in /proc/mounts /proc/meminfo /proc/swaps /etc/fstab /proc/net/tcp /proc/net/tcp6 \
             /etc/containerd/config.toml /etc/selinux/config; do
        [ -r "$f" ] && tables="$tables $f"
    done
    if [ -r /sys/fs/cgroup/cgroup.controllers ]; then
        kvfile cgroup.controllers /sys/fs/cgroup/cgroup.controllers
    elif [ -r /proc/cgroups ]; then
        tables="$tables /proc/cgroups"
    else
        kv cgroup.controllers ""
    fi
    containerd=absent selinux_config=absent
    [ -r /etc/containerd/config.toml ] && containerd=present
    [ -r /etc/selinux/config ] && selinux_config=other
    kv containerd.config "$containerd"
    # shellcheck disable=SC2086  # plain paths, split on purpose
    awk -v selinux="$selinux_config" '
        FILENAME == "/proc/mounts" { if ($2 == "/sys/fs/cgroup" && $3 == "cgroup2") cg = 2
                                     if ($3 == "cgroup" && !cg) cg = 1
                                     next }
        FILENAME == "/proc/cgroups" { if (FNR > 1 && $4 == 1) { on = on sep $1; sep = " " }
                                      v1 = 1
                                      next }
        FILENAME == "/proc/meminfo" { if ($1 == "MemTotal:") print "memory_kib=" $2; next }
        FILENAME == "/proc/swaps" { if (FNR > 1 && NF >= 3) print "swap=" $1 " " $3; next }
        FILENAME == "/etc/fstab" { if ($1 !~ /^#/ && $3 == "swap") print "fstab.swap=" $1; next }
        FILENAME ~ /^\/proc\/net\/tcp/ { if ($4 == "0A") { split($2, a, ":")
                                                         if (!(a[2] in seen)) { seen[a[2]] = 1; ports = ports a[2] " " } }
                                        next }
        FILENAME == "/etc/containerd/config.toml" { if ($0 ~ /^[ \t]*SystemdCgroup[ \t]*=/) {
                                                        v = $0; sub(/^[^=]*=[ \t]*/, "", v); match(v, /^[a-z]*/)
                                                        driver = substr(v, 1, RLENGTH) }
                                                    next }
        FILENAME == "/etc/selinux/config" { if (/^SELINUX=enforcing/) selinux = "enforcing"; next }
        END { print "cgroup.version=" cg + 0
              if (v1) print "cgroup.controllers=" on
              print "tcp.listen=" ports
              print "containerd.systemd_cgroup=" driver
              print "selinux.config=" selinux }' $tables
    kvfile hostname /proc/sys/kernel/hostname
    kvfile hostname.file /etc/hostname
    # kubefab's block of node names in /etc/hosts, hashed (the hash of nothing when there is none)
    block=$(sed -n '/^@HOSTS_BEGIN@$/,/^@HOSTS_END@$/p' /etc/hosts 2>/dev/null | sha256sum 2>/dev/null)
    kv hosts.block "${block%% *}"
    kvfile machine_id /etc/machine-id
    kvfile product_uuid /sys/class/dmi/id/product_uuid
    # Interfaces that carry a global address, with their MAC: what must differ between nodes.
    if have ip; then
        ip -o addr show scope global 2>/dev/null |
            awk '{ sub(/@.*/, "", $2); if (!($2 in a)) n[++c] = $2; a[$2] = a[$2] " " $4 }
                 END { for (i = 1; i <= c; i++) print n[i] a[n[i]] }' |
            while read -r name addresses; do
                mac=""
                [ -r "/sys/class/net/$name/address" ] && read -r mac < "/sys/class/net/$name/address"
                kv iface "$name ${mac:--} $addresses"
            done
    fi
    # Every network interface by name, with an address or not (kube-vip's [cluster.ha] interface must be one).
    names=""
    for link in /sys/class/net/*; do
        [ -e "$link" ] && names="$names${names:+ }${link##*/}"
    done
    kv net.interfaces "$names"
    now=$(date +%s.%N 2>/dev/null)
    case $now in
        *[!0-9.]* | *. | "") now=$(date +%s) ;;
    esac
    kv clock "$now"

    # -- what kubeadm and the kubelet need -----------------------------------------------------------
    for c in @COMMANDS@; do
        lookup "$c"
        kv "command.$c" "$found"
    done
    # A module is loaded (/proc/modules), built in (modules.builtin), available (modules.dep) or missing.
    lists=""
    for f in /proc/modules "/lib/modules/$kernel/modules.builtin" "/lib/modules/$kernel/modules.dep"; do
        [ -r "$f" ] && lists="$lists $f"
    done
    # shellcheck disable=SC2086  # plain paths, split on purpose
    awk -v wanted="@MODULES@" '
            BEGIN { n = split(wanted, m, " "); for (i = 1; i <= n; i++) state[m[i]] = "missing" }
            $1 !~ /\// { if ($1 in state) state[$1] = "loaded"; next }
            { name = $1; sub(/:$/, "", name); sub(/.*\//, "", name); sub(/\.ko.*/, "", name); gsub(/-/, "_", name)
              if (!(name in state) || state[name] == "loaded" || state[name] == "builtin") next
              state[name] = index($0, ":") ? "available" : "builtin" }
            END { for (i = 1; i <= n; i++) print m[i], state[m[i]] }' $lists </dev/null |
        while read -r name state; do
            [ "$state" = missing ] && [ -d "/sys/module/$name" ] && state=loaded
            kv "module.$name" "$state"
        done
    for pair in @SYSCTLS@; do
        kvfile "sysctl.${pair%%=*}" "${pair#*=}"
    done
    bounded df -Pk /var/lib 2>/dev/null | awk 'NR == 2 { print "disk=" $2, $4, $6 }'
    for s in @CRI_SOCKETS@; do
        [ -S "$s" ] && kv cri "$s"
    done
    enforce=""
    [ -r /sys/fs/selinux/enforce ] && read -r enforce < /sys/fs/selinux/enforce
    case $enforce in
        1) kv selinux enforcing ;;
        0) kv selinux permissive ;;
        *) kv selinux disabled ;;
    esac
    # One systemctl per question, each answering a line per unit, in the order asked.
    firewalld="" containerd_active="" kubelet_service="" containerd_service=""
    if have systemctl && [ -d /run/systemd/system ]; then
        { read -r firewalld; read -r containerd_active; } <<EOF
$(systemctl is-active firewalld containerd 2>/dev/null)
EOF
        { read -r kubelet_service; read -r containerd_service; } <<EOF
$(systemctl is-enabled kubelet containerd 2>/dev/null)
EOF
    fi
    kv firewalld "${firewalld%%[!a-z-]*}"
    kv containerd.active "${containerd_active%%[!a-z-]*}"
    kv kubelet.service "${kubelet_service%%[!a-z-]*}"
    kv containerd.service "${containerd_service%%[!a-z-]*}"

    # Which of kubeadm, kubelet and kubectl dpkg holds (apt-mark hold) and has installed.
    held=""
    if have dpkg-query; then
        held=$(dpkg-query -W -f '${Status} ${Package}\n' @PACKAGES@ 2>/dev/null |
               awk '$1 == "hold" && $3 == "installed" { printf "%s%s", s, $4; s = " " }')
    fi
    kv packages.held "$held"

    # -- is it a node already? -------------------------------------------------------------------------
    for f in @KUBE_FILES@; do
        [ -e "$f" ] && kv kube.file "$f"
    done
    # haproxy's view of each API server (HA control planes): 'NAME STATUS' from its admin socket's CSV statistics.
    if [ -S @HAPROXY_SOCKET@ ] && have socat; then
        echo "show stat" | bounded socat - UNIX-CONNECT:@HAPROXY_SOCKET@ 2>/dev/null |
            awk -F, '$1 == "kube-apiserver" && $2 != "FRONTEND" && $2 != "BACKEND" { print "haproxy.server=" $2 " " $18 }'
    fi
    # The server each kubeconfig names (its first server: line): verify checks them against the endpoint.
    for f in @KUBECONFIG_FILES@; do
        [ -r "$f" ] || continue
        server=$(sed -n 's/^[[:space:]]*server:[[:space:]]*//p' "$f" | head -n 1)
        [ -n "$server" ] && kv kube.server "$f $server"
    done
    if [ ! -d /var/lib/etcd ]; then kv kube.etcd absent
    elif [ -n "$(ls -A /var/lib/etcd 2>/dev/null)" ]; then kv kube.etcd nonempty
    else kv kube.etcd empty
    fi
    # The CA with all whitespace removed, hashed: compared with the same digest of this machine's CA.
    ca=""
    if [ -r @CA_CERT@ ]; then
        ca=$(tr -d ' \t\r\n' < @CA_CERT@ | sha256sum 2>/dev/null)
    fi
    kv kube.ca_sha256 "${ca%% *}"
    # The kubelet's own client certificate (the kubelet rotates it): only the CERTIFICATE block of the file, which
    # also holds its key, base64 on one line, for its expiry.
    kc=""
    if [ -r @KUBELET_CLIENT@ ]; then
        kc=$(sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' @KUBELET_CLIENT@ | base64 | tr -d '\n')
    fi
    kv kubelet.client_cert "$kc"

    # -- what kubefab's own steps would write ------------------------------------------------------------
    # kubefab sets $kf_files (mode, owner, size and mtime of each), $kf_hashed (their sha256 too) and
    # $kf_links (where each link points) before this script; its paths are plain, without spaces.
    # Missing paths print nothing.
    # shellcheck disable=SC2086
    [ -z "${kf_files:-}" ] || stat -c 'file=%a %u %g %s %Y %n' $kf_files 2>/dev/null
    if [ -n "${kf_hashed:-}" ]; then
        # shellcheck disable=SC2086
        sha256sum $kf_hashed 2>/dev/null | while read -r sum path; do kv sha256 "$sum $path"; done
    fi
    # shellcheck disable=SC2086
    [ -z "${kf_links:-}" ] || find $kf_links -maxdepth 0 -type l -printf 'link=%p %l\n' 2>/dev/null
}
facts=$(gather)
wait
printf '%s\n' "$facts"
echo end
