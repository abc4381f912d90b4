"""`[cluster.ha]` keepalived's load balancers as control planes leave and join: one host's go, the others follow.

A host that leaves the cluster (node.remove, cluster.reset) stops keepalived first (its last advertisement hands
the VIP to the next control plane at once) and haproxy after it; both stay disabled, and the configuration kubefab
wrote for them goes. When a control plane leaves (node.remove) or joins (node.join), each control plane that stays
gets haproxy.cfg and keepalived.conf rendered over the new set of control planes (as `cluster.up` renders them once
`<state>/removed.json` has caught up), checked by haproxy and keepalived themselves, written only when they differ
and then reloaded, not restarted: a reload keeps the VIP where it is, a restart would hand it over. A joining
control plane is in the others' unicast peers before its own keepalived starts, so the VIP holder's advertisements
reach it and it stays a backup: never two holders.
"""

from kubefab import paths
from kubefab.plan import render
from kubefab.secret import Secret
from kubefab.state import removal
from kubefab.steps import UNCHANGED_EXIT, Command, q

SERVICES = ("keepalived", "haproxy")    # in the order they stop: the VIP leaves before the balancer it fronts
# the configs kubefab renders for them, each opening with MARK (a file written there since by someone else is
# kept), and the file naming keepalived's interface, kubefab's by its name
RENDERED = (paths.HAPROXY_CONFIG, paths.KEEPALIVED_CONFIG)
MARK = "# kubefab:"


def applies(inv, host):
    """True when `host` is a control plane whose VIP keepalived and haproxy hold."""
    return bool(inv.ha) and inv.ha.mode == "keepalived" and host.is_control_plane


def stays(inv, host):
    """True when `host` is such a control plane and node.remove has not taken it out: its balancers run."""
    return applies(inv, host) and host.name not in removal.read(inv)


def down():
    """On a host that leaves: keepalived, then haproxy, stopped and disabled, then kubefab's configs for them
    removed; each step unchanged when it was done already."""
    stopping = "changed=\n" + "".join(
        f"if systemctl is-active -q {s} || systemctl is-enabled -q {s} 2>/dev/null; then "
        f"systemctl disable -q --now {s} || exit 1; echo 'stopped {s}'; changed=1; fi\n" for s in SERVICES
    ) + f'[ -n "$changed" ] || exit {UNCHANGED_EXIT}'
    rendered = " ".join(q(p) for p in RENDERED)
    interface = q(paths.KEEPALIVED_INTERFACE)
    removing = (f"changed=\nfor f in {rendered}; do\n"
                f'  case $(head -n 1 "$f" 2>/dev/null) in {q(MARK)}*) rm -f "$f" && echo "removed $f" && changed=1 ;; '
                "esac\ndone\n"
                f"if [ -e {interface} ]; then rm -f {interface} && echo {q(f'removed {paths.KEEPALIVED_INTERFACE}')} "
                f"&& changed=1; fi\n"
                f'[ -n "$changed" ] || exit {UNCHANGED_EXIT}')
    return (Command("stop keepalived and haproxy", stopping,
                    label="stop and disable keepalived (the VIP goes to another control plane), then haproxy"),
            Command("remove keepalived's and haproxy's configs", removing,
                    label=f"remove kubefab's {', '.join((*RENDERED, paths.KEEPALIVED_INTERFACE))}"))


def follow(inv, host, gone=(), joining=()):
    """On control plane `host`, which stays: haproxy.cfg and keepalived.conf over the control planes less `gone`
    and with `joining` (host names), each reloaded when it changed."""
    names = ", ".join((*gone, *joining))
    way = "out of" if gone else "into"
    servers = f"{names}'s API server" if len((*gone, *joining)) == 1 else f"the API servers of {names}"
    name = "without the removed host" if gone else "with the joining hosts"
    return (_replace("haproxy", paths.HAPROXY_CONFIG, 0o644, render.haproxy(inv, host, gone, joining),
                     'haproxy -c -q -f "$t"', f"haproxy {name}", f"{servers} {way} haproxy's backends"),
            _replace("keepalived", paths.KEEPALIVED_CONFIG, 0o600,
                     Secret(render.keepalived(inv, host, gone, joining)), 'keepalived -t -f "$t"',
                     f"keepalived {name}", f"{names} {way} keepalived's unicast peers"))


def _replace(service, path, mode, text, check, name, what):
    """`text` (given on stdin, a Secret for keepalived.conf: it holds the VRRP password) checked by `check` on a
    temp file beside `path`, moved over it when it differs, then `service` reloaded."""
    f = q(path)
    body = (f't=$(mktemp {f}.kubefab.XXXXXX) || exit 1; trap \'rm -f "$t"\' EXIT; cat > "$t" || exit 1; '
            f'if cmp -s "$t" {f}; then exit {UNCHANGED_EXIT}; fi; '
            f'{check} || exit 1; chmod {mode:o} "$t" && mv -f "$t" {f} && systemctl reload {service} && '
            f"echo {q(f'{path} rewritten, {service} reloaded')}")
    return Command(name, body, stdin=text,
                   label=f"{what}: {path} rewritten when it differs, {service} reloaded (not restarted)")
