import string

import numpy as np
import pytest

from grammar.alphabet import BLANK_ID, SYMBOLS, decode, encode, greedy_decode, normalize_text
from grammar.errors import GrammarError


def test_symbols_layout():
    assert len(SYMBOLS) == 29
    assert SYMBOLS[BLANK_ID] == SYMBOLS[0]
    assert SYMBOLS[1] == " " and SYMBOLS[2] == "'"
    assert "".join(SYMBOLS[3:]) == string.ascii_lowercase
    assert len(set(SYMBOLS)) == 29


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Volume Up", "volume up"),
        ("  noise   reduction\tON  ", "noise reduction on"),
        ("turn-on the_lights", "turn on the lights"),
        ("what’s the time?", "what's the time"),
        ("'quoted' words'", "quoted words"),
        ("Café crème", "cafe creme"),
        ("stop, listening!", "stop listening"),
        ("o.k.", "ok"),
        ("program 2", "program two"),
        ("volume 21", "volume twenty one"),
        ("1,500 steps", "one thousand five hundred steps"),
        ("agent 007", "agent zero zero seven"),
        ("2.5", "two point five"),
        ("R&B 100%", "r and b one hundred percent"),
        ("Straße", "strasse"),
        ("play 🎵 music", "play music"),
    ],
)
def test_normalize_text(raw, expected):
    out = normalize_text(raw)
    assert out == expected
    assert normalize_text(out) == out  # idempotent
    encode(out)  # always in the alphabet


@pytest.mark.parametrize("raw", ["", "   ", "!!!", "— _ -", "日本語", "''"])
def test_normalize_text_empty_raises(raw):
    with pytest.raises(GrammarError, match="no letters"):
        normalize_text(raw)


def test_encode_decode_round_trip():
    text = "what's up"
    ids = encode(text)
    assert ids.dtype == np.int64
    assert ids.tolist() == [SYMBOLS.index(c) for c in text]
    assert BLANK_ID not in ids
    assert decode(ids) == text
    assert encode("").size == 0


def test_decode_skips_blanks_keeps_repeats():
    assert decode([0, 3, 3, 0, 4, 0]) == "aab"


@pytest.mark.parametrize(("text", "bad"), [("Volume up", "V"), ("turn-on", "-"), ("call 911", "9"), ("café", "é")])
def test_encode_names_offending_character(text, bad):
    with pytest.raises(GrammarError, match=repr(bad)):
        encode(text)


@pytest.mark.parametrize("ids", [[29], [-1], [3, 100]])
def test_decode_rejects_out_of_range(ids):
    with pytest.raises(GrammarError, match="outside the alphabet"):
        decode(ids)


def _one_hot_logp(frames: list[str], peak: float = 0.9) -> np.ndarray:
    """Frames given as symbols ('_' = blank): most of the mass on that symbol."""
    p = np.full((len(frames), len(SYMBOLS)), (1 - peak) / (len(SYMBOLS) - 1))
    for t, c in enumerate(frames):
        p[t, 0 if c == "_" else SYMBOLS.index(c)] = peak
    return np.log(p)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ("_hh_el_lo__", "hello"),
        ("aa", "a"),
        ("a_a", "aa"),
        ("____", ""),
        ("_m__u_tt_e", "mute"),
        ("ca_l_l  _hoome", "call home"),
        ("what's", "what's"),
    ],
)
def test_greedy_decode(frames, expected):
    assert greedy_decode(_one_hot_logp(list(frames))) == expected


@pytest.mark.parametrize("shape", [(5, 28), (0, 29), (29,)])
def test_greedy_decode_rejects_bad_shape(shape):
    with pytest.raises(GrammarError, match="log-posteriors"):
        greedy_decode(np.zeros(shape))


def test_greedy_decode_rejects_nan():
    logp = _one_hot_logp(list("ab"))
    logp[1, 3] = np.nan
    with pytest.raises(GrammarError, match="NaN"):
        greedy_decode(logp)
