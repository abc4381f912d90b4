"""Numbers written in text: ASCII digits only, and Go's durations.

`str.isdigit` and `int()` take any Unicode digit: `int('٢')` is 2, `'¹'.isdigit()` is true and `int('¹')` fails.
Every number kubefab reads from an inventory, an option, a state file or a host's output goes through `whole`.
"""

import re

_DIGITS = re.compile(r"[0-9]+")


def whole(text, most=18):
    """The number written in `text` as 1 to `most` ASCII digits (18 stay below 2**63), or None."""
    if isinstance(text, str) and len(text) <= most and _DIGITS.fullmatch(text):
        return int(text)
    return None


# Go's time.ParseDuration, as kubeadm and the components read a duration: an optional sign, then "0" or a
# sequence of decimal numbers, each with a unit (both the micro sign U+00B5 and the Greek mu U+03BC spell µs)
GO_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}
GO_DURATION_MAX_NS = 2**63 - 1          # time.Duration: at most 2562047h
_GO_ELEMENT = rf"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)({'|'.join(sorted(GO_UNITS, key=len, reverse=True))})"
_GO_DURATION = re.compile(rf"[-+]?(0|({_GO_ELEMENT})+)")


def go_duration_ns(text):
    """The nanoseconds of Go duration `text` (fractions truncated, as Go does; negative after '-'), or None when it
    is not one. Digits past the 20th of a whole part only make it larger than any Duration, and past the 18th of a
    fraction add nothing; the caller compares with GO_DURATION_MAX_NS."""
    if not isinstance(text, str) or not _GO_DURATION.fullmatch(text):
        return None
    total = 0
    for number, unit in re.findall(_GO_ELEMENT, text):
        whole_part, _, fraction = number.partition(".")
        whole_part, fraction = whole_part.lstrip("0")[:20], fraction[:18]
        scale = GO_UNITS[unit]
        total += int(whole_part or 0) * scale + int(fraction or 0) * scale // 10 ** len(fraction)
    return -total if text.startswith("-") else total
