"""What a phase does, as values that run as they stand: host commands, file pushes, API calls.

A `Command` runs on a host as root (through sudo when the login is not root). Its `guard` is a shell
condition that is true when the step is already satisfied: the step then reports `unchanged` and its
body does not run. `after` names files pushed earlier in the same phase: when one of them changed in
this run the body runs even if the guard holds (a containerd restart only when its config changed).
A body may exit with UNCHANGED to say it found nothing to do.

A `Push` delivers rendered files (staged, then renamed into place): with facts, only those the host
does not hold as they would land. An `Api` step runs once from this machine against the API server, not
on a host. A step whose `done` says why the facts show it satisfied is not run at all.
"""

import shlex
from dataclasses import dataclass, replace

from kubefab.secret import Secret

OK, CHANGED, UNCHANGED, FAILED, SKIPPED = "ok", "changed", "unchanged", "failed", "skipped"
UNCHANGED_EXIT = 100           # a body's "nothing to do"
DEFAULT_TIMEOUT = 300


@dataclass(frozen=True)
class Command:
    """A shell step on a host: `script` (POSIX sh; argv items quoted by `command()`), fed `stdin`."""

    name: str
    script: str
    guard: str = ""                 # true when already satisfied
    after: tuple = ()               # on-host paths whose change in this phase re-runs the body
    stdin: object = None            # str or Secret, given on the body's standard input
    timeout: int = DEFAULT_TIMEOUT
    ok_codes: tuple = (0,)
    label: str = ""                 # what the plan shows instead of a long script
    done: str = ""                  # why the facts say this step is already satisfied

    def display(self):
        """The step as plans and logs show it: its label, or the script with secrets masked."""
        return self.label or self.script


@dataclass(frozen=True)
class Push:
    """Rendered files staged on the host, then renamed into place with their modes, owned by root."""

    name: str
    files: tuple                    # tree.RenderedFile
    done: str = ""
    in_place: int = 0               # files left out: the facts show them on the host as they would land


def push(name, files, facts):
    """The Push of those of `files` the host lacks (all of them without facts); done when it holds every one."""
    if facts is None:
        return Push(name, tuple(files))
    pending = tuple(f for f in files if not facts.in_place(f))
    kept = len(files) - len(pending)
    return Push(name, pending, done="" if pending else f"all {kept} files in place", in_place=kept)


def unless(step, why):
    """`step`, marked done for reason `why` when there is one."""
    return replace(step, done=why) if why else step


@dataclass(frozen=True)
class Api:
    """A step done once from this machine through the API server with admin.conf."""

    name: str
    what: str
    done: str = ""


def q(value):
    """`value` as one shell word: the one quoting function for every value that enters a host script."""
    return shlex.quote(str(value))


def command(name, *argv, guard="", after=(), timeout=DEFAULT_TIMEOUT, ok_codes=(0,)):
    """A Command running `argv`, each item quoted. Secrets never go on a command line: use `stdin`."""
    if any(isinstance(a, Secret) for a in argv):
        raise TypeError(f"step {name}: a secret may not be a command-line argument; give it on stdin")
    return Command(name, " ".join(q(a) for a in argv), guard=guard, after=after, timeout=timeout,
                   ok_codes=ok_codes)
