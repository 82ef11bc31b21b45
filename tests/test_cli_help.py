"""Help that teaches: every argument of every command of the three console scripts says what it is
for, and every command's --help ends with worked examples."""

from __future__ import annotations

import argparse

import pytest

import firmware_export.cli
import grammar.cli
import rced.cli

SCRIPTS = {"rced": rced.cli.build_parser, "grammar": grammar.cli.build_parser,
           "firmware-export": firmware_export.cli.build_parser}  # fmt: skip


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every sub-command, nested ones (``grammar dictionary build``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def every_command():
    return [pytest.param(prog, path, id=" ".join((prog, *path))) for prog, build in SCRIPTS.items()
            for path, _ in commands(build())]  # fmt: skip


def parser_of(prog: str, path: tuple[str, ...]) -> argparse.ArgumentParser:
    return dict(commands(SCRIPTS[prog]()))[path]


@pytest.mark.parametrize("prog", list(SCRIPTS))
def test_top_level_arguments_have_help(prog):
    p = SCRIPTS[prog]()
    assert [a.dest for a in p._actions if a.dest != "help" and not (a.help or "").strip()] == []


@pytest.mark.parametrize("prog,path", every_command())
def test_every_argument_has_help_and_the_help_ends_with_examples(prog, path):
    p = parser_of(prog, path)
    assert [a.option_strings or a.dest for a in p._actions if a.dest != "help" and not (a.help or "").strip()] == []
    assert p.epilog and p.epilog.startswith("examples:"), "no examples at the end of the help"
    assert p.formatter_class is argparse.RawDescriptionHelpFormatter  # the examples keep their lines
    lines = p.format_help().rstrip().splitlines()
    tail = lines[lines.index("examples:") + 1:]
    assert 1 <= len(tail) <= 3 and all(ln.startswith(f"  {prog} ") for ln in tail), tail  # one or two, maybe wrapped
    assert any(ln.startswith("  " + " ".join((prog, *path))) for ln in tail), tail  # this command, used


def test_recognize_help_says_where_the_commands_live_and_how_to_give_your_own():
    text = " ".join(parser_of("grammar", ("recognize",)).format_help().split())
    for needle in ("grammar/data/commands_default.txt", "grammar/data/grammar_default.json", "--commands FILE",
                   "--grammar G.json", "grammar listen"):  # fmt: skip
        assert needle in text


def test_train_am_defaults_are_the_shipped_models():
    from grammar.config import AMConfig
    from grammar.decoding.recognizer import default_am_path
    from rced.config import load_json

    shipped = load_json(AMConfig, default_am_path() / "config.json")
    args = grammar.cli.build_parser().parse_args(["train-am", "run"])
    assert (args.channels, args.blocks) == (shipped.channels, shipped.blocks)
    cfg = grammar.cli._train_am_config(args).am
    assert (cfg.channels, cfg.blocks, cfg.kernel, cfg.stride, cfg.lookahead, cfg.n_mels, cfg.fmin) == (
        shipped.channels, shipped.blocks, shipped.kernel, shipped.stride, shipped.lookahead, shipped.n_mels,
        shipped.fmin)  # fmt: skip
    assert f"{shipped.channels} channels" in parser_of("grammar", ("train-am",)).format_help()


def test_rced_train_choices_match_the_library():
    """The parser lists sizes and strategies without importing TensorFlow; they must stay the library's."""
    from rced.models import SIZES
    from rced.train import STRATEGIES

    train = parser_of("rced", ("train",))
    choices = {a.dest: a.choices for a in train._actions}
    assert choices["size"] == list(SIZES) and choices["strategy"] == list(STRATEGIES)
