"""The one exception type of the ``grammar`` package."""


class GrammarError(Exception):
    """A user-facing error: the message is one line naming the file (or input) and the problem."""


def read_text(path, kind: str) -> str:
    """Text of a user-supplied file; a missing, folder, unreadable or non-UTF-8 file is a
    one-line GrammarError naming it (``kind`` says what the file should have been)."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise GrammarError(f"{path}: {kind} not found")
    if path.is_dir():
        raise GrammarError(f"{path}: is a folder, not a {kind}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GrammarError(f"{path}: not UTF-8 text (byte {exc.start}), so not a {kind}") from None
    except OSError as exc:
        raise GrammarError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_json(path, kind: str):
    """Parsed JSON of a user-supplied file, with :func:`read_text`'s one-line errors."""
    import json

    text = read_text(path, kind)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrammarError(f"{path}: not a {kind} (invalid JSON at line {exc.lineno}: {exc.msg})") from None


def read_format(path, kind: str, short: str, fmt: str, version: int) -> dict:
    """A JSON object of one of the project's file formats: :func:`read_json`, then its ``format`` tag
    and ``version`` checked (``short`` names the format in the version error)."""
    data = read_json(path, kind)
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise GrammarError(f"{path}: not a {kind} (expected a JSON object with format {fmt!r})")
    if data.get("version") != version:
        raise GrammarError(f"{path}: unsupported {short} version {data.get('version')!r} (expected {version})")
    return data


def write_json(path, obj) -> None:
    """Write ``obj`` as JSON atomically; an output path that is a folder, or a value JSON cannot
    hold (e.g. in a provenance dict), is a one-line GrammarError naming the file."""
    import json
    from pathlib import Path

    from rced.audio import atomic_write_text

    if Path(path).is_dir():
        raise GrammarError(f"{path}: output path is an existing folder")
    try:
        text = json.dumps(obj, indent=1, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise GrammarError(f"{path}: provenance is not JSON-serialisable ({exc})") from None
    atomic_write_text(path, text + "\n")
