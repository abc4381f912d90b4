"""`cluster.plan --live`: what `cluster.up` would change, read from the hosts and the API server.

The plan is the one `cluster.up` runs, built from the facts as its dry run builds it (kubefab.run.execute); what it
would still do is listed by kubefab.plan.drift. Then, reading only: one more round trip to each host where a file
differs, fetching those files (never a secret one) and the pairs a step compares, for their diffs; and the
objects its Api steps would write, read as those steps compare them (the nodes' labels and taints, the pod
network's objects, kube-proxy's config), when the cluster exists.
"""

import base64
from dataclasses import dataclass

from kubefab import paths
from kubefab.api import apply, kubeproxy, nodes
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


def report(s, p):
    """Print what plan `p` (built from the facts) would change, to the session's console; how many changes."""
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
    objects = () if unmade else read_objects(s, found.api)
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


def read_objects(s, checks):
    """drift.ObjectChange of every object the Api steps `checks` would write, compared as those steps compare."""
    kinds = {type(c.step) for c in checks}
    found = []
    manifests = [(cni.manifest(s.inv), s.inv.cluster.cni_manifest or s.inv.cluster.cni)] * (ApplyCni in kinds)
    if ApplyAddons in kinds:
        manifests += [(addons.manifest(s.inv, a), f"add-on {a.name} ({a.component})") for a in addons.enabled(s.inv)]
    for text, source in manifests:
        found += [drift.ObjectChange(str(a), drift.as_yaml(live and drift.projected(live, want)), drift.as_yaml(want),
                                     secret=want["kind"] == "Secret")
                  for a, live, want in apply.compare(s.api.api(), text, source) if a.action != apply.UNCHANGED]
    cm = s.api.api().find(kubeproxy.CONFIGMAP) if ApplyKubeProxy in kinds else None
    if cm is not None:
        have, new, _ = kubeproxy.settled(cm, s.inv)
        if have != new:
            found.append(drift.ObjectChange(f"ConfigMap {kubeproxy.NAMESPACE}/kube-proxy {kubeproxy.KEY}",
                                            drift.as_yaml(have), drift.as_yaml(new)))
    hosts = [c.host for c in checks if isinstance(c.step, NodeReady)]
    if hosts:       # one list of the nodes, not a read per host
        listed = {n["metadata"]["name"]: n for n in s.api.api().get(nodes.NODES)["items"]}
        found += [change for host in hosts for change in [_node(s.inv, host, listed.get(host.name))] if change]
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
