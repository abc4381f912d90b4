"""Local files written atomically with their modes: never a half-written file."""

import os
import tempfile
from pathlib import Path


def ensure_dir(path, mode=0o700):
    """Create `path` (and parents) with `mode`; an existing dir gets `mode` too."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    os.chmod(path, mode)
    return path


def write_atomic(path, data, mode=0o600, dir_mode=0o700):
    """Write `data` (bytes or str) to `path` via a temp file, fsync and rename.

    Returns True when the file changed, False when it already held exactly `data`
    with `mode` (so a re-run leaves it untouched, mtime included). The directory is made with `dir_mode`, or, with
    `dir_mode` None (a directory the user named), must exist and keeps its mode.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    if path.is_file() and path.read_bytes() == data:
        if (path.stat().st_mode & 0o7777) != mode:
            os.chmod(path, mode)
            return True
        return False
    if dir_mode is not None:
        ensure_dir(path.parent, dir_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True
