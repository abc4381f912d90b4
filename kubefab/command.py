"""Remote commands as argument tuples, quoted in one place, with secrets masked for display."""

import shlex
from dataclasses import dataclass

from kubefab.secret import MASK, Secret


@dataclass(frozen=True)
class Run:
    """One command run on a host: `argv` items are str or Secret; `sudo` raises it to root."""

    argv: tuple
    sudo: bool = True
    label: str = ""

    def line(self):
        """The shell line to execute, secrets revealed: only the SSH layer calls this."""
        return " ".join(shlex.quote(_reveal(a)) for a in self.argv)

    def display(self):
        """The line as logs and plans show it, secrets masked (or its label, for long scripts)."""
        if self.label:
            return f"{self.argv[0]}: {self.label}"
        return " ".join(MASK if isinstance(a, Secret) else shlex.quote(a) for a in self.argv)


def _reveal(arg):
    return arg.reveal() if isinstance(arg, Secret) else arg


def run(*argv, sudo=True):
    return Run(tuple(argv), sudo=sudo)
