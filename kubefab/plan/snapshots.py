"""etcd snapshots: what `etcd.backup` records beside one, what `etcd.restore` refuses, and a restore's host steps.

A backup is two files: `etcd-<cluster>-<UTC time>.db`, the snapshot `etcdctl snapshot save` took on a control plane
(streamed here, nothing kept there), and `<same>.json`, its metadata: sha256 and size of the .db, the revision and
key count `snapshot status` gives, the member it came from and the member list, the fingerprints of the cluster CA
and of the service-account public key on that host, the Kubernetes version and the time.

A restore is refused before anything stops when the .db does not match its sha256, or its cluster CA or
service-account key is not the state dir's (every token and certificate of the restored objects would stop
working). Each member is restored from the same snapshot with a fresh initial cluster made from the inventory
(never one member's data directory copied to the others), by etcdutl when the host has it (with `--bump-revision`
and `--mark-compacted` when it takes them, so that watchers see newer revisions than any they cached), else by
etcdctl 3.4, which has neither (the run warns).
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kubefab import facts, net, paths, pki
from kubefab.errors import KubefabError
from kubefab.plan import renewal
from kubefab.steps import UNCHANGED_EXIT, Command, q

BACKUPS = "backups"                             # under the state dir: etcd.backup's and cluster.upgrade's
ETCD_DATA = "/var/lib/etcd"                     # kubeadm's etcd.local.dataDir, as kubefab's init config sets it
BEFORE = f"{ETCD_DATA}.before-restore"          # the member's data before the last restore
ON_HOST = "/var/lib/kubefab/etcd-snapshot.db"   # where a restore pushes the snapshot; removed after
ASIDE = f"{paths.KUBEFAB}/restoring"            # manifests of stopped components, outside the manifest dir
PEER_PORT, CLIENT_PORT = 2380, 2379
HEALTHY_SECONDS = 180
BUMP = 1_000_000_000                            # the revision bump etcd's and kubeadm's restore guides give
COMPONENTS = {c.name: c for c in renewal.COMPONENTS}
_CERT = paths.in_pki("etcd/healthcheck-client")
ETCDCTL = (f"ETCDCTL_API=3 etcdctl --endpoints={q(f'https://127.0.0.1:{CLIENT_PORT}')} "
           f"--cacert={q(paths.in_pki('etcd/ca.crt'))} --cert={q(_CERT + '.crt')} --key={q(_CERT + '.key')}")
_FINGERPRINT = "tr -d ' \\t\\r\\n' < {} | sha256sum | cut -d ' ' -f 1"
REPORT = re.compile(r"kubefab-(members|status|ca|sa|size) (.+)")
NO_ETCDCTL = ("etcdctl is not installed on this control plane: backups and the health checks of a restore use it — "
              "install etcd's client tools there (Debian: apt-get install etcd-client)")
NO_TOOL = ("neither etcdutl nor etcdctl is installed on this control plane — install etcd's client tools there "
           "(Debian: apt-get install etcd-client; or etcdutl from etcd's release)")


@dataclass(frozen=True)
class Metadata:
    """What a backup's .json records about its .db."""

    cluster: str
    sha256: str
    size: int
    revision: int
    keys: int                   # every key of the snapshot's database, as `snapshot status` counts them
    taken_from: str             # the control plane whose member was snapshotted
    members: tuple              # (name, peer URL) of each member then
    ca_sha256: str              # facts.ca_fingerprint of that host's ca.crt
    sa_sha256: str              # the same digest of its sa.pub
    kubernetes_version: str
    taken_at: str               # UTC, ISO 8601

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def names(inv, at):
    """The (snapshot, metadata) file names of a backup of `inv`'s cluster taken at `at` (a UTC datetime)."""
    stem = f"etcd-{inv.cluster.name}-{at:%Y%m%dT%H%M%SZ}"
    return f"{stem}.db", f"{stem}.json"


def backup_script():
    """The host script of a backup: the snapshot on stdout, the report lines (REPORT) on stderr; its temp dir removed
    however it ends."""
    pub = q(paths.in_pki("sa.pub"))
    return "\n".join((
        "set -eu",
        f"command -v etcdctl >/dev/null 2>&1 || {{ echo {q(NO_ETCDCTL)} >&2; exit 3; }}",
        "status=etcdctl; if command -v etcdutl >/dev/null 2>&1; then status=etcdutl; fi",
        "d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; trap 'exit 1' HUP INT TERM PIPE",
        f"{ETCDCTL} endpoint health >\"$d/log\" 2>&1 || {{ cat \"$d/log\" >&2; exit 1; }}",
        f"printf 'kubefab-members %s\\n' \"$({ETCDCTL} member list -w json)\" >&2",
        f"{ETCDCTL} snapshot save \"$d/snapshot.db\" >\"$d/log\" 2>&1 || {{ cat \"$d/log\" >&2; exit 1; }}",
        "printf 'kubefab-status %s\\n' \"$($status snapshot status -w json \"$d/snapshot.db\" 2>/dev/null)\" >&2",
        f"printf 'kubefab-ca %s\\n' \"$({_FINGERPRINT.format(q(paths.in_pki('ca.crt')))})\" >&2",
        f"printf 'kubefab-sa %s\\n' \"$({_FINGERPRINT.format(pub)})\" >&2",
        "printf 'kubefab-size %s\\n' \"$(wc -c < \"$d/snapshot.db\")\" >&2",
        "cat \"$d/snapshot.db\"",
    )) + "\n"


def read_report(host, stderr):
    """{members, status, ca, sa, size} from a backup script's stderr; KubefabError naming the host otherwise."""
    found = {m[1]: m[2].strip() for m in map(REPORT.fullmatch, stderr.splitlines()) if m}
    try:
        members = json.loads(found["members"]).get("members", [])
        status = json.loads(found["status"])
        return {"members": tuple(sorted((m.get("name", ""), (m.get("peerURLs") or [""])[0]) for m in members)),
                "revision": int(status["revision"]), "keys": int(status["totalKey"]),
                "ca": found["ca"], "sa": found["sa"], "size": int(found["size"])}
    except (KeyError, ValueError, TypeError, AttributeError):
        tail = "\n".join(stderr.strip().splitlines()[-5:]) or "(nothing)"
        raise KubefabError(f"{host}: the snapshot's report could not be read; the host said:\n{tail}") from None


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2 ** 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load(path):
    """(snapshot path, Metadata) of a backup given by its .db or .json; KubefabError when the pair is incomplete, the
    metadata unreadable, or the .db's size or sha256 is not the one recorded."""
    path = Path(path)
    db, meta = path.with_suffix(".db"), path.with_suffix(".json")
    for f in (db, meta):
        if not f.is_file():
            raise KubefabError(f"{f}: no such file — a backup is a .db and its .json, as `invoke etcd.backup` "
                               "writes them side by side")
    try:
        raw = json.loads(meta.read_text())
        data = Metadata(**{f.name: raw[f.name] for f in fields(Metadata)})
        data = Metadata(**{**asdict(data), "members": tuple(tuple(m) for m in data.members)})
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise KubefabError(f"{meta}: is not the metadata `invoke etcd.backup` writes ({e}) — restore from a "
                           "backup kubefab made") from None
    size = db.stat().st_size
    if size != data.size or sha256_of(db) != data.sha256:
        raise KubefabError(f"{db}: does not match its checksum ({size} bytes, {meta.name} records {data.size} "
                           f"bytes with sha256 {data.sha256}) — the file is damaged or not this backup's; restore "
                           "from another backup")
    return db, data


def refusals(inv, data):
    """Why `inv`'s state dir must not restore the backup `data`: each reason, or () when it may."""
    found = []
    if data.cluster != inv.cluster.name:
        found.append(f"the backup is of cluster {data.cluster!r}, the inventory names {inv.cluster.name!r}")
    local_ca = pki.paths(inv, pki.BY_NAME["ca"])[0]
    ca = facts.ca_fingerprint(local_ca.read_bytes()) if local_ca.is_file() else ""
    if ca != data.ca_sha256:
        found.append(f"its cluster CA (sha256 {data.ca_sha256}) is not {local_ca}'s ({ca or 'missing'}): every "
                     "certificate and kubeconfig would stop working against the restored cluster")
    pub = pki.sa_paths(inv)[1]
    sa = facts.ca_fingerprint(pub.read_bytes()) if pub.is_file() else ""
    if sa != data.sa_sha256:
        found.append(f"its service-account key (sha256 {data.sa_sha256}) is not {pub}'s ({sa or 'missing'}): every "
                     "service-account token in it would be refused")
    return tuple(found)


def initial_cluster(inv):
    """etcd's --initial-cluster of the inventory's control planes: name=https://address:2380, in inventory order."""
    return ",".join(f"{h.name}={peer_url(h)}" for h in inv.control_planes)


def peer_url(host):
    return f"https://{net.join_endpoint(host.internal_address, PEER_PORT)}"


def _listening(ports):
    return " || ".join(f"ss -Hltn {q(f'sport = :{p}')} | grep -q ." for p in ports)


def stop(*names):
    """The Command stopping static pods `names` the way the kubelet does it: each manifest moved out of the manifest
    directory (into ASIDE), then waiting until none of their ports listens (or the kubelet's file check period when
    none listened); unchanged when an earlier run left them stopped."""
    parts = [COMPONENTS[n] for n in names]
    moved = " && ".join(f"{{ [ ! -f {q(c.manifest)} ] || mv {q(c.manifest)} {q(f'{ASIDE}/{c.name}.yaml')}; }} && "
                        f"[ -f {q(f'{ASIDE}/{c.name}.yaml')} ]" for c in parts)
    listening = _listening(c.port for c in parts)
    stuck = q(f"{', '.join(names)} still listening after {renewal.STOP_SECONDS} s")
    missing = q(f"no manifest of {', '.join(names)} in {paths.KUBERNETES}/manifests or {ASIDE}")
    body = (f"mkdir -p {q(ASIDE)} && if {listening}; then up=1; else up=0; fi && {{ {moved} || "
            f"{{ echo {missing} >&2; exit 1; }}; }} && i=0 && if [ $up = 1 ]; then while {listening}; do "
            f"i=$((i+1)); if [ $i -gt {renewal.STOP_SECONDS} ]; then echo {stuck} >&2; exit 1; fi; sleep 1; done; "
            f"else sleep {renewal.UNSEEN_SECONDS}; fi")
    guard = " && ".join(f"[ ! -f {q(c.manifest)} ] && [ -f {q(f'{ASIDE}/{c.name}.yaml')} ]" for c in parts)
    return Command(f"stop {' '.join(names)}", body, guard=f"{guard} && ! {{ {listening}; }}",
                   label=f"move the {', '.join(names)} manifest{'s' * (len(names) > 1)} to {ASIDE}, wait until "
                         "stopped", timeout=renewal.STOP_SECONDS + 60)


def start(*names):
    """The Command moving the manifests of static pods `names` back (unchanged when they are in place)."""
    parts = [COMPONENTS[n] for n in names]
    body = " && ".join(f"{{ [ ! -f {q(f'{ASIDE}/{c.name}.yaml')} ] || mv {q(f'{ASIDE}/{c.name}.yaml')} "
                       f"{q(c.manifest)}; }}" for c in parts)
    guard = " && ".join(f"[ -f {q(c.manifest)} ] && [ ! -e {q(f'{ASIDE}/{c.name}.yaml')} ]" for c in parts)
    return Command(f"start {' '.join(names)}", body, guard=guard,
                   label=f"move the {', '.join(names)} manifest{'s' * (len(names) > 1)} back from {ASIDE}")


TOOLS = (f"if command -v etcdutl >/dev/null 2>&1; then t=etcdutl; "
         f"elif command -v etcdctl >/dev/null 2>&1; then t=etcdctl; else echo {q(NO_TOOL)} >&2; exit 1; fi; "
         "v=$($t version 2>/dev/null | head -n 1); "
         "if $t snapshot restore --help 2>&1 | grep -q -- --bump-revision; then bump=1; else bump=0; fi")


def check():
    """Before anything stops: the restore tool is there; which one, and whether it bumps the revision."""
    no_bump = ("warning: it has no --bump-revision: clients that watched the cluster (controllers, kubelets) may "
               "keep objects cached at revisions above the snapshot's until they restart")
    body = (f"{TOOLS}; command -v etcdctl >/dev/null 2>&1 || {{ echo {q(NO_ETCDCTL)} >&2; exit 1; }}; "
            f"[ -f {q(paths.manifest('etcd'))} ] || [ -f {q(f'{ASIDE}/etcd.yaml')} ] || "
            f"{{ echo {q('no etcd static pod manifest: not a stacked-etcd control plane')} >&2; exit 1; }}; "
            f"if [ $bump = 1 ]; then echo \"$t ($v): restores with --bump-revision {BUMP} --mark-compacted\"; "
            f"else echo \"$t ($v): \"{q(no_bump)}; fi; exit {UNCHANGED_EXIT}")
    return Command("restore tool", body, label="find etcdutl (or etcdctl 3.4) and whether it takes --bump-revision")


def restore_member(inv, host, data, token):
    """The Command restoring `host`'s member from the pushed snapshot (checked against `data`'s sha256 first), with
    the inventory's initial cluster and cluster token `token`; the old data kept as BEFORE, the snapshot removed."""
    new = f"{ETCD_DATA}.kubefab-restore"
    flags = (f"--name {q(host.name)} --initial-cluster {q(initial_cluster(inv))} --initial-cluster-token {q(token)} "
             f"--initial-advertise-peer-urls {q(peer_url(host))} --data-dir {q(new)}")
    body = (f"trap 'rm -f {q(ON_HOST)}; rmdir {q(str(Path(ON_HOST).parent))} 2>/dev/null' EXIT; {TOOLS}; "
            f"echo {q(f'{data.sha256}  {ON_HOST}')} | sha256sum -c --quiet - || exit 1; rm -rf {q(new)} && "
            f"if [ $bump = 1 ]; then extra='--bump-revision {BUMP} --mark-compacted'; else extra=''; fi && "
            f"ETCDCTL_API=3 $t snapshot restore {q(ON_HOST)} {flags} $extra >{q(new + '.log')} 2>&1 || "
            f"{{ cat {q(new + '.log')}; rm -rf {q(new)} {q(new + '.log')}; exit 1; }}; rm -f {q(new + '.log')} && "
            f"rm -rf {q(BEFORE)} && {{ [ ! -e {q(ETCD_DATA)} ] || mv {q(ETCD_DATA)} {q(BEFORE)}; }} && "
            f"mv {q(new)} {q(ETCD_DATA)} && echo \"restored by $t as member\" {q(host.name)} "
            f"of {len(inv.control_planes)}")
    return Command("restore member", body, timeout=900,
                   label=f"check the snapshot's sha256, `snapshot restore` it as member {host.name} of "
                         f"{initial_cluster(inv)} into {ETCD_DATA} (the old data kept as {BEFORE}), remove it")


def wait_healthy(inv):
    """The Command waiting until the whole restored cluster is healthy: the member list read, one started member
    per control plane, each with the client URL it publishes once it runs (`endpoint health --cluster` checks only
    members that published one, so a member still starting is not counted and the check alone passes too early),
    and every one of them answering `endpoint health --cluster`."""
    n = len(inv.control_planes)
    ready = (f"m=$({ETCDCTL} member list 2>&1) && "
             f"[ \"$(printf '%s\\n' \"$m\" | awk -F', ' '$2 == \"started\" && $5 != \"\"' | wc -l)\" -eq {n} ] && "
             f"h=$({ETCDCTL} endpoint health --cluster 2>&1) && "
             f"[ \"$(printf '%s\\n' \"$h\" | grep -c ' is healthy')\" -eq {n} ]")
    body = (f"i=0; m=; h=; until {ready}; do i=$((i+1)); "
            f"if [ $i -ge {HEALTHY_SECONDS} ]; then printf '%s\\n' \"$m\" \"$h\"; exit 1; fi; sleep 1; done; "
            f"printf '%s\\n' \"$m\"; exit {UNCHANGED_EXIT}")
    return Command("etcd healthy", body, timeout=HEALTHY_SECONDS + 60,
                   label=f"wait until all {n} etcd members run, each publishing its client URL, and all {n} are "
                         "healthy (etcdctl member list, endpoint health --cluster)")
