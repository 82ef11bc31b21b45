import csv

import numpy as np
import pytest

from grammar.acoustic.train_am import AMTrainer, _load_npz, _save_npz, augment, pad_batch, prepare_utterances
from grammar.config import AMConfig, AMTrainConfig
from grammar.metrics import char_error_rate
from rced.tts import Voice, synthesize

TINY = AMTrainConfig(am=AMConfig(channels=16, blocks=2), batch_utts=3, steps_per_epoch=2, epochs=2)


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
    x, y = pad_batch([f[:37], f], [np.array([3, 4]), np.array([5])], 2, np.zeros(40, np.float32))
    assert x.shape == (2, 100, 1, 40) and y.tolist() == [[3, 4], [5, 0]]


@pytest.mark.parametrize("ref,hyp,cer", [("abc", "abc", 0.0), ("abc", "abd", 1 / 3), ("ab", "", 1.0), ("a b", "ab", 1 / 3)])
def test_char_error_rate(ref, hyp, cer):
    assert char_error_rate([ref], [hyp]) == pytest.approx(cer)
