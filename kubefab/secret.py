"""Secrets as a type: a token or key that prints as *** in logs, plans and errors."""

MASK = "***"


class Secret:
    """A secret value; `str()` and `repr()` mask it, `reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value

    def reveal(self):
        return self._value

    def __str__(self):
        return MASK

    def __repr__(self):
        return f"Secret({MASK})"

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self):
        return hash(self._value)
