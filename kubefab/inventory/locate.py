"""The line each table and key of a TOML document is written on, for error messages.

tomllib gives values, not positions. This scanner reads only the structure of a document that
tomllib has already accepted: table headers, keys (bare, quoted, dotted) and the keys inside inline
tables; values are skipped, multi-line strings and arrays included. A dotted key also defines its
parents on that line (`ssh.port = 0` under `[hosts.w-1]` defines hosts.w-1.ssh and hosts.w-1.ssh.port), and so
does a table header (`[hosts.w-1]` defines hosts, unless an earlier line did).
"""

import bisect
import json
import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_LITERAL = re.compile(r"'([^'\n]*)'")
_SPACE = re.compile(r"[ \t]*")
_BLANK = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_SCALAR_END = re.compile(r"[,\]}\n#]")


def lines(text):
    """{key path (tuple of str): line number} for every table and key, at its first definition."""
    scanner = _Scanner(text)
    try:
        scanner.document()
    except (IndexError, ValueError, AttributeError):
        pass        # a construct the scanner does not know: keep what was found before it
    return scanner.found


class _Scanner:
    def __init__(self, text):
        self.text, self.i, self.found = text, 0, {}
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def document(self):
        table = ()
        while True:
            self._skip(_BLANK)
            if self.i >= len(self.text):
                return
            line = self._line()
            if self.text[self.i] == "[":
                double = self.text.startswith("[[", self.i)
                self.i += 2 if double else 1
                table = self._keys()
                self._expect("]]" if double else "]")
                for depth in range(1, len(table) + 1):      # [hosts.w-1] defines [hosts] too, if nothing did before
                    self._record(table[:depth], line)
            else:
                self._pair(table, line)

    def _pair(self, table, line):
        """key = value, recording the key (and its dotted parents) under `table`; None records nothing."""
        keys = self._keys()
        path = None if table is None else table + keys
        if path is not None:
            for depth in range(len(table) + 1, len(path) + 1):
                self._record(path[:depth], line)
        self._skip(_SPACE)
        self._expect("=")
        self._skip(_SPACE)
        self._value(path)

    def _value(self, path):
        """Skip one value; keys of an inline table are recorded under `path` (None: inside an array)."""
        text, i = self.text, self.i
        for quote in ('"""', "'''"):
            if text.startswith(quote, i):
                end = i + 3
                while True:                 # a closing run may hold up to two extra quotes
                    end = text.index(quote, end)
                    if not text.startswith(quote[0], end + 3):
                        break
                    end += 1
                self.i = end + 3
                return
        if text[i] in "\"'":
            match = (_BASIC if text[i] == '"' else _LITERAL).match(text, i)
            self.i = match.end()
        elif text[i] == "[":
            self._array()
        elif text[i] == "{":
            self._inline_table(path)
        else:
            match = _SCALAR_END.search(text, i)
            self.i = match.start() if match else len(text)

    def _array(self):
        self.i += 1
        while True:
            self._skip(_BLANK)
            if self.text[self.i] == "]":
                self.i += 1
                return
            self._value(None)
            self._skip(_BLANK)
            self._separator("]")

    def _inline_table(self, path):
        self.i += 1
        while True:
            self._skip(_SPACE)
            if self.text[self.i] == "}":
                self.i += 1
                return
            self._pair(path, self._line())
            self._skip(_SPACE)
            self._separator("}")

    def _separator(self, close):
        """Past the ',' after an item; at `close`, stay. Anything else ends the scan rather than loop on it."""
        if self.text[self.i] == ",":
            self.i += 1
        elif self.text[self.i] != close:
            raise ValueError(f"expected ',' or {close!r} at offset {self.i}")

    def _keys(self):
        parts = []
        while True:
            self._skip(_SPACE)
            text, i = self.text, self.i
            if text[i] == '"':
                match = _BASIC.match(text, i)
                parts.append(_unescape(match.group(1)))
            elif text[i] == "'":
                match = _LITERAL.match(text, i)
                parts.append(match.group(1))
            else:
                match = _BARE.match(text, i)
                parts.append(match.group(0))
            self.i = match.end()
            self._skip(_SPACE)
            if self.text[self.i] != ".":
                return tuple(parts)
            self.i += 1

    def _record(self, path, line):
        self.found.setdefault(path, line)

    def _skip(self, pattern):
        self.i = pattern.match(self.text, self.i).end()

    def _expect(self, token):
        if not self.text.startswith(token, self.i):
            raise ValueError(f"expected {token!r} at offset {self.i}")
        self.i += len(token)

    def _line(self):
        return bisect.bisect_right(self._starts, self.i)


def _unescape(body):
    """A basic string's escapes resolved (JSON's are TOML's, but for \\U and \\e)."""
    try:
        return json.loads(f'"{body}"')
    except ValueError:
        return body
