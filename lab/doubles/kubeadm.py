"""kubeadm double: init, join, reset, token, config images, config validate, version,
certs check-expiration, upgrade plan|apply|node — kubeadm's flags, phases, checks and error wording
(see README.md)."""

import sys

from . import flags as flagparse
from .certs import PhaseError
from .commands import check_expiration, config_cmd, reset, token, version_cmd
from .hostfs import DoubleError
from .init import INIT_FLAGS_EXCLUSIVE_WITH_CONFIG, Init
from .join import JOIN_FLAGS_EXCLUSIVE_WITH_CONFIG, Join
from .kubeclient import ApiStatus
from .upgrade import upgrade

BOOLEANS = {"force", "f", "print-join-command", "control-plane", "skip-token-print", "upload-certs",
            "discovery-token-unsafe-skip-ca-verification", "cleanup-tmp-dir", "dry-run", "experimental-upload-certs",
            "yes", "y", "allow-experimental-upgrades", "allow-release-candidate-upgrades", "etcd-upgrade",
            "certificate-renewal", "print-config"}


COMMON_FLAGS = {"v", "rootfs", "help"}


KNOWN_FLAGS = {
    "init": {"config", "skip-phases", "ignore-preflight-errors", "dry-run", "upload-certs", "skip-token-print",
             "certificate-key", "patches", "feature-gates", *INIT_FLAGS_EXCLUSIVE_WITH_CONFIG},
    "join": {"config", "skip-phases", "ignore-preflight-errors", "dry-run", "certificate-key", "patches",
             "discovery-file", *JOIN_FLAGS_EXCLUSIVE_WITH_CONFIG},
    "reset": {"force", "f", "config", "cert-dir", "cleanup-tmp-dir", "skip-phases", "cri-socket", "dry-run",
              "ignore-preflight-errors", "kubeconfig"},
    "token": {"kubeconfig", "ttl", "print-join-command", "usages", "groups", "description", "certificate-key",
              "dry-run", "config"},
    "config": {"config", "kubernetes-version", "image-repository", "kubeconfig", "cri-socket", "feature-gates",
               "allow-experimental-api"},
    "version": {"output", "o"},
    "certs": {"cert-dir", "config", "kubeconfig"},
    "upgrade": {"config", "kubeconfig", "dry-run", "yes", "y", "force", "f", "allow-experimental-upgrades",
                "allow-release-candidate-upgrades", "etcd-upgrade", "certificate-renewal", "ignore-preflight-errors",
                "skip-phases", "patches", "print-config", "feature-gates", "output", "o"},
}


def check_flags(cmd, flags):
    """cobra's `unknown flag` error, so a mistyped flag in kubefab fails here as on a real node."""
    for name in flags:
        if name not in KNOWN_FLAGS.get(cmd, set()) | COMMON_FLAGS:
            raise DoubleError(f"unknown flag: --{name}" if len(name) > 1 else
                              f"unknown shorthand flag: '{name}' in -{name}")


def dispatch(argv):
    flags, args = flagparse.parse(argv, BOOLEANS)
    if not args:
        raise DoubleError("kubeadm double: a subcommand is required (init, join, reset, token, config, version, "
                          "certs, upgrade)")
    cmd, rest = args[0], args[1:]
    check_flags(cmd, flags)
    if cmd == "version":
        return version_cmd(flags)
    if cmd == "init":
        if rest[:1] == ["phase"]:
            name = rest[1] if len(rest) > 1 else ""
            if name.split("/")[0] not in Init.PHASES:
                raise DoubleError(f"unknown command \"{name}\" for \"kubeadm init phase\"; phases: "
                                  + ", ".join(Init.PHASES))
            return Init(flags).run(only=name)
        return Init(flags).run()
    if cmd == "join":
        return Join(flags, rest).run()
    if cmd == "reset":
        return reset(flags)
    if cmd == "token":
        return token(flags, rest)
    if cmd == "config":
        return config_cmd(flags, rest)
    if cmd == "upgrade":
        return upgrade(flags, rest)
    if cmd == "certs" and rest[:1] == ["check-expiration"]:
        return check_expiration(flags)
    raise DoubleError(f"unknown command \"{cmd}\" for \"kubeadm\"")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        dispatch(argv)
    except PhaseError as e:
        print(f"{e}\nTo see the stack trace of this error execute with --v=5 or higher", file=sys.stderr, flush=True)
        return 1
    except (DoubleError, ApiStatus) as e:
        print(f"{e}\nTo see the stack trace of this error execute with --v=5 or higher", file=sys.stderr, flush=True)
        return 1
    return 0
