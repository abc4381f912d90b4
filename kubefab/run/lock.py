"""One run at a time per cluster: an exclusive lock on a file in the state dir that names its holder.

The lock is an flock, so the kernel drops it when the holding process dies: a lock file left by a
dead process is stale by construction and the next run takes it over, saying whose it was.
"""

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager

from kubefab.errors import KubefabError

NAME = "run.lock"


def _holder(text):
    try:
        h = json.loads(text)
        return f"pid {h['pid']} on {h['host']}, started {h['started']}", h
    except (ValueError, KeyError, TypeError):
        return "an unknown process", {}


@contextmanager
def held(state_dir, log=None):
    """Hold the run lock of `state_dir` for the block; KubefabError naming the holder when it is taken."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who, _ = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
            raise KubefabError(f"another kubefab run holds {path}: {who} — wait for it to end") from None
        previous = os.pread(fd, 4096, 0).decode(errors="replace")
        if previous.strip() and log:
            log.warning("took over the stale lock %s of %s (that process is gone)", path, _holder(previous)[0])
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode() + b"\n", 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
