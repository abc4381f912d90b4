#!/bin/sh
# First process of a lab host, run by `unshare` as PID 1 of fresh mount, uts, ipc and pid namespaces
# inside the host's network namespace. It builds the host's root, pivots into it and execs "$@"
# (sshd or systemd). Everything it mounts lives in the host's mount namespace and vanishes with it.
#
# KFL_HOST     the host's directory on the lab's tmpfs: layer/ (its own files), proc/ (fake /proc
#              files), run/ (mount point for its private tmpfs)
# KFL_LOWER    overlay lower dirs: the host layer, the lab layer, then the machine's /
# KFL_DISK     size of the tmpfs holding the writable upper dir (what `df /` shows)
# KFL_LINK     the host's link to the lab bridge (eth0, or eth1 behind a NAT adapter)
# KFL_ADDRESS  address/prefix of KFL_LINK;  KFL_HOSTNAME  the hostname
# KFL_NAT      empty, or 'address/prefix gateway' of the NAT adapter eth0, which then holds the default route
# KFL_DEV      template of /dev: null zero full random urandom tty and links, made once per lab
# KFL_TMPFS    further private tmpfs mount points
# KFL_BIN      a directory of the machine bound read-only at KFL_BIN_AT (may be empty)
# KFL_BINDS    directories of the machine bound read-only at their own paths (the doubles' interpreter)
# KFL_CGROUPS  'mountpoint:fstype:options' under /sys/fs/cgroup, for hosts running systemd
# KFL_BOOT     a command left running from boot (a quirk)
set -eu

mount --make-rprivate /
ip -batch - <<EOF
link set lo up
addr add $KFL_ADDRESS dev $KFL_LINK
link set $KFL_LINK up
EOF
if [ -n "$KFL_NAT" ]; then
    ip -batch - <<EOF
addr add ${KFL_NAT% *} dev eth0
link set eth0 up
route add default via ${KFL_NAT#* } dev eth0
EOF
fi
hostname "$KFL_HOSTNAME"

run=$KFL_HOST/run
R=$run/root
mount -t tmpfs -o "size=$KFL_DISK,mode=755" "kfl-disk" "$run"
mkdir "$run/upper" "$run/work" "$R"
mount -t overlay -o "lowerdir=$KFL_LOWER,upperdir=$run/upper,workdir=$run/work" kfl-root "$R"

mount -t proc proc "$R/proc"
# net.* sysctls belong to the host's network namespace; kernel.*, vm.*, fs.* are the machine's.
mount --bind "$R/proc/sys" "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,ro "$R/proc/sys"
if [ -e "$R/proc/sysrq-trigger" ]; then
    mount --bind -o ro "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"
fi
for fake in "$KFL_HOST"/proc/*; do
    [ -e "$fake" ] && mount --bind -o ro "$fake" "$R/proc/${fake##*/}"
done
mount -t sysfs -o ro sysfs "$R/sys"

mount -t tmpfs -o mode=755,size=1m kfl-dev "$R/dev"
cp -a "$KFL_DEV/." "$R/dev/"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777 kfl-shm "$R/dev/shm"
mount -t tmpfs -o mode=755 kfl-run "$R/run"
mkdir -m 755 "$R/run/sshd" "$R/run/lock"
mount -t tmpfs -o mode=1777 kfl-tmp "$R/tmp"
for dir in $KFL_TMPFS; do
    mount -t tmpfs -o mode=711 kfl-tmpfs "$R$dir"
done
for dir in $KFL_BINDS; do
    mkdir -p "$R$dir"
    mount --bind -o ro "$dir" "$R$dir"
done
if [ -n "$KFL_BIN" ]; then
    mount --bind -o ro "$KFL_BIN" "$R$KFL_BIN_AT"
fi
for cgroup in $KFL_CGROUPS; do
    at=${cgroup%%:*} rest=${cgroup#*:}
    mkdir -p "$R/sys/fs/cgroup/$at"
    mount -t "${rest%%:*}" -o "${rest#*:}" "${rest%%:*}" "$R/sys/fs/cgroup/$at"
done

cd "$R"
pivot_root . mnt
exec chroot . /bin/sh -c '
    umount -l /mnt
    cd /
    if [ -n "$KFL_BOOT" ]; then setsid /bin/sh -c "$KFL_BOOT" </dev/null >/dev/null 2>&1 & fi
    for v in $(env | sed -n "s/^\(KFL_[A-Z]*\)=.*/\1/p"); do unset "$v"; done
    exec "$@"' init "$@"
