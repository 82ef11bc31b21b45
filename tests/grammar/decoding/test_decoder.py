import itertools
import json
import math

import numpy as np
import pytest

from grammar.alphabet import NUM_SYMBOLS, encode
from grammar.commands import default_commands_path, load_commands
from grammar.decoding.decoder import (
    MARGIN_WEIGHT,
    SCORE_KINDS,
    Grammar,
    best_path_log_prob,
    calibrate_threshold,
    command_margin,
    ctc_log_likelihood,
    decode,
    far_target_for_bound,
)
from grammar.errors import GrammarError
from tests.grammar.conftest import synthetic_posterior

# ----------------------------------------------------------------------------- helpers


def _random_logp(rng, n_frames, n_symbols, zeros=False):
    x = rng.normal(size=(n_frames, n_symbols)) * 1.5
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    if zeros:  # some symbols impossible in some frames (probability exactly 0)
        mask = rng.random(logp.shape) < 0.2
        mask[:, 0] = False  # keep every frame possible
        logp[mask] = -np.inf
    return logp


def _logsumexp(values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.all(values == -np.inf):
        return -np.inf
    m = values.max()
    return float(m + np.log(np.exp(values - m).sum()))


def _collapse(path):
    out, prev = [], None
    for s in path:
        if s != prev and s != 0:
            out.append(int(s))
        prev = s
    return tuple(out)


def _brute_force(logp):
    """log P(label) for every label, by enumerating all V**T frame paths."""
    n_frames, n_symbols = logp.shape
    paths = np.array(list(itertools.product(range(n_symbols), repeat=n_frames)))
    with np.errstate(invalid="ignore"):
        path_lp = logp[np.arange(n_frames), paths].sum(axis=1)
    groups = {}
    for p, lp in zip(paths, path_lp, strict=True):
        groups.setdefault(_collapse(p), []).append(lp)
    return {label: _logsumexp(v) for label, v in groups.items()}


@pytest.fixture(scope="module")
def default_grammar():
    return Grammar.from_commands(load_commands(default_commands_path()))


# ----------------------------------------------------------------------------- CTC likelihood

LABELS = [(), (1,), (2,), (1, 1), (1, 2), (2, 1, 2), (1, 1, 1), (3, 3, 2), (1, 2, 3, 1), (2, 2, 2, 2), (1, 2, 1, 2, 1, 2)]  # fmt: skip


def _fits(label, n_frames):
    return len(label) + sum(a == b for a, b in itertools.pairwise(label)) <= n_frames


@pytest.mark.parametrize("n_frames", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("zeros", [False, True])
def test_ctc_matches_brute_force(n_frames, zeros):
    rng = np.random.default_rng(10 * n_frames + zeros)
    logp = _random_logp(rng, n_frames, 4, zeros)
    truth = _brute_force(logp)
    got = ctc_log_likelihood(logp, [np.array(lab, dtype=np.int64) for lab in LABELS])
    assert got.shape == (len(LABELS),) and got.dtype == np.float64
    for label, value in zip(LABELS, got, strict=True):
        expected = truth.get(label, -np.inf)
        if not _fits(label, n_frames):
            assert value == -np.inf, label  # too long for T frames ("aa" needs a blank between)
        if expected == -np.inf:
            assert value == -np.inf, label
        else:
            assert value == pytest.approx(expected, abs=1e-5), label


def _brute_force_spot(logp, label):
    """Keyword spotting by enumeration: a best-symbol filler on frames [0, a) and [b, T), the
    label's best CTC path (all V**(b-a) paths enumerated) on [a, b), the best over every a < b."""
    n_frames, n_symbols = logp.shape
    best = logp.max(axis=1)
    top = -np.inf
    for a in range(n_frames):
        for b in range(a + 1, n_frames + 1):
            for path in itertools.product(range(n_symbols), repeat=b - a):
                if _collapse(path) == label:
                    score = best[:a].sum() + logp[np.arange(a, b), path].sum() + best[b:].sum()
                    top = max(top, score)
    return top


@pytest.mark.parametrize("n_frames", [1, 2, 3, 5])
@pytest.mark.parametrize("zeros", [False, True])
def test_ctc_spotting_matches_brute_force(n_frames, zeros):
    rng = np.random.default_rng(7 * n_frames + zeros)
    logp = _random_logp(rng, n_frames, 4, zeros)
    labels = [lab for lab in LABELS if lab]
    got = ctc_log_likelihood(logp, [np.array(lab, dtype=np.int64) for lab in labels], spot=True)
    for label, value in zip(labels, got, strict=True):
        expected = _brute_force_spot(logp, label)
        if expected == -np.inf:
            assert value == -np.inf, label
        else:
            assert value == pytest.approx(expected, abs=1e-5), label


def test_spotting_ignores_speech_around_the_command():
    """A command inside other speech: whole-window decoding pays for the other speech, spotting does not."""
    alone, inside = synthetic_posterior("go"), synthetic_posterior("xy go zz")
    label = [encode("go")]
    assert ctc_log_likelihood(inside, label)[0] < ctc_log_likelihood(alone, label)[0] - 5
    gap_alone = ctc_log_likelihood(alone, label, spot=True)[0] - best_path_log_prob(alone)
    gap_inside = ctc_log_likelihood(inside, label, spot=True)[0] - best_path_log_prob(inside)
    assert gap_inside == pytest.approx(gap_alone, abs=1e-9) and gap_alone == pytest.approx(0.0, abs=1e-9)


def test_ctc_label_that_needs_a_blank():
    # 2 frames: "ab" fits, "aa" does not (it needs a blank between the two a's).
    logp = np.log(np.full((2, 4), 0.25))
    ab, aa = ctc_log_likelihood(logp, [np.array([1, 2]), np.array([1, 1])])
    assert ab == pytest.approx(2 * math.log(0.25))
    assert aa == -np.inf


def test_ctc_batched_equals_one_at_a_time():
    rng = np.random.default_rng(1)
    logp = _random_logp(rng, 40, 29)
    labels = [rng.integers(1, 29, size=rng.integers(0, 15)) for _ in range(25)]
    labels.append(np.array([5] * 20))  # needs 39 frames: fits
    labels.append(np.array([5] * 21))  # needs 41 frames: does not
    batched = ctc_log_likelihood(logp, labels)
    single = np.array([ctc_log_likelihood(logp, [lab])[0] for lab in labels])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-9)
    assert np.isfinite(batched[:-1]).all() and batched[-1] == -np.inf


@pytest.mark.parametrize(("n_frames", "n_symbols"), [(1, 3), (3, 3), (5, 3), (4, 4)])
def test_ctc_probabilities_of_all_labels_sum_to_one(n_frames, n_symbols):
    rng = np.random.default_rng(n_frames * n_symbols)
    logp = _random_logp(rng, n_frames, n_symbols)
    labels = [np.array(lab, dtype=np.int64)
              for n in range(n_frames + 1)
              for lab in itertools.product(range(1, n_symbols), repeat=n)]  # fmt: skip
    total = _logsumexp(ctc_log_likelihood(logp, labels))  # includes the blank-only (empty) label
    assert total == pytest.approx(0.0, abs=1e-5)


def test_ctc_long_input_is_stable():
    rng = np.random.default_rng(2)
    logp = _random_logp(rng, 1000, 29)  # > several chunks; likelihoods far below float underflow
    labels = [encode("volume up"), encode("noise reduction off")]
    batched = ctc_log_likelihood(logp, labels)
    assert np.isfinite(batched).all() and (batched < -1000).all()
    # the scale-free identity: shifting every log-posterior by c shifts every likelihood by T*c
    shifted = ctc_log_likelihood(logp - 3.0, labels)
    np.testing.assert_allclose(shifted, batched - 3000.0, rtol=1e-9, atol=1e-3)


def test_ctc_empty_label_list():
    assert ctc_log_likelihood(np.zeros((3, 4)), []).shape == (0,)


@pytest.mark.parametrize("label", [[0, 1], [1, 4], [-1], [[1, 2]], [1.5]])
def test_ctc_rejects_bad_labels(label):
    with pytest.raises(GrammarError, match="label 0"):
        ctc_log_likelihood(np.zeros((3, 4)), [np.array(label)])


def test_best_path_log_prob():
    rng = np.random.default_rng(4)
    logp = _random_logp(rng, 5, 3)
    paths = np.array(list(itertools.product(range(3), repeat=5)))
    assert best_path_log_prob(logp) == pytest.approx(logp[np.arange(5), paths].sum(axis=1).max())
    assert isinstance(best_path_log_prob(logp), float)


# ----------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("command", load_commands(default_commands_path()))
def test_decode_picks_the_spoken_command(default_grammar, command):
    rng = np.random.default_rng(len(command))
    d = decode(synthetic_posterior(command, rng=rng), default_grammar)
    assert d.accepted
    assert d.command == command
    assert default_grammar.expressions[d.expression] == command
    assert d.command_index == default_grammar.commands.index(command)
    assert d.scores.shape == d.log_likelihoods.shape == (len(default_grammar.expressions),)
    assert d.score == d.scores[d.expression] >= default_grammar.threshold
    assert int(np.argmax(d.log_likelihoods)) == d.expression


def test_decode_rejects_below_threshold(default_grammar):
    command = decode(synthetic_posterior("mute"), default_grammar)
    other = decode(synthetic_posterior("hello world"), default_grammar)
    assert other.score < command.score
    middle = default_grammar.with_threshold((other.score + command.score) / 2)
    assert decode(synthetic_posterior("mute"), middle).command == "mute"
    rejected = decode(synthetic_posterior("hello world"), middle)
    assert rejected.command is None and rejected.command_index is None and not rejected.accepted
    assert rejected.score == pytest.approx(other.score)
    # just above the command's own score: rejected too, but the best expression is still reported
    strict = default_grammar.with_threshold(command.score + 1e-9)
    d = decode(synthetic_posterior("mute"), strict)
    assert d.command is None and default_grammar.expressions[d.expression] == "mute"


def test_decode_too_short_input_is_rejected(default_grammar):
    d = decode(synthetic_posterior("a", frames_per_char=1)[:2], default_grammar.with_threshold(-math.inf))
    assert d.command is None and d.score == -math.inf
    assert np.all(d.log_likelihoods == -np.inf)


def test_score_kinds(default_grammar):
    logp = synthetic_posterior("next song", rng=np.random.default_rng(5))
    by_len = decode(logp, default_grammar)
    by_frame = decode(logp, default_grammar, score_kind="frame_norm")
    assert by_len.expression == by_frame.expression
    lengths = np.array([len(e) for e in default_grammar.expressions])
    np.testing.assert_allclose(by_len.scores * lengths, by_frame.scores * len(logp))
    gap = by_len.log_likelihoods - best_path_log_prob(logp)
    np.testing.assert_allclose(by_len.scores, gap / lengths)
    custom = decode(logp, default_grammar, score_kind=lambda ll, bp, n, t, cmd: ll - bp)
    np.testing.assert_allclose(custom.scores, gap)
    assert set(SCORE_KINDS) >= {"len_norm", "frame_norm", "len_margin"}
    with pytest.raises(GrammarError, match="unknown score kind"):
        decode(logp, default_grammar, score_kind="nope")


def test_len_margin_against_its_definition():
    # two expressions of command 0, one of command 1: each expression's lead over the best
    # expression of the OTHER command, a quarter of it added to the gap, per character
    g = Grammar(("next song", "mute"), ("next song", "nex song", "mute"), (0, 0, 1))
    logp = synthetic_posterior("next song", rng=np.random.default_rng(7))
    d = decode(logp, g, score_kind="len_margin")
    ll, bp = d.log_likelihoods, best_path_log_prob(logp)
    other = np.array([ll[2], ll[2], max(ll[0], ll[1])])
    np.testing.assert_allclose(d.scores, (ll - bp + MARGIN_WEIGHT * (ll - other)) / g.lengths)
    assert d.command == "next song" and d.scores[0] > decode(logp, g).scores[0]  # it leads: a bonus
    np.testing.assert_allclose(command_margin(ll, g.command_of), ll - other)


@pytest.mark.parametrize(("ll", "cmds", "expected"), [
    ([-1.0, -3.0], [0, 0], [0.0, 0.0]),  # one command: nothing to compare with
    ([-1.0, -np.inf], [0, 1], [0.0, -np.inf]),  # the competitor is impossible / the expression is
    ([-np.inf, -np.inf], [0, 1], [-np.inf, -np.inf]),
    ([-1.0, -4.0, -2.0], [0, 1, 2], [1.0, -3.0, -1.0]),
])  # fmt: skip
def test_command_margin_edges(ll, cmds, expected):
    np.testing.assert_allclose(command_margin(np.array(ll), np.array(cmds)), expected)


def test_int8_threshold_round_trip_and_backend(tmp_path, default_grammar):
    g = Grammar.from_commands(default_grammar.commands, -0.5, int8_threshold=-0.2)
    g.save(tmp_path / "g.json")
    back = Grammar.load(tmp_path / "g.json")
    assert back.int8_threshold == -0.2 and back.threshold == -0.5
    assert back.for_backend("int8").threshold == -0.2 and back.for_backend("float") is back
    plain = Grammar.from_commands(default_grammar.commands, -0.5)
    assert plain.for_backend("int8") is plain and "int8_threshold" not in plain.to_dict()
    data = json.loads((tmp_path / "g.json").read_text())
    data["int8_threshold"] = "high"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(GrammarError, match="bad.json: 'int8_threshold' has the wrong type"):
        Grammar.load(tmp_path / "bad.json")


def test_recognizer_decodes_with_its_backends_threshold(monkeypatch, default_grammar):
    from grammar.decoding.recognizer import Recognizer
    from rced.features import Normalizer

    logp = synthetic_posterior("next song", rng=np.random.default_rng(5))
    score = decode(logp, default_grammar).score
    g = Grammar.from_commands(default_grammar.commands, score + 1.0, int8_threshold=score - 1.0)

    class Int8Model:
        backend = "int8"

    for model, expected in ((object(), None), (Int8Model(), "next song")):
        rec = Recognizer(model, None, Normalizer((0.0,) * 40, (1.0,) * 40), None, g, speech_floor=None)
        monkeypatch.setattr(rec, "features", lambda *a, **k: np.zeros((2 * len(logp), 40)))
        monkeypatch.setattr(rec, "posteriors_of", lambda feats: logp)
        assert rec.recognize(np.zeros(16000), 16000).command == expected


def test_grammar_carries_its_score_kind(tmp_path, default_grammar):
    g = Grammar.from_commands(default_grammar.commands, -0.5, score_kind="len_margin")
    g.save(tmp_path / "g.json")
    back = Grammar.load(tmp_path / "g.json")
    assert back.score_kind == "len_margin" and back == g
    logp = synthetic_posterior("next song", rng=np.random.default_rng(5))
    assert decode(logp, back).score == decode(logp, back, score_kind="len_margin").score
    data = json.loads((tmp_path / "g.json").read_text())
    del data["score_kind"]  # a file from before score kinds were stored
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert Grammar.load(tmp_path / "old.json").score_kind == "len_norm"
    data["score_kind"] = "nope"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(GrammarError, match="bad.json: unknown score kind 'nope'"):
        Grammar.load(tmp_path / "bad.json")


def test_decode_rejects_wrong_alphabet_size(default_grammar):
    with pytest.raises(GrammarError, match="29 symbols"):
        decode(np.zeros((10, 28)), default_grammar)


def test_augmented_expression_maps_to_its_command():
    g = Grammar(("mute", "volume up"), ("mute", "volume up", "mewt"), (0, 1, 0))
    d = decode(synthetic_posterior("mewt"), g.with_threshold(-math.inf))
    assert d.expression == 2 and d.command == "mute"
    assert g.expressions_of("mute") == ("mute", "mewt")


# ----------------------------------------------------------------------------- threshold calibration


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.1, 0.25, 0.29, 0.5, 0.99])
def test_calibrate_threshold_gives_exact_far(target):
    scores = np.random.default_rng(6).permutation(np.linspace(-5.0, 1.0, 100))
    t = calibrate_threshold(scores, target)
    assert np.mean(scores >= t) == pytest.approx(target)
    # smallest: any lower threshold accepts one more non-command
    assert np.mean(scores >= np.nextafter(t, -np.inf)) > target


def test_calibrate_threshold_ties_and_edges():
    scores = np.array([0.0, 1.0, 1.0, 2.0, -np.inf])
    t = calibrate_threshold(scores, 0.4)  # 2 of 5 may pass, but the two 1.0s tie: only one passes
    assert np.mean(scores >= t) == pytest.approx(0.2)
    assert calibrate_threshold(scores, 1.0) == -math.inf
    assert calibrate_threshold(scores, 0.0) > 2.0


@pytest.mark.parametrize(("scores", "target"), [([], 0.1), ([0.0, np.nan], 0.1), ([0.0], -0.1), ([0.0], 1.5)])
def test_calibrate_threshold_bad_input(scores, target):
    with pytest.raises(GrammarError, match="calibrate_threshold"):
        calibrate_threshold(np.array(scores), target)


@pytest.mark.parametrize(("n", "expected"), [(28, 0.0), (29, 0.0), (240, 16 / 240)])
def test_far_target_for_bound(n, expected):
    # k = 0 has the closed form 1 - (1 - c)^(1/n): 0.1013 for n = 28 (> 0.10, target 0 and no
    # k = 1 either), 0.0981 for n = 29; 16 of 240 is the README's calibration set
    assert far_target_for_bound(0.10, n) == pytest.approx(expected)
    k0_bound = 1 - 0.05 ** (1 / n)
    assert (k0_bound <= 0.10) == (n >= 29)


def test_far_target_for_bound_is_conservative_and_monotone():
    targets = [far_target_for_bound(m, 500) for m in (0.02, 0.05, 0.1, 0.2)]
    assert targets == sorted(targets)
    assert all(t < m for t, m in zip(targets, (0.02, 0.05, 0.1, 0.2)))
    assert far_target_for_bound(0.1, 500, confidence=0.99) < far_target_for_bound(0.1, 500, confidence=0.8)


@pytest.mark.parametrize(("max_far", "n", "conf"), [(0.0, 10, 0.95), (1.0, 10, 0.95), (0.1, 0, 0.95), (0.1, 10, 1.0)])
def test_far_target_for_bound_bad_input(max_far, n, conf):
    with pytest.raises(GrammarError, match="far_target_for_bound"):
        far_target_for_bound(max_far, n, conf)


# ----------------------------------------------------------------------------- grammar objects and files


def test_from_commands(default_grammar):
    # every command spelled as written, the two with "off" also with one f (SPELLED_ONCE), beside it
    ones = {"noise reduction of": "noise reduction off", "turn of the lights": "turn off the lights"}
    assert tuple(e for e in default_grammar.expressions if e not in ones) == default_grammar.commands
    for e, c in zip(default_grammar.expressions, default_grammar.command_of, strict=True):
        assert default_grammar.commands[c] == ones.get(e, e)
    assert len(default_grammar.expressions) == 22
    plain = Grammar.from_commands(default_grammar.commands, once="")
    assert plain.expressions == plain.commands and plain.command_of == tuple(range(20))
    g = Grammar.from_commands(["Volume-Up", "MUTE"], threshold=-0.5)
    assert g.commands == ("volume up", "mute") and g.threshold == -0.5


def test_a_doubled_letter_spelled_once_decodes_as_its_command():
    # posteriors that say "of" (one f segment, no blank between two f's): with "off" spelled only as
    # written the grammar must explain the single f otherwise and picks "on"; spelled once, "off"
    frames = [{"o": 0.9}, {"o": 0.9}, {"f": 0.9}, {"f": 0.6, "n": 0.3}, {"-": 0.9}]
    logp = np.full((len(frames), NUM_SYMBOLS), np.log(0.002))
    for t, probs in enumerate(frames):
        for ch, prob in probs.items():
            logp[t, 0 if ch == "-" else encode(ch)[0]] = np.log(prob)
    logp -= np.logaddexp.reduce(logp, axis=1, keepdims=True)
    written = Grammar.from_commands(["off", "on"], threshold=-np.inf, once="")
    once = Grammar.from_commands(["off", "on"], threshold=-np.inf)
    assert once.expressions == ("off", "of", "on") and once.command_of == (0, 0, 1)
    assert decode(logp, written).command == "on"
    d = decode(logp, once)
    assert d.command == "off" and once.expressions[d.expression] == "of"


def test_save_load_round_trip(tmp_path):
    g = Grammar(("mute", "volume up"), ("mute", "volume up", "mewt", "volume op"), (0, 1, 0, 1),
                threshold=-0.75, provenance={"method": "cem", "seed": 3})  # fmt: skip
    path = tmp_path / "g.json"
    g.save(path)
    loaded = Grammar.load(path)
    assert loaded == g
    assert loaded.provenance == {"method": "cem", "seed": 3}
    assert hash(loaded) == hash(g)
    assert json.loads(path.read_text())["format"] == "stapes-grammar"
    assert not [p for p in tmp_path.iterdir() if p.name != "g.json"]  # no temporary left behind
    assert g == Grammar(g.commands, g.expressions, g.command_of, g.threshold)  # provenance not compared


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expressions": ("Mute", "volume up")}, "character 'M'"),
        ({"command_of": (0, 2)}, "outside 0..1"),
        ({"command_of": (0,)}, "2 expressions but 1"),
        ({"expressions": ("mute", "volume up", "mute"), "command_of": (0, 1, 1)}, "maps to two commands"),
        ({"expressions": ("mute", "volume up", "mute"), "command_of": (0, 1, 0)}, "listed twice"),
        ({"commands": ("mute", "mute")}, "listed twice"),
        ({"command_of": (0, 0)}, "has no expression"),
        ({"expressions": ("mute", "")}, "non-empty"),
        ({"threshold": float("nan")}, "NaN"),
        ({"commands": ()}, "no commands"),
    ],
)
def test_grammar_validation(kwargs, match):
    args = {"commands": ("mute", "volume up"), "expressions": ("mute", "volume up"), "command_of": (0, 1)}
    args.update(kwargs)
    with pytest.raises(GrammarError, match=match):
        Grammar(**args)


def _good():
    return {"format": "stapes-grammar", "version": 1, "threshold": -1.0,
            "commands": ["mute"], "expressions": ["mute"], "command_of": [0], "provenance": {}}  # fmt: skip


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "not found"),
        ("folder", "folder"),
        ("{not json", "invalid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ([1, 2], "not a grammar file"),
        ({**_good(), "format": "other"}, "not a grammar file"),
        ({**_good(), "version": 7}, "unsupported grammar version 7"),
        ({k: v for k, v in _good().items() if k != "expressions"}, "lacks 'expressions'"),
        ({**_good(), "threshold": "high"}, "'threshold' has the wrong type"),
        ({**_good(), "command_of": [3]}, "outside 0..0"),
        ({**_good(), "expressions": ["Mute"]}, "character 'M'"),
        ({**_good(), "provenance": []}, "provenance"),
    ],
)
def test_load_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad_grammar.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_text(json.dumps(content))
    with pytest.raises(GrammarError, match=match) as info:
        Grammar.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_save_errors_name_the_file(tmp_path):
    g = Grammar.from_commands(["mute"], provenance={"bad": object()})
    with pytest.raises(GrammarError, match="JSON") as info:
        g.save(tmp_path / "g.json")
    assert "g.json" in str(info.value)
    with pytest.raises(GrammarError, match="folder") as info:
        Grammar.from_commands(["mute"]).save(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_spot_threshold_round_trip_and_use(tmp_path):
    g = Grammar.from_commands(["go", "stop"], threshold=-1.0)
    assert g.spot_threshold is None and g.threshold_for(True) == -1.0
    s = g.with_spot_threshold(-0.25)
    s.save(tmp_path / "g.json")
    back = Grammar.load(tmp_path / "g.json")
    assert back == s and back.spot_threshold == -0.25 and back.threshold_for(True) == -0.25
    assert back.threshold_for(False) == -1.0
    assert "spot_threshold" not in g.to_dict()  # files without one stay as they were
    with pytest.raises(GrammarError, match="spot_threshold is NaN"):
        g.with_spot_threshold(float("nan"))
    logp = synthetic_posterior("xx go yy")
    assert decode(logp, s, spot=True).command == "go"


# ----------------------------------------------------------------------------- phoneme units


def test_phoneme_grammar_decodes_and_round_trips(tmp_path):
    from grammar.units import Units

    ph = Units("phones")
    g = Grammar.from_commands(["Mute", "unmute", "volume up", "what's up"], threshold=-0.5, units="phones")
    assert g.units == "phones" and g.commands == ("mute", "unmute", "volume up", "what's up")
    # every pronunciation is an expression of its command ("what's": W AH T S and HH W AH T S)
    assert [ph.show(e) for e in g.expressions_of("what's up")] == ["W AH T S | AH P", "HH W AH T S | AH P"]
    g.save(tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["units"] == "phones" and data["expressions"][0] == "M Y UW T"  # readable ARPAbet
    assert Grammar.load(tmp_path / "g.json") == g
    for cmd in g.commands:
        d = decode(synthetic_posterior(g.expressions_of(cmd)[0], rng=np.random.default_rng(1), units=ph), g)
        assert d.command == cmd
    with pytest.raises(GrammarError, match="expected 41 symbols per frame, got 29"):
        decode(synthetic_posterior("mute"), g)
    assert g != Grammar.from_commands(g.commands, threshold=-0.5)  # same commands in characters


def test_grammar_file_without_units_holds_characters(tmp_path):
    g = Grammar.from_commands(["mute", "volume up"])
    data = g.to_dict()
    assert data.pop("units") == "chars"
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert Grammar.load(tmp_path / "old.json") == g
    data.update(units="phones")  # character expressions under a phoneme header: one line naming the file
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(GrammarError, match=r"bad\.json: 'mute': 'mute' is not an ARPAbet phoneme"):
        Grammar.load(tmp_path / "bad.json")


def test_recognizer_refuses_a_grammar_of_other_units(default_grammar):
    from grammar.config import AMConfig
    from grammar.decoding.recognizer import Recognizer

    rec = Recognizer(object(), AMConfig(units="phones"), None, None, default_grammar)
    with pytest.raises(GrammarError, match="grammar is spelled in chars, the acoustic model .* outputs phones"):
        rec.decoding_grammar()
    phones = Grammar.from_commands(default_grammar.commands, units="phones")
    assert rec.decoding_grammar(phones) is phones
