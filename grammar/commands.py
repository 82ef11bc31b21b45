"""The user's command list: one command a line, ``#`` comments, normalised to the AM alphabet."""

from __future__ import annotations

import os
from pathlib import Path

from grammar.alphabet import normalize_text
from grammar.errors import GrammarError, read_text


def default_commands_path() -> Path:
    """The shipped default command set (20 hearing-aid and smart-device commands)."""
    return Path(__file__).resolve().parent / "data" / "commands_default.txt"


def load_commands(path: str | os.PathLike) -> list[str]:
    """Commands of a text file, in file order, each normalised with :func:`normalize_text`.

    Blank lines and comments (from ``#`` to the end of the line) are skipped. Raises
    :class:`GrammarError`, naming the file, when it is missing or unreadable, holds no
    command, has a line with no letters left after normalisation, or lists a command twice
    (after normalisation; the message gives both line numbers).
    """
    path = Path(path)
    text = read_text(path, "command file")

    commands: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            command = normalize_text(line)
        except GrammarError:
            raise GrammarError(f"{path}:{lineno}: {line!r} has no letters left after normalisation") from None
        if command in first_line:
            raise GrammarError(f"{path}: duplicate command {command!r} on lines {first_line[command]} and {lineno}")
        first_line[command] = lineno
        commands.append(command)
    if not commands:
        raise GrammarError(f"{path}: no commands (only blank lines and comments)")
    return commands
