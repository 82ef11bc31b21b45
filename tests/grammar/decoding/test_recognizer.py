import numpy as np
import pytest

from grammar.acoustic.features import frame_levels, frame_tonal, log_mel, speech_modulation, tonality
from grammar.decoding.decoder import Grammar
from grammar.decoding.recognizer import (
    SPEECH_FLOOR,
    TONAL_CEILING,
    Recognizer,
    log_softmax,
    passes_speech_check,
    read_posteriors,
    receptive_field_frames,
)
from grammar.errors import GrammarError
from rced.frontend import stft
from tests.grammar.conftest import voiced


@pytest.mark.parametrize("use_denoiser", [False, True])
def test_posteriors_are_normalised_and_rate_halved(tiny_am, tiny_grammar, use_denoiser):
    rec = Recognizer.load(tiny_am, denoiser=None if use_denoiser else False, grammar=tiny_grammar)
    logp = rec.posteriors(voiced(1.5), 16000)
    frames = -(-24000 // 128) + 1  # STFT frames of 1.5 s
    assert logp.shape == (-(-frames // 2), 29)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-5)
    rec.speech_floor = None
    d = rec.recognize(voiced(1.5), 16000)
    assert d.command in ("volume up", "mute", "call home")  # threshold -1e9 accepts everything
    assert isinstance(rec.transcribe(voiced(1.5), 16000), str)


def test_other_rates_are_resampled(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    a = rec.posteriors(voiced(1.5, 16000), 16000)
    b = rec.posteriors(voiced(1.5, 48000), 48000)
    assert a.shape == b.shape


def test_audio_shorter_than_receptive_field_is_refused(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    short = receptive_field_frames(rec.config) * 128 - 1
    with pytest.raises(GrammarError, match="receptive field") as exc:
        rec.posteriors(np.zeros(short, np.float32) + 0.01, 16000, name="short.wav")
    assert "short.wav" in str(exc.value)


def test_rejects_below_threshold(tiny_am):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=Grammar.from_commands(["mute"], threshold=1e9))
    assert rec.recognize(voiced(1.5), 16000).command is None


def test_missing_am_folder(tmp_path):
    with pytest.raises(GrammarError, match="float model not found"):
        Recognizer.load(tmp_path)


def test_speech_check_rejects_below_its_floor_and_reports_the_modulation(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    assert rec.speech_floor == SPEECH_FLOOR
    rec.speech_floor = None  # no check: the grammar's threshold (-1e9) accepts everything
    d = rec.recognize(voiced(1.5), 16000)
    assert d.accepted and d.speech_modulation > 0
    assert d.speech_modulation == pytest.approx(speech_modulation(frame_levels(rec.features(voiced(1.5), 16000))))
    rec.speech_floor = d.speech_modulation  # at the floor: speech
    assert rec.recognize(voiced(1.5), 16000).command == d.command
    rec.speech_floor = d.speech_modulation * 1.001  # above it: rejected, the best expression and score kept
    r = rec.recognize(voiced(1.5), 16000)
    assert r.command is None and r.command_index is None
    assert (r.expression, r.score, r.speech_modulation) == (d.expression, d.score, d.speech_modulation)
    assert rec.recognize(voiced(1.5), 16000, speech_check=False).command == d.command  # the grammar's own decision


def beeps(seconds: float, sr: int = 16000) -> np.ndarray:
    """A 2 kHz tone switched on and off three times a second: it rises and falls as speech does."""
    t = np.arange(int(seconds * sr)) / sr
    return (0.1 * np.sin(2 * np.pi * 2000 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)


def test_speech_check_rejects_above_its_tonal_ceiling_and_reports_the_tonality(tiny_am, tiny_grammar):
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    assert rec.tonal_ceiling == TONAL_CEILING and rec.speech_limits == (SPEECH_FLOOR, TONAL_CEILING)
    x = beeps(2.0)
    d = rec.recognize(x, 16000, speech_check=False)  # the grammar's threshold (-1e9) accepts everything
    feats = rec.features(x, 16000)
    assert d.accepted and d.speech_modulation >= SPEECH_FLOOR  # the floor alone lets the beeps through
    assert d.tonality == pytest.approx(tonality(rec.speech_tracks(feats)[1])) and d.tonality > 0.4  # on half the time
    spectrum_tonal = frame_tonal(log_mel(np.abs(stft(x, rec.config.frontend)), rec.config))
    np.testing.assert_array_equal(rec.speech_tracks(feats)[1], spectrum_tonal)  # undoing the normalisation is exact enough
    r = rec.recognize(x, 16000)
    assert r.command is None and (r.expression, r.score, r.tonality) == (d.expression, d.score, d.tonality)
    rec.tonal_ceiling = d.tonality  # at the ceiling: speech
    assert rec.recognize(x, 16000).command == d.command
    rec.tonal_ceiling = TONAL_CEILING
    rec.no_speech_check()
    assert rec.speech_limits == (None, None) and rec.recognize(x, 16000).command == d.command
    assert tonality(rec.speech_tracks(rec.features(voiced(1.5), 16000))[1]) == 0.0  # a buzz spreads over many bands
    t = np.arange(24000) / 16000
    low = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    assert tonality(rec.speech_tracks(rec.features(low, 16000))[1]) > 0.95  # a low tone: three narrow bands, still tonal


@pytest.mark.parametrize(("modulation", "tonal", "floor", "ceiling", "passes"), [
    (0.2, 0.1, 0.15, 0.26, True), (0.1, 0.1, 0.15, 0.26, False), (0.2, 0.3, 0.15, 0.26, False),
    (0.1, 0.3, None, None, True), (0.1, 0.3, None, 0.26, False), (0.1, 0.3, 0.15, None, False),
    (0.15, 0.26, 0.15, 0.26, True),
])  # fmt: skip
def test_passes_speech_check(modulation, tonal, floor, ceiling, passes):
    assert passes_speech_check(modulation, tonal, floor, ceiling) is passes


@pytest.mark.parametrize(("attr", "value", "message"), [
    *[("speech_floor", v, "speech floor") for v in (-0.1, float("nan"), float("inf"), True, "0.1")],
    *[("tonal_ceiling", v, "tonal ceiling") for v in (-0.1, 1.5, float("nan"), True, "0.2")],
])  # fmt: skip
def test_the_speech_checks_floor_and_ceiling_are_checked(tiny_am, tiny_grammar, attr, value, message):
    """The floor is a number >= 0, the ceiling a share in [0, 1] (None: no such test)."""
    rec = Recognizer.load(tiny_am, denoiser=False, grammar=tiny_grammar)
    setattr(rec, attr, value)
    with pytest.raises(GrammarError, match=message):
        rec.recognize(voiced(1.5), 16000)
    with pytest.raises(GrammarError, match=message):
        Recognizer(rec.model, rec.config, rec.norm, **{attr: value})


# ----------------------------------------------------------------------------- the posterior readout


@pytest.mark.parametrize(("scale", "penalty"), [(1.0, 0.0), (1.0, 0.5), (2.0, 0.0), (2.0, 1.0), (0.5, 3.0)])
def test_read_posteriors_is_the_closed_form(scale, penalty):
    """p'[s] is proportional to p[s] ** scale, times exp(-penalty) for the blank."""
    from grammar.alphabet import BLANK_ID
    from grammar.config import AMConfig

    scores = np.random.default_rng(4).normal(scale=3.0, size=(7, 29))
    cfg = AMConfig(posterior_scale=scale, blank_penalty=penalty)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    q = p**scale
    q[:, BLANK_ID] *= np.exp(-penalty)
    q /= q.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.exp(read_posteriors(scores, cfg)), q, atol=1e-12)
    np.testing.assert_allclose(read_posteriors(scores, AMConfig()), log_softmax(scores), atol=1e-12)
    np.testing.assert_allclose(read_posteriors(scores, None), log_softmax(scores), atol=1e-12)


def test_the_recognizer_reads_through_its_configs_readout_and_a_blank_penalty_lifts_the_symbols(tiny_am):
    """Offline and streamed posteriors follow the AM config's readout; a blank penalty lowers the
    blank's share in every frame."""
    import dataclasses

    from grammar.alphabet import BLANK_ID
    from grammar.decoding.listen import PosteriorStream

    rec = Recognizer.load(tiny_am, denoiser=False, grammar=False)
    x = voiced(1.5)
    plain = rec.posteriors(x, 16000)
    rec.config = dataclasses.replace(rec.config, posterior_scale=1.0, blank_penalty=2.0)
    read = rec.posteriors(x, 16000)
    np.testing.assert_allclose(read, read_posteriors(plain, rec.config), atol=1e-5)
    assert np.all(read[:, BLANK_ID] < plain[:, BLANK_ID])
    st = PosteriorStream(rec)
    streamed = np.concatenate([st.push(x[i : i + 1000]) for i in range(0, len(x), 1000)] + [st.flush()])
    np.testing.assert_allclose(streamed, read, atol=1e-4)


def test_the_readout_round_trips_through_config_json_and_is_checked(tmp_path):
    from grammar.config import AMConfig
    from rced.config import load_json, save_json

    cfg = AMConfig(posterior_scale=2.0, blank_penalty=1.0)
    save_json(cfg, tmp_path / "config.json")
    assert load_json(AMConfig, tmp_path / "config.json").readout == (2.0, 1.0)
    assert AMConfig().readout == (1.0, 0.0)
    for kw, what in (({"posterior_scale": 0.0}, "posterior_scale"), ({"posterior_scale": True}, "posterior_scale"),
                     ({"blank_penalty": -1.0}, "blank_penalty"), ({"blank_penalty": "1"}, "blank_penalty")):  # fmt: skip
        with pytest.raises(GrammarError, match=what):
            AMConfig(**kw)
