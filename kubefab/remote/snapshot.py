"""One etcd snapshot streamed from a control plane into a local directory (etcd.backup, and cluster.upgrade before it
changes a control plane): written to a temp file beside its target, its size checked against the host's, fsynced,
then renamed, and its metadata after it; the host's temp directory goes with the script, whatever happens."""

import datetime
import hashlib
import os
import tempfile
from pathlib import Path

from kubefab import fsutil
from kubefab.errors import KubefabError
from kubefab.plan import snapshots

BACKUP_TIMEOUT = 3600


def take(hosts, inv, host, target, version):
    """(path of the .db, snapshots.Metadata) of a snapshot of `host`'s member taken over `hosts` (ssh.Hosts) into
    directory `target`; `version`() gives the Kubernetes version the metadata records."""
    at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    db_name, meta_name = snapshots.names(inv, at)
    digest = hashlib.sha256()
    fd, part = tempfile.mkstemp(dir=target, prefix=f".{db_name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)

            def sink(chunk):
                digest.update(chunk)
                f.write(chunk)
            out = hosts.run(host, snapshots.backup_script().encode(), BACKUP_TIMEOUT, sink=sink)
            if out.code:
                raise KubefabError(f"the snapshot script exited {out.code}: {out.stderr.strip()[-600:]}")
            report = snapshots.read_report(host.name, out.stderr)
            f.flush()
            os.fsync(f.fileno())
            if f.tell() != report["size"]:
                raise KubefabError(f"{f.tell()} bytes arrived of the {report['size']} the snapshot has")
        data = snapshots.Metadata(
            cluster=inv.cluster.name, sha256=digest.hexdigest(), size=report["size"], revision=report["revision"],
            keys=report["keys"], taken_from=host.name, members=report["members"], ca_sha256=report["ca"],
            sa_sha256=report["sa"], kubernetes_version=version(), taken_at=at.isoformat())
        db = target / db_name
        os.replace(part, db)
        fsutil.write_atomic(target / meta_name, data.to_json(), dir_mode=None)
        return db, data
    finally:
        Path(part).unlink(missing_ok=True)
