"""Inventories for the VM lab in vagrant/: `vagrant ssh-config` output in, inventory TOML out.

`vagrant ssh-config` names each running machine and gives its user and key, but not the address kubefab needs: on
VirtualBox it reports 127.0.0.1 and a forwarded port (the NAT side, where every machine is 10.0.2.15), on libvirt
an address on libvirt's management network. Nodes must reach each other, and this machine the API server, on one
network, so the inventory uses the private-network address vagrant/Vagrantfile gives each machine, on port 22. The
rule for those addresses and roles is `layout`; the Vagrantfile states the same rule, and the tests hold the two
together.
"""

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePath

from kubefab.digits import whole
from kubefab.errors import KubefabError
from kubefab.inventory.validate import CONTROL_PLANE, WORKER

PROVIDERS = ("virtualbox", "libvirt")
DEFAULT_CONTROL_PLANES = 1
DEFAULT_IP_PREFIX = "192.168.56"
CLUSTER_NAME = "vagrant"
# Variables the Vagrantfile lays its machines out by; they give the task's options their defaults.
CONTROL_PLANES_VAR = "KUBEFAB_CONTROL_PLANES"
IP_PREFIX_VAR = "KUBEFAB_IP_PREFIX"


@dataclass(frozen=True)
class Machine:
    """One machine as vagrant/Vagrantfile defines it."""

    name: str
    address: str
    roles: tuple


@dataclass(frozen=True)
class Login:
    """One `Host` block of `vagrant ssh-config`: how Vagrant itself logs in to a machine."""

    name: str
    user: str
    identity_file: str

    @property
    def provider(self):
        """The provider in the path of the key Vagrant made, .vagrant/machines/<name>/<provider>/private_key, or ''."""
        parts = PurePath(self.identity_file).parts
        return parts[-2] if len(parts) >= 4 and parts[-4] == "machines" and parts[-3] == self.name else ""

    @property
    def dotfile_dir(self):
        """Vagrant's .vagrant directory, which holds the machine's key."""
        return PurePath(self.identity_file).parents[3]


def layout(nodes, control_planes=DEFAULT_CONTROL_PLANES, ip_prefix=DEFAULT_IP_PREFIX):
    """The machines the Vagrantfile defines for KUBEFAB_NODES, KUBEFAB_CONTROL_PLANES and KUBEFAB_IP_PREFIX."""
    return tuple(Machine(name="k8s-master" if i == 1 else f"k8s-s{i}", address=f"{ip_prefix}.{9 + i}",
                         roles=(CONTROL_PLANE,) if i <= control_planes else (WORKER,))
                 for i in range(1, nodes + 1))


def settings(environ, control_planes=None, ip_prefix=None):
    """(control planes, IP prefix): the options when given, else the Vagrantfile's variables, else its defaults."""
    control_planes = str(control_planes or environ.get(CONTROL_PLANES_VAR) or DEFAULT_CONTROL_PLANES)
    ip_prefix = ip_prefix or environ.get(IP_PREFIX_VAR) or DEFAULT_IP_PREFIX
    count = whole(control_planes, most=3)
    if not count:
        raise KubefabError(f"control planes {control_planes!r} (--control-planes or {CONTROL_PLANES_VAR}) is not a "
                           "whole number of at least 1")
    try:
        ipaddress.IPv4Address(f"{ip_prefix}.10")
    except ValueError:
        raise KubefabError(f"IP prefix {ip_prefix!r} (--ip-prefix or {IP_PREFIX_VAR}) is not three octets like "
                           "192.168.56") from None
    return count, ip_prefix


def parse_ssh_config(text):
    """The `Host` blocks of `vagrant ssh-config` output, in order; other keys are ignored."""
    blocks = []
    for number, line in enumerate(text.splitlines(), 1):
        key, _, value = line.strip().partition(" ")
        key, value = key.lower(), value.strip().strip('"')
        if key == "host":
            blocks.append({"name": value})
        elif key in ("user", "identityfile") and blocks:
            blocks[-1].setdefault(key, value)  # the first IdentityFile is the key Vagrant made for the machine
        elif key and not blocks:
            raise KubefabError(f"vagrant ssh-config: line {number}: {line.strip()!r} comes before any 'Host' line "
                               "— pass the output of `vagrant ssh-config` as it is")
    if not blocks:
        raise KubefabError("vagrant ssh-config reported no machine — start them: cd vagrant && vagrant up")
    for b in blocks:
        missing = [key for key, name in (("User", "user"), ("IdentityFile", "identityfile")) if name not in b]
        if missing:
            raise KubefabError(f"vagrant ssh-config: machine {b['name']!r} has no {' or '.join(missing)} "
                               "— kubefab needs the user and key Vagrant logs in with")
    return tuple(Login(b["name"], b["user"], b["identityfile"]) for b in blocks)


def provider_of(logins, provider=None):
    """The provider the machines run on, read from their key paths; `provider`, when given, must be that one."""
    if provider is not None and provider not in PROVIDERS:
        raise KubefabError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    for login in logins:
        if not login.provider:
            raise KubefabError(f"vagrant ssh-config: machine {login.name!r} logs in with {login.identity_file}, not "
                               f"the key Vagrant makes for it (.vagrant/machines/{login.name}/<provider>/private_key)"
                               " — leave config.ssh.insert_key on in vagrant/Vagrantfile")
        if provider and login.provider != provider:
            raise KubefabError(f"vagrant ssh-config: machine {login.name!r} runs on {login.provider}, not "
                               f"{provider} ({login.identity_file})")
        provider = login.provider
    return provider


def match_layout(logins, control_planes=DEFAULT_CONTROL_PLANES, ip_prefix=DEFAULT_IP_PREFIX):
    """The Vagrantfile's machines for the running ones, checked against the names Vagrant reports."""
    if control_planes > len(logins):
        raise KubefabError(f"{control_planes} control planes asked for, but Vagrant runs {len(logins)} machines "
                           f"— set {CONTROL_PLANES_VAR} as for `vagrant up`")
    expected = layout(len(logins), control_planes, ip_prefix)
    reported = [login.name for login in logins]
    if reported != [m.name for m in expected]:
        raise KubefabError(f"vagrant ssh-config reports {', '.join(reported)}; vagrant/Vagrantfile names "
                           f"{len(logins)} machines {', '.join(m.name for m in expected)} — an edited Vagrantfile "
                           "needs kubefab/inventory/vagrant.py's layout changed to match")
    return expected


def check_all_reported(logins, provider):
    """Every machine Vagrant created (it has an id under .vagrant/machines) is among those it reports.

    The Vagrantfile defines as many machines as KUBEFAB_NODES says when it is read: `vagrant up` with 4 and
    `vagrant ssh-config` without would otherwise give an inventory of 3.
    """
    dotfile_dir = Path(logins[0].dotfile_dir)
    created = {p.parent.parent.name for p in dotfile_dir.glob(f"machines/*/{provider}/id")}
    extra = sorted(created - {login.name for login in logins})
    if extra:
        raise KubefabError(f"{', '.join(extra)} {'was' if len(extra) == 1 else 'were'} created by `vagrant up` but "
                           f"the Vagrantfile now defines only {len(logins)} machines — set KUBEFAB_NODES (and the "
                           "other KUBEFAB_* variables) as for `vagrant up`")


@dataclass(frozen=True)
class Generated:
    """An inventory made from `vagrant ssh-config`: its text and what it was made of."""

    provider: str
    machines: tuple
    text: str

    def report(self, output):
        """What `invoke vagrant.inventory` prints once it wrote `output`."""
        return "\n".join([f"wrote {output}: {len(self.machines)} machines on {self.provider}",
                          *(f"  {m.name:<12} {m.address:<15} {', '.join(m.roles)}" for m in self.machines),
                          f"next: python -m invoke cluster.up -i {output}"])


def generate(ssh_config, relative_to, provider=None, control_planes=DEFAULT_CONTROL_PLANES,
             ip_prefix=DEFAULT_IP_PREFIX):
    """The inventory, to be written in directory `relative_to`, for the machines in `ssh_config` (the output of
    `vagrant ssh-config`)."""
    logins = parse_ssh_config(ssh_config)
    provider = provider_of(logins, provider)
    check_all_reported(logins, provider)
    machines = match_layout(logins, control_planes, ip_prefix)
    return Generated(provider, machines, inventory_toml(logins, provider, machines, relative_to))


def inventory_toml(logins, provider, machines, relative_to):
    """The inventory text: [cluster] name, [ssh] login, and one [hosts.*] table per machine.

    Key and known_hosts paths are relative to `relative_to`, the inventory's directory, as kubefab reads them.
    """
    def path(p):
        return os.path.relpath(p, relative_to)

    user = logins[0].user
    lines = [f"# kubefab inventory for the {len(logins)} machines of vagrant/ on {provider}, written by "
             "`invoke vagrant.inventory`",
             "# from `vagrant ssh-config`. Write it again after changing KUBEFAB_NODES, KUBEFAB_CONTROL_PLANES or",
             "# KUBEFAB_IP_PREFIX. Every key is documented in README.md (\"Inventory reference\").",
             "", "[cluster]", f"name = {_q(CLUSTER_NAME)}", "",
             "[ssh]", f"user = {_q(user)}", f"sudo = {'true' if user != 'root' else 'false'}",
             'known_hosts = "accept-new"',
             f"known_hosts_file = {_q(path(logins[0].dotfile_dir / 'known_hosts'))}"]
    for login, machine in zip(logins, machines):
        lines += ["", f"[hosts.{machine.name}]", f"address = {_q(machine.address)}",
                  f"roles = [{', '.join(_q(r) for r in machine.roles)}]",
                  f"ssh.identity_file = {_q(path(login.identity_file))}"]
        if login.user != user:
            lines.append(f"ssh.user = {_q(login.user)}")
    return "\n".join(lines) + "\n"


def _q(text):
    """A TOML basic string (JSON's string escapes are TOML's)."""
    return json.dumps(str(text))


def read_ssh_config(vagrant_dir):
    """Run `vagrant ssh-config` in `vagrant_dir` (a local query: no machine is contacted) and return its output."""
    if shutil.which("vagrant") is None:
        raise KubefabError("vagrant is not installed — install it (Debian: apt-get install vagrant) and start the "
                           "machines: cd vagrant && vagrant up")
    if not (Path(vagrant_dir) / "Vagrantfile").is_file():
        raise KubefabError(f"{vagrant_dir}: no Vagrantfile here — pass --vagrant-dir, the directory of kubefab's "
                           "Vagrantfile")
    done = subprocess.run(["vagrant", "ssh-config"], cwd=vagrant_dir, capture_output=True, text=True)
    if done.returncode:
        said = " ".join((done.stderr.strip() or done.stdout.strip()).split())
        raise KubefabError(f"`vagrant ssh-config` in {vagrant_dir} failed (exit {done.returncode}): {said[-800:]}\n"
                           f"are all the machines up? cd {vagrant_dir} && vagrant status")
    return done.stdout
