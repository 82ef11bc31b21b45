import errno

import pytest

from rced.errors import RcedError, os_error_message, run_command


class OtherError(Exception):
    pass


def _raise(exc):
    def command():
        raise exc

    return command


@pytest.mark.parametrize("exc,code,line", [
    (RcedError("a.wav: empty audio file"), 2, "prog: error: a.wav: empty audio file"),
    (OtherError("grammar.json: not a grammar"), 2, "prog: error: grammar.json: not a grammar"),
    (OSError(errno.EACCES, "Permission denied", "out/x.wav"), 2, "prog: error: out/x.wav: Permission denied"),
    (KeyboardInterrupt(), 130, "prog: interrupted"),
])  # fmt: skip
def test_run_command_reports_one_line_and_exit_code(capsys, exc, code, line):
    assert run_command("prog", _raise(exc), (OtherError,)) == code
    err = capsys.readouterr().err
    assert err == line + "\n"


def test_run_command_passes_the_result_and_other_errors_through():
    assert run_command("prog", lambda: 0) == 0
    with pytest.raises(ValueError):  # a bug, not a user error: the traceback must show
        run_command("prog", _raise(ValueError("bug")))
    with pytest.raises(OtherError):  # not declared by this CLI
        run_command("prog", _raise(OtherError("x")))


def test_os_error_message_names_both_paths_of_a_rename():
    exc = OSError(errno.EXDEV, "Invalid cross-device link", "a.part", None, "b.wav")
    assert os_error_message(exc) == "a.part -> b.wav: Invalid cross-device link"
