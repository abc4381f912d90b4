"""Reading an inventory's tables into typed values: unknown keys and wrong types, each problem with its line."""

import difflib
import json
import re
import types
from dataclasses import fields
from typing import Union, get_args, get_origin

from kubefab.inventory import locate

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class Problems:
    """Collects every problem with its location, so all are reported at once."""

    def __init__(self, path, text):
        self.path, self.items = path, []
        self._text, self._lines = text, None

    def add(self, table, key, message, at=()):
        """A problem with `key` of `table` ('a.b' or a tuple of names); `at` names a place inside its value."""
        parts = tuple(table.split(".")) if isinstance(table, str) else tuple(table)
        name = ".".join(p if _BARE_KEY.fullmatch(p) else json.dumps(p, ensure_ascii=False) for p in parts)
        where = f"[{name}] {key}" if key else f"[{name}]"
        line = self._locate(parts + ((key,) if key else ()) + tuple(at))
        self.items.append(f"{f'line {line}: ' if line else ''}{where} {message}")

    def _locate(self, path):
        """The line defining `path`, else the nearest enclosing table or key that is written down."""
        if self._lines is None:
            self._lines = locate.lines(self._text)
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return self._lines[path[:end]]
        return None


def did_you_mean(key, known):
    close = difflib.get_close_matches(key, known, n=1)
    return f" — did you mean {close[0]!r}?" if close else f" — known keys: {', '.join(sorted(known))}"


# -- types ------------------------------------------------------------------------------------------

def typed(p, table, raw, spec, skip=()):
    """Values of table `raw` for dataclass `spec`; unknown keys and wrong types (of elements too) are problems.

    Field annotations give the types: `str`, `int`, `tuple[str, ...]` (a list), `dict[str, str]` (a table),
    `dict[str, object]` (a table of anything). Lists become tuples.
    """
    known = {f.name: f.type for f in fields(spec) if f.name not in skip}
    values = {}
    for key, value in raw.items():
        if key not in known:
            p.add(table, key, f"is not a known key{did_you_mean(key, known)}")
            continue
        misfit = _misfit(value, known[key])
        if misfit is None:
            values[key] = _converted(value, known[key])
        elif not misfit[1]:
            p.add(table, key, f"must be {_names(known[key])[0]}, not {value!r}")
        else:
            at, where, bad = misfit
            p.add(table, key, f"must be {_names(known[key])[0]}: {where} is {bad!r}", at=at)
    return values


_SCALARS = {str: ("a string", "strings"), int: ("a whole number", "whole numbers"),
            bool: ("true or false", "true/false values"), float: ("a number", "numbers")}


def _names(expected):
    """(singular, plural) of a field type as messages say it: 'a list of strings', 'lists of strings'."""
    origin, args = get_origin(expected), get_args(expected)
    if origin is tuple:
        return f"a list of {_names(args[0])[1]}", f"lists of {_names(args[0])[1]}"
    if origin is dict:
        of = "" if args[1] is object else f" of {_names(args[1])[1]}"
        return f"a table{of}", f"tables{of}"
    if origin in (Union, types.UnionType):
        plurals = [_names(a)[1] for a in args]
        return "", f"{', '.join(plurals[:-1])} or {plurals[-1]}"
    return _SCALARS[expected]


def _misfit(value, expected, at=(), where=""):
    """(path inside the value, its description, the value there) of the first part of the wrong type, or None."""
    origin, args = get_origin(expected), get_args(expected)
    if origin is tuple:
        if not isinstance(value, list):
            return at, where, value
        items = ((at, f"{where} item {i}".strip(), v) for i, v in enumerate(value, 1))
    elif origin is dict:
        if not isinstance(value, dict):
            return at, where, value
        items = ((at + (k,), f"{where} {k!r}".strip(), v) for k, v in value.items())
    elif origin in (Union, types.UnionType):
        return None if any(_misfit(value, a) is None for a in args) else (at, where, value)
    else:
        return None if _is(value, expected) else (at, where, value)
    for item_at, item_where, item in items:
        misfit = _misfit(item, args[-1] if origin is dict else args[0], item_at, item_where)
        if misfit:
            return misfit
    return None


def _is(value, expected):
    if expected is object:
        return True
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _converted(value, expected):
    """`value` with its lists as tuples wherever the annotation says `tuple[...]`."""
    origin, args = get_origin(expected), get_args(expected)
    if origin is tuple:
        return tuple(_converted(v, args[0]) for v in value)
    if origin is dict and args[1] is not object:
        return {k: _converted(v, args[1]) for k, v in value.items()}
    return value
