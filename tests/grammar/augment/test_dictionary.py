"""Statistical pronunciation dictionary: word alignment, counts, probabilities, files."""

import json

import numpy as np
import pytest

from grammar.alphabet import NUM_SYMBOLS, SYMBOLS
from grammar.augment.dictionary import PronDict, align_words, build_dictionary, collect_pairs
from grammar.errors import GrammarError


def peaked_logp(text: str, frames_per_char: int = 3, seed: int = 0) -> np.ndarray:
    """(T, 29) log-posteriors whose greedy decoding is ``text`` (chars separated by blanks)."""
    rng = np.random.default_rng(seed)
    ids = [0] + [i for c in text for i in (SYMBOLS.index(c),) * frames_per_char + (0,)]
    x = rng.normal(size=(len(ids), NUM_SYMBOLS))
    x[np.arange(len(ids)), ids] += 8.0
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


# ----------------------------------------------------------------------------- alignment


@pytest.mark.parametrize("ref,hyp,expected", [
    ("turn on the lights", "turn on the lights", ["turn", "on", "the", "lights"]),  # identical
    ("turn on the lights", "turn on the lites", ["turn", "on", "the", "lites"]),  # substitution + deletion
    ("mute", "mut", ["mut"]),  # deletion at the end
    ("call home", "call homey", ["call", "homey"]),  # insertion at the end
    ("call home", "xcall home", ["xcall", "home"]),  # insertion at the start
    ("next song", "next sxong", ["next", "sxong"]),  # insertion inside a word
    ("open the door", "open door", ["open", "", "door"]),  # deleted word
    ("volume up", "volumup", ["volum", "up"]),  # words merged: each keeps its part
    ("next song", "nextsong", ["next", "song"]),
    ("volume up", "vol ume up", ["vol ume", "up"]),  # word split: the inner space is kept
    ("turn off the lights", "turn of th ligh ts", ["turn", "of", "th", "ligh ts"]),
    ("call home", "", ["", ""]),  # empty hypothesis
    ("mute", "  mute  ", ["mute"]),  # untidy whitespace
])  # fmt: skip
def test_align_words(ref, hyp, expected):
    out = align_words(ref, hyp)
    assert [w for w, _ in out] == ref.split()
    assert [d for _, d in out] == expected


def test_align_words_insertions_at_word_boundaries():
    # after a word's last letter (before the space): that word; after the space: the next word
    assert align_words("ab cd", "abx cd") == [("ab", "abx"), ("cd", "cd")]
    assert align_words("ab cd", "ab xcd") == [("ab", "ab"), ("cd", "xcd")]


def test_align_words_spaces_never_substitute_letters():
    # "a" cannot take the hypothesis space: boundaries align to boundaries
    for ref, hyp in [("ab cd", "abxcd"), ("abc de", "ab cde"), ("a b c", "abc")]:
        out = align_words(ref, hyp)
        assert "".join(d.replace(" ", "") for _, d in out) == hyp.replace(" ", "")  # every letter attributed once


def test_align_words_edge_cases():
    assert align_words("", "abc") == []
    assert align_words("   ", "") == []
    with pytest.raises(GrammarError):
        align_words(None, "x")


def test_align_words_random_strings_keep_every_letter():
    rng = np.random.default_rng(0)
    letters = list("abc ")
    for _ in range(200):
        ref = " ".join("".join(rng.choice(list("abc"), rng.integers(1, 5))) for _ in range(rng.integers(1, 4)))
        hyp = " ".join("".join(rng.choice(letters, rng.integers(0, 12))).split())
        out = align_words(ref, hyp)
        assert [w for w, _ in out] == ref.split()
        assert "".join(d.replace(" ", "") for _, d in out) == hyp.replace(" ", "")
        assert all(d == " ".join(d.split()) for _, d in out)


# ----------------------------------------------------------------------------- counts


def test_build_dictionary_probs_and_top():
    pairs = [("turn on the lights", "turn on the lites")] * 3 + [("turn on the lights", "turn on the lights")]
    pairs += [("the lights", "the ligh ts"), ("the", "")]
    d = build_dictionary(pairs)
    assert d.counts["lights"] == {"lites": 3, "lights": 1, "ligh ts": 1}
    assert d.counts["the"] == {"the": 5, "": 1}
    assert d.total("lights") == 5 and d.total("nope") == 0
    probs = d.probs("lights")
    assert list(probs) == ["lites", "ligh ts", "lights"]  # most probable first, ties alphabetical
    assert probs["lites"] == pytest.approx(0.6) and sum(probs.values()) == pytest.approx(1.0)
    assert d.top("lights", 1) == [("lites", pytest.approx(0.6))]
    assert [x for x, _ in d.top("lights", 5, min_prob=0.2)] == ["lites", "ligh ts", "lights"]
    assert [x for x, _ in d.top("lights", None, min_prob=0.25)] == ["lites"]
    assert d.probs("unknown") == {} and d.top("unknown", 3) == []
    assert "lights" in d and len(d) == 4
    assert d.provenance["n_pairs"] == 6


def test_build_dictionary_normalises_references_and_rejects_nothing():
    d = build_dictionary([("Turn ON!", "turn on"), ("???", "x")])
    assert set(d.counts) == {"turn", "on"} and d.provenance["n_pairs"] == 1
    with pytest.raises(GrammarError):
        build_dictionary([])


def test_save_load_roundtrip(tmp_path):
    d = build_dictionary([("volume up", "volumup"), ("volume up", "volume up")], provenance={"source": "test"})
    p = tmp_path / "d.json"
    d.save(p)
    e = PronDict.load(p)
    assert e == d and e.provenance["source"] == "test" and e.provenance["path"] == str(p)
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("content,needle", [
    ("not json", "invalid JSON"),
    ("[1, 2]", "not a pronunciation dictionary"),
    ('{"format": "stapes-grammar", "version": 1}', "not a pronunciation dictionary"),
    ('{"format": "stapes-pronunciation-dictionary", "version": 9, "counts": {}}', "version"),
    ('{"format": "stapes-pronunciation-dictionary", "version": 1}', "counts"),
    ('{"format": "stapes-pronunciation-dictionary", "version": 1, "counts": {"a": {"b": 0}}}', "positive"),
    ('{"format": "stapes-pronunciation-dictionary", "version": 1, "counts": {"a": {"B!": 1}}}', "alphabet"),
    ('{"format": "stapes-pronunciation-dictionary", "version": 1, "counts": {"a": []}}', "decoding counts"),
])  # fmt: skip
def test_load_wrong_format_is_one_line_naming_the_file(tmp_path, content, needle):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(GrammarError) as exc:
        PronDict.load(p)
    msg = str(exc.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_load_missing_and_folder(tmp_path):
    with pytest.raises(GrammarError, match="not found"):
        PronDict.load(tmp_path / "nope.json")
    with pytest.raises(GrammarError, match="folder"):
        PronDict.load(tmp_path)
    with pytest.raises(GrammarError, match="folder"):
        build_dictionary([("a", "a")]).save(tmp_path)


def test_saved_file_is_plain_json(tmp_path):
    p = tmp_path / "d.json"
    build_dictionary([("mute", "mut")]).save(p)
    data = json.loads(p.read_text())
    assert data["format"] == "stapes-pronunciation-dictionary" and data["counts"] == {"mute": {"mut": 1}}


# ----------------------------------------------------------------------------- decoding


class _StubRecognizer:
    """Stands in for grammar.decoding.recognizer.Recognizer: 'audio' is the text the AM would decode."""

    def __init__(self, spell):
        self.spell = spell

    def posteriors(self, audio, sr, name="input"):
        return peaked_logp(self.spell(str(audio)))


def test_collect_pairs_runs_greedy_decoding():
    rec = _StubRecognizer(lambda t: t.replace("ights", "ites"))
    pairs = collect_pairs(rec, [("Turn on the lights", "turn on the lights"), ("mute", "mute")], progress=False)
    assert pairs == [("turn on the lights", "turn on the lites"), ("mute", "mute")]
    d = build_dictionary(pairs)
    assert d.counts["lights"] == {"lites": 1}


class _Utt:
    def __init__(self, text):
        self.text = text


def _fake_train_speech(monkeypatch, texts):
    """rced.corpus as train_voice_posteriors reads it: utterance i is a constant signal of level i + 1."""
    import rced.audio
    import rced.corpus

    def train_utterances(n, seed):
        return [_Utt(t) for t in texts[:n]] if n == len(texts) else [_Utt("babble")] * n

    monkeypatch.setattr(rced.corpus, "train_utterances", train_utterances)
    monkeypatch.setattr(rced.corpus, "synthesize_all", lambda utts, desc="": [str(i + 1) for i in range(len(utts))])
    talker = np.random.default_rng(0).normal(size=1600) * 0.01
    monkeypatch.setattr(rced.corpus, "load_utterances", lambda utts, **kw: [talker] * len(utts))
    monkeypatch.setattr(rced.audio, "load_audio", lambda p: np.full(1600, float(p)))


class _LevelRecognizer:
    """Decodes 'clean' for an utterance's own constant signal and 'noisy' for anything else."""

    def posteriors(self, audio, sr, name="input"):
        return peaked_logp("clean" if np.ptp(audio) == 0 else "noisy")


def test_build_default_pairs_decodes_each_utterance_clean_then_in_babble(monkeypatch):
    from grammar.augment.dictionary import build_default_pairs, train_voice_posteriors

    _fake_train_speech(monkeypatch, ["Turn ON", "mute", "play music"])
    pairs = build_default_pairs(_LevelRecognizer(), n_utts=3, progress=False)
    assert pairs == [(ref, hyp) for ref in ("turn on", "mute", "play music") for hyp in ("clean", "noisy")]
    items = list(train_voice_posteriors(_LevelRecognizer(), n_utts=3, progress=False))
    assert [ref for ref, _ in items] == [ref for ref, _ in pairs]  # the same utterances, as log-posteriors
    with pytest.raises(GrammarError, match="n_utts must be positive"):
        build_default_pairs(_LevelRecognizer(), n_utts=0)
