"""The one exception type of the ``rced`` package, and the one-line form of OS errors every CLI prints."""


class RcedError(Exception):
    """A user-facing error: the message is one line naming the file and the problem."""


def os_error_message(exc: OSError) -> str:
    """``<path>: <reason>`` of an OSError (both paths of a failed rename; the bare reason if it names none)."""
    reason = (exc.strerror or str(exc)).strip().split("\n")[0] or type(exc).__name__
    if exc.filename is None:
        return reason
    path = str(exc.filename) if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{path}: {reason}"

