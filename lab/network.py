"""A lab network without hosts: namespaces on a lab bridge, for tests that run processes in them directly.

    with Network.up(3) as net:
        net.namespaces[0].exec(["ip", "addr"])

Ids, names and addresses come from the lab's own allocation (spec, state), and the record lets
`down_labs()` remove a network whose run was killed, exactly as it removes a lab.
"""

import os
import subprocess
from dataclasses import dataclass

from . import kernel, packages, spec, state
from .lab import _live, teardown


@dataclass(frozen=True)
class Namespace:
    """One network namespace of a Network, with its address on the lab bridge."""

    name: str
    address: str

    def argv(self, argv):
        """`argv` run inside this namespace."""
        return [packages.which("ip"), "netns", "exec", self.name, *argv]

    def exec(self, argv, check=True, **kw):
        return subprocess.run(self.argv(argv), check=check, **kw)


class Network:
    """Network namespaces with an address each on one lab bridge; `down()` kills what runs in them."""

    def __init__(self, record, namespaces):
        self.state = record
        self.id = record.lab_id
        self.namespaces = namespaces

    @classmethod
    def up(cls, count, root=None, forward=True):
        """`count` namespaces, each with lo up, eth0 on the lab bridge and, with forward, ip_forward=1."""
        lab_id, lab_dir = state.allocate(state.root_dir(root))
        hosts = spec.hosts(lab_id, [f"n{i}" for i in range(1, count + 1)], {})
        record = state.State(lab_id, str(lab_dir), "network", spec.bridge_name(lab_id), [h.netns for h in hosts],
                             [h.veth for h in hosts], os.getpid())
        record.save()
        net = cls(record, tuple(Namespace(h.netns, h.address) for h in hosts))
        try:
            kernel.network_up(record.bridge, f"{spec.subnet(lab_id)[1]}/{spec.LAB_PREFIX}", hosts)
            for ns in net.namespaces:
                ns.exec(["ip", "-batch", "-"], text=True, input="link set lo up\nlink set eth0 up\n"
                        f"addr add {ns.address}/{spec.LAB_PREFIX} dev eth0\n")
                if forward:
                    ns.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        except BaseException:
            net.down()
            raise
        _live.add(net)
        return net

    def down(self):
        """Kill every process in the namespaces (only tests start them there), then remove the network."""
        _live.discard(self)
        teardown(self.state)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()
