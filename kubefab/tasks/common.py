"""What every kubefab task shares: loading the inventory, option help, turning a user's mistake into exit 2."""

from contextlib import contextmanager

from invoke import Exit

from kubefab import inventory
from kubefab.errors import KubefabError

INVENTORY_HELP = "inventory file (default: inventory.toml, or kubefab.inventory in invoke.yaml)"
STATE_HELP = "state directory holding the PKI and rendered files (default: .kubefab/<cluster> next to the inventory)"


@contextmanager
def user_errors():
    """A user's mistake ends the task with its message and exit code 2, never a traceback."""
    try:
        yield
    except KubefabError as e:
        raise Exit(f"error: {e}", code=2)


def load(c, inventory_path, state_dir):
    cfg = c.config.kubefab
    return inventory.load(inventory_path or cfg.inventory, state_dir or cfg.state_dir)


def names(value):
    """Repeated and comma-separated option values as one tuple of names."""
    return tuple(n for part in value or () for n in part.split(",") if n)
