"""One session per host-touching task: the state dir's lock, the log, the SSH connections, the pool, the API
connection and the console's voice, opened once and closed once, whatever workflow runs over it."""

import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from kubefab import inventory, plan, state
from kubefab.api import apisteps
from kubefab.errors import KubefabError
from kubefab.pki import token
from kubefab.remote import ssh
from kubefab.remote.runner import DEFAULT_WORKERS, Runner
from kubefab.run import lock, logs


@dataclass(frozen=True)
class Options:
    only: tuple = ()
    skip: tuple = ()
    hosts: tuple = ()
    ignore: tuple = ()
    workers: int = DEFAULT_WORKERS
    batch: int = 0              # workers joined at once; 0: the inventory's worker_batch_size
    max_failed: int = 0         # workers that may fail to join before the run stops
    yes: bool = False
    verbose: bool = False
    quiet: bool = False
    dry_run: bool = False       # gather facts, print the plan, change nothing


@dataclass
class Session:
    """What a task holds while it works on hosts; `say` speaks to the user (and the log)."""

    inv: object
    options: Options
    console: object
    ask: object                 # ask(question): returns when the user agreed, else raises KubefabError
    log: logging.Logger
    bundle: object = None       # plan.Bundle, once the lock is held
    ssh: object = None          # ssh.Hosts
    runner: Runner = None
    api: apisteps.ApiSteps = None
    start: float = 0.0
    _last_progress: tuple = None

    def say(self, text, shown=False):
        """Tell the user; `shown` text appears even under --quiet (summaries, problems)."""
        self.log.log(logging.WARNING if shown else logging.INFO, text)

    def progress(self, phase, done, failed, total, seconds):
        if self.options.quiet:
            return
        line = f"{phase}: {done}/{total} hosts done, {failed} failed, {seconds:.1f} s"
        finished = done == total
        if finished and self._last_progress == (phase, done):
            return
        self._last_progress = (phase, done)
        if getattr(self.console, "isatty", lambda: False)():
            self.console.write(f"\r{line}{chr(10) if finished else ''}")
            self.console.flush()
        elif finished:
            self.log.info(line)


@contextmanager
def opened(inv, options, console=None, ask=None, prepare=True, bundle=None):
    """The session of one task on `inv`: the lock held, the local bundle prepared (unless not `prepare`; by
    `bundle`, inv -> plan.Bundle, when given, else plan.prepare), connections closed after."""
    if options.workers < 1:
        raise KubefabError(f"--workers {options.workers}: at least one host must be worked on at a time")
    if options.max_failed < 0:
        raise KubefabError(f"--max-failed {options.max_failed}: give how many workers may fail, 0 or more")
    state.check(inv)      # before the log and the lock are opened in it
    hosts = inv.select(options.hosts)
    inventory.check_identity_files(inv, hosts + tuple(h for h in inv.control_planes if h not in hosts))
    console = console or sys.stdout
    log = logs.setup(inv.state_dir, options.verbose, options.quiet, console)
    s = Session(inv, options, console, ask or _ask, log, start=time.monotonic())
    logs.mask(*(ssh.sudo_password(h) for h in hosts))
    if any(h.ssh.known_hosts == "off" for h in hosts):
        log.warning("warning: host keys are not checked (known_hosts = 'off'): anyone on the path can pose as "
                    "these hosts")
    with lock.held(inv.state_dir, log):
        if prepare:
            s.bundle = (bundle or plan.prepare)(inv)
            logs.mask(token.bootstrap_token(inv))
        s.ssh, s.runner = ssh.Hosts(), Runner(options.workers, s.progress)
        s.api = apisteps.ApiSteps(inv, s.ssh, log, stop=s.runner.stopping)
        try:
            yield s
        finally:
            s.runner.close()
            s.ssh.close()


def _ask(question):
    """Ask on a terminal; without one, refuse rather than wait for an answer that cannot come."""
    if not sys.stdin.isatty():
        raise KubefabError("this changes hosts and asks first, but there is no terminal to ask on — "
                           "pass --yes to go ahead")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise KubefabError("stopped: nothing was changed")
