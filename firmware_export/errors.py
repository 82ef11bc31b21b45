"""The one exception type of the ``firmware_export`` package."""


class ExportError(Exception):
    """A user-facing error: one line naming the model or file and the problem."""
