"""Errors a user can act on: printed as they are, without a traceback."""


class KubefabError(Exception):
    """A problem the user can fix; its message says where and what to do."""


class InventoryError(KubefabError):
    """The inventory has one or more problems; all of them are listed at once."""

    def __init__(self, path, problems):
        self.path = path
        self.problems = tuple(problems)
        lines = [f"{path}: {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))
