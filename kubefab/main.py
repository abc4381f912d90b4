"""The `kubefab` command (a pip install's entry point, as Fabric ships `fab`): Invoke's Program over the tasks
of kubefab.tasks, configured as `invoke` is in a checkout: invoke.yaml of the current directory, ~/.invoke.yaml,
/etc/invoke.yaml and INVOKE_* variables (INVOKE_KUBEFAB_INVENTORY=...)."""

import os
from importlib.metadata import version

from invoke import Program

from kubefab.tasks import collection


class _Program(Program):
    def parse_collection(self):
        # `invoke` reads invoke.yaml beside the tasks it found; the command's tasks are installed, so read the
        # project's config where the user works, as `invoke` in a checkout does
        self.config.set_project_location(os.getcwd())
        self.config.load_project()
        super().parse_collection()


program = _Program(namespace=collection(), name="kubefab", binary="kubefab", version=version("kubefab"))
