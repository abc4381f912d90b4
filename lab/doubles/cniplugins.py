"""Stand-in CNI plugin executables: what the CNI plugins release (containernetworking/plugins, the
`cni/` entries of kubefab's offline source or the kubernetes-cni package) and the CNI images' install
steps put in /opt/cni/bin. Each answers the CNI `VERSION` command as a real plugin does and refuses
every other command, since the doubles give no pod a network."""

import os
from pathlib import Path

# containernetworking/plugins v1.x release archive (cni-plugins-linux-amd64-v1.*.tgz)
RELEASE = ("bandwidth", "bridge", "dhcp", "dummy", "firewall", "host-device", "host-local", "ipvlan", "loopback",
           "macvlan", "portmap", "ptp", "sbr", "static", "tap", "tuning", "vlan", "vrf")

STAND_IN = """#!/bin/sh
# CNI plugin stand-in ({name}) written by the kubefab lab doubles: no pod networking happens here.
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{{"cniVersion":"1.0.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0"]}}'
  exit 0
fi
echo '{{"cniVersion":"1.0.0","code":999,"msg":"{name}: the kubefab lab doubles run no pod networks"}}'
exit 1
"""


def stand_in(name):
    """The bytes of the stand-in executable for plugin `name`."""
    return STAND_IN.format(name=name).encode()


def install_release(target):
    """Write the release's plugins into `target` (e.g. an offline source's cni/ directory), mode 0755."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in RELEASE:
        path = target / name
        path.write_bytes(stand_in(name))
        os.chmod(path, 0o755)
    return target
