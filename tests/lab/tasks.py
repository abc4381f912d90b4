"""`invoke lab.*`: start, inspect and remove labs of SSH hosts on this machine (logic in lab.py)."""

from invoke import Collection, Exit, task

from .errors import LabError
from .lab import Lab, down_labs, status as lab_status
from .quirks import QUIRKS
from .spec import FLAVOURS, USERS


def parse_quirks(values):
    by_host = {}
    for value in values or ():
        host, sep, name = value.partition("=")
        if not sep:
            raise LabError(f"--quirk {value!r}: write HOST=QUIRK, e.g. kf-w1=swap")
        by_host.setdefault(host, []).append(name)
    return by_host


@task(iterable=["quirk"], help={
    "hosts": "number of hosts (default 3)",
    "control-planes": "how many of them are control-plane nodes, named kf-cp<i>; the rest are kf-w<i> (default 1)",
    "flavour": f"{' or '.join(FLAVOURS)}: node hosts run systemd and containerd, plain ones only sshd (default node)",
    "user": f"SSH user written to the inventory: {', '.join(u.name for u in USERS)} (default root)",
    "quirk": f"HOST=QUIRK, repeatable; quirks: {', '.join(QUIRKS)}",
    "bin-dir": "directory of executables (e.g. the doubles) bound read-only at /opt/kubefab-lab/bin in every host",
})
def up(c, hosts=3, control_planes=1, flavour="node", user="root", quirk=None, bin_dir=None):
    """Start a lab of SSH hosts in network namespaces and print its inventory path."""
    try:
        lab = Lab.up(hosts=int(hosts), control_planes=int(control_planes), flavour=flavour, ssh_user=user,
                     quirks=parse_quirks(quirk), bin_dir=bin_dir, detach=True)
    except LabError as e:
        raise Exit(f"error: {e}", code=2)
    print(lab.inventory)


@task(iterable=["lab_id"], help={"lab-id": "only this lab (repeatable); default: every lab and any leftovers"})
def down(c, lab_id=None):
    """Remove labs: their hosts, namespaces, links, mounts and cgroups, also those of killed runs."""
    removed = down_labs([int(i) for i in lab_id] if lab_id else None)
    print(f"removed lab{'s' * (len(removed) != 1)} {', '.join(map(str, removed))}" if removed else "no lab to remove")


@task
def status(c):
    """List the labs on this machine, their hosts and inventories."""
    print("\n".join(lab_status()) or "no lab")


ns = Collection("lab", up, down, status)
