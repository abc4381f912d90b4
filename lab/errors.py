"""The lab's one exception type."""


class LabError(Exception):
    """A lab could not be built, reached or cleaned; the message says which host and what to do."""
