"""Whole numbers written in text: ASCII digits only.

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
