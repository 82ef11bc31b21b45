"""The main demo: voice commands in a babble-filled room, spotted by the streaming chain.

A scene is synthesized: a few commands of the grammar spoken by a TEST-ONLY voice (never
trained on), with non-command speech of the same voice between them, inside continuous babble
of TRAIN-voice talkers at a given SNR (measured over the active speech). The noisy scene is
streamed block by block through the chain (:func:`grammar.decoding.listen.spot`: causal STFT, denoiser,
AM, sliding-window grammar decoding), and the detections are compared with the truth. Written
into the output folder (every file atomically): ``noisy.wav``, ``enhanced.wav`` (the denoiser's
listening path, from the same STFT the AM reads), ``clean.wav``, ``spectrogram.png`` (noisy vs
enhanced, detections shaded, truth as lines), ``result.json`` and ``index.html``; the page and
picture builders are :mod:`rced.demo`'s, shared with the denoise demo.
"""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from grammar.decoding.listen import LISTEN_HOP_S, LISTEN_WINDOW_S, Detection, PosteriorStream, spot
from grammar.errors import GrammarError
from rced.demo import BABBLE_SEED, page_html, players_html, relative_to_page, write_demo_folder
from rced.demo import spectrogram_png as _spectrogram_png

LEAD_S = 1.0  # babble before the first utterance and after the last
GAP_S = (1.0, 2.0)  # babble-only gap between utterances
SPEECH_RMS = 0.05  # level of every utterance over its active part
MATCH_TOLERANCE_S = 0.3  # a detection matches a truth segment it overlaps, widened by this much


@dataclasses.dataclass(frozen=True)
class Segment:
    """One utterance of the scene: ``command`` is None for non-command speech; times in seconds."""

    text: str
    command: str | None
    start: float
    end: float
    voice: str = ""


@dataclasses.dataclass
class Scene:
    clean: np.ndarray
    noisy: np.ndarray
    segments: list[Segment]
    sr: int
    voice: str
    snr: float
    seed: int

    @property
    def commands(self) -> list[Segment]:
        return [s for s in self.segments if s.command is not None]


def _active(x: np.ndarray, sr: int, floor_db: float = -35.0) -> tuple[int, int]:
    """First and last sample of the 10-ms frames within ``floor_db`` of the loudest one."""
    hop = sr // 100
    n = max(1, len(x) // hop)
    e = np.array([np.mean(np.square(x[i * hop : (i + 1) * hop], dtype=np.float64)) for i in range(n)]) + 1e-20
    on = np.nonzero(10 * np.log10(e / e.max()) > floor_db)[0]
    return int(on[0]) * hop, min(len(x), (int(on[-1]) + 1) * hop)


def make_scene(commands: Sequence[str], snr: float = 5.0, seed: int = 7, n_commands: int = 4,
               babble_utterances: int = 24, workers: int | None = None, voice: int = 0, split: str = "test") -> Scene:  # fmt: skip
    """``n_commands`` of ``commands`` (drawn by ``seed``) and non-command sentences between them,
    spoken by TEST-ONLY voice number ``voice`` (the demo: the first), in babble of
    ``babble_utterances`` TRAIN-voice utterances. ``split="dev"``: by the Kokoro dev speakers
    instead (:func:`rced.tts.kokoro_dev_voices`), for choosing listener settings."""
    from rced.corpus import Utterance, load_utterances, train_utterances
    from rced.text import random_sentence
    from rced.tts import Prosody, kokoro_dev_voices, test_voices

    if not commands:
        raise GrammarError("demo: the grammar has no commands")
    rng = np.random.default_rng(seed)
    picked = [commands[i] for i in rng.choice(len(commands), size=min(n_commands, len(commands)), replace=False)]
    texts: list[tuple[str, str | None]] = []
    for i, c in enumerate(picked):
        texts.append((c, c))
        if i < len(picked) - 1:
            texts.append((random_sentence(rng, 3, 6), None))
    if split not in ("test", "dev"):
        raise GrammarError(f"demo: split {split!r}: expected 'test' or 'dev'")
    voices = test_voices() if split == "test" else kokoro_dev_voices()
    if not 0 <= voice < len(voices):
        raise GrammarError(f"demo: voice {voice}: there are {len(voices)} {split} voices (0..{len(voices) - 1})")
    voice = voices[voice]
    utts = [Utterance(t, voice, Prosody(), seed * 1000 + i) for i, (t, _) in enumerate(texts)]
    speech = load_utterances(utts, workers=workers, desc="demo speech")
    pool = load_utterances(train_utterances(babble_utterances, BABBLE_SEED), workers=workers, desc="demo babble")
    gaps = [float(rng.uniform(*GAP_S)) for _ in texts]
    items = [(text, cmd, voice.id, x, gap) for (text, cmd), x, gap in zip(texts, speech, gaps)]
    clean, noisy, segments = assemble(items, pool, snr, rng)
    return Scene(clean, noisy, segments, 16000, voice.id, snr, seed)


def assemble(items: Sequence[tuple[str, str | None, str, np.ndarray, float]], pool: list[np.ndarray], snr: float,
             rng: np.random.Generator, sr: int = 16000) -> tuple[np.ndarray, np.ndarray, list[Segment]]:  # fmt: skip
    """Utterances one after the other in continuous babble: (clean, noisy, segments).

    ``items``: (text, command or None, voice id, audio at ``sr``, seconds of babble after it).
    Each utterance is trimmed to its active part and brought to the same level; the babble (of
    ``pool``) is scaled to ``snr`` dB below the active speech and runs from ``LEAD_S`` before the
    first to ``LEAD_S`` after the last; both signals are scaled down together if the mix would clip.
    """
    from rced.corpus import make_babble, rms

    pieces, segments = [], []
    t = int(LEAD_S * sr)
    for text, cmd, voice_id, x, gap in items:
        a, b = _active(x, sr)
        x = x[a:b] / rms(x[a:b]) * SPEECH_RMS
        pieces.append((t, x))
        segments.append(Segment(text, cmd, round(t / sr, 3), round((t + len(x)) / sr, 3), voice_id))
        t += len(x) + int(gap * sr)
    n = pieces[-1][0] + len(pieces[-1][1]) + int(LEAD_S * sr)
    clean = np.zeros(n, np.float32)
    for start, x in pieces:
        clean[start : start + len(x)] += x
    noise = make_babble(n, pool, rng)
    active = np.concatenate([x for _, x in pieces])
    noisy = clean + noise * (rms(active) / (rms(noise) * 10 ** (snr / 20)))
    peak = float(np.max(np.abs(noisy)))
    if peak > 0.99:
        clean, noisy = clean * (0.99 / peak), noisy * (0.99 / peak)
    return clean.astype(np.float32), noisy.astype(np.float32), segments


# --------------------------------------------------------------------------- truth vs detections


def near(seg: Segment, start: float, end: float, tolerance: float = MATCH_TOLERANCE_S) -> bool:
    """Whether the span ``start``..``end`` (seconds) overlaps ``seg`` widened by ``tolerance`` on each side."""
    return start <= seg.end + tolerance and end >= seg.start - tolerance


def match(scene_segments: Sequence[Segment], detections: Sequence[Detection],
          tolerance: float = MATCH_TOLERANCE_S) -> list[dict]:  # fmt: skip
    """Rows of truth vs detection. Each command segment takes the detection overlapping it
    (widened by ``tolerance``), one of its own command first: ``hit``, ``wrong command`` or
    ``missed``; every detection left over is a ``false alarm``."""
    used: set[int] = set()
    rows = []
    for seg in scene_segments:
        if seg.command is None:
            continue
        close = [i for i, d in enumerate(detections) if i not in used and near(seg, d.start, d.end, tolerance)]
        same = [i for i in close if detections[i].command == seg.command]
        pick = (same or close or [None])[0]
        row = {"truth": dataclasses.asdict(seg), "detection": None, "status": "missed"}
        if pick is not None:
            used.add(pick)
            row["detection"] = detections[pick].to_json()
            row["status"] = "hit" if detections[pick].command == seg.command else "wrong command"
        rows.append(row)
    for i, d in enumerate(detections):
        if i not in used:
            rows.append({"truth": None, "detection": d.to_json(), "status": "false alarm"})
    rows.sort(key=lambda r: r["truth"]["start"] if r["truth"] else r["detection"]["start"])
    return rows


def summary(rows: list[dict]) -> dict:
    count = {s: sum(r["status"] == s for r in rows) for s in ("hit", "wrong command", "missed", "false alarm")}
    return {"hits": count["hit"], "n_commands": count["hit"] + count["wrong command"] + count["missed"],
            "wrong": count["wrong command"], "missed": count["missed"], "false_alarms": count["false alarm"]}  # fmt: skip


def table(rows: list[dict]) -> str:
    """Plain-text table: truth command/start/end | detected command/start/end/score | status."""
    head = f"{'truth':<22} {'start':>6} {'end':>6} | {'detected':<22} {'start':>6} {'end':>6} {'score':>8}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        t, d = r["truth"], r["detection"]
        left = f"{t['text']:<22.22} {t['start']:6.2f} {t['end']:6.2f}" if t else f"{'':<22} {'':>6} {'':>6}"
        right = (f"{d['command']:<22.22} {d['start']:6.2f} {d['end']:6.2f} {d['score']:8.3f}" if d
                 else f"{'-':<22} {'':>6} {'':>6} {'':>8}")  # fmt: skip
        lines.append(f"{left} | {right}  {r['status']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- pictures and page


OK_COLOR, BAD_COLOR = "#5cff5c", "#ff6b6b"  # detections: right command / wrong or false alarm


def spectrogram_png(noisy_spec: np.ndarray, enhanced_spec: np.ndarray, sr: int, hop: int,
                    segments: Sequence[Segment], detections: Sequence[Detection], rows: list[dict],
                    title: str = "") -> bytes:  # fmt: skip
    """Two panels (noisy, enhanced; :func:`rced.demo.spectrogram_png`): truth as lines on both, named
    on the noisy one; detections shaded on both, named with their scores on the enhanced one."""
    from rced.demo import boxed_text

    hit_starts = {r["detection"]["start"] for r in rows if r["status"] == "hit"}
    top = sr / 2000

    def overlay(ax, name: str) -> None:
        for seg in segments:
            color, ls = ("white", "--") if seg.command else ("0.75", ":")
            for t in (seg.start, seg.end):
                ax.axvline(t, color=color, ls=ls, lw=1.2)
            if name == "noisy":
                y = top * (0.96 if seg.command else 0.80)
                boxed_text(ax, (seg.start + seg.end) / 2, y, seg.command or "(other speech)", color, ha="center", va="top")
        for d in detections:
            color = OK_COLOR if round(d.start, 3) in hit_starts else BAD_COLOR
            ax.axvspan(d.start, d.end, color=color, alpha=0.15, lw=0)
            ax.axvspan(d.start, d.end, ymax=0.03, color=color, lw=0)
            if name == "enhanced":
                boxed_text(ax, (d.start + d.end) / 2, top * 0.06, f"{d.command}  {d.score:.2f}", color, ha="center",
                           va="bottom", fontweight="bold")  # fmt: skip

    return _spectrogram_png([("noisy", noisy_spec), ("enhanced", enhanced_spec)], sr, hop, title=title,
                            overlay=overlay)  # fmt: skip


CSS = """
td:nth-child(4) { text-align: left; }
tr.hit { background: #e6f6e6; } tr.missed, tr.wrong-command { background: #fdecea; }
tr.false-alarm { background: #fff4dd; }
"""


def index_html(result: dict) -> str:
    """The page: audio players, the truth/detection table, the spectrograms (links relative to the page)."""
    e, s, files = html.escape, result["summary"], result["files"]
    rows = []
    for r in result["rows"]:
        t, d = r["truth"], r["detection"]
        tc = [e(t["text"]), f"{t['start']:.2f}", f"{t['end']:.2f}"] if t else ["", "", ""]
        dc = [e(d["command"]), f"{d['start']:.2f}", f"{d['end']:.2f}", f"{d['score']:.3f}"] if d else ["&ndash;", "", "", ""]
        cls = r["status"].replace(" ", "-")
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in tc + dc)
                    + f"<td>{e(r['status'])}</td></tr>")  # fmt: skip
    players = players_html(files, (("noisy", "noisy (what the microphone hears)"),
                                   ("enhanced", "enhanced (denoiser output)"), ("clean", "clean speech (truth)")))  # fmt: skip
    body = f"""<h1>stapes: voice commands in babble</h1>
<p>{s['n_commands']} commands spoken by the TEST-ONLY voice <code>{e(result['voice'])}</code>, with other speech
between them, in babble of TRAIN-voice talkers at {result['snr']:g} dB SNR (seed {result['seed']}).
The noisy scene was streamed through the chain ({e(result['chain'])}) in {result['hop_s']:g}-s blocks;
the grammar was decoded on {result['window_s']:g}-s windows.</p>
<p><b>{s['hits']}/{s['n_commands']} commands detected</b>; {s['wrong']} wrong, {s['missed']} missed,
{s['false_alarms']} false alarms.</p>
{players}
<table>
<tr><th>truth</th><th>start (s)</th><th>end (s)</th><th>detected</th><th>start (s)</th><th>end (s)</th><th>score</th><th>status</th></tr>
{chr(10).join(rows)}
</table>
<p><img src="{e(files['spectrogram'])}" alt="spectrograms of the noisy and enhanced scene with detections"></p>
<p>Shaded spans with a bar at the bottom: detections (green: correct, red: wrong or false alarm), named with
their scores on the enhanced panel; dashed lines: where each command was spoken; dotted: other speech.</p>"""
    return page_html("stapes demo: voice commands in babble", body, CSS)


# --------------------------------------------------------------------------- the demo


def run_demo(out_dir: str | Path, recognizer, *, snr: float = 20.0, seed: int = 7, n_commands: int = 4,
             window_s: float = LISTEN_WINDOW_S, hop_s: float = LISTEN_HOP_S, backend: str = "float", babble_utterances: int = 24,
             progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Synthesize a scene, stream it through ``recognizer``, compare with the truth, write the files.

    Returns the result (what ``result.json`` holds, every path in it relative to the page) with ``output``.
    """
    from rced.frontend import istft, stft

    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GrammarError(f"{out}: output path exists and is not a folder")
    if recognizer.grammar is None:
        raise GrammarError("demo: no grammar loaded")
    timings = {}
    t0 = time.perf_counter()
    say("synthesizing the scene")
    scene = make_scene(recognizer.grammar.commands, snr, seed, n_commands, babble_utterances)
    timings["scene_s"] = time.perf_counter() - t0
    fe = recognizer.config.frontend
    if scene.sr != fe.sample_rate:
        raise GrammarError(f"demo: the chain runs at {fe.sample_rate} Hz; the scene is {scene.sr} Hz")
    say(f"streaming {len(scene.noisy) / scene.sr:.1f} s through the chain")
    t1 = time.perf_counter()
    stream = PosteriorStream(recognizer, keep_spectrum=True)
    detections = spot(recognizer, scene.noisy, scene.sr, window_s, hop_s, stream=stream)
    timings["chain_s"] = time.perf_counter() - t1
    enhanced_spec = stream.spectrum
    enhanced = istft(enhanced_spec, fe, length=len(scene.noisy)) if recognizer.denoiser is not None else scene.noisy
    rows = match(scene.segments, detections)
    den = recognizer.denoiser
    am_kind = "int8 CTC AM" if getattr(recognizer.model, "backend", "float") == "int8" else "CTC AM"
    chain = (("int8 denoiser" if getattr(den, "backend", "float") == "int8" else "denoiser") if den is not None
             else "no denoiser") + f" + {am_kind} + grammar decoder"  # fmt: skip
    result = {
        "voice": scene.voice, "snr": snr, "seed": seed, "backend": backend, "chain": chain,
        "window_s": window_s, "hop_s": hop_s, "seconds_of_audio": round(len(scene.noisy) / scene.sr, 3),
        "threshold": recognizer.grammar.threshold,
        "am": relative_to_page(recognizer.path, out) if recognizer.path else None,
        "denoiser": relative_to_page(den.path, out) if den is not None and den.path else None,
        "truth": [dataclasses.asdict(s) for s in scene.segments],
        "detections": [{**d.to_json(), "expression": d.expression, "windows": d.windows} for d in detections],
        "rows": rows, "summary": summary(rows),
    }  # fmt: skip
    say("writing audio, spectrogram and page")
    png = spectrogram_png(stft(scene.noisy, fe), enhanced_spec, scene.sr, fe.hop, scene.segments, detections, rows,
                          f"{scene.voice} in babble at {snr:g} dB: {result['summary']['hits']}/"
                          f"{result['summary']['n_commands']} commands detected")  # fmt: skip
    timings["total_s"] = time.perf_counter() - t0
    result["timings"] = {k: round(v, 3) for k, v in timings.items()}
    write_demo_folder(out, {"noisy": scene.noisy, "enhanced": enhanced, "clean": scene.clean}, scene.sr, png, result,
                      index_html)  # fmt: skip
    return {"output": str(out), **result}
