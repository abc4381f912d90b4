"""The templates of what lands on hosts, shipped in this package, and their strict filling.

The files sit beside this module (kubeadm/, containerd/, system/) and are read through
importlib.resources, so an installed wheel renders exactly as a checkout does. Filling is strict:
a missing, unused or surviving placeholder is an error.

A placeholder is `${name}`. In YAML it is a whole value: the document is parsed, the value put in
with its type (string, number, list, mapping) and the result dumped by pyyaml, so no quoting or
indentation can go wrong. In any other file it is replaced as text; the value must then be plain
(no quote, backslash or line break) because it lands inside quoted strings of TOML files.
"""

import functools
import importlib.resources
import re
import tomllib

import yaml

from kubefab.errors import KubefabError

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
WHOLE = re.compile(r"\$\{(\w+)\}")
LEFTOVERS = ("${", "{{")
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')   # a quote, backslash or control character: not plain text
# libyaml's C loader and dumper when pyyaml has them: rendering hundreds of hosts parses and dumps a lot
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def load(name):
    """The text of template `name` (e.g. 'kubeadm/init.yaml'), read once."""
    return importlib.resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def names():
    """Every template shipped, as the names `load` takes, sorted."""
    def walk(node, prefix):
        for child in node.iterdir():
            if child.name.startswith(("_", ".")):      # __pycache__ and the like
                continue
            if child.is_dir():
                yield from walk(child, f"{prefix}{child.name}/")
            elif prefix:                 # files at the top are this package's own modules
                yield f"{prefix}{child.name}"
    return tuple(sorted(walk(importlib.resources.files(__name__), "")))


@functools.cache
def _documents(name, text):
    """The parsed YAML documents of a template, parsed once (filling builds new containers)."""
    return tuple(yaml.load_all(text, Loader=_LOADER))


def fill(name, values, overlays=None):
    """Template `name` filled with `values` (YAML: `overlays` {kind: (where, mapping)} merged in)."""
    if name.endswith((".yaml", ".yml")):
        return fill_yaml(name, load(name), values, overlays or {})
    return fill_text(name, load(name), values)


def fill_text(name, text, values):
    """`text` with every `${key}` replaced by values[key]; every key must be used."""
    used = set()

    def put(match):
        key = match.group(1)
        if key not in values:
            raise KubefabError(f"templates/{name}: line {_line(text, match.start())}: no value for ${{{key}}}")
        value = str(values[key])
        if not is_plain(value):
            raise KubefabError(f"templates/{name}: line {_line(text, match.start())}: value {value!r} for "
                               f"${{{key}}} holds a quote, backslash or line break")
        used.add(key)
        return value

    out = PLACEHOLDER.sub(put, text)
    _all_used(name, values, used)
    return out


def is_plain(value):
    """True if `value` may stand in a text template: no quote, backslash, line break or other control character."""
    return not _UNSAFE.search(value)


def fill_yaml(name, text, values, overlays):
    """The YAML documents of `text` with placeholders replaced by typed values, overlays merged."""
    used, values = set(), plain(values)
    docs = [_fill(name, doc, values, used, doc.get("kind", "") if isinstance(doc, dict) else "")
            for doc in _documents(name, text)]
    _all_used(name, values, used)
    docs = [_overlay(name, doc, overlays.get(doc.get("kind"))) for doc in docs]
    return yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=2**31 - 1)


def plain(value):
    """`value` as plain dicts, lists and scalars (TOML's inline tables and tuples dump as YAML too)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _fill(name, node, values, used, where):
    if isinstance(node, dict):
        for key in node:
            _no_placeholder(name, str(key), f"{where}.{key}")
        return {k: _fill(name, v, values, used, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(name, v, values, used, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and WHOLE.fullmatch(node):
        key = WHOLE.fullmatch(node).group(1)
        if key not in values:
            raise KubefabError(f"templates/{name}: {where}: no value for ${{{key}}}")
        used.add(key)
        return values[key]
    if isinstance(node, str):
        _no_placeholder(name, node, where)
    return node


def _no_placeholder(name, text, where):
    if "${" in text:
        raise KubefabError(f"templates/{name}: {where}: {text!r} — a placeholder must be a whole value")


def _all_used(name, values, used):
    unused = sorted(set(values) - used)
    if unused:
        raise KubefabError(f"templates/{name}: has no placeholder for {', '.join(unused)}")


def _overlay(name, doc, overlay):
    if not overlay:
        return doc
    where, extra = overlay
    extra = plain(extra)
    for at, value, ours in conflicts(doc, extra):
        raise KubefabError(f"{where}.{'.'.join(at)} = {value!r} conflicts with {ours!r}, which kubefab sets "
                           f"(templates/{name}) — remove it from the inventory")
    return _merge(doc, extra)


def document(name, kind, values, overlay=None):
    """The document of `kind` in YAML template `name`, its placeholders filled from `values`, `overlay`
    (where, mapping) merged in."""
    doc = next(d for d in _documents(name, load(name)) if isinstance(d, dict) and d.get("kind") == kind)
    return _overlay(name, _fill(name, doc, plain(values), set(), kind), overlay)


def conflicts(base, extra, at=()):
    """(key path, value, base's value) for each value of `extra` that would change one `base` sets: an overlay
    may add keys and repeat values, never change them."""
    for key, value in extra.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            yield from conflicts(base[key], value, (*at, key))
        elif key in base and base[key] != value:
            yield (*at, key), value, base[key]


def _merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def looks_unfilled(text):
    """True if `text` holds what `check` takes for a placeholder left unfilled."""
    return any(mark in text for mark in LEFTOVERS)


def check(path, text):
    """Fail if rendered file `path` does not parse or still holds a placeholder (YAML: which key)."""
    kind = "yaml" if path.endswith((".yaml", ".yml")) else "toml" if path.endswith(".toml") else ""
    problem = _problem(kind, text)
    if problem:
        raise KubefabError(f"{path}: {problem}")


@functools.lru_cache(maxsize=256)
def _problem(kind, text):
    """What is wrong with a rendered `kind` file holding `text`, or "": checked once for the many hosts that
    receive the same file."""
    if kind == "yaml":
        try:
            docs = list(yaml.load_all(text, Loader=_LOADER))
        except yaml.YAMLError as e:
            return f"rendered file is not valid YAML: {e}"
        for doc in docs:
            left = _leftover(doc, doc.get("kind", "") if isinstance(doc, dict) else "")
            if left:
                return left
    elif kind == "toml":
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            return f"rendered file is not valid TOML: {e}"
    for number, line in enumerate(text.splitlines(), 1):
        if looks_unfilled(line):
            return f"line {number}: a placeholder survived rendering: {line.strip()!r}"
    return ""


def _leftover(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            left = _leftover(key, where) or _leftover(value, f"{where}.{key}")
            if left:
                return left
    elif isinstance(node, list):
        for i, value in enumerate(node):
            left = _leftover(value, f"{where}[{i}]")
            if left:
                return left
    elif isinstance(node, str) and looks_unfilled(node):
        return f"{where}: a placeholder survived rendering: {node!r}"
    return ""


def _line(text, offset):
    return text.count("\n", 0, offset) + 1
