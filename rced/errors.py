"""The one exception type of the ``rced`` package."""


class RcedError(Exception):
    """A user-facing error: the message is one line naming the file and the problem."""
