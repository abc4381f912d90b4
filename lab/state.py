"""Where labs live on the machine and what each one recorded, so any process can tear one down."""

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import LabError
from .spec import MAX_LABS

DEFAULT_ROOT = Path("/var/tmp/kubefab-lab")
STATE = "state.json"


def root_dir(root=None):
    """The directory holding every lab: `root`, else $KUBEFAB_LAB_DIR, else /var/tmp/kubefab-lab."""
    path = Path(root or os.environ.get("KUBEFAB_LAB_DIR") or DEFAULT_ROOT).resolve()
    # Overlay mount options separate lower dirs with ':' and options with ','.
    if re.search(r"[\s:,]", str(path)):
        raise LabError(f"lab directory {path} contains a space, ':' or ',' — pick another with KUBEFAB_LAB_DIR")
    return path


@dataclass
class State:
    """What teardown needs, written before anything is created and again once hosts are running."""

    lab_id: int
    dir: str
    flavour: str
    bridge: str
    netns: list
    veths: list
    owner_pid: int
    pids: dict = field(default_factory=dict)  # host name: pid of its `unshare`
    links: dict = field(default_factory=dict)  # host name: the machine's end of its link (`lab.cut`)
    cgroups: list = field(default_factory=list)
    detached: bool = False

    def save(self):
        path = Path(self.dir, STATE)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)


def allocate(root):
    """Claim the lowest free lab id by creating its directory (atomic, so concurrent runs never share one)."""
    root.mkdir(parents=True, exist_ok=True)
    for lab_id in range(MAX_LABS):
        try:
            (root / str(lab_id)).mkdir()
        except FileExistsError:
            continue
        return lab_id, root / str(lab_id)
    raise LabError(f"all {MAX_LABS} lab ids under {root} are taken — run `invoke lab.down` to clean up")


def load(lab_dir):
    try:
        return State(**json.loads(Path(lab_dir, STATE).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def lab_dirs(root):
    """Every lab directory under `root`, by id."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.name.isdigit() and p.is_dir()), key=lambda p: int(p.name))
