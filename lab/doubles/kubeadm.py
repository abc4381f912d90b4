"""kubeadm double: init, join, reset, token, config images, config validate, version,
certs check-expiration, upgrade plan|apply|node — kubeadm's flags, phases, checks and error wording
(see README.md)."""

import sys

from . import flags as flagparse
from .certs import PhaseError
from .commands import check_expiration, config_cmd, reset, token, version_cmd
from .hostfs import DoubleError, log
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


# `kubeadm init phase <phase> <sub-phase>`: the phases with sub-commands, and the flags each sub-phase takes
# (cmd/kubeadm/app/cmd/phases/init/controlplane.go getControlPlanePhaseFlags, uploadconfig.go
# getUploadConfigPhaseFlags). A phase with sub-phases run on its own prints its help (workflow/runner.go).
_CONTROL_PLANE = {"config", "cert-dir", "kubernetes-version", "image-repository", "patches", "dry-run"}
_APISERVER = {"apiserver-advertise-address", "control-plane-endpoint", "apiserver-bind-port", "apiserver-extra-args",
              "feature-gates", "service-cidr"}
_CONTROLLER_MANAGER = {"controller-manager-extra-args", "pod-network-cidr"}
_UPLOAD_CONFIG = {"config", "kubeconfig", "dry-run"}
SUBPHASES = {
    "control-plane": {
        "all": ("Generate all static Pod manifest files",
                _CONTROL_PLANE | _APISERVER | _CONTROLLER_MANAGER | {"scheduler-extra-args"}),
        "apiserver": ("Generates the kube-apiserver static Pod manifest", _CONTROL_PLANE | _APISERVER),
        "controller-manager": ("Generates the kube-controller-manager static Pod manifest",
                               _CONTROL_PLANE | _CONTROLLER_MANAGER),
        "scheduler": ("Generates the kube-scheduler static Pod manifest", _CONTROL_PLANE | {"scheduler-extra-args"}),
    },
    "upload-config": {
        "all": ("Upload all configuration to a config map", _UPLOAD_CONFIG),
        "kubeadm": ("Upload the kubeadm ClusterConfiguration to a ConfigMap", _UPLOAD_CONFIG),
        "kubelet": ("Upload the kubelet component config to a ConfigMap", _UPLOAD_CONFIG),
    },
}
PHASE_TITLES = {"control-plane": "Generate all static Pod manifest files necessary to establish the control plane",
                "upload-config": "Upload the kubeadm and kubelet configuration to a ConfigMap"}
# real flags of those sub-phases that the double does not implement: refused, never silently ignored
NOT_IMPLEMENTED = {"patches", "dry-run", "feature-gates", "apiserver-extra-args", "controller-manager-extra-args",
                   "scheduler-extra-args"}
WITH_CONFIG = {"config", "kubeconfig", "dry-run", "patches", "v", "rootfs"}


def check_flags(cmd, flags):
    """cobra's `unknown flag` error, so a mistyped flag in kubefab fails here as on a real node."""
    for name in flags:
        if name not in KNOWN_FLAGS.get(cmd, set()) | COMMON_FLAGS:
            raise DoubleError(f"unknown flag: --{name}" if len(name) > 1 else
                              f"unknown shorthand flag: '{name}' in -{name}")


def sub_phase(phase, args, flags):
    """`kubeadm init phase <phase> [<sub-phase>]` for a phase with sub-commands: its help without one."""
    subs = SUBPHASES[phase]
    if not args:
        listed = "\n".join(f"  {name:<19}{title}" for name, (title, _) in subs.items())
        log(f"This command is not meant to be run on its own. See list of available subcommands.\n\nUsage:\n"
            f"  kubeadm init phase {phase} [flags]\n  kubeadm init phase {phase} [command]\n\n"
            f"Available Commands:\n{listed}\n")
        return None
    if args[0] not in subs:
        raise DoubleError(f"unknown command \"{args[0]}\" for \"kubeadm init phase {phase}\"")
    if len(args) > 1:
        raise DoubleError(f"unknown command \"{args[1]}\" for \"kubeadm init phase {phase} {args[0]}\"")
    allowed = subs[args[0]][1]
    for name in flags:
        if name not in allowed | COMMON_FLAGS:
            raise DoubleError(f"unknown flag: --{name}")
    mixed = sorted(n for n in flags if n not in WITH_CONFIG | COMMON_FLAGS)
    if "config" in flags and mixed:
        raise DoubleError(f"can not mix '--config' with arguments {mixed}")
    refused = sorted(NOT_IMPLEMENTED & set(flags))
    if refused:
        raise DoubleError(f"kubeadm double: --{refused[0]} of `init phase {phase}` is not implemented")
    return Init(flags).run(only=f"{phase}/{args[0]}")


def dispatch(argv):
    flags, args = flagparse.parse(argv, BOOLEANS)
    if not args:
        raise DoubleError("kubeadm double: a subcommand is required (init, join, reset, token, config, version, "
                          "certs, upgrade)")
    cmd, rest = args[0], args[1:]
    if cmd == "init" and rest[:1] == ["phase"] and len(rest) > 1 and rest[1] in SUBPHASES:
        return sub_phase(rest[1], rest[2:], flags)      # each sub-phase has its own flags
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
