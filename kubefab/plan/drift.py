"""What `cluster.plan --live` finds: the changes a plan built from the facts would still make, as values, and
their text: unified diffs with secrets masked.

A plan built from facts leaves out what the hosts already hold (kubefab.plan): every file a Push still lists
differs on its host (content, mode or owner, or it is missing), every host step not `done` would run (a `check`
changes nothing: not counted), and its Api steps write what the API server does not hold yet. `changes(p)` lists
the first two and the Api steps to compare, in the plan's order; the live run fetches the files whose content
differs (`fetched_paths`) and reads the objects, then `text` prints it all. A file only root may read (keys,
kubeconfigs, kubeadm configs holding the bootstrap token: mode 0600) is never fetched nor shown: it "differs
(secret)".
"""

import difflib
import re
from dataclasses import dataclass

import yaml

from kubefab.secret import MASK
from kubefab.steps import Api, Push

SECRET = "content differs (secret)"
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S)


@dataclass(frozen=True)
class FileChange:
    """A file a Push would write: as it would land (tree.RenderedFile) and as the host has it (facts.FileState,
    None when it lacks the file)."""

    host: str
    file: object
    have: object

    @property
    def secret(self):
        return is_secret(self.file.mode)

    @property
    def content_differs(self):
        f, have = self.file, self.have
        if have is None:
            return True
        return have.sha256 != f.sha256 if f.sha256 else (have.size, have.mtime) != (f.size, f.mtime)


@dataclass(frozen=True)
class StepChange:
    """A host step that is not done: it would run."""

    host: str
    phase: str
    what: str               # the step as the plan shows it
    compares: tuple = ()    # (on-host path, the path holding what it should hold) pairs it would make equal


@dataclass(frozen=True)
class ApiCheck:
    """An Api step of the plan whose objects the live run compares."""

    host: object
    step: Api


@dataclass(frozen=True)
class ObjectChange:
    """An object an Api step would write: its fields as the API server has them ("" when missing) and as they
    would be."""

    what: str               # "Node kf-w1", "daemonset.apps/kube-flannel-ds", ...
    before: str
    after: str
    secret: bool = False


@dataclass(frozen=True)
class Changes:
    files: tuple            # FileChange
    steps: tuple            # StepChange
    api: tuple              # ApiCheck


def is_secret(mode):
    """True for a file no one but its owner (root) may read: kubefab gives every key, kubeconfig and kubeadm config
    (the bootstrap token) mode 0600."""
    return not mode & 0o044


def changes(p):
    """The files a facts-fed plan `p` would write, the host steps it would run and its Api steps, in its order."""
    files, steps, api = [], [], []
    for pp in p.phases:
        for hs in (hs for batch in pp.batches for hs in batch):
            facts = p.facts.get(hs.host.name) if p.facts else None
            for step in hs.steps:
                if isinstance(step, Api):
                    api.append(ApiCheck(hs.host, step))
                elif isinstance(step, Push):
                    files += [FileChange(hs.host.name, f, facts and facts.files.get(f.path)) for f in step.files]
                elif not (step.done or step.check):     # a check: e.g. a version a busy host's probe missed
                    steps.append(StepChange(hs.host.name, pp.phase.name, step.display(), step.compares))
    return Changes(tuple(files), tuple(steps), tuple(api))


def fetched_paths(found):
    """{host: on-host paths} whose current content a diff needs: the files that exist and differ, not secret, and
    both sides of what a step compares."""
    wanted = {}
    for c in found.files:
        if c.have is not None and c.content_differs and c.file.sha256 and not c.secret:
            wanted.setdefault(c.host, []).append(c.file.path)
    for s in found.steps:
        if s.compares:
            wanted.setdefault(s.host, []).extend(p for pair in s.compares for p in pair)
    return {host: tuple(dict.fromkeys(paths)) for host, paths in wanted.items()}


def mask(text):
    """`text` with every PEM private key replaced by ***."""
    return _PRIVATE_KEY.sub(MASK, text)


def unified(before, after, old, new):
    """The unified diff of text `before` (named `old`) into `after` (`new`), masked; "" when they are equal."""
    lines = difflib.unified_diff(mask(before).splitlines(keepends=True), mask(after).splitlines(keepends=True),
                                 old, new)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def file_text(c, current=None):
    """What differs in file change `c`, `current` being the host's content (bytes) when it was fetched."""
    f, have = c.file, c.have
    head = f"{c.host}: {f.path}"
    if have is None:
        if c.secret:
            return f"{head}: missing, would be written (mode {f.mode:04o}, secret)\n"
        return f"{head}: missing, would be written (mode {f.mode:04o})\n" + unified(
            "", f.local.read_text(errors="replace"), "/dev/null", f"{c.host}:{f.path}")
    out = ""
    if (have.mode, have.uid, have.gid) != (f.mode, 0, 0):
        out += f"{head}: mode {have.mode:04o} owner {have.uid}:{have.gid}, would be {f.mode:04o} owner 0:0\n"
    if not c.content_differs:
        return out
    if c.secret:
        return out + f"{head}: {SECRET}\n"
    if current is None:      # a large file (offline binaries), checked by size and mtime
        return out + f"{head}: content differs ({have.size} bytes, would be {f.size})\n"
    return out + unified(current.decode(errors="replace"), f.local.read_text(errors="replace"),
                         f"{c.host}:{f.path} (on the host)", f"{c.host}:{f.path} (as cluster.up writes it)")


def object_text(o):
    if o.secret:
        return f"{o.what}: {SECRET}\n"
    return unified(o.before, o.after, f"{o.what} (in the cluster)", f"{o.what} (as cluster.up writes it)")


def as_yaml(value):
    """`value` as the YAML a diff compares: keys sorted, block style; "" for None."""
    return "" if value is None else yaml.safe_dump(value, sort_keys=True, default_flow_style=False)


def projected(live, desired):
    """The part of object `live` that `desired` sets: its keys, recursively (lists element by element)."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: projected(live[k], v) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list):
        return [projected(a, b) for a, b in zip(live, desired)] + live[len(desired):]
    return live


def text(found, fetched, objects):
    """Every change as text, host by host: files (diffs), steps that would run, then objects; `fetched` is
    {(host, path): bytes}, `objects` ObjectChange."""
    out = [file_text(c, fetched.get((c.host, c.file.path))) for c in found.files]
    for s in found.steps:
        out.append(f"{s.host}: {s.phase}: would run: {s.what}\n")
        out += [unified(fetched[(s.host, path)].decode(errors="replace"),
                        fetched[(s.host, want)].decode(errors="replace"), f"{s.host}:{path} (on the host)",
                        f"{s.host}:{path} (as {want} holds it)")
                for path, want in s.compares if (s.host, path) in fetched and (s.host, want) in fetched]
    out += [object_text(o) for o in objects]
    return "".join(out)
