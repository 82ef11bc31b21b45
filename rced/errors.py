"""The one exception type of the ``rced`` package, and how every CLI reports errors (one line)."""

from __future__ import annotations

import sys
from collections.abc import Callable


class RcedError(Exception):
    """A user-facing error: the message is one line naming the file and the problem."""


def os_error_message(exc: OSError) -> str:
    """``<path>: <reason>`` of an OSError (both paths of a failed rename; the bare reason if it names none)."""
    reason = (exc.strerror or str(exc)).strip().split("\n")[0] or type(exc).__name__
    if exc.filename is None:
        return reason
    path = str(exc.filename) if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{path}: {reason}"



def run_command(prog: str, command: Callable[[], int], errors: tuple[type[Exception], ...] = ()) -> int:
    """Run one CLI command: ``RcedError``, the given user-facing ``errors`` and OS errors become one
    line ``<prog>: error: ...`` on stderr and exit code 2; Ctrl-C becomes exit code 130."""
    try:
        return command()
    except (RcedError, *errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output folder that is a file, or no permission to write there
        print(f"{prog}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
