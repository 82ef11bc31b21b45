import pytest

from grammar.alphabet import encode
from grammar.commands import default_commands_path, load_commands
from grammar.errors import GrammarError

DEFAULT = [
    "volume up", "volume down", "mute", "unmute", "next program", "previous program",
    "noise reduction on", "noise reduction off", "battery level", "answer the call", "end the call",
    "play music", "pause music", "next song", "turn on the lights", "turn off the lights",
    "what time is it", "call home", "open the door", "stop listening",
]  # fmt: skip


def test_default_commands():
    path = default_commands_path()
    assert path.is_file()
    commands = load_commands(path)
    assert commands == DEFAULT
    assert len(commands) == 20
    for c in commands:
        encode(c)


def test_comments_blank_lines_and_normalisation(tmp_path):
    path = tmp_path / "cmds.txt"
    path.write_text(
        "\ufeff# my commands\n\nVolume-Up!\n   # indented comment\nnext   song  # inline comment\n\r\nwhat’s up\n",
        encoding="utf-8",
    )
    assert load_commands(path) == ["volume up", "next song", "what's up"]


def test_accepts_str_path(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("mute\n")
    assert load_commands(str(path)) == ["mute"]


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "not found"),
        ("", "no commands"),
        ("# only a comment\n\n   \n", "no commands"),
        ("mute\nvolume up\nMute!\n", r"duplicate command 'mute' on lines 1 and 3"),
        ("volume up\nvolume-up\n", r"lines 1 and 2"),
        ("mute\n!!! ???\n", r":2: .*no letters"),
        (b"mute\n\xff\xfe bad\n", "not UTF-8"),
        ("folder", "folder"),
    ],
)
def test_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "my_commands.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        _write(path, content)
    with pytest.raises(GrammarError, match=match) as info:
        load_commands(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg
