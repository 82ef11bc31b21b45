"""The main demo: voice commands in a babble-filled room, spotted by the streaming chain.

A scene is synthesized: a few commands of the grammar spoken by a TEST-ONLY voice (never
trained on), with non-command speech of the same voice between them, inside continuous babble
of TRAIN-voice talkers at a given SNR (measured over the active speech). The noisy scene is
streamed block by block through the chain (:func:`grammar.listen.spot`: causal STFT, denoiser,
AM, sliding-window grammar decoding), and the detections are compared with the truth. Written
into the output folder (every file atomically): ``noisy.wav``, ``enhanced.wav`` (the denoiser's
listening path, from the same STFT the AM reads), ``clean.wav``, ``spectrogram.png`` (noisy vs
enhanced, detections shaded, truth as lines), ``result.json`` and ``index.html``.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from grammar.errors import GrammarError
from grammar.listen import Detection, PosteriorStream, spot

LEAD_S = 1.0  # babble before the first utterance and after the last
GAP_S = (1.0, 2.0)  # babble-only gap between utterances
SPEECH_RMS = 0.05  # level of every utterance over its active part
BABBLE_SEED = 4242  # the babble talkers of `rced demo` (shared cache)
MATCH_TOLERANCE_S = 0.3  # a detection matches a truth segment it overlaps, widened by this much


@dataclasses.dataclass(frozen=True)
class Segment:
    """One utterance of the scene: ``command`` is None for non-command speech; times in seconds."""

    text: str
    command: str | None
    start: float
    end: float


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
               babble_utterances: int = 24, workers: int | None = None) -> Scene:  # fmt: skip
    """``n_commands`` of ``commands`` (drawn by ``seed``) and non-command sentences between them,
    spoken by the first TEST-ONLY voice, in babble of ``babble_utterances`` TRAIN-voice utterances."""
    from rced.corpus import Utterance, load_utterances, make_babble, rms, train_utterances
    from rced.text import random_sentence
    from rced.tts import Prosody, test_voices

    if not commands:
        raise GrammarError("demo: the grammar has no commands")
    rng = np.random.default_rng(seed)
    picked = [commands[i] for i in rng.choice(len(commands), size=min(n_commands, len(commands)), replace=False)]
    texts: list[tuple[str, str | None]] = []
    for i, c in enumerate(picked):
        texts.append((c, c))
        if i < len(picked) - 1:
            texts.append((random_sentence(rng, 3, 6), None))
    voice = test_voices()[0]
    utts = [Utterance(t, voice, Prosody(), seed * 1000 + i) for i, (t, _) in enumerate(texts)]
    speech = load_utterances(utts, workers=workers, desc="demo speech")
    pool = load_utterances(train_utterances(babble_utterances, BABBLE_SEED), workers=workers, desc="demo babble")
    sr = 16000
    pieces, segments = [], []
    t = int(LEAD_S * sr)
    for (text, cmd), x in zip(texts, speech):
        a, b = _active(x, sr)
        x = x[a:b] / rms(x[a:b]) * SPEECH_RMS
        pieces.append((t, x))
        segments.append(Segment(text, cmd, round(t / sr, 3), round((t + len(x)) / sr, 3)))
        t += len(x) + int(rng.uniform(*GAP_S) * sr)
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
    return Scene(clean.astype(np.float32), noisy.astype(np.float32), segments, sr, voice.id, snr, seed)


# --------------------------------------------------------------------------- truth vs detections


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
        near = [i for i, d in enumerate(detections)
                if i not in used and d.start <= seg.end + tolerance and d.end >= seg.start - tolerance]  # fmt: skip
        same = [i for i in near if detections[i].command == seg.command]
        pick = (same or near or [None])[0]
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


def spectrogram_png(noisy_spec: np.ndarray, enhanced_spec: np.ndarray, sr: int, hop: int,
                    segments: Sequence[Segment], detections: Sequence[Detection], rows: list[dict],
                    title: str = "") -> bytes:  # fmt: skip
    """Two panels (noisy, enhanced) in dB; detections shaded and labelled, truth as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hit_starts = {r["detection"]["start"] for r in rows if r["status"] == "hit"}
    dur = len(noisy_spec) * hop / sr
    fig, axes = plt.subplots(2, 1, figsize=(14, 7), sharex=True, constrained_layout=True)
    ref = 20 * np.log10(np.abs(noisy_spec).max() + 1e-9)
    for ax, spec, name in ((axes[0], noisy_spec, "noisy"), (axes[1], enhanced_spec, "enhanced")):
        db = 20 * np.log10(np.abs(spec).T + 1e-9)
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=ref - 80, vmax=ref,
                  extent=(0, dur, 0, sr / 2000), interpolation="nearest")  # fmt: skip
        ax.set_ylabel(f"{name}\nfrequency (kHz)")
        for seg in segments:
            style = {"color": "white", "ls": "--", "lw": 1.0} if seg.command else {"color": "0.7", "ls": ":", "lw": 0.8}
            ax.axvline(seg.start, **style)
            ax.axvline(seg.end, **style)
            label = seg.command if seg.command else "(other speech)"
            ax.text((seg.start + seg.end) / 2, sr / 2000 * 0.97, label, color=style["color"], ha="center",
                    va="top", fontsize=8, clip_on=True)  # fmt: skip
        for d in detections:
            ok = round(d.start, 3) in hit_starts
            ax.axvspan(d.start, d.end, color="lime" if ok else "red", alpha=0.25, lw=0)
            ax.text((d.start + d.end) / 2, sr / 2000 * 0.05, f"{d.command}\n{d.score:.2f}", color="lime" if ok else "red",
                    ha="center", va="bottom", fontsize=8, fontweight="bold", clip_on=True)  # fmt: skip
    axes[1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def index_html(result: dict, files: dict[str, str]) -> str:
    """A self-contained page: audio players, the spectrogram, the truth/detection table (relative links)."""
    e = html.escape
    s = result["summary"]
    rows = []
    for r in result["rows"]:
        t, d = r["truth"], r["detection"]
        tc = [e(t["text"]), f"{t['start']:.2f}", f"{t['end']:.2f}"] if t else ["", "", ""]
        dc = [e(d["command"]), f"{d['start']:.2f}", f"{d['end']:.2f}", f"{d['score']:.3f}"] if d else ["&ndash;", "", "", ""]
        cls = r["status"].replace(" ", "-")
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in tc + dc)
                    + f"<td>{e(r['status'])}</td></tr>")  # fmt: skip
    players = "\n".join(
        f'<figure><figcaption>{e(label)}</figcaption><audio controls preload="none" src="{e(files[key])}"></audio></figure>'
        for key, label in (("noisy", "noisy (what the microphone hears)"), ("enhanced", "enhanced (denoiser output)"),
                           ("clean", "clean speech (truth)"))  # fmt: skip
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>stapes demo: voice commands in babble</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1300px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
td:first-child, td:nth-child(4), th {{ text-align: left; }}
tr.hit {{ background: #e6f6e6; }} tr.missed, tr.wrong-command {{ background: #fdecea; }}
tr.false-alarm {{ background: #fff4dd; }}
figure {{ display: inline-block; margin: 0 1.5em 1em 0; }} img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>stapes: voice commands in babble</h1>
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
<p>Shaded spans: detections (green: correct, red: wrong or false alarm); dashed lines: where each command
was spoken; dotted: other speech.</p>
</body>
</html>
"""


# --------------------------------------------------------------------------- the demo


def run_demo(out_dir: str | Path, recognizer, *, snr: float = 20.0, seed: int = 7, n_commands: int = 4,
             window_s: float = 2.0, hop_s: float = 0.25, backend: str = "float", babble_utterances: int = 24,
             progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Synthesize a scene, stream it through ``recognizer``, compare with the truth, write the files.

    Returns the result (what ``result.json`` holds) with ``out_dir`` and the file names.
    """
    from rced.audio import atomic_write_bytes, atomic_write_text, write_audio
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
        "am": str(recognizer.path) if recognizer.path else None,
        "denoiser": str(den.path) if den is not None and den.path else None,
        "truth": [dataclasses.asdict(s) for s in scene.segments],
        "detections": [{**d.to_json(), "expression": d.expression, "windows": d.windows} for d in detections],
        "rows": rows, "summary": summary(rows),
    }  # fmt: skip
    say("writing audio, spectrogram and page")
    files = {"noisy": "noisy.wav", "enhanced": "enhanced.wav", "clean": "clean.wav",
             "spectrogram": "spectrogram.png", "result": "result.json", "index": "index.html"}  # fmt: skip
    png = spectrogram_png(stft(scene.noisy, fe), enhanced_spec, scene.sr, fe.hop, scene.segments, detections, rows,
                          f"{scene.voice} in babble at {snr:g} dB: {result['summary']['hits']}/"
                          f"{result['summary']['n_commands']} commands detected")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_audio(out / files["noisy"], scene.noisy, scene.sr)
    write_audio(out / files["enhanced"], enhanced, scene.sr)
    write_audio(out / files["clean"], scene.clean, scene.sr)
    atomic_write_bytes(out / files["spectrogram"], png)
    timings["total_s"] = time.perf_counter() - t0
    result["timings"] = {k: round(v, 3) for k, v in timings.items()}
    atomic_write_text(out / files["result"], json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / files["index"], index_html(result, files))
    return {"output": str(out), "files": files, **result}
