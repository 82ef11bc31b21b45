"""Streaming command spotting: alignment, window merging and timing, streamed == offline, the CLI."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from grammar.acoustic.features import speech_modulation, tonality
from grammar.alphabet import NUM_SYMBOLS, encode
from grammar.config import AMConfig
from grammar.decoding.decoder import Grammar
from grammar.decoding.listen import (
    LEVELS_KEPT_S,
    LISTEN_HOP_S,
    LISTEN_REFRACTORY_S,
    LISTEN_TAIL_S,
    LISTEN_VOTE,
    LISTEN_WINDOW_S,
    SPEECH_MARGIN_S,
    Detection,
    PosteriorStream,
    Spotter,
    WindowHit,
    ctc_align,
    replay,
    silent_frames,
    spot,
    window_records,
)
from grammar.decoding.recognizer import SPEECH_FLOOR, Recognizer
from grammar.errors import GrammarError
from rced.features import Normalizer
from tests.grammar.conftest import one_line_error, voiced

FRAME_S = 0.016  # AM frame: stride 2 x hop 128 at 16 kHz
COMMANDS = ["volume up", "mute", "call home"]


def grammar(*args, pre: str = "pass"):
    code = f"import sys; {pre}; from grammar.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)




# ----------------------------------------------------------------------------- synthetic posteriors


def spelled(n_frames: int, events: list[tuple[str, float]], rng=None) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """(T, 29) log-posteriors: blank everywhere, ``text`` spelled from ``start`` seconds on (each
    character 2 frames, a blank frame between characters). Returns them and the true spans."""
    rng = rng or np.random.default_rng(0)
    logits = rng.normal(0, 0.5, (n_frames, NUM_SYMBOLS))
    logits[:, 0] += 8.0
    truth = []
    for text, start in events:
        t = int(round(start / FRAME_S))
        first = t
        for sym in encode(text):
            logits[t : t + 2, 0] -= 8.0
            logits[t : t + 2, sym] += 8.0
            t += 3
        truth.append((text, first * FRAME_S, (t - 1) * FRAME_S))
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True), truth


def run_spotter(logp, chunks=None, **kw):
    g = Grammar.from_commands(COMMANDS, threshold=-1.0)
    sp = Spotter(g, FRAME_S, **kw)
    out = []
    bounds = [0, *(chunks or []), len(logp)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        out += sp.push(logp[a:b])
    return out + sp.flush(), sp


def test_ctc_align_finds_the_spelled_frames():
    logp, truth = spelled(60, [("mute", 0.32)])
    path = ctc_align(logp, encode("mute"))
    spoken = np.nonzero(path >= 0)[0]
    assert spoken[0] * FRAME_S == pytest.approx(truth[0][1]) and (spoken[-1] + 1) * FRAME_S == pytest.approx(truth[0][2])
    assert list(path[spoken[0] : spoken[0] + 2]) == [0, 0]  # 'm' on its two frames
    assert ctc_align(logp[:3], encode("mute")) is None  # four characters cannot fit in three frames
    assert ctc_align(logp[:7], encode("mm")) is not None  # a repeat needs a blank between: 3 frames


def test_detections_are_timed_merged_and_non_commands_rejected():
    events = [("volume up", 1.0), ("hello there friend", 4.2), ("mute", 7.5), ("call home", 10.0)]
    logp, truth = spelled(int(13 / FRAME_S), events)
    dets, sp = run_spotter(logp)
    want = [t for t in truth if t[0] in COMMANDS]
    assert [d.command for d in dets] == [t[0] for t in want]  # one detection each; the sentence rejected
    for d, (_, start, end) in zip(dets, want):
        assert abs(d.start - start) <= 0.05 and abs(d.end - end) <= 0.05
        assert d.windows > 1  # several windows accepted it: merged, not re-triggered
        assert d.score >= -1.0
    assert sp.windows_decoded > 40


def test_block_sizes_do_not_change_detections():
    logp, _ = spelled(int(8 / FRAME_S), [("call home", 0.5), ("mute", 5.0)])
    ref, _ = run_spotter(logp)
    rng = np.random.default_rng(1)
    cuts = sorted(set(rng.integers(1, len(logp), 40).tolist()))
    assert run_spotter(logp, cuts)[0] == ref
    assert run_spotter(logp, list(range(1, len(logp))))[0] == ref


def test_refractory_merges_a_quick_repeat_but_not_a_later_one():
    logp, _ = spelled(int(9 / FRAME_S), [("mute", 3.0), ("mute", 3.35), ("mute", 7.0)])
    dets, _ = run_spotter(logp, hop_s=0.048, refractory_s=0.3)  # fine hops: a window holds each repeat alone
    assert [round(d.start, 1) for d in dets] == [3.0, 7.0]
    dets, _ = run_spotter(logp, hop_s=0.048, refractory_s=0.0)
    assert [round(d.start, 1) for d in dets] == [3.0, 3.3, 7.0]


def test_first_windows_grow_from_the_start():
    logp, _ = spelled(int(3 / FRAME_S), [("mute", 0.1)])
    g = Grammar.from_commands(COMMANDS, threshold=-1.0)
    sp = Spotter(g, FRAME_S)
    dets = sp.push(logp[: int(0.9 / FRAME_S)])  # long before a full 2-s window: already decoded
    assert sp.windows_decoded == 3
    dets += sp.push(logp[int(0.9 / FRAME_S) :]) + sp.flush()
    assert [d.command for d in dets] == ["mute"]


def test_short_input_and_tail_are_decoded():
    logp, truth = spelled(int(1.0 / FRAME_S), [("mute", 0.3)])  # shorter than one window
    dets, _ = run_spotter(logp)
    assert [d.command for d in dets] == ["mute"] and abs(dets[0].start - truth[0][1]) <= 0.05
    logp, _ = spelled(int(4.1 / FRAME_S), [("call home", 3.2)])  # only the final window holds it whole
    assert [d.command for d in run_spotter(logp, hop_s=1.0)[0]] == ["call home"]


@pytest.mark.parametrize("after_s,found", [(0.0, False), (LISTEN_TAIL_S / 2, False), (LISTEN_TAIL_S + 0.05, True), (0.6, True)])
def test_a_command_cut_by_the_end_of_the_input_is_not_completed_by_the_padding(after_s, found):
    n_end = int(round(after_s / FRAME_S))  # frames of input after the command's last character
    n = int(round(3.0 / FRAME_S))
    logp, truth = spelled(n, [("mute", (n - n_end - 11) * FRAME_S)])  # "mute" spans 11 frames
    assert truth[0][2] == pytest.approx((n - n_end) * FRAME_S)  # its end: the input's last n_end frames follow
    dets, sp = run_spotter(logp, min_windows=3)
    assert [d.command for d in dets] == (["mute"] if found else [])
    g = Grammar.from_commands(COMMANDS, threshold=-1.0)
    assert replay(window_records(logp, g, FRAME_S), -1.0, FRAME_S, min_windows=3) == dets


@pytest.mark.parametrize("threshold", [-3.0, -1.0, -0.5, -0.2, 0.0])
@pytest.mark.parametrize("min_windows,min_best,vote", [(1, -np.inf, False), (3, -np.inf, False), (2, -0.6, False),
                                                      (3, -np.inf, True), (2, -0.6, True)])  # fmt: skip
def test_replay_of_window_records_equals_a_spotter_at_that_threshold(threshold, min_windows, min_best, vote):
    events = [("volume up", 1.0), ("hello there friend", 4.2), ("mute", 7.5), ("call home", 10.0), ("muted", 12.0)]
    logp, _ = spelled(int(14 / FRAME_S), events, np.random.default_rng(3))
    logp = np.log(np.clip(np.exp(logp) + np.random.default_rng(4).uniform(0, 0.3, logp.shape), 1e-6, None))
    logp -= np.logaddexp.reduce(logp, axis=1, keepdims=True)  # noisier: scores spread around the thresholds
    g = Grammar.from_commands(COMMANDS, threshold=-1.0)
    records = window_records(logp, g, FRAME_S)
    assert len(records) > 50 and all(h is None or np.isfinite(h.score) for _, h in records)
    live = None
    if threshold == -1.0 and not vote:
        live, _ = run_spotter(logp, min_windows=min_windows, min_best=min_best)
    sp = Spotter(g.with_threshold(threshold), FRAME_S, min_windows=min_windows, min_best=min_best, vote=vote)
    want = sp.push(logp) + sp.flush()
    assert replay(records, threshold, FRAME_S, min_windows=min_windows, min_best=min_best, vote=vote) == want
    if live is not None:
        assert live == want
    if np.isfinite(min_best):  # the check drops exactly the events whose best window is below it
        loose = replay(records, threshold, FRAME_S, min_windows=min_windows, vote=vote)
        assert want == [d for d in loose if d.score >= min_best]


@pytest.mark.parametrize("offsets", [{"mute": 0.4}, {"call home": -0.5, "volume up": 0.3}, {"hello": 9.0}, {}])
def test_per_command_offsets_move_only_their_commands_thresholds(offsets):
    logp, _ = spelled(int(14 / FRAME_S), [("volume up", 1.0), ("mute", 5.0), ("call home", 9.0)], np.random.default_rng(5))
    logp = np.log(np.clip(np.exp(logp) + np.random.default_rng(6).uniform(0, 0.3, logp.shape), 1e-6, None))
    logp -= np.logaddexp.reduce(logp, axis=1, keepdims=True)
    g = Grammar.from_commands(COMMANDS, threshold=-1.0)
    records = window_records(logp, g, FRAME_S)
    sp = Spotter(g, FRAME_S, min_windows=2, offsets=offsets)
    live = sp.push(logp) + sp.flush()
    assert replay(records, -1.0, FRAME_S, min_windows=2, offsets=offsets) == live
    # a command's offset is its own threshold moved: the same as the plain spotter at that threshold
    for cmd in {"volume up", "mute", "call home"}:
        alone = replay(records, -1.0 + offsets.get(cmd, 0.0), FRAME_S, min_windows=2)
        assert [d for d in live if d.command == cmd] == [d for d in alone if d.command == cmd]


@pytest.mark.parametrize("bad", [{"mute": float("nan")}, {"mute": "high"}, {"mute": float("inf")}, [("mute", 1.0)]])
def test_per_command_offsets_are_checked(bad):
    with pytest.raises(GrammarError, match="offset"):
        Spotter(Grammar.from_commands(COMMANDS), FRAME_S, offsets=bad)
    with pytest.raises(GrammarError, match="offset"):
        replay([], -1.0, FRAME_S, offsets=bad)


def test_a_command_just_before_the_end_is_seen_by_as_many_windows_as_mid_stream():
    mid, _ = spelled(int(8 / FRAME_S), [("mute", 3.0)])
    (d,), _ = run_spotter(mid)
    end, truth = spelled(int(8 / FRAME_S), [("mute", 7.4)])
    assert 8.0 - truth[0][2] < 0.5  # the input ends within half a second of the command
    (e,), _ = run_spotter(end, min_windows=d.windows)  # the windows past the end hear silence
    assert e.command == "mute" and e.windows == d.windows and e.score == pytest.approx(d.score, abs=1e-6)
    np.testing.assert_array_equal(silent_frames(2, 4), [[0, -np.inf, -np.inf, -np.inf]] * 2)


def test_the_stricter_check_drops_weak_events_only():
    logp, _ = spelled(int(9 / FRAME_S), [("mute", 2.0), ("call home", 6.0)])
    dets, _ = run_spotter(logp)
    scores = sorted(d.score for d in dets)
    assert len(scores) == 2 and scores[0] < scores[1]
    cut = (scores[0] + scores[1]) / 2
    kept, _ = run_spotter(logp, min_best=cut)
    assert [d.score for d in kept] == [scores[1]]
    assert run_spotter(logp, min_best=scores[0])[0] == dets  # at the best score itself: kept
    with pytest.raises(GrammarError, match="NaN"):
        Spotter(Grammar.from_commands(COMMANDS), FRAME_S, min_best=float("nan"))


def hits(*named: tuple[str, float]) -> list[tuple[int, WindowHit]]:
    """Records of successive windows (every 0.25 s) whose best hits name these (command, score) over the
    same span: one event."""
    return [(16 * i, WindowHit(cmd, cmd, 100, 140, score)) for i, (cmd, score) in enumerate(named)]


@pytest.mark.parametrize("records, min_windows, plain, voted", [
    # one near miss scores highest, three windows name the command: the vote keeps the command
    (hits(("mute", -0.9), ("unmute", -0.5), ("mute", -0.8), ("mute", -0.7)), 3, [], [("mute", -0.7, 3)]),
    (hits(("mute", -0.9), ("unmute", -0.5), ("mute", -0.8)), 2, [], [("mute", -0.8, 2)]),
    (hits(("mute", -0.9), ("unmute", -0.5), ("mute", -0.8)), 3, [], []),  # the majority, but below min windows
    (hits(("mute", -0.5), ("mute", -0.8), ("unmute", -0.6)), 2, [("mute", -0.5, 2)], [("mute", -0.5, 2)]),  # agree
    (hits(("unmute", -0.5), ("mute", -0.8), ("unmute", -0.6), ("mute", -0.7)), 2,  # a tie: the best hit's
     [("unmute", -0.5, 2)], [("unmute", -0.5, 2)]),
])  # fmt: skip
def test_a_vote_names_the_command_most_windows_of_an_event_name(records, min_windows, plain, voted):
    for vote, want in ((False, plain), (True, voted)):
        got = replay(records, -1.0, FRAME_S, min_windows=min_windows, vote=vote)
        assert [(d.command, d.score, d.windows) for d in got] == want


def test_min_windows_drops_events_seen_by_too_few_windows():
    logp, _ = spelled(int(9 / FRAME_S), [("mute", 2.0), ("call home", 6.0)])
    dets, _ = run_spotter(logp)
    n = {d.command: d.windows for d in dets}
    assert set(n) == {"mute", "call home"} and min(n.values()) > 1
    k = min(n.values())
    assert {d.command for d in run_spotter(logp, min_windows=k)[0]} == set(n)
    assert {d.command for d in run_spotter(logp, min_windows=k + 1)[0]} == {c for c in n if n[c] > k}
    with pytest.raises(GrammarError):
        Spotter(Grammar.from_commands(COMMANDS), FRAME_S, min_windows=0)


def test_spotter_arguments_are_checked():
    g = Grammar.from_commands(COMMANDS)
    for kw in ({"window_s": 0}, {"hop_s": -1}, {"hop_s": 3.0}, {"refractory_s": -1}, {"window_s": float("nan")}):
        with pytest.raises(GrammarError):
            Spotter(g, FRAME_S, **kw)


def test_detection_is_frozen_and_serialises_four_keys():
    d = Detection("mute", 1.23456, 2.5, -0.123456, "mute", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.start = 0.0
    assert d.to_json() == {"command": "mute", "start": 1.235, "end": 2.5, "score": -0.1235}


# ----------------------------------------------------------------------------- the whole chain, a tone "AM"


SPELL_CHARS = sorted(set("".join(COMMANDS) + "hello"))


def mel_centres(cfg: AMConfig) -> np.ndarray:
    import librosa

    fe = cfg.frontend
    return librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.fmin, fmax=fe.sample_rate / 2, htk=True)[1:-1]


class ToneAM:
    """Stands in for the Keras AM: reads each AM frame's newest STFT frame and emits the symbol whose
    tone is loudest (a blank on silence). Frame-local, so any chunking gives the same output."""

    def __init__(self, bin_to_symbol: dict[int, int], floor: float = 0.0):
        self.table, self.floor = bin_to_symbol, floor

    def __call__(self, x, training=False):
        f = np.asarray(x, np.float32)[0, :, 0, :]
        f = f[1::2] if len(f) % 2 == 0 else np.concatenate([f, f[-1:]])[1::2]
        logits = np.zeros((len(f), NUM_SYMBOLS), np.float32)
        loud = f.max(axis=1) > self.floor
        sym = np.array([self.table.get(int(b), 0) for b in f.argmax(axis=1)])
        logits[np.arange(len(f)), np.where(loud, sym, 0)] = 8.0
        return logits[None]


def make_tone_chain():
    """A Recognizer (no denoiser) whose 'AM' reads tones, and the tone frequency of each character
    (also built inside the CLI subprocesses below, in place of a trained AM). Its speech is pure
    tones, which the speech check's tonal ceiling rejects by design: the chain has none."""
    cfg = AMConfig(channels=16, blocks=2)
    norm = Normalizer(tuple([-8.0] * cfg.n_mels), tuple([3.0] * cfg.n_mels))
    centres = mel_centres(cfg)
    bins = list(range(12, 12 + 2 * len(SPELL_CHARS), 2))
    freq = {c: float(centres[b]) for c, b in zip(SPELL_CHARS, bins)}
    rec = Recognizer(None, cfg, norm, grammar=Grammar.from_commands(COMMANDS, threshold=-1.0), tonal_ceiling=None)
    table = {}
    for c in SPELL_CHARS:  # the bin each tone really peaks in, through the real front-end
        feats = rec.features(np.sin(2 * np.pi * freq[c] * np.arange(8000) / 16000).astype(np.float32) * 0.3, 16000)
        peak = int(np.bincount(feats[10:-10].argmax(axis=1)).argmax())
        assert peak not in table, "two tones share a mel bin"
        table[peak] = int(encode(c)[0])
    rec.model = ToneAM(table)
    return rec, freq


@pytest.fixture(scope="module")
def tone_chain():
    return make_tone_chain()


def tone_speech(freq, events, seconds, sr=16000, char_s=0.064, gap_s=0.032):
    """Audio that spells ``text`` in tones from ``start`` on; the true spans in seconds."""
    x = np.zeros(int(seconds * sr), np.float32)
    truth = []
    for text, start in events:
        t = start
        for ch in text:
            n0, n1 = int(t * sr), int((t + char_s) * sr)
            x[n0:n1] = 0.3 * np.sin(2 * np.pi * freq[ch] * np.arange(n1 - n0) / sr)
            t += char_s + gap_s
        truth.append((text, start, t - gap_s))
    return x, truth


def test_spot_times_commands_through_the_streamed_chain(tone_chain):
    rec, freq = tone_chain
    events = [("mute", 0.7), ("hello", 3.3), ("call home", 5.9), ("volume up", 9.1)]
    audio, truth = tone_speech(freq, events, 12.0)
    dets = spot(rec, audio, 16000)
    want = [t for t in truth if t[0] in COMMANDS]
    assert [d.command for d in dets] == [t[0] for t in want]
    for d, (_, start, end) in zip(dets, want):
        assert abs(d.start - start) <= 0.05 and abs(d.end - end) <= 0.05, (d, start, end)
    assert spot(rec, audio, 16000, block_s=0.037) == dets  # odd block sizes: the same detections
    import soxr

    d48 = spot(rec, soxr.resample(audio, 16000, 48000).astype(np.float32), 48000)  # other rates are resampled
    assert [d.command for d in d48] == [d.command for d in dets]


def test_spot_rejects_bad_audio(tone_chain):
    rec, _ = tone_chain
    from rced.errors import RcedError

    with pytest.raises(RcedError, match="empty"):
        spot(rec, np.zeros(0, np.float32), 16000)
    with pytest.raises(RcedError, match="NaN"):
        spot(rec, np.full(16000, np.nan, np.float32), 16000)
    with pytest.raises(GrammarError, match="mono"):
        spot(rec, np.zeros((16000, 2), np.float32), 16000)


@pytest.mark.parametrize(("am", "use_denoiser"), [("tiny_am", False), ("tiny_am", True), ("tiny_tracker_am", True)])
def test_streamed_posteriors_equal_offline(request, am, use_denoiser):
    """Block by block, the AM's outputs (with its level trackers' state carried, if it has them) equal
    one run on the whole input."""
    rec = Recognizer.load(request.getfixturevalue(am), denoiser=None if use_denoiser else False, grammar=False)
    x = np.concatenate([voiced(2.3), np.zeros(777, np.float32), voiced(0.9)])
    offline = rec.posteriors(x, 16000)
    for block in (128, 1000, 4321):
        st = PosteriorStream(rec, keep_spectrum=use_denoiser)
        parts = [st.push(x[i : i + block]) for i in range(0, len(x), block)] + [st.flush()]
        streamed = np.concatenate(parts)
        assert streamed.shape == offline.shape
        np.testing.assert_allclose(streamed, offline, atol=1e-4)
        assert max(len(p) for p in parts[:-1]) <= -(-block // 256) + 1  # frames come out as audio comes in
    if use_denoiser:  # the listening path from the same STFT equals the offline denoiser
        from rced.frontend import istft

        enhanced = istft(st.spectrum, rec.config.frontend, length=len(x))
        np.testing.assert_allclose(enhanced, rec.denoiser.denoise(x, 16000), atol=1e-4)


@pytest.mark.parametrize("am_floor", [0.0, 0.6])
def test_am_reads_its_own_mask_floor_and_the_listener_the_denoisers(tiny_am, tmp_path, am_floor):
    """AMConfig.input_mask_floor feeds the AM (offline and streamed alike); the listening path keeps
    the denoiser's floor. 0.0 and 0.6 lie either side of the shipped floor."""
    from rced.config import load_json, save_json
    from rced.frontend import istft

    folder = tmp_path / "am"
    folder.mkdir()
    for name in ("model.keras", "norm.json"):
        (folder / name).write_bytes((tiny_am / name).read_bytes())
    cfg = dataclasses.replace(load_json(AMConfig, tiny_am / "config.json"), input_mask_floor=am_floor)
    save_json(cfg, folder / "config.json")
    rec = Recognizer.load(folder, denoiser=None, grammar=False)
    plain = Recognizer.load(tiny_am, denoiser=None, grammar=False)
    assert rec.denoiser.config == plain.denoiser.config and rec.am_denoiser.config.mask_floor == am_floor
    assert rec.denoiser.config.mask_floor != am_floor
    x = np.concatenate([voiced(1.7), 0.05 * np.random.default_rng(2).standard_normal(8000).astype(np.float32)])
    plain.denoiser = plain.denoiser.with_mask_floor(am_floor)
    np.testing.assert_allclose(rec.features(x, 16000), plain.features(x, 16000), atol=1e-5)
    assert not np.allclose(rec.features(x, 16000), Recognizer.load(tiny_am, grammar=False).features(x, 16000),
                           atol=1e-3)  # fmt: skip
    offline = rec.posteriors(x, 16000)
    st = PosteriorStream(rec, keep_spectrum=True)
    streamed = np.concatenate([st.push(x[i : i + 1000]) for i in range(0, len(x), 1000)] + [st.flush()])
    np.testing.assert_allclose(streamed, offline, atol=1e-4)
    heard = istft(st.spectrum, rec.config.frontend, length=len(x))
    np.testing.assert_allclose(heard, rec.denoiser.denoise(x, 16000), atol=1e-4)
    rec.config = dataclasses.replace(rec.config, input_mask_floor=0.3)  # as benchmarks/am_floor.py does
    assert rec.am_denoiser.config.mask_floor == 0.3


def test_am_input_mask_floor_is_checked():
    with pytest.raises(GrammarError, match="input_mask_floor"):
        AMConfig(input_mask_floor=1.5)


# ----------------------------------------------------------------------------- command line


@pytest.fixture
def long_wav(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, np.concatenate([voiced(2.0), np.zeros(8000, np.float32), voiced(2.5)]), 16000)
    return p


def test_listen_json_lines(tiny_am, tiny_grammar, long_wav):
    res = grammar("listen", long_wav, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser", "--json",
                  "--window-s", "1.5", "--hop-s", "0.5", "--min-windows", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert lines, "threshold -1e9 accepts every window: something must be detected"
    for d in lines:
        assert set(d) == {"command", "start", "end", "score"}
        # the last AM frame reaches past the audio's end by less than a frame
        assert d["command"] in COMMANDS and 0 <= d["start"] < d["end"] <= 5.0 + 0.016 and isinstance(d["score"], float)
    assert [d["start"] for d in lines] == sorted(d["start"] for d in lines)


@pytest.mark.parametrize("flags, vote", [((), LISTEN_VOTE), (("--vote",), True), (("--no-vote",), False)])
def test_listen_passes_its_vote_flag_to_the_listener(tiny_am, tiny_grammar, long_wav, monkeypatch, flags, vote):
    from grammar.cli import main
    from grammar.decoding import listen

    seen = {}
    monkeypatch.setattr(listen, "run_listen", lambda *a, **kw: (seen.update(kw), (0, False))[1])
    assert main(["listen", str(long_wav), "--am", str(tiny_am), "--grammar", str(tiny_grammar), "--no-denoiser",
                 *flags]) == 0  # fmt: skip
    assert seen["vote"] is vote


def test_listen_text_output(tiny_am, tiny_grammar, long_wav):
    res = grammar("listen", long_wav, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser")
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip().splitlines()
    assert out[0].split() == ["start", "end", "score", "command"] and "detection" in out[-1]


@pytest.mark.parametrize("kind,needle", [("text", "not a readable audio file"), ("empty", "empty file"),
                                         ("zero_samples", "empty"), ("missing", "not found")])  # fmt: skip
def test_listen_bad_input_is_one_line(tiny_am, tiny_grammar, bad_files, kind, needle):
    res = grammar("listen", bad_files[kind], "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser")
    one_line_error(res, needle)
    assert str(bad_files[kind]) in res.stderr


@pytest.mark.parametrize("args,needle", [
    ((), "give an INPUT file"),
    (("x.wav", "--device"), "not both"),
    (("x.wav", "--hop-s", "3"), "longer than --window-s"),
    (("x.wav", "--window-s", "0"), "positive"),
    (("x.wav", "--window-s", "inf"), "--window-s inf: must be a positive number"),
    (("x.wav", "--hop-s", "nan"), "--hop-s nan: must be a positive number"),
])  # fmt: skip
def test_listen_bad_arguments(args, needle):
    """Refused before anything is printed: stdout (the table header) stays empty."""
    res = grammar("listen", *args)
    one_line_error(res, needle)
    assert res.stdout == ""


def test_device_without_sounddevice_is_one_line(tiny_am, tiny_grammar):
    res = grammar("listen", "--device", "--am", tiny_am, "--grammar", tiny_grammar,
                  pre="sys.modules['sounddevice'] = None")  # fmt: skip
    one_line_error(res, "sounddevice")


# ----------------------------------------------------------------------------- live input (a fake sounddevice)


class FakeSoundDevice:
    """The few calls of ``sounddevice`` that listen uses; the 'microphone' plays ``audio``."""

    def __init__(self, audio):
        self.audio, self.opened = audio, []

    def query_devices(self, device=None, kind=None):
        if device not in (None, 0):
            raise ValueError(f"No input device matching {device!r}")
        return {"name": "fake microphone", "max_input_channels": 1}

    def InputStream(self, device, channels, samplerate, blocksize, dtype, callback):  # sounddevice's spelling
        self.opened.append((device, channels, samplerate, blocksize, dtype))
        audio = self.audio

        class Stream:
            def __enter__(self):
                for i in range(0, len(audio), blocksize):
                    block = np.zeros((blocksize, 1), np.float32)
                    chunk = audio[i : i + blocksize]
                    block[: len(chunk), 0] = chunk
                    callback(block, blocksize, None, None)
                return self

            def __exit__(self, *exc):
                return False

        return Stream()


def test_live_device_spots_commands(tone_chain, monkeypatch):
    from grammar.decoding.listen import device_source, open_input_device, run_listen

    rec, freq = tone_chain
    audio, truth = tone_speech(freq, [("call home", 0.8), ("mute", 4.0)], 6.0)
    fake = FakeSoundDevice(audio)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    dets = []
    source = device_source(open_input_device(None), max_seconds=6.0)
    assert source.name == "input device default" and source.seconds is None
    n, interrupted = run_listen(rec, source, window_s=2.0, hop_s=0.25, emit=dets.append)
    assert (n, interrupted) == (2, False) and [d.command for d in dets] == ["call home", "mute"]
    for d, (_, start, end) in zip(dets, truth):
        assert abs(d.start - start) <= 0.05 and abs(d.end - end) <= 0.05
    assert fake.opened == [(None, 1, 16000, 4000, "float32")]
    with pytest.raises(GrammarError, match="no audio input device"):
        open_input_device("7")


def test_device_that_does_not_exist_is_one_line(tiny_am, tiny_grammar):
    pre = ("import types; sd = types.ModuleType('sounddevice'); "
           "sd.query_devices = lambda device=None, kind=None: (_ for _ in ()).throw(ValueError('No input device')); "
           "sys.modules['sounddevice'] = sd")  # fmt: skip
    res = grammar("listen", "--device", "3", "--am", tiny_am, "--grammar", tiny_grammar, pre=pre)
    one_line_error(res, "--device 3: no audio input device")


def test_listener_gain_shaping_reaches_the_ear_not_the_am(tiny_am):
    """A denoiser with a release and an exponent: the streamed listening path equals its offline
    denoise (release state carried), while the AM reads the plain mask at its floor, so features
    and posteriors are those of the same chain without the shaping."""
    from rced.frontend import istft

    x = np.concatenate([voiced(1.7), 0.05 * np.random.default_rng(4).standard_normal(8000).astype(np.float32)])
    plain = Recognizer.load(tiny_am, denoiser=None, grammar=False)
    rec = Recognizer.load(tiny_am, denoiser=None, grammar=False)
    rec.denoiser = rec.denoiser.with_gain(mask_release=0.7, mask_exponent=0.6)
    assert rec.am_denoiser.config == plain.am_denoiser.config
    np.testing.assert_allclose(rec.features(x, 16000), plain.features(x, 16000), atol=1e-6)
    shaped, unshaped = rec.denoiser.denoise(x, 16000), plain.denoiser.denoise(x, 16000)
    assert np.max(np.abs(shaped - unshaped)) > 1e-3  # the shaping is audible
    st = PosteriorStream(rec, keep_spectrum=True)
    streamed = np.concatenate([st.push(x[i : i + 777]) for i in range(0, len(x), 777)] + [st.flush()])
    np.testing.assert_allclose(streamed, plain.posteriors(x, 16000), atol=1e-4)
    np.testing.assert_allclose(istft(st.spectrum, rec.config.frontend, length=len(x)), shaped, atol=1e-4)


# ----------------------------------------------------------------------------- live output, inputs, Ctrl-C


def test_detections_come_out_before_the_input_ends(tone_chain):
    from grammar.decoding.listen import listen_blocks

    rec, freq = tone_chain
    audio, truth = tone_speech(freq, [("mute", 0.5), ("call home", 5.0), ("volume up", 9.0)], 12.0)
    read = [0]

    def blocks():
        for i in range(0, len(audio), 4000):
            read[0] = min(i + 4000, len(audio))
            yield audio[i : i + 4000]

    seen = [(d, read[0] / 16000) for d in listen_blocks(rec, blocks())]
    assert [d.command for d, _ in seen] == ["mute", "call home", "volume up"]
    assert [d for d, _ in seen] == spot(rec, audio, 16000)  # live == all at once
    # out once no later window can hold it (a window and the refractory time after the command's
    # end, plus a hop for the AM's look-ahead and a block of reading), not at the end of the input
    late = LISTEN_WINDOW_S + LISTEN_REFRACTORY_S + LISTEN_HOP_S + 4000 / 16000
    for (d, at), (_, _, end) in zip(seen[:2], truth):
        assert at < 12.0 and at - end < late, (d, at)


def test_file_is_read_block_by_block(long_wav):
    from grammar.decoding.listen import file_source
    from rced.audio import load_audio

    src = file_source(long_wav)
    assert src.name == str(long_wav) and src.seconds == pytest.approx(5.0)
    blocks = list(src.blocks(16000, 0.25))
    assert {len(b) for b in blocks[:-1]} == {4000}
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(long_wav))


TONE_AM = ("import tests.grammar.decoding.test_listen as T, grammar.decoding.recognizer as R; rec = T.make_tone_chain()[0]; "
           "R.Recognizer.load = lambda *a, **k: rec")  # fmt: skip


def wav_bytes(audio) -> tuple[bytes, int]:
    """A 16-bit WAV of ``audio`` and the size of its header."""
    import io

    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    return data, len(data) - 2 * len(audio)


class Listener:
    """``grammar listen -`` (the tone 'AM') fed through a pipe a piece at a time; stdout read line by line."""

    def __init__(self, *args):
        import queue
        import threading

        code = f"import sys; {TONE_AM}; from grammar.cli import main; sys.exit(main(sys.argv[1:]))"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "listen", "-", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=lambda: [self.lines.put(ln.decode()) for ln in self.proc.stdout],
                                       daemon=True)  # fmt: skip
        self.reader.start()

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def line(self) -> str:
        return self.lines.get(timeout=120)

    def finish(self) -> tuple[int, list[str], str]:
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=120)
        self.reader.join(timeout=30)  # it ends at the end of stdout
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return rc, rest, self.proc.stderr.read().decode()


def test_listen_prints_each_detection_while_standard_input_flows(tone_chain):
    _, freq = tone_chain
    audio, _ = tone_speech(freq, [("mute", 0.5), ("call home", 6.0)], 8.0)
    data, head = wav_bytes(audio)
    cut = head + 2 * 16000 * 5  # the header and the first 5 s
    li = Listener("--json")
    li.send(data[:cut])
    first = json.loads(li.line())  # flushed by itself: stdin is still open, 3 s of audio unsent
    assert first["command"] == "mute" and set(first) == {"command", "start", "end", "score"}
    assert li.proc.poll() is None
    li.send(data[cut:])
    rc, rest, err = li.finish()
    assert rc == 0, err
    assert [json.loads(x)["command"] for x in rest] == ["call home"]
    assert "listening" not in err  # no progress bar on a pipe, nor for a stream of unknown length


def listen_two_commands(tone_chain, tmp_path, flags=(), before: str = "", after: str = "") -> list[str]:
    """``grammar listen --json`` on "mute" and "call home" in tones, the tone AM in place of a trained
    one, with the code ``before`` (ahead of the AM's making) and ``after`` run first; the commands found."""
    _, freq = tone_chain
    audio, _ = tone_speech(freq, [("mute", 0.5), ("call home", 6.0)], 8.0)
    path = tmp_path / "two.wav"
    sf.write(path, audio, 16000)
    code = f"import sys; {before}{TONE_AM}; {after}from grammar.cli import main; sys.exit(main(sys.argv[1:]))"
    res = subprocess.run([sys.executable, "-c", code, "listen", str(path), "--json", *flags], capture_output=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr.decode()
    return [json.loads(x)["command"] for x in res.stdout.decode().split("\n") if x.strip()]


@pytest.mark.parametrize("flag", [[], ["--no-command-offsets"]])
def test_listen_applies_the_per_command_offsets_unless_told_not_to(tone_chain, tmp_path, flag):
    # mute's threshold raised out of reach: only call home is left, unless the offsets are off
    found = listen_two_commands(tone_chain, tmp_path, flag,
                                after="import grammar.decoding.listen as L; L.LISTEN_COMMAND_OFFSETS = {'mute': 1e6}; ")
    assert found == (["mute", "call home"] if flag else ["call home"])


@pytest.mark.parametrize(("flags", "want"), [([], ["mute", "call home"]), (["--best-offset", "1e6"], []),
                                           (["--best-offset", "1e6", "--no-best-check"], ["mute", "call home"])])
def test_listen_checks_each_events_best_window_unless_told_not_to(tone_chain, tmp_path, flags, want):
    """The stricter check: an event is reported only if its best window reaches the threshold plus
    --best-offset (out of reach at 1e6); --no-best-check turns it off."""
    assert listen_two_commands(tone_chain, tmp_path, flags) == want


def test_ctrl_c_keeps_the_detections_and_prints_the_count(tone_chain):
    import signal

    _, freq = tone_chain
    audio, _ = tone_speech(freq, [("mute", 0.5), ("call home", 6.0)], 8.0)
    data, head = wav_bytes(audio)
    cut = head + 2 * 16000 * 5
    li = Listener()
    li.send(data[:cut])
    assert li.line().split() == ["start", "end", "score", "command"]
    assert li.line().split()[-1] == "mute"
    li.proc.send_signal(signal.SIGINT)
    li.send(data[cut : cut + 2 * 8000])  # the next block ends the input
    rc, rest, err = li.finish()
    assert rc == 130  # as rced.errors.run_command exits on Ctrl-C
    assert rest == ["1 detection\n"]  # 'call home' (6 s) was never heard
    assert err.strip().splitlines()[-1] == "grammar: interrupted"


def test_bad_standard_input_is_one_line(tiny_am, tiny_grammar):
    code = "import sys; from grammar.cli import main; sys.exit(main(sys.argv[1:]))"
    for data, needle in ((b"", "standard input: not a WAV stream"), (b"hello, world\n" * 10, "not a WAV stream"),
                         (wav_bytes(np.full(5, 0.1, np.float32))[0], "standard input: audio of 0.00 s is shorter")):  # fmt: skip
        res = subprocess.run([sys.executable, "-c", code, "listen", "-", "--am", tiny_am, "--grammar", tiny_grammar,
                              "--no-denoiser"], input=data, capture_output=True)  # fmt: skip
        one_line_error(subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(), res.stderr.decode()),
                       needle)  # fmt: skip


def _listen_stdin(data: bytes, *args) -> subprocess.CompletedProcess:
    code = "import sys; from grammar.cli import main; sys.exit(main(sys.argv[1:]))"
    res = subprocess.run([sys.executable, "-c", code, "listen", "-", *map(str, args)], input=data, capture_output=True)
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(), res.stderr.decode())


def test_truncated_wav_on_standard_input_is_refused_as_a_file_is(tiny_am, tiny_grammar):
    """A stream that ends before the data size its header promised is truncated, as a file is; the
    sizes that promise nothing (0xFFFFFFFF: a writer that did not know the length) are streams."""
    data, header = wav_bytes(voiced(3.0))
    cut = data[: header + 2 * 24000 + 1]  # 1.5 s of the 3 s promised, and half a sample
    chain = ["--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser", "--json"]
    res = _listen_stdin(cut, *chain)
    one_line_error(res, f"standard input: truncated WAV (header promises {2 * 48000} data bytes, the stream ended "
                        f"after {2 * 24000}")  # fmt: skip
    streaming = bytearray(cut)
    streaming[4:8] = streaming[header - 4 : header] = b"\xff\xff\xff\xff"  # RIFF and data sizes unknown
    res = _listen_stdin(bytes(streaming), *chain)
    assert res.returncode == 0, res.stderr


def test_short_input_is_the_same_error_for_recognize_and_listen(tiny_am, tiny_grammar, tmp_path):
    from grammar.decoding.recognizer import receptive_field_frames

    cfg = AMConfig(channels=16, blocks=2)
    need = receptive_field_frames(cfg) * cfg.frontend.hop
    runs = [("recognize", 1), ("listen", 1), ("listen", need - 1)]  # recognize at need - 1: test_recognizer
    errors = {}
    for command, n in runs:
        p = tmp_path / f"short_{n}.wav"
        sf.write(p, np.full(n, 0.1, np.float32), 16000)
        res = grammar(command, p, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser")
        one_line_error(res, f"{p}: audio of {n / 16000:.2f} s is shorter than the acoustic model's receptive field")
        errors.setdefault(n, set()).add(res.stderr)
    assert len(errors[1]) == 1  # recognize and listen: the same line


def test_progress_bar_on_a_terminal(tiny_am, tiny_grammar, long_wav):
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a width
    res = subprocess.run([sys.executable, "-m", "grammar", "listen", str(long_wav), "--am", str(tiny_am),
                          "--grammar", str(tiny_grammar), "--no-denoiser", "--json"],
                         stdout=subprocess.PIPE, stderr=slave, timeout=300)  # fmt: skip
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert res.returncode == 0
    assert b"listening:" in shown and b"/5.0 s" in shown
    assert all(json.loads(x) for x in res.stdout.decode().splitlines())  # the bar stays on stderr


@pytest.mark.parametrize("args", [["--min-windows", "0"], ["--threshold-offset", "nan"], ["--best-offset", "inf"]])
def test_listen_refuses_bad_spotter_settings(tmp_path, args):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000 * 3, np.float32), 16000)
    one_line_error(grammar("listen", wav, *args), args[0])


@pytest.mark.parametrize(("before", "after", "flags", "want"), [
    ("", "", [], ["mute", "call home"]),
    ("R0.SPEECH_FLOOR = 1e6; ", "", [], []),
    ("", "rec.tonal_ceiling = 0.0; ", [], []),
    ("R0.SPEECH_FLOOR = 1e6; ", "rec.tonal_ceiling = 0.0; ", ["--no-speech-check"], ["mute", "call home"]),
])  # fmt: skip
def test_listen_drops_detections_that_fail_the_speech_check_unless_told_not_to(tone_chain, tmp_path, before, after,
                                                                                flags, want):  # fmt: skip
    """The spelled tones rise and fall, so they pass the modulation floor; a floor out of reach drops
    every detection, and so does a ceiling of no tonal frame at all (they are tones);
    --no-speech-check keeps them."""
    before = f"import grammar.decoding.recognizer as R0; {before}"  # before the  AM's recognizer is made
    assert listen_two_commands(tone_chain, tmp_path, flags, before=before, after=after) == want


def test_the_speech_check_reads_the_features_around_each_detection(tone_chain):
    """The stream's modulation and tonality of a span equal the offline features' over the same
    frames, and a detection is dropped exactly when the span around it is below the recognizer's
    floor or above its tonal ceiling."""
    rec, freq = tone_chain
    audio, _ = tone_speech(freq, [("mute", 0.7), ("call home", 4.3)], 7.0)  # all within LEVELS_KEPT_S
    stream = PosteriorStream(rec)
    dets = spot(rec, audio, 16000, stream=stream, speech_check=False)
    assert [d.command for d in dets] == ["mute", "call home"]
    levels, tonal = rec.speech_tracks(rec.features(audio, 16000))
    per_s = 16000 / 128
    for d in dets:
        a, b = d.start - SPEECH_MARGIN_S, d.end + SPEECH_MARGIN_S
        span = slice(int(np.floor(a * per_s)), int(np.ceil(b * per_s)))
        want = speech_modulation(levels[span]), tonality(tonal[span])
        assert stream.detection_measures(d) == pytest.approx(want) and want[0] > 0
    mods, tones = zip(*(stream.detection_measures(d) for d in dets))
    weak, strong = np.argsort(mods)
    assert mods[weak] < mods[strong]
    try:
        rec.speech_floor, rec.tonal_ceiling = (mods[weak] + mods[strong]) / 2, None  # the weaker one goes
        kept = spot(rec, audio, 16000)
        unchecked = spot(rec, audio, 16000, speech_check=False)
        rec.speech_floor, rec.tonal_ceiling = None, min(tones) - 1e-3  # every span is more tonal: both go
        tonal_kept = spot(rec, audio, 16000)
    finally:
        rec.speech_floor, rec.tonal_ceiling = SPEECH_FLOOR, None
    assert kept == [dets[strong]] and unchecked == dets
    assert min(tones) > 0 and tonal_kept == []


@pytest.mark.parametrize("kept_s", [None, float("inf")])
def test_streamed_levels_equal_offline_and_memory_is_bounded(tone_chain, kept_s):
    rec, freq = tone_chain
    audio, _ = tone_speech(freq, [("mute", 0.7), ("call home", 6.3), ("mute", 10.2)], 12.0)
    stream = PosteriorStream(rec, levels_kept_s=kept_s)
    for i in range(0, len(audio), 4000):
        stream.push(audio[i : i + 4000])
    stream.flush()
    offline, tonal = rec.speech_tracks(rec.features(audio, 16000))
    kept = len(offline) if kept_s is not None else int(LEVELS_KEPT_S * 16000 / 128)
    assert len(stream.levels) == len(stream.tonal) == kept and stream.levels_start == len(offline) - kept
    np.testing.assert_allclose(stream.levels, offline[-kept:], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stream.tonal, tonal[-kept:])
