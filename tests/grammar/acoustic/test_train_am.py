import csv
import dataclasses

import numpy as np
import pytest

from grammar.acoustic.features import with_trackers
from grammar.acoustic.train_am import AMTrainer, _load_npz, _save_npz, augment, pad_batch, prepare_utterances
from grammar.config import AMConfig, AMTrainConfig
from grammar.decoding.recognizer import Recognizer
from grammar.metrics import char_error_rate
from rced.errors import RcedError
from rced.tts import Voice, synthesize

TINY = AMTrainConfig(am=AMConfig(channels=16, blocks=2), batch_utts=3, steps_per_epoch=2, epochs=2)
TINY_TRACKERS = dataclasses.replace(TINY, am=AMConfig(channels=16, blocks=2, trackers=((0.5, 0.5), (2.0, 0.05)),
                                                      tracker_bands=4))  # fmt: skip


def data_audio() -> np.ndarray:
    return synthesize("mute", Voice("espeak", "en-us"))


@pytest.fixture(scope="module")
def data():
    texts = ["volume up", "call home now", "what time is it", "open the door", "mute", "play music"]
    audio = [synthesize(t, Voice("espeak", "en-us")) for t in texts]
    return prepare_utterances(audio, texts, TINY, None, audio, seed=0)


def test_prepared_data_round_trips_without_pickles(tmp_path, data):
    _save_npz(tmp_path / "d.npz", data)
    back = _load_npz(tmp_path / "d.npz")
    assert back["text"] == data["text"]
    for key in ("labels", "clean", "noisy"):
        assert all(np.array_equal(a, b) for a, b in zip(back[key], data[key]))
    assert [e is None for e in back["enhanced"]] == [e is None for e in data["enhanced"]]


def test_tiny_am_run_resumes_and_exports(tmp_path, data):
    run = tmp_path / "am"
    assert AMTrainer(run, TINY, data=data).run(max_epochs_this_run=1, verbose=0)["epochs_done"] == 1
    assert AMTrainer(run, data=data).run(verbose=0)["epochs_done"] == 2
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["0", "1"] and 0 <= float(rows[-1]["val_cer"]) <= 5
    from grammar.decoding.recognizer import Recognizer

    rec = Recognizer.load(AMTrainer(run, data=data).export(tmp_path / "model"), denoiser=False, grammar=False)
    assert isinstance(rec.transcribe(synthesize("mute", Voice("espeak", "en-us")), 16000), str)


def test_phoneme_am_trains_on_respelled_transcripts(tmp_path):
    """--units phones: labels are the cmudict spelling (a text it cannot spell is skipped), the network
    has 41 outputs, validation reports the phoneme error rate, and transcripts read as ARPAbet."""
    from dataclasses import replace

    from grammar.decoding.recognizer import Recognizer
    from grammar.units import Units

    ph = Units("phones")
    cfg = replace(TINY, am=replace(TINY.am, units="phones"), epochs=1)
    texts = ["volume up", "turn qzxv on", "mute", "play music"]
    audio = [synthesize(t, Voice("espeak", "en-us")) for t in texts]
    d = prepare_utterances(audio, texts, cfg, None, audio, seed=0)
    assert d["text"] == ["volume up", "mute", "play music"]
    assert [ph.decode(y) for y in d["labels"]] == [ph.spell(t) for t in d["text"]]
    AMTrainer(tmp_path / "am", cfg, data=d).run(verbose=0)
    with open(tmp_path / "am" / "log.csv") as fh:
        assert np.isfinite(float(list(csv.DictReader(fh))[-1]["val_cer"]))  # edit distance to the spelling
    rec = Recognizer.load(AMTrainer(tmp_path / "am", data=d).export(tmp_path / "model"), denoiser=False, grammar=False)
    assert rec.model.output_shape[-1] == 41 and rec.config.units == "phones"
    out = rec.transcribe(audio[0], 16000)
    assert ph.parse(out) == "" or ph.parse(out)  # ARPAbet or nothing: parse() refuses anything else


def test_an_empty_transcript_is_a_non_speech_negative():
    """Non-speech clips (rced.nonspeech) train with an empty label: CTC's all-blank path."""
    from rced.nonspeech import nonspeech_clip

    audio = [nonspeech_clip(3, 1.0)[0], synthesize("mute", Voice("espeak", "en-us"))]
    d = prepare_utterances(audio, ["", "mute"], TINY, None, audio, seed=0)
    assert d["text"] == ["", "mute"] and len(d["labels"][0]) == 0 and len(d["labels"][1]) == 4
    assert d["clean"][0].shape[0] > 0


def test_mirrored_strategy(tmp_path, data):
    cfg = AMTrainConfig(am=TINY.am, batch_utts=3, steps_per_epoch=1, epochs=1)
    assert AMTrainer(tmp_path / "m", cfg, data=data, strategy="mirrored").run(verbose=0)["epochs_done"] == 1


def test_augment_and_padding_shapes():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((100, 40)).astype(np.float32)
    g = augment(f, TINY, rng)
    assert g.shape[1] == 40 and 85 <= len(g) <= 115
    x, y = pad_batch([f[:37], f], [np.array([3, 4]), np.array([5])], TINY.am, np.zeros(40, np.float32))
    assert x.shape == (2, 100, 1, 40) and y.tolist() == [[3, 4], [5, 0]]


def test_padding_runs_the_trackers_over_each_padded_row():
    """A tracker AM's batch: the bands as given, then the trackers of each row padded with silence,
    as a stream of the utterance and then silence gives them."""
    am = TINY_TRACKERS.am
    rng = np.random.default_rng(1)
    f = rng.standard_normal((99, 40)).astype(np.float32)
    pad = np.full(40, -3.0, np.float32)
    x, _ = pad_batch([f[:37], f], [np.array([3]), np.array([5])], am, pad)
    assert x.shape == (2, 100, 1, am.input_channels) == (2, 100, 1, 60)
    short = np.concatenate([f[:37], np.broadcast_to(pad, (63, 40))])
    np.testing.assert_allclose(x[0, :, 0], with_trackers(short, am)[0], atol=1e-6)
    np.testing.assert_allclose(x[1, :99, 0, :40], f)


def test_tracker_am_trains_and_warm_starts_only_from_its_own_network(tmp_path, data):
    """``grammar train-am`` builds AMs with level trackers (the shipped AM has them), so it can start
    from one; a checkpoint of another network is a one-line error naming it."""
    first = AMTrainer(tmp_path / "a", dataclasses.replace(TINY_TRACKERS, epochs=1), data=data)
    assert first.run(verbose=0)["epochs_done"] == 1
    model = first.export(tmp_path / "model")
    rec = Recognizer.load(model, denoiser=False, grammar=False)
    assert rec.config.input_channels == 60 and isinstance(rec.transcribe(data_audio(), 16000), str)
    warm = AMTrainer(tmp_path / "b", dataclasses.replace(TINY_TRACKERS, epochs=1), data=data,
                     init_from=model / "model.keras")  # fmt: skip
    assert warm.run(verbose=0)["epochs_done"] == 1
    plain = AMTrainer(tmp_path / "c", dataclasses.replace(TINY, epochs=1), data=data, init_from=model / "model.keras")
    with pytest.raises(RcedError, match=r"model\.keras: its network differs from this run's \(weights \(5, 1, 60, 16\) where this run has \(5, 1, 40, 16\)\)"):
        plain.run(verbose=0)


@pytest.mark.parametrize("ref,hyp,cer", [("abc", "abc", 0.0), ("abc", "abd", 1 / 3), ("ab", "", 1.0), ("a b", "ab", 1 / 3)])
def test_char_error_rate(ref, hyp, cer):
    assert char_error_rate([ref], [hyp]) == pytest.approx(cer)
