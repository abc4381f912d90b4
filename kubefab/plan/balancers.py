"""node.remove of a control plane behind `[cluster.ha]` keepalived: the load balancers let it go.

On the host that goes, keepalived stops first (its last advertisement hands the VIP to the next control plane at
once) and haproxy after it; both stay disabled. On each control plane that stays, haproxy.cfg and keepalived.conf
are rendered without it (as `cluster.up` renders them once `<state>/removed.json` records it), checked by haproxy
and keepalived themselves, written only when they differ and then reloaded, not restarted: a reload keeps the VIP
where it is, a restart would hand it over.
"""

from kubefab import paths
from kubefab.plan import render
from kubefab.secret import Secret
from kubefab.steps import UNCHANGED_EXIT, Command, q

SERVICES = ("keepalived", "haproxy")    # in the order they stop: the VIP leaves before the balancer it fronts


def applies(inv, host):
    """True when `host` is a control plane whose VIP keepalived and haproxy hold."""
    return bool(inv.ha) and inv.ha.mode == "keepalived" and host.is_control_plane


def stop():
    """On the host that goes: keepalived, then haproxy, stopped and disabled (unchanged when neither runs)."""
    body = "changed=\n" + "".join(
        f"if systemctl is-active -q {s} || systemctl is-enabled -q {s} 2>/dev/null; then "
        f"systemctl disable -q --now {s} || exit 1; echo 'stopped {s}'; changed=1; fi\n" for s in SERVICES
    ) + f'[ -n "$changed" ] || exit {UNCHANGED_EXIT}'
    return Command("stop keepalived and haproxy", body,
                   label="stop and disable keepalived (the VIP goes to another control plane), then haproxy")


def forget(inv, host, gone):
    """On control plane `host`, which stays: haproxy.cfg and keepalived.conf without `gone`, each reloaded when
    it changed."""
    return (_replace("haproxy", paths.HAPROXY_CONFIG, 0o644, render.haproxy(inv, host, (gone,)),
                     'haproxy -c -q -f "$t"', f"{gone}'s API server out of haproxy's backends"),
            _replace("keepalived", paths.KEEPALIVED_CONFIG, 0o600, Secret(render.keepalived(inv, host, (gone,))),
                     'keepalived -t -f "$t"',
                     f"{gone} out of keepalived's unicast peers"))


def _replace(service, path, mode, text, check, what):
    """`text` (given on stdin, a Secret for keepalived.conf: it holds the VRRP password) checked by `check` on a temp file beside
    `path`, moved over it when it differs, then `service` reloaded."""
    f = q(path)
    body = (f't=$(mktemp {f}.kubefab.XXXXXX) || exit 1; trap \'rm -f "$t"\' EXIT; cat > "$t" || exit 1; '
            f'if cmp -s "$t" {f}; then exit {UNCHANGED_EXIT}; fi; '
            f'{check} || exit 1; chmod {mode:o} "$t" && mv -f "$t" {f} && systemctl reload {service} && '
            f"echo {q(f'{path} rewritten, {service} reloaded')}")
    return Command(f"{service} without the removed host", body, stdin=text,
                   label=f"{what}: {path} rewritten when it differs, {service} reloaded (not restarted)")
