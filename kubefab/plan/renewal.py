"""Day-2 certificate renewal (`invoke pki.renew`): what is due, its reissue from the same CAs, the static pods that
read the renewed files and how each is restarted, and the expiry warnings every task gives offline.

A static pod is restarted the way kubeadm's documentation says (its manifest moved out of the kubelet's
manifest directory until the component stops listening, or for 20 s when it did not listen, then back), and only
when one of the files it reads is newer than its manifest. After the restart the manifest takes the newest file's
mtime (`touch -r`, the local clock's time a push carries): a re-run after Ctrl-C finds what is still to restart,
and a second run restarts nothing.
"""

import dataclasses
import ssl
from dataclasses import dataclass

from kubefab import net, paths, pki
from kubefab.errors import KubefabError
from kubefab.inventory import validate
from kubefab.pki import kubeconfig, x509
from kubefab.state import bundle
from kubefab.steps import Command, q

LEAF_WARN_DAYS, CA_WARN_DAYS = pki.WARN_DAYS, 365
PID_OF = r"s/.*pid=\([0-9]*\).*/\1/p"       # sed: the PID in ss -p's users:(("name",pid=N,fd=M))
STOP_SECONDS = 90           # a component's graceful termination (kube-apiserver's is 30 s) and then some
# a component that does not listen (crash-looping, or waiting for etcd) shows no stop: its manifest stays out for the
# kubelet's fileCheckFrequency, as kubeadm's documentation says, or the kubelet may never see it go
UNSEEN_SECONDS = 20
ASIDE = f"{paths.KUBERNETES}/kubefab/restarting"     # outside the manifest dir, on the same file system


@dataclass(frozen=True)
class Component:
    """A static pod kubeadm runs on each control plane: its port and the pushed files it reads."""

    name: str
    port: int
    files: tuple            # on-host paths

    @property
    def manifest(self):
        return paths.manifest(self.name)


def _pki(*names):
    return tuple(paths.in_pki(n) for n in names)


COMPONENTS = (
    Component("etcd", 2379, _pki("etcd/ca.crt", "etcd/server.crt", "etcd/server.key", "etcd/peer.crt",
                                 "etcd/peer.key")),
    Component("kube-apiserver", net.API_PORT, _pki(
        "ca.crt", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
        "front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key", "etcd/ca.crt",
        "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "sa.pub", "sa.key")),
    Component("kube-controller-manager", 10257, (paths.kubeconfig("controller-manager.conf"),
                                                 *_pki("ca.crt", "ca.key", "sa.key", "front-proxy-ca.crt"))),
    Component("kube-scheduler", 10259, (paths.kubeconfig("scheduler.conf"),)),
)


@dataclass(frozen=True)
class Due:
    """What a renewal reissues: leaf names of pki.CERTS and kubeconfig files."""

    certs: tuple
    kubeconfigs: tuple

    def __bool__(self):
        return bool(self.certs or self.kubeconfigs)

    def paths_on_host(self):
        """The on-host paths this renewal rewrites."""
        return {paths.in_pki(f"{n}.{ext}") for n in self.certs for ext in ("crt", "key")} | {
            paths.kubeconfig(f) for f in self.kubeconfigs}


def due(inv, days, add_san=()):
    """What is due within `days` days (everything with 0); the apiserver certificate too when `add_san` adds a
    name it lacks."""
    certs = pki.due(inv, days)
    if add_san and "apiserver" not in certs:
        certs += ("apiserver",)
    return Due(certs, kubeconfig.due(inv, days))


def with_sans(inv, names):
    """`inv` with `names` added to the apiserver's cert_sans (none removed); KubefabError for a malformed name."""
    bad = [n for n in names if not validate.is_san(n)]
    if bad:
        raise KubefabError(f"--add-san {bad[0]!r}: give a lowercase DNS name or an IP address")
    sans = inv.cluster.apiserver.cert_sans
    added = tuple(n for n in dict.fromkeys(names) if n not in sans)
    apiserver = dataclasses.replace(inv.cluster.apiserver, cert_sans=sans + added)
    return dataclasses.replace(inv, cluster=dataclasses.replace(inv.cluster, apiserver=apiserver))


def san_hint(inv):
    """The inventory line that keeps the apiserver's SANs at the next plan."""
    names = ", ".join(f'"{n}"' for n in inv.cluster.apiserver.cert_sans)
    return f"add to {inv.path.name} under [cluster.apiserver]: cert_sans = [{names}] (else a later reissue drops them)"


def reissue(inv, what):
    """Reissue `what` (a Due) from the same CAs; the actions of pki.ensure and kubeconfig.ensure that changed."""
    actions = pki.ensure(inv, renew=what.certs) + kubeconfig.ensure(inv, renew=what.kubeconfigs)
    return tuple(a for a in actions if a.what != pki.KEPT)


def restart(component, renewing=frozenset()):
    """The Command restarting `component` when one of its files is newer than its manifest (resuming one
    interrupted mid-way); the plan's label names the files this run renews."""
    m, a = q(component.manifest), q(aside(component))
    files = " ".join(q(f) for f in component.files)
    newer = " && ".join(f"[ ! {q(f)} -nt {m} ]" for f in component.files)
    body = (f"mkdir -p {q(ASIDE)} && {{ [ -f {m} ] || mv {a} {m}; }} && {stop(component)}; "
            f"mv {a} {m} && touch -r \"$(ls -t -- {files} | head -n 1)\" {m}")
    mine = sorted(renewing & set(component.files))
    why = f"{', '.join(f.rpartition('/')[2] for f in mine)} renewed" if mine else "none of its files renewed here"
    return Command(f"restart {component.name}", body, guard=f"[ -f {m} ] && [ ! -e {a} ] && {newer}",
                   label=f"restart the {component.name} static pod if a file it reads is newer than its manifest "
                         f"({why})")


def aside(component):
    """Where `component`'s manifest waits while the kubelet stops its pod."""
    return f"{ASIDE}/{component.name}.yaml"


def stop(component):
    """Shell: `component`'s manifest moved aside (ASIDE, made first), then a wait until the kubelet stopped its pod:
    its port closed, or UNSEEN_SECONDS when it did not listen; still listening after STOP_SECONDS, the manifest is
    put back and the script exits 1. The caller puts a manifest back."""
    m, a = q(component.manifest), q(aside(component))
    listening = f"ss -Hltn {q(f'sport = :{component.port}')} | grep -q ."
    stuck = q(f"{component.name} still listens on port {component.port} after {STOP_SECONDS} s")
    return (f"if {listening}; then up=1; else up=0; fi && mv {m} {a} && i=0 && "
            f"if [ $up = 1 ]; then while {listening}; do i=$((i+1)); "
            f"if [ $i -gt {STOP_SECONDS} ]; then mv {a} {m}; echo {stuck} >&2; exit 1; fi; sleep 1; done; "
            f"else sleep {UNSEEN_SECONDS}; fi")


def listener(port):
    """Shell: the PID of the process listening on `port` (empty when none)."""
    return f"ss -Hltnp {q(f'sport = :{port}')} | sed -n {q(PID_OF)} | head -n 1"


def serving_serial(address, port=net.API_PORT, timeout=5):
    """The serial of the certificate the TLS server at address:port presents (read, not verified)."""
    return x509.view(ssl.get_server_certificate((address, port), timeout=timeout).encode()).serial


def warnings(inv):
    """Offline, from the state dir: each leaf or kubeconfig expiring within 30 days, each CA within a year."""
    if not pki.pki_dir(inv).is_dir():
        return ()
    try:
        certs = bundle.certificates(inv, LEAF_WARN_DAYS)
    except KubefabError:        # a state dir kubefab must not use: the task itself says why
        return ()
    found = []
    for cert in certs:
        is_ca = cert.file.endswith("ca.crt")        # ca.crt, front-proxy-ca.crt, etcd/ca.crt
        limit = CA_WARN_DAYS if is_ca else LEAF_WARN_DAYS
        if cert.days_left < limit:
            state = "EXPIRED" if cert.days_left < 0 else f"expires in {cert.days_left} days"
            fix = ("a CA is never renewed by kubefab: plan its replacement" if is_ca
                   else "run `invoke pki.renew --days 30`")
            found.append(f"{cert.file}: {state} ({cert.not_after:%Y-%m-%d}) — {fix}")
    return tuple(found)
