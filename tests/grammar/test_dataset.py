import csv

import numpy as np
import pytest
import soundfile as sf

import grammar.dataset as dataset
from grammar.commands import default_commands_path, load_commands
from grammar.dataset import (
    ManifestRow,
    check_labels,
    load_manifest,
    make_dataset,
    make_near_miss,
    n_independent,
    pad_and_mix,
)
from grammar.errors import GrammarError
from rced.corpus import plan_utterances, rms
from rced.tts import Voice

COMMANDS = ["volume up", "mute"]
VOICE = Voice("espeak", "en-us")
SNRS = (None, 20, 10, 5)


def _babble():
    return plan_utterances([Voice("espeak", "en-us"), Voice("espeak", "en-gb-x-rp")], 4, seed=5, n_words=(3, 5))


def _make(out_dir, seed=3, **kw):
    args = dict(n_command_reps=1, n_random=1, n_near_miss=2, snrs=SNRS, seed=seed, babble_utts=_babble(), workers=2)
    args.update(kw)
    return make_dataset(out_dir, COMMANDS, [VOICE], **args)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One tiny data set (5 utterances x 4 SNR conditions), with its own cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAPES_CACHE", str(tmp_path_factory.mktemp("cache")))
        out = tmp_path_factory.mktemp("ds")
        manifest = _make(out)
    return manifest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STAPES_CACHE", str(tmp_path / "cache"))


def _read(manifest):
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh))


def test_manifest_layout(built):
    rows = _read(built)
    assert built.name == "manifest.csv"
    assert list(rows[0]) == ["path", "label", "kind", "voice", "snr", "text"]
    assert len(rows) == 5 * len(SNRS)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("command") == 2 * 4 and kinds.count("random") == 4 and kinds.count("near_miss") == 2 * 4
    for r in rows:
        assert r["path"].startswith("audio/") and (built.parent / r["path"]).is_file()
        assert r["voice"] == "espeak:en-us"
        assert (r["label"] == r["text"]) if r["kind"] == "command" else (r["label"] == "")
    assert not list(built.parent.rglob("*.part"))


def test_every_command_in_every_snr(built):
    rows = _read(built)
    seen = {(r["label"], r["snr"]) for r in rows if r["kind"] == "command"}
    assert seen == {(c, s) for c in COMMANDS for s in ("clean", "20", "10", "5")}
    # every utterance (not just commands) appears once per condition
    by_utt = {}
    for r in rows:
        by_utt.setdefault(r["path"].split("_")[0], []).append(r["snr"])
    assert all(sorted(v) == sorted(["clean", "20", "10", "5"]) for v in by_utt.values())


def test_non_commands_are_not_commands(built):
    for r in _read(built):
        if r["kind"] != "command":
            assert r["text"] not in COMMANDS
        if r["kind"] == "random":
            assert 2 <= len(r["text"].split()) <= 5
        if r["kind"] == "near_miss":
            assert set(r["text"].split()) & {w for c in COMMANDS for w in c.split()}


def test_round_trip(built):
    rows = load_manifest(built)
    raw = _read(built)
    assert len(rows) == len(raw)
    for row, r in zip(rows, raw):
        assert isinstance(row, ManifestRow)
        assert row.path.is_absolute() and row.path == (built.parent / r["path"]).resolve()
        assert row.label == (r["label"] or None)
        assert row.extra == {"kind": r["kind"], "voice": r["voice"], "snr": r["snr"], "text": r["text"]}
    check_labels(rows, COMMANDS, source=built)


def test_audio_padding_and_snr_ordering(built):
    rows = _read(built)
    groups = {}
    for r in rows:
        audio, sr = sf.read(built.parent / r["path"], dtype="float32")
        assert sr == 16000 and audio.ndim == 1
        groups.setdefault(r["path"].split("_")[0], {})[r["snr"]] = audio
    for conds in groups.values():
        clean = conds["clean"]
        assert len({len(a) for a in conds.values()}) == 1  # same padding in every condition
        assert np.max(np.abs(clean[: int(0.3 * sr)])) < 1e-3  # leading silence padding
        assert np.max(np.abs(clean[-int(0.3 * sr) :])) < 1e-3  # trailing silence padding
        assert np.max(np.abs(conds["5"][: int(0.3 * sr)])) > 1e-3  # babble covers the padding
        d20, d10, d5 = (rms(conds[s] - clean) for s in ("20", "10", "5"))
        assert d20 < d10 < d5
        assert 20 * np.log10(d5 / d20) == pytest.approx(15, abs=1.5)  # 15 dB more noise, give or take clipping guard


def test_deterministic_by_seed(built, tmp_path, monkeypatch):
    # a fresh cache too: synthesis itself must be deterministic, not just the cache
    monkeypatch.setenv("STAPES_CACHE", str(tmp_path / "other_cache"))
    again = _make(tmp_path / "again")
    assert again.read_bytes() == built.read_bytes()
    for r in _read(built):
        assert (again.parent / r["path"]).read_bytes() == (built.parent / r["path"]).read_bytes()
    other = _make(tmp_path / "other", seed=4)
    a, b = _read(built), _read(other)
    differs = [r["text"] for r in a] != [r["text"] for r in b] or any(
        (built.parent / x["path"]).read_bytes() != (other.parent / y["path"]).read_bytes() for x, y in zip(a, b)
    )
    assert differs


def test_interrupted_run_leaves_no_manifest(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = dataset.write_audio

    def flaky(path, audio, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(path, audio, *a, **kw)

    monkeypatch.setattr(dataset, "write_audio", flaky)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        _make(out, n_near_miss=0, n_random=0, snrs=(None, 10))
    assert not (out / "manifest.csv").exists()
    assert not list(out.rglob("*.part"))
    assert len(list(out.rglob("*.wav"))) == 2


def test_clean_only_needs_no_babble(tmp_path):
    manifest = make_dataset(tmp_path / "ds", ["mute"], [VOICE], n_command_reps=1, n_random=0, n_near_miss=0,
                            snrs=(None,), seed=0, babble_utts=[], workers=1)  # fmt: skip
    rows = load_manifest(manifest)
    assert len(rows) == 1 and rows[0].label == "mute" and rows[0].extra["snr"] == "clean"


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(n_command_reps=0, n_random=0, n_near_miss=0), "nothing to make"),
        (dict(n_random=-1), ">= 0"),
        (dict(snrs=()), "no SNR"),
        (dict(snrs=(5, 5.0)), "twice"),
    ],
)
def test_make_dataset_bad_arguments(tmp_path, kw, match):
    args = dict(n_command_reps=1, n_random=0, n_near_miss=0, seed=0)
    args.update(kw)
    with pytest.raises(GrammarError, match=match):
        make_dataset(tmp_path / "ds", ["mute"], [VOICE], **args)
    with pytest.raises(GrammarError, match="no voices"):
        make_dataset(tmp_path / "ds", ["mute"], [], n_command_reps=1, n_random=0, n_near_miss=0, seed=0)


def test_near_misses_never_commands():
    commands = load_commands(default_commands_path())
    rng = np.random.default_rng(0)
    for _ in range(20):
        for c in commands:
            nm = make_near_miss(c, commands, rng)
            assert nm not in commands
            assert set(nm.split()) & set(c.split())  # shares words with its command
    # a near miss that would be another command is redrawn
    for seed in range(30):
        assert make_near_miss("next song", ["next song", "next"], np.random.default_rng(seed), vocab=["x"]) != "next"


@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0, 0.0, -5.0])
def test_pad_and_mix_snr(snr):
    rng = np.random.default_rng(1)
    speech = (0.05 * rng.standard_normal(8000)).astype(np.float32)
    lead, trail = 4800, 9600
    noise = rng.standard_normal(lead + 8000 + trail + 100).astype(np.float32)
    mixed = pad_and_mix(speech, lead, trail, noise, snr)
    assert len(mixed) == lead + 8000 + trail
    added = mixed.astype(np.float64)
    added[lead : lead + 8000] -= speech
    achieved = 20 * np.log10(rms(speech) / rms(added[lead : lead + 8000]))
    assert achieved == pytest.approx(snr, abs=0.5)
    assert achieved == pytest.approx(snr, abs=0.01)
    assert rms(added[:lead]) > 0  # noise covers the padding
    clean = pad_and_mix(speech, lead, trail, None, None)
    assert np.all(clean[:lead] == 0) and np.all(clean[-trail:] == 0)
    with pytest.raises(GrammarError, match="noise samples"):
        pad_and_mix(speech, lead, trail, noise[:100], snr)


# --------------------------------------------------------------------------- manifest errors


@pytest.fixture
def wav(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(1600, np.float32), 16000)
    return p


def _manifest(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_manifest_minimal(tmp_path, wav):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.wav").write_bytes(wav.read_bytes())
    p = _manifest(tmp_path, "\ufefflabel,path,speaker\nVolume-Up!,a.wav,x\n,sub/b.wav,y\n\n")
    rows = load_manifest(str(p))
    assert rows == [ManifestRow(wav.resolve(), "volume up", {"speaker": "x"}),
                    ManifestRow((sub / "b.wav").resolve(), None, {"speaker": "y"})]  # fmt: skip
    with pytest.raises(GrammarError, match=r"m\.csv: row 1: label 'volume up' \(a\.wav\) is not among"):
        check_labels(rows, ["mute"], source=p)
    check_labels(rows, ["volume up"])


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty manifest"),
        ("\n\n", "empty manifest"),
        ("path,label\n", "empty manifest"),
        ("path,text\na.wav,mute\n", "missing column.*label"),
        ("file,label\na.wav,mute\n", "missing column.*path"),
        ("path,label\na.wav,mute\nmissing.wav,mute\n", r"row 2 \(line 3\).*'missing\.wav' not found"),
        ("path,label\na.wav,mute,extra\n", "row 1.*3 fields, the header has 2"),
        ("path,label\n,mute\n", "row 1.*empty path"),
        ("path,label\na.wav,???\n", "row 1.*no letters"),
        ('path,label\n"a.wav,mute\n', "malformed|fields|not found"),
    ],
)
def test_load_manifest_errors(tmp_path, wav, text, match):
    p = _manifest(tmp_path, text, name="bad_manifest.csv")
    with pytest.raises(GrammarError, match=match) as exc:
        load_manifest(p)
    msg = str(exc.value)
    assert "bad_manifest.csv" in msg and "\n" not in msg


def test_load_manifest_missing_and_folder(tmp_path):
    with pytest.raises(GrammarError, match=r"nope\.csv: manifest not found"):
        load_manifest(tmp_path / "nope.csv")
    with pytest.raises(GrammarError, match="is a folder"):
        load_manifest(tmp_path)
    p = tmp_path / "latin1.csv"
    p.write_bytes("path,label\na.wav,caf\xe9\n".encode("latin-1"))
    with pytest.raises(GrammarError, match=r"latin1\.csv: not UTF-8"):
        load_manifest(p)


def test_n_independent_counts_each_voice_and_text_once(tmp_path):
    # one text in four noise conditions fails together: one sample of a FAR bound
    rows = [ManifestRow(tmp_path / f"{v}_{t}_{c}.wav", None, {"voice": v, "text": t, "snr": c})
            for v in ("a", "b") for t in ("x y", "z") for c in ("clean", "20", "10", "5")]  # fmt: skip
    assert n_independent(rows) == 4
    # without voice and text columns every file counts
    assert n_independent([ManifestRow(tmp_path / f"{i}.wav", None) for i in range(5)]) == 5
    assert n_independent([]) == 0


# --------------------------------------------------------------------------- AM training texts


def test_with_command_texts_replaces_a_share_of_the_texts_with_commands():
    from rced.corpus import train_utterances

    utts = train_utterances(400, 3)
    cmds = load_commands(default_commands_path())
    out = dataset.with_command_texts(utts, cmds, 0.5, seed=3)
    assert out == dataset.with_command_texts(utts, cmds, 0.5, seed=3)  # deterministic
    changed = [(u, v) for u, v in zip(utts, out, strict=True) if u.text != v.text]
    assert 0.4 < len(changed) / len(utts) < 0.6
    for u, v in changed:
        assert (v.voice, v.prosody, v.seed) == (u.voice, u.prosody, u.seed)
        assert any(c == v.text or f" {c} " in f" {v.text} " for c in cmds)  # the command, whole
    alone = sum(v.text in cmds for _, v in changed)
    assert 0.3 < alone / len(changed) < 0.7  # about half alone, half among common words
    assert {c for _, v in changed for c in cmds if c in v.text} >= set(cmds[:5])
    assert dataset.with_command_texts(utts, cmds, 0.0, seed=3) == list(utts)


@pytest.mark.parametrize("share,cmds,match", [(1.5, ["mute"], "expected a number in"), (-0.1, ["mute"], "expected"),
                                               (0.3, [], "no commands")])  # fmt: skip
def test_with_command_texts_refuses_a_bad_share(share, cmds, match):
    with pytest.raises(GrammarError, match=match):
        dataset.with_command_texts([], cmds, share, seed=0)
