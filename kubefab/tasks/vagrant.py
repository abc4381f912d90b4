"""`invoke vagrant.*`: the VM lab of vagrant/ (`vagrant up` there first)."""

import os
from pathlib import Path

from invoke import task

from kubefab import fsutil, inventory as inventories
from kubefab.inventory import vagrant

from .common import user_errors


@task(auto_shortflags=False, help={
    "output": "inventory file to write (default vagrant-inventory.toml); key paths in it are relative to its directory",
    "provider": f"check that the machines run on this provider ({' or '.join(vagrant.PROVIDERS)}); "
                "by default it is read from the machines' key paths",
    "control-planes": f"how many machines are control planes (default ${vagrant.CONTROL_PLANES_VAR}, else "
                      f"{vagrant.DEFAULT_CONTROL_PLANES}): as given to `vagrant up`",
    "ip-prefix": f"the private network's first three octets (default ${vagrant.IP_PREFIX_VAR}, else "
                 f"{vagrant.DEFAULT_IP_PREFIX}): as given to `vagrant up`",
    "vagrant-dir": "the directory of kubefab's Vagrantfile (default vagrant)",
})
def inventory(c, output="vagrant-inventory.toml", provider=None, control_planes=None, ip_prefix=None,
              vagrant_dir="vagrant"):
    """Write an inventory for the machines `vagrant up` started, from `vagrant ssh-config` (any count, either provider)."""
    with user_errors():
        control_planes, ip_prefix = vagrant.settings(os.environ, control_planes, ip_prefix)
        out = Path(output).absolute()
        made = vagrant.generate(vagrant.read_ssh_config(vagrant_dir), out.parent, provider, control_planes, ip_prefix)
        parent_mode = out.parent.stat().st_mode & 0o7777 if out.parent.is_dir() else 0o755
        fsutil.write_atomic(out, made.text, mode=0o644, dir_mode=parent_mode)
        inventories.load(out)  # the file is kubefab's to read: a bad prefix or subnet overlap is reported now
    print(made.report(output))
