import numpy as np
import pytest

from rced.corpus import (
    ALSA_DIR,
    ALSA_PHRASES,
    EvalItem,
    Utterance,
    crossfade_join,
    eval_set,
    make_babble,
    mix,
    natural_test_utterances,
    plan_utterances,
    real_recordings,
    rms,
    synthesize_all,
    train_utterances,
    vocode,
)
from rced.corpus import test_utterances as plan_test_utterances
from rced.errors import RcedError
from rced.text import common_words, random_sentence
from rced.tts import (
    KOKORO_DEV_SPEAKERS,
    KOKORO_MORE_SPEAKERS,
    KOKORO_SPEAKERS,
    KOKORO_STYLES,
    Prosody,
    Voice,
    kokoro_dev_voices,
    kokoro_more_voices,
    kokoro_style_weights,
    kokoro_voices,
    natural_test_voices,
    pico_voices,
    synthesize,
    train_voices,
)
from rced.tts import test_voices as list_test_voices


def test_voice_split_is_disjoint_and_complete():
    train, test = {v.id for v in train_voices()}, {v.id for v in list_test_voices()}
    assert not train & test
    assert {"flite:kal16", "flite:awb", "flite:slt", "festival:kal_diphone", "piper:joe"} <= train
    assert test == {"flite:rms", "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts"}
    assert sum(v.engine == "espeak" for v in train_voices()) > 100  # every English voice x variant
    natural = {v.id for v in natural_test_voices()}
    assert natural == {"hibari:heart"} and not natural & (train | test)  # TEST-ONLY, listed apart
    pico = {v.id for v in pico_voices()}
    assert pico == {"pico:en-US", "pico:en-GB"} and not pico & (test | natural)  # TRAIN, listed apart
    kokoro = {v.id for v in kokoro_voices()}
    assert len(kokoro) == 16 and not kokoro & (train | test | natural | pico)  # TRAIN, listed apart


@pytest.mark.parametrize("voice", [Voice("espeak", "en-us+Alex"), Voice("flite", "kal16"), Voice("flite", "rms"),
                                   Voice("festival", "kal_diphone"), Voice("piper", "joe"), Voice("hibari", "heart"),
                                   Voice("pico", "en-US"), Voice("pico", "en-GB"), Voice("kokoro", "blend03")],
                         ids=lambda v: v.id)  # fmt: skip
def test_every_engine_speaks(voice):
    a = synthesize("volume up please", voice, Prosody(1.1, 1.0), seed=3)
    assert a.dtype == np.float32 and 0.4 < len(a) / 16000 < 4.0
    assert rms(a) > 1e-3 and np.all(np.isfinite(a))


@pytest.mark.parametrize("voice", [Voice("piper", "joe"), Voice("hibari", "heart"), Voice("kokoro", "blend03")],
                         ids=lambda v: v.id)  # fmt: skip
def test_neural_voices_are_a_function_of_their_request(voice):
    """The neural engines draw noise inside their models: the same (text, prosody, seed) must give
    the same audio whatever was spoken before, and another seed other audio where the engine
    takes one, so a fresh cache of synthesised speech equals every other."""
    say = "switch off the radio"
    first = synthesize(say, voice, Prosody(1.05, 0.0), seed=11)
    synthesize("and something else in between", voice, Prosody(0.9, 0.0), seed=12)
    again = synthesize(say, voice, Prosody(1.05, 0.0), seed=11)
    np.testing.assert_array_equal(first, again)
    if voice.engine != "kokoro":  # Kokoro draws nothing: the seed is not an input
        other = synthesize(say, voice, Prosody(1.05, 0.0), seed=13)
        assert len(other) != len(first) or not np.array_equal(other, first)


def test_piper_cache_moved_with_its_seeding():
    assert Voice("piper", "joe").cache_folder == "piper-seeded"  # the unseeded audio is not reused
    assert Voice("flite", "rms").cache_folder == "flite"


def test_slower_prosody_is_longer():
    v = Voice("espeak", "en-us")
    assert len(synthesize("turn on the lights", v, Prosody(1.3))) > len(synthesize("turn on the lights", v, Prosody(0.8)))


def test_pico_is_deterministic_and_follows_the_prosody():
    v = pico_voices()[1]
    a = synthesize("open the door", v, Prosody(1.0, 0.0))
    synthesize("volume up please", pico_voices()[0], Prosody(1.1, 1.0))  # another voice and prosody between
    np.testing.assert_array_equal(a, synthesize("open the door", v, Prosody(1.0, 0.0), seed=9))  # no seed, no state
    assert len(synthesize("open the door", v, Prosody(1.3))) > len(a) > len(synthesize("open the door", v, Prosody(0.8)))
    assert np.max(np.abs(a)) < 0.99  # volume 0.5: no clipped peaks


def test_pico_utterances_come_after_the_unchanged_plan():
    base = train_utterances(30, 2)
    more = train_utterances(30, 2, pico=10)
    assert more[:30] == base and len(more) == 40
    assert all(u.voice in pico_voices() for u in more[30:])
    assert len({u.voice for u in more[30:]}) == 2 and len({u.text for u in more[30:]}) == 10


def test_kokoro_dev_speakers_are_not_train_speakers():
    dev = {v.id for v in kokoro_dev_voices()}
    assert len(dev) == KOKORO_DEV_SPEAKERS and not dev & {v.id for v in kokoro_voices()}
    with pytest.raises(RcedError, match="TRAIN"):
        kokoro_voices(KOKORO_SPEAKERS + 1)
    more = [v.id for v in kokoro_more_voices()]
    assert len(set(more)) == KOKORO_MORE_SPEAKERS and not set(more) & (dev | {v.id for v in kokoro_voices()})
    assert more[0] == f"kokoro:blend{KOKORO_SPEAKERS + KOKORO_DEV_SPEAKERS:02d}"  # numbered after the dev block
    with pytest.raises(RcedError, match="TRAIN"):
        kokoro_more_voices(KOKORO_MORE_SPEAKERS + 1)


def test_more_kokoro_speakers_plan_after_the_unchanged_plan():
    base = train_utterances(30, 2, pico=4, kokoro=10)
    more = train_utterances(30, 2, pico=4, kokoro=10, kokoro_more=64)
    assert more[:44] == base and len(more) == 108
    assert {u.voice for u in more[44:]} <= set(kokoro_more_voices()) and len({u.voice for u in more[44:]}) > 16


def test_kokoro_speakers_are_blends_of_the_five_styles():
    w0, j0 = kokoro_style_weights("blend00")
    assert w0.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0] and not j0.any()  # the man's voice alone
    assert KOKORO_STYLES[0] == "jm_kumo"
    ws = np.array([kokoro_style_weights(v.name)[0] for v in kokoro_voices()[1:]])
    assert np.allclose(ws.sum(axis=1), 1) and (ws >= 0).all() and len({tuple(w) for w in ws}) == 15
    assert ws[:, 0].mean() > ws[:, 1:].mean(axis=0).max()  # weighted toward the low-pitched voice
    np.testing.assert_array_equal(kokoro_style_weights("blend07")[1], kokoro_style_weights("blend07")[1])
    with pytest.raises(RcedError, match="expected blendNN"):
        kokoro_style_weights("heart")


def test_kokoro_is_deterministic_follows_the_rate_and_plans_after_the_others():
    v = kokoro_voices()[5]
    a = synthesize("open the door", v)
    assert np.array_equal(a, synthesize("open the door", v, seed=4))  # no noise inside the model
    assert not np.array_equal(a[:8000], synthesize("open the door", kokoro_voices()[6])[:8000])  # another speaker
    assert len(synthesize("open the door", v, Prosody(1.3))) > len(a) > len(synthesize("open the door", v, Prosody(0.8)))
    more = train_utterances(30, 2, pico=4, kokoro=10)
    assert more[:34] == train_utterances(30, 2, pico=4) and all(u.voice.engine == "kokoro" for u in more[34:])


def test_plans_are_deterministic_and_seed_dependent():
    assert train_utterances(20, 5) == train_utterances(20, 5)
    assert train_utterances(20, 5) != train_utterances(20, 6)
    assert all(u.voice in list_test_voices() for u in plan_test_utterances(3, 1))
    natural = sum(u.voice.engine != "espeak" for u in train_utterances(200, 0))
    assert 70 < natural < 130  # half the utterances from the natural-sounding voices


@pytest.fixture
def small_eval_plans(tmp_path, monkeypatch):
    """eval_set over one espeak voice and three babble talkers, cached in the test's own folder: small
    plans keep the tests fast; the natural voice, the real recordings and the ALSA phrases are the real ones."""
    import rced.corpus as corpus

    monkeypatch.setenv("STAPES_CACHE", str(tmp_path))
    espeak = [Voice("espeak", "en-us")]
    monkeypatch.setattr(corpus, "test_utterances", lambda n, seed: plan_utterances(espeak, n, seed, n_words=(3, 4)))
    monkeypatch.setattr(corpus, "train_utterances", lambda n, seed: plan_utterances(espeak, 3, seed, n_words=(3, 4)))


def test_eval_set_adds_the_natural_voice_only_when_asked(small_eval_plans):
    """include_natural appends the natural voice's items; every other item (level, babble) is unchanged."""
    kw = {"n_per_voice": 1, "snrs": (0.0, 5.0), "include_real": False}
    base = eval_set(**kw)
    more = eval_set(**kw, include_natural=True)
    assert len(more) == len(base) + 2 and {it.name for it in base} == {"espeak:en-us#0"}
    for a, b in zip(base, more):
        assert a.name == b.name and a.snr == b.snr
        np.testing.assert_array_equal(a.noisy, b.noisy)
    assert [it.name for it in more[len(base):]] == ["hibari:heart#0", "hibari:heart#0"]
    assert all(u.voice in natural_test_voices() for u in natural_test_utterances(2, 1234))
    assert not any(it.name.startswith("hibari:") for it in eval_set(**kw))  # off by default


def test_text_comes_from_the_word_list():
    words = set(common_words())
    s = random_sentence(np.random.default_rng(0), 3, 5)
    assert 3 <= len(s.split()) <= 5 and set(s.split()) <= words


def test_cache_makes_second_run_free(tmp_path, monkeypatch):
    monkeypatch.setenv("STAPES_CACHE", str(tmp_path))
    utts = plan_utterances([Voice("espeak", "en-us")], 3, seed=1)
    paths = synthesize_all(utts, workers=1)
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert synthesize_all(utts, workers=1) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assert isinstance(utts[0], Utterance) and len(utts[0].key()) == 16


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0, 20.0])
def test_mix_hits_the_snr(snr):
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(8000), rng.standard_normal(8000) * 3
    noisy = mix(clean, noise, snr)
    assert 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2)) == pytest.approx(snr, abs=0.01)


def test_babble_sums_several_talkers_at_unit_level():
    rng = np.random.default_rng(1)
    pool = [np.sin(np.arange(4000) * f) for f in (0.01, 0.02, 0.05, 0.07, 0.11)]
    b = make_babble(20000, pool, rng)
    assert len(b) == 20000 and rms(b) == pytest.approx(1.0, rel=1e-3)
    assert make_babble(20000, pool, np.random.default_rng(1)).tolist() == b.tolist()


def test_real_recordings_ship_with_packages():
    recs = dict(real_recordings())
    assert set(recs) == {"real:pysptk_arctic_a0007", "real:amfm_sample"}
    assert all(len(a) > 8000 for a in recs.values())  # 4.0 s and 0.9 s
    assert EvalItem("x", 0.0, recs["real:amfm_sample"], recs["real:amfm_sample"]).snr == 0.0


def _harmonic_tone(f0: float, sr: int = 16000, formant: float | None = None) -> np.ndarray:
    t = np.arange(int(0.8 * sr)) / sr
    amp = (lambda f: 1 / (1 + ((f - formant) / 250) ** 2)) if formant else (lambda f: f0 / f)
    x = sum(np.sin(2 * np.pi * f0 * k * t) * amp(k * f0) for k in range(1, 50 if formant else 20))
    return (x * np.hanning(len(t)) * 0.1).astype(np.float32)


def _pitch(y: np.ndarray, sr: int = 16000) -> float:
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    ac = np.correlate(mid, mid, "full")[len(mid) - 1 :]
    return sr / (np.argmax(ac[sr // 400 : sr // 60]) + sr // 400)  # strongest period between 60 and 400 Hz


def _formant(y: np.ndarray, sr: int = 16000) -> float:
    """Frequency of the peak of the power spectrum smoothed over 300 Hz."""
    from scipy.ndimage import uniform_filter1d

    spec = uniform_filter1d(np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2, int(300 * len(y) / sr))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize("f0_scale", [1.0, 1.25])
def test_vocode_keeps_length_and_level_and_scales_pitch(f0_scale):
    x = _harmonic_tone(150.0)
    y = vocode(x, f0_scale=f0_scale)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.02)
    assert _pitch(y) == pytest.approx(150.0 * f0_scale, rel=0.05)  # the excitation keeps (or scales) the pitch


def test_vocode_warp_moves_the_envelope():
    x = _harmonic_tone(150.0, formant=1500.0)
    plain, longer, shorter = (_formant(vocode(x, warp=w)) for w in (0.0, 0.08, -0.08))
    assert plain == pytest.approx(1500.0, abs=60)
    assert longer < 1400.0 and shorter > 1650.0  # a larger synthesis alpha is a longer vocal tract
    assert _pitch(vocode(x, warp=0.08)) == pytest.approx(150.0, rel=0.05)


@pytest.mark.parametrize("kw", [{"warp": 0.5}, {"f0_scale": 0.1}, {"f0_scale": 9.0}])
def test_vocode_refuses_wild_settings(kw):
    with pytest.raises(RcedError, match="warp must be"):
        vocode(_harmonic_tone(150.0), **kw)


def test_vocode_refuses_other_rates():
    with pytest.raises(RcedError, match="16 kHz"):
        vocode(np.zeros(8000, np.float32), sr=8000)


@pytest.mark.skipif(not ALSA_DIR.exists(), reason="alsa-utils' speaker-test recordings are not installed")
def test_eval_set_adds_the_alsa_phrases_last_only_when_asked(small_eval_plans):
    kw = {"n_per_voice": 1, "snrs": (0.0, 5.0), "include_real": False}
    base, more = eval_set(**kw), eval_set(**kw, include_alsa=True)
    assert len(more) == len(base) + 2 * len(ALSA_PHRASES)
    for a, b in zip(base, more):
        np.testing.assert_array_equal(a.noisy, b.noisy)
    assert [it.name for it in more[len(base) :: 2]] == [f"alsa:{p.replace(' ', '_')}" for p in ALSA_PHRASES]
    assert all(0.5 < len(it.clean) / 16000 < 3 for it in more[len(base) :])  # about a second each, at 16 kHz


def test_more_real_draws_append_and_leave_the_rest(small_eval_plans):
    kw = {"n_per_voice": 1, "snrs": (0.0, 5.0), "include_alsa": True}
    base, more = eval_set(**kw), eval_set(**kw, real_draws=3)
    n_real = len(real_recordings())
    assert n_real == 2 and len(more) == len(base) + 2 * n_real * 2  # two more draws x recordings x SNRs
    for a, b in zip(base, more):
        assert a.name == b.name
        np.testing.assert_array_equal(a.noisy, b.noisy)
    extra = more[len(base):]
    assert all(it.name.startswith("real:") for it in extra)
    same = [it for it in base if it.name == extra[0].name and it.snr == extra[0].snr]
    assert not np.array_equal(same[0].noisy, extra[0].noisy)  # another babble draw of the same recording
    with pytest.raises(RcedError, match="real_draws"):
        eval_set(**kw, real_draws=0)


def test_alsa_recordings_missing_is_one_line(tmp_path, monkeypatch):
    import rced.corpus as corpus

    monkeypatch.setattr(corpus, "ALSA_DIR", tmp_path)
    with pytest.raises(RcedError, match="Front_Left.wav.*apt-get install alsa-utils"):
        corpus.alsa_recordings()


@pytest.mark.parametrize("fade", [0, 1, 4])
def test_crossfade_join_overlaps_each_join_by_the_fade_on_a_linear_ramp(fade):
    a, b, c = np.full(10, 1.0), np.full(7, 3.0), np.full(6, -2.0)
    out = crossfade_join([a, b, c], fade)
    assert out.dtype == np.float32 and len(out) == 10 + 7 + 6 - 2 * fade
    ramp = np.linspace(0.0, 1.0, fade)
    np.testing.assert_allclose(out[10 - fade : 10], 1.0 * (1 - ramp) + 3.0 * ramp, atol=1e-6)
    np.testing.assert_allclose(out[17 - 2 * fade : 17 - fade], 3.0 * (1 - ramp) - 2.0 * ramp, atol=1e-6)
    np.testing.assert_array_equal(out[: 10 - fade], 1.0)  # before the first join: the first piece untouched
    np.testing.assert_array_equal(out[17 - fade :], -2.0)  # after the last: the last piece untouched


def test_crossfade_join_refuses_a_piece_shorter_than_the_fade():
    with pytest.raises(RcedError, match="shorter than the fade"):
        crossfade_join([np.ones(10), np.ones(3)], 4)
