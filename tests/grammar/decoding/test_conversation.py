"""Conversation streams: the plan (voices, commands, pauses), the voice split, the mixed stream."""

import numpy as np
import pytest

from grammar.decoding.conversation import (
    COMMAND_GAP_S,
    TURN_GAP_S,
    ConversationConfig,
    make_conversation,
    plan,
    split_voices,
)
from grammar.errors import GrammarError
from rced import tts

COMMANDS = ["volume up", "mute", "call home", "open the door"]


def test_plan_is_deterministic_and_long_enough():
    cfg = ConversationConfig(minutes=5.0, seed=3)
    items = plan(COMMANDS, cfg)
    assert items == plan(COMMANDS, cfg)
    assert items != plan(COMMANDS, ConversationConfig(minutes=5.0, seed=4))
    words = sum(len(t.split()) for t, c, _, _ in items if c is None)
    assert words > 5 * 60 / 0.8  # minutes of ordinary talk (about 0.5 s a word), not a handful of sentences


def test_commands_go_round_the_grammar_and_the_voices_with_pauses_around_them():
    items = plan(COMMANDS, ConversationConfig(minutes=20.0, seed=1))
    cmds = [(i, c, v) for i, (_, c, v, _) in enumerate(items) if c is not None]
    n_voices = len(split_voices("test"))
    assert len(cmds) >= 3 * len(COMMANDS)
    for k, (_, _, v) in enumerate(cmds):
        assert v == k % n_voices  # every voice, the natural one included, says its share
    for j in range(0, len(cmds) - len(COMMANDS) + 1, len(COMMANDS)):
        assert sorted(c for _, c, _ in cmds[j : j + len(COMMANDS)]) == sorted(COMMANDS)
    for i, _, _ in cmds:
        assert COMMAND_GAP_S[0] <= items[i][3] <= COMMAND_GAP_S[1]
        if i:
            assert COMMAND_GAP_S[0] <= items[i - 1][3] <= COMMAND_GAP_S[1]
    talk = [gap for i, (_, c, _, gap) in enumerate(items[:-1]) if c is None and items[i + 1][1] is None]
    assert talk and all(TURN_GAP_S[0] <= g <= TURN_GAP_S[1] for g in talk)


def test_voice_split_keeps_test_voices_out_of_dev():
    test_ids = {v.id for v in tts.test_voices() + tts.natural_test_voices()}
    assert {v.id for v in split_voices("test")} == test_ids
    dev = {v.id for v in split_voices("dev")}
    trained = {v.id for v in tts.train_voices() + tts.pico_voices() + tts.kokoro_voices() + tts.kokoro_more_voices()}
    assert dev and not dev & test_ids and not dev & trained
    assert all(v.engine == "kokoro" for v in split_voices("dev"))


@pytest.mark.parametrize("kw", [{"split": "train"}, {"minutes": 0}, {"minutes": float("nan")}, {"command_every": 0.5}])
def test_bad_configurations_are_refused(kw):
    with pytest.raises(GrammarError):
        ConversationConfig(**kw)
    with pytest.raises(GrammarError):
        plan([], ConversationConfig())


def test_a_short_stream_is_mixed_at_its_snr_with_segments_on_its_clock():
    cfg = ConversationConfig(minutes=0.25, seed=5, split="dev", command_every=2.0, snr=10.0)
    sc = make_conversation(COMMANDS, cfg, workers=1)
    assert sc.noisy.shape == sc.clean.shape and sc.noisy.dtype == np.float32
    assert len(sc.segments) == len(plan(COMMANDS, cfg))
    assert all(a.end < b.start for a, b in zip(sc.segments, sc.segments[1:]))
    assert sc.segments[-1].end <= len(sc.noisy) / sc.sr
    on = np.zeros(len(sc.clean), bool)
    for s in sc.segments:
        on[int(s.start * sc.sr) : int(s.end * sc.sr)] = True
    speech, noise = sc.clean[on], (sc.noisy - sc.clean)[on]
    assert 10 * np.log10(np.mean(speech**2) / np.mean(noise**2)) == pytest.approx(10.0, abs=0.5)
    assert {s.voice for s in sc.segments} <= {v.id for v in split_voices("dev")}
