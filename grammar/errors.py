"""The one exception type of the ``grammar`` package."""


class GrammarError(Exception):
    """A user-facing error: the message is one line naming the file (or input) and the problem."""
