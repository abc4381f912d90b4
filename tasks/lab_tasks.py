"""`invoke lab.*`: start, inspect and remove labs of SSH hosts on this machine (a development tool).

The `lab` package is imported inside each task, so listing or running kubefab's own tasks never loads it.
"""

from invoke import Exit, task


def parse_quirks(values):
    """--quirk HOST=QUIRK values as {host: [quirk, ...]}."""
    by_host = {}
    for value in values or ():
        host, sep, name = value.partition("=")
        if not sep:
            raise Exit(f"error: --quirk {value!r}: write HOST=QUIRK, e.g. kf-w1=swap", code=2)
        by_host.setdefault(host, []).append(name)
    return by_host


@task(iterable=["quirk"], help={
    "hosts": "number of hosts (default 3)",
    "control-planes": "how many of them are control-plane nodes, named kf-cp<i>; the rest are kf-w<i> (default 1)",
    "flavour": "node (systemd and containerd) or plain (sshd only) (default node)",
    "user": "SSH user written to the inventory: root, kfadmin (passwordless sudo) or kfpasswd (sudo with a "
            "password) (default root)",
    "quirk": "HOST=QUIRK, repeatable, e.g. kf-w1=swap; an unknown name lists them all",
    "bin-dir": "directory of executables (e.g. the doubles) bound read-only at /opt/kubefab-lab/bin in every host",
    "install": "the inventory's install source: offline (a directory of the doubles) or packages (the lab's "
               "signed apt repository, laid out as pkgs.k8s.io, the hosts' only apt source) (default offline)",
    "version": "the inventory's kubernetes_version: 1.33.5 or 1.34.1; both are served, the offline source in "
               "offline/<version>/ beside the inventory (default 1.33.5)",
    "nat": "give every host a first interface like VirtualBox's NAT adapter: eth0 with 10.0.2.15/24 on every host "
           "and the default route via 10.0.2.2 (traffic there goes nowhere); the lab network is then eth1",
    "ha": "write [cluster.ha] into the inventory with an address the lab reserves for the control planes' virtual IP "
          "(keepalived and haproxy run for real in node hosts)",
})
def up(c, hosts=3, control_planes=1, flavour="node", user="root", quirk=None, bin_dir=None, install="offline",
       nat=False, ha=False, version="1.33.5"):
    """Start a lab of SSH hosts in network namespaces and print its inventory path."""
    from lab import Lab, LabError

    try:
        lab = Lab.up(hosts=int(hosts), control_planes=int(control_planes), flavour=flavour, ssh_user=user,
                     quirks=parse_quirks(quirk), bin_dir=bin_dir, detach=True, install=install, nat=nat,
                     ha=ha, version=version)
    except LabError as e:
        raise Exit(f"error: {e}", code=2)
    print(lab.inventory)


@task(iterable=["lab_id"], help={
    "lab-id": "remove this lab (repeatable), even while the run that started it is alive",
    "all": "remove every lab on this machine, also those of runs still alive"})
def down(c, lab_id=None, all=False):
    """Remove labs whose starting process is gone (killed runs, `lab.up`) and any leftovers; live ones need --lab-id or --all."""
    from lab import down_labs

    ids = [int(i) for i in lab_id] if lab_id else None
    removed = down_labs(ids, scope="all" if all else "orphaned")
    print(f"removed lab{'s' * (len(removed) != 1)} {', '.join(map(str, removed))}" if removed else "no lab to remove")


LINK_HELP = {"host": "the lab host, e.g. kf-cp1",
             "lab-id": "the lab it is in (needed only when several labs on this machine have such a host)"}


def _set_link(host, lab_id, up):
    from lab import LabError, set_link

    try:
        found = set_link(host, up, None if lab_id is None else int(lab_id))
    except LabError as e:
        raise Exit(f"error: {e}", code=2)
    print(f"lab {found}: {host}'s link is {'up' if up else 'down'}")


@task(help=LINK_HELP)
def cut(c, host, lab_id=None):
    """Take a lab host's link down: it is cut off the lab network (a fault experiment); `lab.connect` undoes it."""
    _set_link(host, lab_id, up=False)


@task(help=LINK_HELP)
def connect(c, host, lab_id=None):
    """Bring a lab host's link up again after `lab.cut`."""
    _set_link(host, lab_id, up=True)


@task
def setup(c):
    """Install the Debian packages labs need (sshd, sudo, containerd, etcd, ...) and build the lab's package repository; a no-op when done."""
    from lab import LabError, packages, repo

    try:
        installed = packages.ensure()
        root = repo.ensure()
    except LabError as e:
        raise Exit(f"error: {e}", code=1)
    print(f"installed {' '.join(installed)}" if installed else "every package the lab needs is present")
    print(f"the lab's package repository is in {root}")


@task
def status(c):
    """List the labs on this machine, their hosts and inventories."""
    from lab import status as lab_status

    print("\n".join(lab_status()) or "no lab")
