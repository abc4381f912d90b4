"""`cluster.plan --live`: what `cluster.up` would change, read from the hosts and the API server.

The plan is the one `cluster.up` runs, built from the facts as its dry run builds it (kubefab.run.execute); what it
would still do is listed by kubefab.plan.drift. Then, reading only: one more round trip to each host where a file
differs, fetching those files (never a secret one) and the pairs a step compares, for their diffs; and the
objects its Api steps would write, read as those steps compare them (the nodes' labels and taints, the pod
network's objects, kube-proxy's config), when the cluster exists. Those reads start with the run (`start`), on a
few threads of their own, so that they overlap the facts round trip instead of following it; the plan then takes the
ones it needs.
"""

import base64
import concurrent.futures as cf
import threading
from dataclasses import dataclass

from kubefab import net, paths
from kubefab.api import apisteps, apply, kubeproxy, nodes
from kubefab.components import addons, cni
from kubefab.errors import KubefabError
from kubefab.plan import drift
from kubefab.run import logs
from kubefab.steps import FAILED, OK, ApplyAddons, ApplyCni, ApplyKubeProxy, HostResult, NodeReady, q

EXIT_CHANGES = 2
FETCH_TIMEOUT = 60


@dataclass(frozen=True)
class Fetched(HostResult):
    files: dict = None          # {(host name, path): bytes}


@dataclass(frozen=True)
class Reads:
    """The API reads the plan's Api steps may need, each a Future: the Api (None when the reads could not start:
    see `start`), apply.compare's answer for the pod network's manifest (`cni`) and for each enabled add-on's (by
    name), and the nodes of one LIST (by name). Only those the plan needs are awaited, and only their errors are
    the run's."""

    api: cf.Future
    cni: cf.Future
    addons: dict
    nodes: cf.Future
    kube_proxy: cf.Future


def start(s, reached=False):
    """Reads of every object cluster.up's Api steps could write, started now on threads of their own (one per
    manifest and one for the nodes: a handful, whatever the number of hosts), so that they overlap the facts round
    trip; what the plan does not need is left to finish or fail unheard. Before the facts are in (not `reached`)
    they start only when the API server answers from here directly: reaching it through the first control plane's
    SSH connection would open a second connection to that host beside the facts' own, so then they are left undone
    (their Api None) and `report` starts them once the facts are in."""
    inv = s.inv
    api = _later(lambda: s.api.api() if reached or apisteps.reachable(*net.endpoint_parts(inv.endpoint)) else None)

    def read(what):
        return _later(lambda: what(connected) if (connected := api.result()) else None)
    return Reads(api=api,
                 cni=read(lambda a: apply.compare(a, cni.manifest(inv), inv.cluster.cni_manifest or inv.cluster.cni)),
                 addons={x.name: read(lambda a, x=x: apply.compare(a, addons.manifest(inv, x),
                                                                   f"add-on {x.name} ({x.component})"))
                         for x in addons.enabled(inv)},
                 nodes=read(lambda a: {n["metadata"]["name"]: n for n in a.get(nodes.NODES)["items"]}),
                 kube_proxy=read(lambda a: a.find(kubeproxy.CONFIGMAP)))


def _later(read):
    """A Future of read(), run on a daemon thread: a read the plan turns out not to need never holds up the exit."""
    future = cf.Future()

    def run():
        try:
            future.set_result(read())
        except BaseException as e:      # handed to whoever awaits it
            future.set_exception(e)
    threading.Thread(target=run, daemon=True, name="kubefab-live-read").start()
    return future


def report(s, p, reads=None):
    """Print what plan `p` (built from the facts) would change, to the session's console; how many changes.
    `reads`: the API reads `start` began with the run (else they start now)."""
    found = drift.changes(p)
    wanted = drift.fetched_paths(found)
    fetched = {}
    hosts = tuple(h for h in s.inv.hosts if h.name in wanted)
    for r in s.runner.phase("fetch", (hosts,), lambda host: fetch(s, host, wanted[host.name])) if hosts else ():
        if r.failed:
            raise KubefabError(f"{r.host}: the files that differ could not be read: {r.detail}")
        fetched.update(r.files)
    first = p.facts.get(s.inv.first_control_plane.name)
    unmade = first is not None and paths.manifest("kube-apiserver") not in first.kube_files   # no API server yet
    objects = () if unmade else read_objects(s.inv, found.api, lambda: _begun(s, reads))
    text = drift.text(found, fetched, objects)
    s.console.write(logs.scrub(text))
    return len(found.files) + len(found.steps) + len(objects)


def verdict(changes):
    """The run's last word on `changes` changes."""
    if not changes:
        return "no changes"
    return f"{changes} change{'s' * (changes != 1)}: `invoke cluster.up` would make {'them' if changes > 1 else 'it'}"


def fetch(s, host, files):
    """A Fetched result: the content of on-host paths `files` on `host` in one round trip (unreadable ones left out)."""
    script = (f"for p in {' '.join(q(f) for f in files)}; do\n"
              '  [ -r "$p" ] && printf "%s " "$p" && base64 -w 0 < "$p" && echo\n'
              "done\nexit 0\n")
    out = s.ssh.run(host, script.encode(), FETCH_TIMEOUT)
    if out.code:
        return HostResult(host.name, "fetch", FAILED, out.seconds, detail=out.stderr.strip()[-500:])
    found = {}
    for line in out.stdout.splitlines():
        path, _, data = line.partition(" ")
        if path in files:
            found[(host.name, path)] = base64.b64decode(data)
    return Fetched(host.name, "fetch", OK, out.seconds, files=found)


def _begun(s, reads):
    """`reads` when they began with the run, else reads begun now (the facts are in)."""
    return reads if reads is not None and reads.api.result() is not None else start(s, reached=True)


def read_objects(inv, checks, reads):
    """drift.ObjectChange of every object the Api steps `checks` would write, compared as those steps compare;
    reads() gives the Reads to take them from, and is called only when some object is compared."""
    kinds = {type(c.step) for c in checks}
    hosts = [c.host for c in checks if isinstance(c.step, NodeReady)]
    if not (hosts or kinds & {ApplyCni, ApplyAddons, ApplyKubeProxy}):
        return ()
    reads = reads()
    compared = [reads.cni] * (ApplyCni in kinds)
    if ApplyAddons in kinds:
        compared += [reads.addons[a.name] for a in addons.enabled(inv)]
    found = [drift.ObjectChange(str(a), drift.as_yaml(live and drift.projected(live, want)), drift.as_yaml(want),
                                secret=want["kind"] == "Secret")
             for future in compared for a, live, want in future.result() if a.action != apply.UNCHANGED]
    cm = reads.kube_proxy.result() if ApplyKubeProxy in kinds else None
    if cm is not None:
        have, new, _ = kubeproxy.settled(cm, inv)
        if have != new:
            found.append(drift.ObjectChange(f"ConfigMap {kubeproxy.NAMESPACE}/kube-proxy {kubeproxy.KEY}",
                                            drift.as_yaml(have), drift.as_yaml(new)))
        elif kubeproxy.pending(cm):
            found.append(drift.ObjectChange(f"DaemonSet {kubeproxy.NAMESPACE}/kube-proxy",
                                            f"# its pods started before {kubeproxy.KEY} last changed\n",
                                            "# restarted node by node (kubectl rollout restart)\n"))
    if hosts:       # one list of the nodes, not a read per host
        listed = reads.nodes.result()
        found += [change for host in hosts for change in [_node(inv, host, listed.get(host.name))] if change]
    return tuple(found)


def _node(inv, host, obj):
    if obj is None:
        return drift.ObjectChange(f"Node {host.name}", "", f"# registered by {host.name}'s kubelet when it joins\n")
    patch, _ = nodes.node_patch(obj, nodes.wanted_labels(host), nodes.wanted_taints(inv, host), host.labels)
    if not patch:
        return None
    meta, notes = patch.get("metadata") or {}, obj["metadata"].get("annotations") or {}
    recorded = {k: notes.get(k, "") for k in (nodes.APPLIED_LABELS, nodes.APPLIED_TAINTS)}
    now = {"labels": obj["metadata"].get("labels") or {}, "taints": (obj.get("spec") or {}).get("taints") or [],
           "kubefab's record": recorded}
    labels = {**now["labels"], **meta.get("labels", {})}
    then = {"labels": {k: v for k, v in labels.items() if v is not None},      # None: a label removed
            "taints": (patch.get("spec") or {}).get("taints", now["taints"]),
            "kubefab's record": {**recorded, **meta.get("annotations", {})}}
    return drift.ObjectChange(f"Node {host.name}", drift.as_yaml(now), drift.as_yaml(then))
