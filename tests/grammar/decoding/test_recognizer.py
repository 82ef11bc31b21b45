import numpy as np
import pytest

from grammar.acoustic.features import frame_levels, speech_modulation
from grammar.decoding.decoder import Grammar
from grammar.decoding.recognizer import SPEECH_FLOOR, Recognizer, receptive_field_frames
from grammar.errors import GrammarError
from tests.grammar.conftest import tone


@pytest.mark.parametrize("use_denoiser", [False, True])
def test_posteriors_are_normalised_and_rate_halved(tiny_am, tiny_grammar, use_denoiser):
    rec = Recognizer.load(tiny_am, denoiser=None if use_denoiser else False, grammar=tiny_grammar)
    logp = rec.posteriors(tone(1.5), 16000)
    frames = -(-24000 // 128) + 1  # STFT frames of 1.5 s
    assert logp.shape == (-(-frames // 2), 29)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-5)
    rec.speech_floor = None
    d = rec.recognize(tone(1.5), 16000)
    assert d.command in ("volume up", "mute", "call home")  # threshold -1e9 accepts everything
    assert isinstance(rec.transcribe(tone(1.5), 16000), str)


def test_other_rates_are_resampled(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    a = rec.posteriors(tone(1.5, 16000), 16000)
    b = rec.posteriors(tone(1.5, 48000), 48000)
    assert a.shape == b.shape


def test_audio_shorter_than_receptive_field_is_refused(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    short = receptive_field_frames(rec.config) * 128 - 1
    with pytest.raises(GrammarError, match="receptive field") as exc:
        rec.posteriors(np.zeros(short, np.float32) + 0.01, 16000, name="short.wav")
    assert "short.wav" in str(exc.value)


def test_rejects_below_threshold(tiny_am):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=Grammar.from_commands(["mute"], threshold=1e9))
    assert rec.recognize(tone(1.5), 16000).command is None


def test_missing_am_folder(tmp_path):
    with pytest.raises(GrammarError, match="float model not found"):
        Recognizer.load(tmp_path)


def test_speech_check_rejects_below_its_floor_and_reports_the_modulation(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    assert rec.speech_floor == SPEECH_FLOOR
    rec.speech_floor = None  # no check: the grammar's threshold (-1e9) accepts everything
    d = rec.recognize(tone(1.5), 16000)
    assert d.accepted and d.speech_modulation > 0
    assert d.speech_modulation == pytest.approx(speech_modulation(frame_levels(rec.features(tone(1.5), 16000))))
    rec.speech_floor = d.speech_modulation  # at the floor: speech
    assert rec.recognize(tone(1.5), 16000).command == d.command
    rec.speech_floor = d.speech_modulation * 1.001  # above it: rejected, the best expression and score kept
    r = rec.recognize(tone(1.5), 16000)
    assert r.command is None and r.command_index is None
    assert (r.expression, r.score, r.speech_modulation) == (d.expression, d.score, d.speech_modulation)
    assert rec.recognize(tone(1.5), 16000, speech_check=False).command == d.command  # the grammar's own decision


@pytest.mark.parametrize("floor", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_speech_floor_must_be_a_number_at_least_zero(tiny_am, tiny_grammar, floor):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    rec.speech_floor = floor
    with pytest.raises(GrammarError, match="speech floor"):
        rec.recognize(tone(1.5), 16000)
    with pytest.raises(GrammarError, match="speech floor"):
        Recognizer(rec.model, rec.config, rec.norm, speech_floor=floor)
