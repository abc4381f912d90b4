"""Any inventory, however malformed, gives a plan or errors that name the file, the line and the key: never a
traceback, and never a file written outside the state dir (property-based, with hypothesis).

Documents are generated close to valid ones: the real schema's tables and keys (read from kubefab's dataclasses),
each with a value near what users write or any TOML value (unicode, line breaks, huge numbers, empty strings, dates,
nested tables), written as headers, dotted keys or inline tables; then raw text mutations of such documents, and
arbitrary bytes. Each runs the way `invoke cluster.plan` does: inventory.load, plan.prepare, plan.build and the
plan's text, in a temporary directory whose every file outside the state dir is compared before and after.
The examples are derandomized: CI runs the same ones every time.
"""

import dataclasses
import json
import math
import os
import re
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from kubefab import inventory, plan
from kubefab.errors import InventoryError, KubefabError
from kubefab.inventory import SSH, Cluster, Host, Install, Mirrors, locate
from kubefab.run import report

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), phases=tuple(set(Phase) - {Phase.explain}))
SECTIONS = {"cluster": Cluster, "ssh": SSH, "mirrors": Mirrors, "install": Install}
OFFLINE = ("kubeadm", "kubelet", "kubectl", "kubelet.service", "10-kubeadm.conf")
MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: net-conf\n  namespace: kube-system\n"

# what users write, right and wrong, per key; every key of the schema also gets any TOML value
TYPICAL = {
    "name": ["t", "prod-1", "Prod", "a" * 64, "", "x\n", "é"],
    "kubernetes_version": ["1.33.5", "1.34.2", "v1.34.2", "1.34.٢", "1.3", "2.0.0", "01.34.2"],
    "control_plane_endpoint": ["", "10.0.0.1:6443", "api.example.com:6443", "api.example.com:¹", "[fd00::1]:6443",
                               "10.0.0.1", "x:0", "x:99999", "0.0.0.0:6443"],
    "pod_subnet": ["10.244.0.0/16", "10.244.0.0/30", "fd00:10:244::/56", "10.244.0.0/16,fd00:10:244::/56", "²⁴",
                   "10.244.0.1/16", "10.0.0.0/8", ""],
    "service_subnet": ["10.96.0.0/12", "10.96.0.0/28", "fd00:10:96::/108", "10.96.0.0/8",
                       "10.96.0.0/12,fd00:10:96::/108"],
    "dns_domain": ["cluster.local", "Cluster.Local", ""],
    "image_repository": ["registry.k8s.io", "mirror.local:5000/k8s", "", "https://x", "a'b"],
    "cni": ["flannel", "calico", "none", "weave"],
    "cni_manifest": ["", "cni.yaml", "missing.yaml", "off", "~/cni.yaml", "/dev/null"],
    "encryption_algorithm": ["ECDSA-P256", "ECDSA-P384", "RSA-1024", ""],   # RSA-2048 keys cost a second a plan
    "cert_validity_days": [1, 365, 0, -1, 3000000, 2 ** 63 - 1],
    "ca_validity_days": [3650, 1, 0, 10 ** 7, 2 ** 64],
    "worker_batch_size": [1, 2, 0, 10 ** 6],
    "token_ttl": ["24h", "0", "1h30m", "1.5h", "24h\n", ""],
    "cert_sans": [[], ["api.example.com"], ["10.0.0.9"], ["*.example.com"], ["a b"], [""]],
    "extra_args": [{}, {"v": "2"}, {"node-cidr-mask-size": "24"}, {"node-cidr-mask-size": 33}, {"--x": "y"},
                   {"a=b": "c"}, {"v": True}, {"max-pods": 110}, {"node-cidr-mask-size-ipv4": "²⁴"}],
    "config": [{}, {"maxPods": 110}, {"maxPods": "many"}, {"cgroupDriver": "cgroupfs"}, {"mode": "ipvs"}],
    "mode": ["iptables", "ipvs", "nftables", "userspace"],
    "user": ["root", "kube", "", "a b"],
    "port": [22, 0, 65536, 2222, -1],
    "identity_file": ["", "id", "~/.ssh/id", "/nonexistent/key"],
    "sudo": [True, False],
    "sudo_password_env": ["", "KF_PW", "1X", "A-B"],
    "known_hosts": ["strict", "accept-new", "off", "never"],
    "known_hosts_file": ["~/.ssh/known_hosts", "kh", ""],
    "gateway": ["", "user@bastion:22", "user@[2001:db8::1]:22", "b:x"],
    "connect_timeout": [10.0, 1, 0, -1.0, math.inf, math.nan],
    "address": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::5", "0.0.0.0", "127.0.0.1", "10.0.0.300", ""],
    "internal_address": ["10.0.1.1", "10.0.0.2", "fd00::1", "x"],
    "roles": [["control-plane"], ["worker"], [], ["control-plane", "worker"], ["master"]],
    "labels": [{}, {"zone": "a"}, {"example.com/tier": "web"}, {"k": "a\n"}, {"": ""}],
    "taints": [[], ["dedicated=gpu:NoSchedule"], ["k:Bad"], ["k=v:NoSchedule", "k=v:NoSchedule"]],
    "package_repository": ["https://pkgs.k8s.io/core:/stable:", "file:///srv/repo", "http://x y", "ftp://x",
                           "https://example.org/$(id)"],
    "registries": [{}, {"docker.io": ["https://m.example"]}, {"registry.local:5000": ["http://m"]},
                   {"Bad Registry": ["x"]}, {"docker.io": []}],
    "source": ["packages", "offline", "tarballs"],
    "directory": ["", "off", "missing"],
}
HOST_NAMES = ["cp-1", "cp-2", "w-1", "w-2", "W_3", "a.b", "", "ñ"]
TYPOS = ["adress", "sorce", "rolez", "kubernetes-version", "ssh_port"]

_text = st.text(max_size=12)
_scalars = st.one_of(_text, st.integers(), st.floats(), st.booleans(), st.dates(), st.datetimes(), st.times())
ANY = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                   max_leaves=6)


def _value(key):
    typical = TYPICAL.get(key)
    return st.one_of(st.sampled_from(typical), st.sampled_from(typical), ANY) if typical else ANY


def _tables(spec, path):
    """(path, dataclass) of the table `spec` is and of every table nested in it."""
    yield path, spec
    for f in dataclasses.fields(spec):
        if dataclasses.is_dataclass(f.type):
            yield from _tables(f.type, path + (f.name,))


SCHEMA = tuple(t for name, spec in SECTIONS.items() for t in _tables(spec, (name,)))
HOST_SCHEMA = tuple(_tables(Host, ()))
VALID = {"cluster": {"name": "t", "kubernetes_version": "1.33.5", "encryption_algorithm": "ECDSA-P256"},
         "hosts": {"cp-1": {"address": "10.0.0.1", "roles": ["control-plane"]},
                   "w-1": {"address": "10.0.0.2", "roles": ["worker"]}}}


@st.composite
def _table(draw, spec):
    """Some keys of dataclass `spec`, each with a value near what users write; maybe a key nobody knows."""
    table = {}
    for f in dataclasses.fields(spec):
        if f.name != "name" and draw(st.integers(0, 3)) == 0:
            table[f.name] = draw(_table(f.type) if dataclasses.is_dataclass(f.type) else _value(f.name))
    if draw(st.integers(0, 9)) == 0:
        table[draw(st.sampled_from(TYPOS) | _text)] = draw(ANY)
    return table


def _at(doc, path):
    """The table at `path` in `doc`, made (over whatever was there) when missing."""
    for name in path:
        if not isinstance(doc.get(name), dict):
            doc[name] = {}
        doc = doc[name]
    return doc


@st.composite
def documents(draw):
    """A valid inventory's tables with up to 6 changes: a key set, a key or table dropped, a host added, a table
    replaced by generated keys or by any value."""
    doc = json.loads(json.dumps(VALID))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, 6]))):
        change = draw(st.sampled_from(["set", "set", "set", "drop", "host", "table", "any"]))
        hosts = list(doc["hosts"]) if isinstance(doc.get("hosts"), dict) else []
        host = draw(st.sampled_from(hosts + HOST_NAMES) | _text)
        path, spec = draw(st.sampled_from(SCHEMA + tuple((("hosts", host) + p, s) for p, s in HOST_SCHEMA)))
        if change == "set":
            key = draw(st.sampled_from([f.name for f in dataclasses.fields(spec) if f.name != "name"] + TYPOS))
            _at(doc, path)[key] = draw(_value(key))
        elif change == "drop":
            parent = _at(doc, path[:-1])
            keys = list(_at(doc, path)) + [None]
            key = draw(st.sampled_from(keys))
            (parent.pop(path[-1], None) if key is None else _at(doc, path).pop(key, None))
        elif change == "host":
            _at(doc, ("hosts",))[host] = draw(_table(Host))
        elif change == "table":
            _at(doc, path[:-1])[path[-1]] = draw(_table(spec))
        else:
            doc[draw(st.sampled_from(["cluster", "ssh", "hosts", "mirrors", "install", "host", "Cluster"]) | _text)] = \
                draw(ANY)
    return doc


# -- a TOML writer that can say everything the generator makes, in three styles ---------------------------------

def _key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def _string(s):
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, list):
        return f"[{', '.join(_scalar(x) for x in v)}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + "}"
    return v.isoformat() if hasattr(v, "isoformat") else str(v)


def toml(doc, styles):
    """`doc` as TOML text; `styles` (an iterator) picks header, dotted or inline for each nested table."""
    out = []

    def table(path, values):
        subs = []
        for k, v in values.items():
            style = next(styles) if isinstance(v, dict) and v else "inline"
            if style == "header":
                subs.append((path + (k,), v))
            elif style == "dotted":
                out.extend(f"{_key(k)}.{_key(sk)} = {_scalar(sv)}" for sk, sv in v.items())
            else:
                out.append(f"{_key(k)} = {_scalar(v)}")
        for sub_path, sub in subs:
            out.append(f"\n[{'.'.join(_key(p) for p in sub_path)}]")
            table(sub_path, sub)
    table((), doc)
    return "\n".join(out) + "\n"


def text_of(doc, styles):
    return toml(doc, iter(styles + ["header"] * 1000))


STYLES = st.lists(st.sampled_from(["header", "header", "dotted", "inline"]), max_size=40)


# -- the run, and what must hold ----------------------------------------------------------------------------------

def _snapshot(root, state):
    """Every entry under `root` but `state` and what is in it, with what would show a change."""
    seen = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(top, d) != state]
        for name in dirs + files:
            st_ = os.lstat(Path(top, name))
            # a directory's own mtime changes with what it holds: its entries are compared one by one
            seen[str(Path(top, name).relative_to(root))] = (st_.st_mode, *((st_.st_size, st_.st_mtime_ns)
                                                                            if name in files else ()))
    return seen


def _workspace(root):
    work = root / "work"
    (work / "off").mkdir(parents=True)
    for name in OFFLINE:
        (work / "off" / name).write_text("#!/bin/sh\n")
    (work / "cni.yaml").write_text(MANIFEST)
    (root / "home").mkdir()
    return work / "inventory.toml"


def _problems_name_line_and_key(error, path, text):
    assert str(error).startswith(f"{path}: "), str(error)
    found = locate.lines(text) if isinstance(text, str) else {}
    for problem in error.problems:
        if re.match(r"(line \d+, column \d+: TOML syntax error|TOML syntax error|byte \d+: not UTF-8)", problem):
            continue
        m = re.match(r"(line \d+: )?\[([^\]]+)\]", problem)
        assert m, f"names no table: {problem!r}"
        top = m.group(2).split(".")[0].strip('"')
        assert m.group(1) or not any(k[0] == top for k in found), f"names no line: {problem!r}\n{text}"


def plan_or_errors(data, root, monkeypatch):
    """Run cluster.plan's path on `data` (text or bytes) in `root`; what happened, for hypothesis' statistics."""
    path = _workspace(root)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.chdir(root / "work")
    # durability is not what is checked here, and each plan's fsyncs would cost 0.2 s on a busy disk
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    state = None
    before = _snapshot(root, state)
    try:
        inv = inventory.load(path)
        state = inv.state_dir
        assert root in state.parents
        report.plan_text(plan.build(inv, plan.prepare(inv)))
        outcome = "planned"
    except InventoryError as e:
        _problems_name_line_and_key(e, path, data)
        outcome = "refused by the loader"
    except KubefabError as e:
        assert str(e).strip(), "an empty error"
        outcome = "refused while planning"
    after = _snapshot(root, state)
    made = {k for k in after.keys() - before.keys() if state and root / k in state.parents}    # .kubefab/
    assert {k: v for k, v in after.items() if k not in made} == before, \
        f"{outcome}, but a file outside the state dir changed"
    return outcome


@pytest.fixture
def fresh(tmp_path_factory):
    """A new empty directory per example (hypothesis runs the test body many times per fixture)."""
    return lambda: tmp_path_factory.mktemp("example")


def _with(table, key, value):
    doc = json.loads(json.dumps(VALID))
    _at(doc, table)[key] = value
    return doc


@SETTINGS
@given(doc=documents(), styles=STYLES)
@example(doc=_with(("cluster",), "control_plane_endpoint", "api.example.com:¹"), styles=[])     # were tracebacks
@example(doc=_with(("cluster", "controller_manager"), "extra_args", {"node-cidr-mask-size": "²⁴"}), styles=[])
def test_a_document_near_the_schema_plans_or_names_file_line_and_key(doc, styles, fresh):
    with pytest.MonkeyPatch.context() as mp:
        event(plan_or_errors(text_of(doc, styles), fresh(), mp))


@st.composite
def mutated(draw):
    text = text_of(draw(documents()), draw(STYLES))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "duplicate line", "drop line"]))
        lines = text.splitlines(keepends=True)
        line = draw(st.integers(0, max(len(lines) - 1, 0)))
        if how == "insert":
            text = text[:at] + draw(st.sampled_from(["\n", "[", "]", "=", '"', "'", "#", ".", "{", ",", "\\"]) | _text) + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)):]
        elif how == "replace" and text:
            text = text[:at] + draw(st.characters()) + text[at + 1:]
        elif how == "duplicate line" and lines:
            text = "".join(lines[:line + 1] + lines[line:])
        elif lines:
            text = "".join(lines[:line] + lines[line + 1:])
    return text


@SETTINGS
@given(text=mutated())
def test_a_mutated_document_plans_or_names_file_line_and_key(text, fresh):
    with pytest.MonkeyPatch.context() as mp:
        event(plan_or_errors(text, fresh(), mp))


@SETTINGS
@given(data=st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_are_refused_with_the_file_named_never_a_traceback(data, fresh):
    with pytest.MonkeyPatch.context() as mp:
        event(plan_or_errors(data, fresh(), mp))


def _too_long(signum, frame):
    raise TimeoutError("locate.lines ran for more than 5 s")


@SETTINGS
@example(text="a = [1, }]\n")         # looped for ever
@given(text=mutated() | st.text(alphabet="[]{}=,.\"'#\n ab1", max_size=40))
def test_the_locator_ends_on_any_text_even_one_toml_refuses(text):
    old = signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(5)
    try:
        assert isinstance(locate.lines(text), dict)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
