"""A small POSIX sh quoting-context scanner: where in a script a marker word would run.

`exposures(text, marker)` reads `text` as sh does (single and double quotes, backslashes, $( ), ` `, ${ },
( ), case patterns, comments, here-documents) and lists every occurrence of `marker` that is not wholly inside
single quotes, a quoted here-document or a comment, and every single-quoted one handed to a program that runs
its argument as code (`sh -c` is followed: its argument is scanned in turn). A value quoted by
`kubefab.steps.q` only ever stands inside single quotes.
"""

import shlex

# commands whose arguments are code: a value in one of their arguments runs even when single-quoted
INTERPRETERS = frozenset(("sh", "bash", "dash", "eval", "trap", "sed", "awk", "perl", "python3", "xargs", "su"))
SHELLS = ("sh", "bash", "dash")
RESERVED = frozenset(("if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "!", "{", "}",
                      "case", "esac"))


class _Frame:
    """One nesting level: its kind, the words of the simple command being read, open case statements."""

    def __init__(self, kind):
        self.kind, self.cases, self.words, self.start = kind, 0, [], None
        self.marked = self.redirect = False

    def add(self, at, marked=False):
        """The word being read goes on at `at` (its start, when it is the first character)."""
        self.start = at if self.start is None else self.start
        self.marked = self.marked or marked

    def end_word(self, text, end, found, marker):
        if self.start is None:
            return
        word, marked = text[self.start:end], self.marked
        self.start, self.marked = None, False
        if self.redirect:
            self.redirect = False
            return
        if marked:
            found += _handed(self.words, word, marker)
        if not self.words and word in RESERVED:
            self.cases += (word == "case") - (word == "esac")
            return
        self.words.append(word)

    def end_command(self):
        self.words = []


def _handed(words, word, marker):
    """Exposures of a single-quoted `word` holding the marker, given the words before it in its command."""
    names = [w.rsplit("/", 1)[-1] for w in words]
    if len(names) >= 2 and names[-1] == "-c" and names[-2] in SHELLS:
        try:
            program = shlex.split(word)
        except ValueError:
            return [f"the program of {names[-2]} -c does not read as one word: {word[:80]!r}"]
        return [f"in {names[-2]} -c: {e}" for e in exposures(program[0] if program else "", marker)]
    interpreters = [n for n in names if n in INTERPRETERS]
    return [f"handed to {interpreters[0]}: {word[:80]!r}"] if interpreters else []


def exposures(text, marker):
    """Where `marker` stands in `text` so that sh would run it (see the module docstring); [] when nowhere."""
    found, safe = [], bytearray(len(text))
    stack, heredocs = [_Frame("top")], []
    i, n = 0, len(text)
    while i < n:
        f, c = stack[-1], text[i]
        if f.kind == "dq":
            if c == "\\":
                i += 2
            elif c == '"':
                stack.pop()
                i += 1
            elif text.startswith(("$(", "${"), i):
                stack.append(_Frame("cmd" if text[i + 1] == "(" else "brace"))
                i += 2
            else:
                if c == "`":
                    stack.append(_Frame("bt"))
                i += 1
            continue
        if c == "\\":
            f.add(i)
            i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            _mark(safe, i + 1, end)
            f.add(i, marker in text[i + 1:end])
            i = end + 1
        elif c == '"':
            f.add(i)
            stack.append(_Frame("dq"))
            i += 1
        elif text.startswith(("$(", "${"), i):
            f.add(i)
            stack.append(_Frame("cmd" if text[i + 1] == "(" else "brace"))
            i += 2
        elif c == "`":
            if f.kind == "bt":
                f.end_word(text, i, found, marker)
                stack.pop()
            else:
                f.add(i)
                stack.append(_Frame("bt"))
            i += 1
        elif f.kind == "brace" and c == "}":
            stack.pop()
            i += 1
        elif c == "#" and f.start is None and f.kind != "brace":
            end = text.find("\n", i)
            end = n if end < 0 else end
            _mark(safe, i, end)
            i = end
        elif c == "\n":
            f.end_word(text, i, found, marker)
            f.end_command()
            i = _bodies(text, i + 1, heredocs, safe)
            heredocs = []
        elif c in " \t":
            f.end_word(text, i, found, marker)
            i += 1
        elif c in ";&|":
            f.end_word(text, i, found, marker)
            f.end_command()
            i += 1
        elif c == "(":
            f.end_word(text, i, found, marker)
            f.end_command()
            stack.append(_Frame("paren"))
            i += 1
        elif c == ")":
            f.end_word(text, i, found, marker)
            if f.cases == 0 and f.kind in ("cmd", "paren") and len(stack) > 1:
                stack.pop()
            f.end_command()
            i += 1
        elif text.startswith("<<", i):
            f.end_word(text, i, found, marker)
            i = _heredoc(text, i + 2, heredocs)
        elif c in "<>":
            f.end_word(text, i, found, marker)
            i += 2 if text.startswith(("<&", ">&", ">>", ">|"), i) else 1
            f.redirect = True
        else:
            f.add(i)
            i += 1
    for f in stack:
        f.end_word(text, n, found, marker)
    start = text.find(marker)
    while start >= 0:
        if not all(safe[start:start + len(marker)]):
            found.append(f"outside single quotes: {text[max(0, start - 60):start + len(marker) + 20]!r}")
        start = text.find(marker, start + 1)
    return found


def _heredoc(text, i, heredocs):
    """Read a here-document's operator from after '<<': remember its delimiter; the index after it."""
    strip = text.startswith("-", i)
    i += strip
    while i < len(text) and text[i] in " \t":
        i += 1
    start = i
    while i < len(text) and text[i] not in " \t\n;&|<>()":
        i += 1
    word = text[start:i]
    heredocs.append((word.replace("'", "").replace('"', "").replace("\\", ""), any(q in word for q in "'\"\\"),
                     strip))
    return i


def _bodies(text, i, heredocs, safe):
    """Skip the bodies of the here-documents opened on the line that ended before `i`; a quoted one is data."""
    for delimiter, quoted, strip in heredocs:
        while i < len(text):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            line = text[i:end]
            if (line.lstrip("\t") if strip else line) == delimiter:
                i = end + 1
                break
            if quoted:
                _mark(safe, i, end + 1)
            i = end + 1
    return i


def _mark(safe, start, end):
    safe[start:end] = b"\1" * len(safe[start:end])
