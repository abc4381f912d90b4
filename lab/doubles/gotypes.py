"""Decoding YAML documents the way Kubernetes' Go decoders do (sigs.k8s.io/json, a fork of Go's
encoding/json): the first type error in Go's words, and the unknown fields strict decoding reports.

A schema is a tree of `Go` types: `Go("int32")`, `Go("[]string", elem=STR)`, `Go("v1beta4.APIEndpoint",
fields={...})`. Go's error names the innermost struct and the JSON field path:
`json: cannot unmarshal string into Go struct field APIEndpoint.localAPIEndpoint.bindPort of type int32`.
"""

import re
from dataclasses import dataclass, field

from .hostfs import DoubleError


@dataclass(frozen=True)
class Go:
    name: str                    # Go's spelling of the type, as in its errors
    kind: str = "struct"         # string | int | float | bool | duration | list | map | struct | any
    fields: dict = field(default_factory=dict)
    elem: "Go" = None

    @property
    def struct_name(self):
        return self.name.rpartition(".")[2].lstrip("*")


STR, INT32, INT64, BOOL = Go("string", "string"), Go("int32", "int"), Go("int64", "int"), Go("bool", "bool")
FLOAT, ANY = Go("float64", "float"), Go("interface {}", "any")
DURATION = Go("v1.Duration", "duration")        # metav1.Duration: a Go duration string
TIME = Go("v1.Time", "string")                  # metav1.Time: RFC 3339 string
STRS, MAP_SS, MAP_SB = Go("[]string", "list", elem=STR), Go("map[string]string", "map", elem=STR), \
    Go("map[string]bool", "map", elem=BOOL)


def named(name, kind="string"):
    """A named scalar type such as v1.TaintEffect (a string kind)."""
    return Go(name, kind)


def struct(go_name, **fields):
    return Go(go_name, "struct", fields)


def list_of(elem, name=None):
    return Go(name or f"[]{elem.name}", "list", elem=elem)


def json_kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Decoder:
    """Walks one document; `error` is Go's first type error, `unknown` the strict-decoding field paths."""

    def __init__(self):
        self.error, self.unknown = None, []

    def type_error(self, value, go, struct_name, path, number_text=False):
        if self.error is None:
            what = json_kind(value)
            if number_text:
                what = f"number {value}"
            where = f"Go struct field {struct_name}.{'.'.join(path)}" if struct_name else "Go value"
            self.error = f"json: cannot unmarshal {what} into {where} of type {go.name}"

    def walk(self, value, go, struct_name="", path=()):
        if value is None or go.kind == "any":
            return
        kind = go.kind
        if kind == "string":
            if not isinstance(value, str):
                self.type_error(value, go, struct_name, path)
        elif kind == "int":
            if isinstance(value, float) and not isinstance(value, bool):
                self.type_error(value, go, struct_name, path, number_text=True)
            elif not isinstance(value, int) or isinstance(value, bool):
                self.type_error(value, go, struct_name, path)
        elif kind == "float":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.type_error(value, go, struct_name, path)
        elif kind == "bool":
            if not isinstance(value, bool):
                self.type_error(value, go, struct_name, path)
        elif kind == "duration":
            self.duration(value)
        elif kind == "list":
            if not isinstance(value, list):
                return self.type_error(value, go, struct_name, path)
            for item in value:
                self.walk(item, go.elem, struct_name, path)
        elif kind == "map":
            if not isinstance(value, dict):
                return self.type_error(value, go, struct_name, path)
            for item in value.values():
                self.walk(item, go.elem, struct_name, path)
        else:
            self.struct(value, go, struct_name, path)

    def struct(self, value, go, struct_name, path):
        if not isinstance(value, dict):
            return self.type_error(value, go, struct_name, path)
        for key, item in value.items():
            if key not in go.fields:
                self.unknown.append(".".join((*path, str(key))))
                continue
            self.walk(item, go.fields[key], go.struct_name, (*path, key))

    def duration(self, value):
        # metav1.Duration decodes itself: Go's plain errors, without a field path
        if self.error is not None:
            return
        if not isinstance(value, str):
            self.error = f"json: cannot unmarshal {json_kind(value)} into Go value of type string"
            return
        try:
            parse_duration(value)
        except DoubleError as e:
            self.error = str(e)


def decode(doc, schema):
    """(first type error or None, unknown field paths) for the document body `doc` (apiVersion/kind removed)."""
    d = Decoder()
    d.struct(doc, schema, schema.struct_name, ())
    return d.error, d.unknown


UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]*)")


def parse_duration(text):
    """Seconds in Go's time.ParseDuration syntax, with its error words."""
    s = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if s == "0":
        return 0.0
    if not s:
        raise DoubleError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        number, unit = m.group(1), m.group(2)
        if not number or number == ".":
            raise DoubleError(f'time: invalid duration "{text}"')
        if not unit:
            raise DoubleError(f'time: missing unit in duration "{text}"')
        if unit not in UNITS:
            raise DoubleError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * UNITS[unit]
        pos = m.end()
    return sign * total
