"""`invoke state.*`: the state dir's CAs, keys, kubeconfigs, token and record as one sealed file, and back."""

from invoke import Exit, task

from kubefab.state import archive

from .common import INVENTORY_HELP, STATE_HELP, load, user_errors

PASSPHRASE_HELP = (f"the environment variable holding the passphrase (default {archive.PASSPHRASE_ENV}); the "
                   "passphrase itself is never an option")


@task(help={"inventory": INVENTORY_HELP, "state-dir": STATE_HELP, "output": "the file to write (mode 0600)",
            "passphrase-env": PASSPHRASE_HELP})
def export(c, output=None, inventory=None, state_dir=None, passphrase_env=archive.PASSPHRASE_ENV):
    """Seal the state dir's CAs, keys, kubeconfigs, token and record into one file, encrypted with a passphrase."""
    with user_errors():
        if not output:
            raise Exit("error: --output FILE: name the file to write", code=2)
        inv = load(c, inventory, state_dir)
        kept = archive.export(inv, output, archive.passphrase(passphrase_env, new=True))
        print(f"{output}: {len(kept)} files of {inv.state_dir}, sealed with the passphrase in ${passphrase_env}")


@task(name="import", positional=["source"], help={
    "source": "the file state.export wrote", "inventory": INVENTORY_HELP, "state-dir": STATE_HELP,
    "passphrase-env": PASSPHRASE_HELP})
def import_(c, source, inventory=None, state_dir=None, passphrase_env=archive.PASSPHRASE_ENV):
    """Unseal a state.export file into the state dir; refused when the state dir holds another CA."""
    with user_errors():
        inv = load(c, inventory, state_dir)
        written = archive.import_(inv, source, archive.passphrase(passphrase_env))
        print(f"{inv.state_dir}: {len(written)} files written from {source}; `invoke cluster.plan` renders the "
              "hosts' files again")
