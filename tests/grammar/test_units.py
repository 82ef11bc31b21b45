import numpy as np
import pytest

from grammar import alphabet
from grammar.errors import GrammarError
from grammar.units import CHARS, MAX_SPELLINGS, PHONES, UNIT_SETS, Units, pronounce

PH = Units("phones")


def test_unit_sets_layout():
    assert UNIT_SETS == ("chars", "phones")
    assert CHARS.symbols == alphabet.SYMBOLS and CHARS.size == 29
    assert PH.size == 41 and PH.symbols[:2] == (alphabet.BLANK, " ") and PH.symbols[2:] == PHONES
    assert len(set(PHONES)) == 39 and not any(ch.isdigit() for p in PHONES for ch in p)  # no stress


def test_unknown_unit_set():
    with pytest.raises(GrammarError, match="units 'graphemes': expected one of chars, phones"):
        Units("graphemes")


@pytest.mark.parametrize("text, once, expected", [
    ("turn off the lights", "f", ("turn off the lights", "turn of the lights")),
    ("call home", "f", ("call home",)),  # l is not in once
    ("call off", "fl", ("call off", "call of", "cal off", "cal of")),  # each double on its own, written first
    ("mute", "f", ("mute",)),
    ("off", "", ("off",)),
    ("fff", "f", ("fff", "ff")),  # a run of three: one double, then a single
])  # fmt: skip
def test_chars_doubled_letters_spelled_once(text, once, expected):
    assert CHARS.spellings(text, once) == expected


def test_spelled_once_caps_and_phonemes():
    assert len(CHARS.spellings("off " * 6, "f")) == MAX_SPELLINGS  # 2**6 combinations, capped
    assert PH.spellings("off", "f") == PH.spellings("off")  # phonemes are not letters


def test_chars_are_the_alphabet():
    assert CHARS.spellings("what's up") == ("what's up",)
    np.testing.assert_array_equal(CHARS.encode("what's up"), alphabet.encode("what's up"))
    assert CHARS.show("mute") == CHARS.parse("mute") == "mute"
    with pytest.raises(GrammarError, match="character 'M'"):
        CHARS.encode("Mute")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("mute", "M Y UW T"),
        ("volume up", "V AA L Y UW M | AH P"),
        ("unmute", "AH N M Y UW T"),  # not in cmudict: "un" + "mute"
    ],
)
def test_phoneme_spelling(text, shown):
    assert PH.show(PH.spell(text)) == shown
    assert PH.parse(shown) == PH.spell(text)
    assert len(PH.spell(text)) == len(shown.split())  # one code per phoneme, one space per word break


def test_every_pronunciation_is_an_expression_up_to_the_cap():
    assert [PH.show(s) for s in PH.spellings("what's")] == ["W AH T S", "HH W AH T S"]  # cmudict's order
    many = PH.spellings("read the record read the record")  # 2 x 2 x 2 x ... combinations
    assert len(many) == MAX_SPELLINGS and len(set(many)) == MAX_SPELLINGS


def test_compound_fallback_and_unknown_words():
    assert pronounce("mute") and pronounce("unmute")
    assert pronounce("qzxv") == ()
    with pytest.raises(GrammarError, match="'qzxv' not in the pronunciation lexicon"):
        PH.spell("turn qzxv on")


def test_phoneme_encode_decode_round_trip():
    s = PH.spell("turn on the lights")
    ids = PH.encode(s)
    assert ids.min() >= 1 and ids.max() < PH.size
    assert PH.decode(ids) == s
    assert PH.decode(np.insert(ids, [0, 2], 0)) == s  # blanks skipped
    with pytest.raises(GrammarError, match="outside the phones"):
        PH.decode([41])
    with pytest.raises(GrammarError, match="not a phoneme code"):
        PH.encode("mute")  # lower-case letters a-m are codes, but 'u' and 't' are not


@pytest.mark.parametrize("bad", ["V AA1", "V XX", "v aa |  q"])
def test_parse_rejects_non_phonemes(bad):
    with pytest.raises(GrammarError, match="not an ARPAbet phoneme"):
        PH.parse(bad)


def test_phoneme_greedy_decoding():
    ids = [0, 5, 5, 0, 5, 1, 7, 0]  # id k >= 2 is PHONES[k - 2]; repeats merge unless a blank separates
    logp = np.log(np.full((len(ids), PH.size), 0.1 / (PH.size - 1)))
    logp[np.arange(len(ids)), ids] = np.log(0.9)
    assert PH.show(PH.greedy(logp)) == "AO AO | AY"
    assert [PH.symbols[i] for i in (5, 1, 7)] == ["AO", " ", "AY"]
    with pytest.raises(GrammarError, match="expected 41 symbols"):
        PH.greedy(logp[:, :29])
