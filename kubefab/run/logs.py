"""Logging: a rotating log file in the state dir holds every remote step; the console shows what people need.

Secrets are masked in both: every value registered with `mask()` (the bootstrap token, sudo passwords)
is replaced by *** in each record before any handler writes it.
"""

import logging
import sys
import threading

from concurrent_log_handler import ConcurrentRotatingFileHandler

from kubefab.secret import MASK, Secret

NAME = "kubefab"
FILE = "kubefab.log"
_secrets = set()
_lock = threading.Lock()


def mask(*values):
    """Never let these values (str or Secret) reach the console or the log."""
    with _lock:
        _secrets.update(v.reveal() if isinstance(v, Secret) else v for v in values if v)


def scrub(text):
    for value in sorted(_secrets, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


class _Mask(logging.Filter):
    def filter(self, record):
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup(state_dir, verbose=False, quiet=False, console=None):
    """The 'kubefab' logger: DEBUG and up to <state>/kubefab.log (rotated, 0600), the console per verbosity."""
    log = logging.getLogger(NAME)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    file = ConcurrentRotatingFileHandler(str(state_dir / FILE), maxBytes=10 * 2 ** 20, backupCount=5,
                                         chmod=0o600)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    file.setLevel(logging.DEBUG)
    out = logging.StreamHandler(console or sys.stdout)
    out.setFormatter(logging.Formatter("%(message)s"))
    out.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    for h in (file, out):
        h.addFilter(_Mask())
        log.addHandler(h)
    return log
