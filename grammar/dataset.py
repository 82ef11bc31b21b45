"""Command-recognition data sets: the CSV manifest (DESIGN.md "Dataset manifest") and a
synthetic generator of command, random and near-miss utterances in babble at several SNRs.

Manifest: a CSV with a header holding at least ``path`` and ``label``; ``path`` is relative to
the manifest's folder; ``label`` is the command text, empty for a non-command utterance; any
other column is kept in :attr:`ManifestRow.extra` and otherwise ignored.

:func:`make_dataset` writes ``manifest.csv`` (columns ``path,label,kind,voice,snr,text``) and
WAVs under ``audio/``. ``kind`` is ``command``, ``random`` or ``near_miss``; ``snr`` is
``clean`` or the SNR in dB. The SNR is measured over the synthesized utterance itself (not
the silence padding around it), so padding does not inflate it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from grammar.alphabet import normalize_text
from grammar.errors import GrammarError, read_text
from rced.audio import DEFAULT_SR, atomic_write_text, load_audio, write_audio
from rced.corpus import Utterance, load_utterances, make_babble, rms, synthesize_all, train_utterances
from rced.text import common_words, random_sentence
from rced.tts import Prosody, Voice

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "label", "kind", "voice", "snr", "text")
DEFAULT_SNRS: tuple[float | None, ...] = (None, 20, 10, 5)
KINDS = ("command", "random", "near_miss")

_BABBLE_SEED_OFFSET = 700_001  # babble talkers: train_utterances(60, seed + offset)
_NEAR_MISS_VOCAB = 2000
_PAD_S = (0.3, 0.6)
_LEVEL_DBFS = (-28.0, -18.0)


# --------------------------------------------------------------------------- manifest


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One manifest row: absolute audio path, normalised label (None = non-command), other columns."""

    path: Path
    label: str | None
    extra: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)


def n_independent(rows: Iterable[ManifestRow]) -> int:
    """How many of these rows can false-alarm independently: the renditions of one text by one
    voice (clean and in each babble level) accept or reject together, so they count once; rows
    without ``voice``/``text`` columns count one each. The sample size of a FAR confidence bound."""
    return len({(r.extra.get("voice", ""), r.extra.get("text") or str(r.path)) for r in rows})


def load_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read a manifest CSV; labels are normalised with :func:`normalize_text`, empty -> None.

    Raises :class:`GrammarError` (one line naming the manifest and, where relevant, the row)
    when the file is missing or unreadable, has no header or no rows, lacks the ``path`` or
    ``label`` column, has a malformed row, or references an audio file that does not exist.
    """
    path = Path(path)
    text = read_text(path, "manifest")

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)  # leading blank lines
        if header is None:
            raise GrammarError(f"{path}: empty manifest (no header, no rows)")
        header = [h.strip() for h in header]
        missing = [c for c in ("path", "label") if c not in header]
        if missing:
            raise GrammarError(
                f"{path}: missing column(s) {', '.join(missing)} (header has: {', '.join(header) or 'nothing'})"
            )
        i_path, i_label = header.index("path"), header.index("label")
        base = path.resolve().parent
        rows: list[ManifestRow] = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            where = f"{path}: row {len(rows) + 1} (line {reader.line_num})"
            if len(fields) != len(header):
                raise GrammarError(f"{where}: has {len(fields)} fields, the header has {len(header)}")
            rel = fields[i_path].strip()
            if not rel:
                raise GrammarError(f"{where}: empty path")
            audio = (base / rel).resolve()
            if not audio.is_file():
                raise GrammarError(f"{where}: audio file {rel!r} not found ({audio})")
            raw_label = fields[i_label].strip()
            try:
                label = normalize_text(raw_label) if raw_label else None
            except GrammarError:
                raise GrammarError(f"{where}: label {raw_label!r} has no letters left after normalisation") from None
            extra = {h: f for j, (h, f) in enumerate(zip(header, fields)) if j not in (i_path, i_label)}
            rows.append(ManifestRow(audio, label, extra))
    except csv.Error as exc:
        raise GrammarError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    if not rows:
        raise GrammarError(f"{path}: empty manifest (a header but no rows)")
    return rows


def check_labels(rows: Iterable[ManifestRow], commands: Iterable[str], source: str | os.PathLike | None = None) -> None:
    """Raise :class:`GrammarError` naming the first label that is not one of ``commands``."""
    known = set(commands)
    for i, row in enumerate(rows, start=1):
        if row.label is not None and row.label not in known:
            prefix = f"{source}: row {i}" if source is not None else f"row {i}"
            raise GrammarError(f"{prefix}: label {row.label!r} ({row.path.name}) is not among the commands")


def write_manifest(path: str | os.PathLike, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    """Write ``rows`` (dicts keyed by ``columns``) as a manifest CSV, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- text


def make_near_miss(command: str, commands: Iterable[str], rng: np.random.Generator,
                   vocab: Sequence[str] | None = None) -> str:  # fmt: skip
    """A phrase sharing words with ``command`` that is not a command after normalisation.

    One edit, chosen at random: replace one word with a common word, drop one word (commands
    of two or more words), or append / prepend a common word.
    """
    known = set(commands)
    vocab = vocab if vocab is not None else common_words(_NEAR_MISS_VOCAB)
    words = command.split()
    ops = ("append", "prepend") + (("replace", "drop") if len(words) > 1 else ())
    for _ in range(200):
        op = ops[int(rng.integers(len(ops)))]
        w = vocab[int(rng.integers(len(vocab)))]
        if op == "replace":
            i = int(rng.integers(len(words)))
            if w == words[i]:
                continue
            new = [*words[:i], w, *words[i + 1 :]]
        elif op == "drop":
            i = int(rng.integers(len(words)))
            new = words[:i] + words[i + 1 :]
        elif op == "append":
            new = [*words, w]
        else:
            new = [w, *words]
        try:
            text = normalize_text(" ".join(new))
        except GrammarError:
            continue
        if text not in known:
            return text
    raise GrammarError(f"{command!r}: could not make a near miss that is not a command")


def with_command_texts(utts: Sequence[Utterance], commands: Sequence[str], share: float,
                       seed: int) -> list[Utterance]:  # fmt: skip
    """``utts`` with a ``share`` of their texts replaced by a command: half of them alone, half
    with one to three common words before, after or around it. Voices and prosody are kept.

    Acoustic-model training data for a product's commands: TRAIN voices saying the command words,
    which the Zipf-drawn sentences seldom hold ("volume" a few times in thousands, "mute" never).
    Deterministic in ``seed``; the other utterances are unchanged.
    """
    if not 0.0 <= share <= 1.0:
        raise GrammarError(f"command share {share}: expected a number in [0, 1]")
    if share and not commands:
        raise GrammarError("command share > 0 but no commands given")
    rng = np.random.default_rng([seed, 3])
    out = []
    for u in utts:
        if rng.random() >= share:
            out.append(u)
            continue
        text = commands[int(rng.integers(len(commands)))]
        if rng.random() < 0.5:
            where = int(rng.integers(3))  # 0: before, 1: after, 2: both
            if where in (0, 2):
                text = f"{random_sentence(rng, 1, 3)} {text}"
            if where in (1, 2):
                text = f"{text} {random_sentence(rng, 1, 3)}"
        out.append(dataclasses.replace(u, text=text))
    return out


def _random_noncommand(rng: np.random.Generator, known: set[str]) -> str:
    for _ in range(200):
        text = normalize_text(random_sentence(rng, 2, 5))
        if text not in known:
            return text
    raise GrammarError("could not draw a random word sequence that is not a command")


# --------------------------------------------------------------------------- mixing


def pad_and_mix(speech: np.ndarray, lead: int, trail: int, noise: np.ndarray | None,
                snr_db: float | None) -> np.ndarray:  # fmt: skip
    """Pad ``speech`` with ``lead``/``trail`` zero samples and add ``noise`` (covering the
    padding too) so that speech power over noise power *within the speech span* is ``snr_db``.
    ``snr_db`` None: the padded clean speech."""
    speech = np.asarray(speech, np.float32)
    padded = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)])
    if snr_db is None:
        return padded
    if noise is None or len(noise) < len(padded):
        raise GrammarError(f"mixing: need {len(padded)} noise samples, got {0 if noise is None else len(noise)}")
    noise = np.asarray(noise[: len(padded)], np.float64)
    gain = rms(speech) / (rms(noise[lead : lead + len(speech)]) * 10 ** (float(snr_db) / 20))
    return (padded + gain * noise).astype(np.float32)


def _snr_tag(snr: float | None) -> str:
    if snr is None:
        return "clean"
    return "snr" + f"{float(snr):g}".replace("-", "m").replace(".", "p")


def _snr_text(snr: float | None) -> str:
    return "clean" if snr is None else f"{float(snr):g}"


# --------------------------------------------------------------------------- generator


@dataclasses.dataclass(frozen=True)
class _Planned:
    utt: Utterance
    kind: str
    label: str | None


def _plan(commands: list[str], voices: list[Voice], n_command_reps: int, n_random: int, n_near_miss: int,
          seed: int) -> list[_Planned]:  # fmt: skip
    rng = np.random.default_rng([seed, 0])
    known = set(commands)
    vocab = common_words(_NEAR_MISS_VOCAB) if n_near_miss else ()
    out: list[_Planned] = []

    def add(text: str, voice: Voice, kind: str, label: str | None) -> None:
        prosody = Prosody(stretch=round(float(rng.uniform(0.85, 1.2)), 3), pitch=round(float(rng.uniform(-3, 3)), 2))
        out.append(_Planned(Utterance(text, voice, prosody, int(rng.integers(2**31))), kind, label))

    for voice in voices:
        for command in commands:
            for _ in range(n_command_reps):
                add(command, voice, "command", command)
        for _ in range(n_random):
            add(_random_noncommand(rng, known), voice, "random", None)
        for _ in range(n_near_miss):
            command = commands[int(rng.integers(len(commands)))]
            add(make_near_miss(command, known, rng, vocab), voice, "near_miss", None)
    return out


def make_dataset(out_dir: str | os.PathLike, commands: Sequence[str], voices: Sequence[Voice], *,
                 n_command_reps: int, n_random: int, n_near_miss: int,
                 snrs: Sequence[float | None] = DEFAULT_SNRS, seed: int,
                 babble_utts: list[Utterance] | None = None, workers: int | None = None) -> Path:  # fmt: skip
    """Synthesize a command-recognition data set; returns the path of ``out_dir/manifest.csv``.

    Per voice: every command ``n_command_reps`` times, ``n_random`` random 2-5-word sequences
    and ``n_near_miss`` near misses (:func:`make_near_miss`), each with random prosody
    (stretch 0.85-1.2, pitch +-3 semitones). Every utterance is levelled to -28..-18 dBFS,
    padded with 0.3-0.6 s of silence at each end, and written once per SNR in ``snrs``
    (None = clean) mixed with fresh babble of TRAIN-voice talkers that covers the padding.
    ``babble_utts`` overrides the babble talkers' utterances (default
    ``train_utterances(60, seed + 700001)``). Deterministic in ``seed``. Every file is written
    atomically and the manifest last, so an interrupted run leaves no manifest.
    """
    from tqdm import tqdm

    commands = [normalize_text(c) for c in commands]
    voices = list(voices)
    snrs = list(snrs)
    if not commands:
        raise GrammarError("make_dataset: no commands")
    if len(set(commands)) != len(commands):
        raise GrammarError("make_dataset: a command is listed twice")
    if not voices:
        raise GrammarError("make_dataset: no voices")
    if not snrs:
        raise GrammarError("make_dataset: no SNR conditions")
    if min(n_command_reps, n_random, n_near_miss) < 0:
        raise GrammarError("make_dataset: utterance counts must be >= 0")
    if len({_snr_tag(s) for s in snrs}) != len(snrs):
        raise GrammarError(f"make_dataset: an SNR condition is listed twice ({snrs})")

    plan = _plan(commands, voices, n_command_reps, n_random, n_near_miss, seed)
    if not plan:
        raise GrammarError("make_dataset: nothing to make (all utterance counts are 0)")
    out_dir = Path(out_dir)
    speech_paths = synthesize_all([p.utt for p in plan], workers=workers, desc="dataset speech")
    pool: list[np.ndarray] = []
    if any(s is not None for s in snrs):
        if babble_utts is None:
            babble_utts = train_utterances(60, seed + _BABBLE_SEED_OFFSET)
        pool = load_utterances(babble_utts, workers=workers, desc="dataset babble")

    rows: list[dict[str, object]] = []
    for idx, (item, speech_path) in enumerate(tqdm(list(zip(plan, speech_paths)), desc="mixing dataset", unit="utt")):
        rng = np.random.default_rng([seed, 1, idx])
        speech = load_audio(speech_path)
        level = 10 ** (float(rng.uniform(*_LEVEL_DBFS)) / 20)
        speech = (speech / rms(speech) * level).astype(np.float32)
        lead, trail = (int(round(float(rng.uniform(*_PAD_S)) * DEFAULT_SR)) for _ in range(2))
        n = lead + len(speech) + trail
        for k, snr in enumerate(snrs):
            noise = None if snr is None else make_babble(n, pool, np.random.default_rng([seed, 2, idx, k]))
            audio = pad_and_mix(speech, lead, trail, noise, snr)
            peak = float(np.max(np.abs(audio)))
            if peak > 0.99:
                audio = audio * np.float32(0.99 / peak)  # scales speech and noise alike: SNR kept
            rel = f"audio/{idx:05d}_{item.kind}_{_snr_tag(snr)}.wav"
            write_audio(out_dir / rel, audio)
            rows.append({"path": rel, "label": item.label, "kind": item.kind, "voice": item.utt.voice.id,
                         "snr": _snr_text(snr), "text": item.utt.text})  # fmt: skip
    manifest = out_dir / MANIFEST_NAME
    write_manifest(manifest, rows, MANIFEST_COLUMNS)
    return manifest
