"""What every kubefab task shares: loading the inventory, option help, turning a user's mistake into exit 2."""

import sys
from contextlib import contextmanager

from invoke import Exit

from kubefab import inventory
from kubefab.digits import whole
from kubefab.errors import KubefabError
from kubefab.plan import renewal

INVENTORY_HELP = "inventory file (default: inventory.toml, or kubefab.inventory in invoke.yaml)"
STATE_HELP = "state directory holding the PKI and rendered files (default: .kubefab/<cluster> next to the inventory)"


@contextmanager
def user_errors(code=2):
    """A user's mistake ends the task with its message and exit code 2 (or `code`), never a traceback."""
    try:
        yield
    except KubefabError as e:
        raise Exit(f"error: {e}", code=code)


def load(c, inventory_path, state_dir):
    """The inventory; the state dir's expiry warnings (leaves within 30 days, CAs within a year) on stderr."""
    cfg = c.config.kubefab
    inv = inventory.load(inventory_path or cfg.inventory, state_dir or cfg.state_dir)
    for warning in renewal.warnings(inv):
        print(f"warning: {warning}", file=sys.stderr)
    return inv


def number(value, option, default, least=0, code=2):
    """Option `--option`'s whole number, `default` when not given; else the task ends with exit `code`. Number
    options default to None so that invoke hands over the text: its own int() takes '٢' for 2 and ends 'x' in a
    traceback."""
    if value is None:
        return default
    found = whole(value, most=9)
    if found is None or found < least:
        raise Exit(f"error: --{option} {value!r}: give a whole number of at least {least} in digits 0-9", code=code)
    return found


def names(value):
    """Repeated and comma-separated option values as one tuple of names."""
    return tuple(n for part in value or () for n in part.split(",") if n)
