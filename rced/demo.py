"""The demo pages, and the denoise demo (``rced demo``).

Both demos (this one and ``grammar demo``, which builds on these functions) write one folder a
browser opens as it is: WAV files, ``spectrogram.png``, ``result.json`` and ``index.html``. The
page links only files beside it, so the folder can be moved or served whole, and every path in
``result.json`` is relative to the page. Players load only their metadata up front, so each
shows its duration before it is played. Every file is written atomically (``rced.audio``).

The denoise demo: a sentence spoken by the first TEST-ONLY voice (never trained on) in babble of
TRAIN-voice talkers at a given SNR, streamed through the denoiser one hop at a time (the causal
path a hearing aid runs), scored with PESQ, STOI and SI-SDR against the clean speech, and timed
(real-time factor and per-block compute time after one warm-up call, algorithmic latency).
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rced.audio import atomic_write_bytes, atomic_write_text, figure_png, write_audio

BABBLE_SEED = 4242  # the babble talkers of both demos (one synthesis cache)
BABBLE_UTTERANCES = 24
SPEECH_RMS = 0.05  # level of the demo speech
FONT_SIZE = 13  # points, at PNG_DPI: axis labels and ticks of the spectrogram
LABEL_SIZE = 12  # points: text drawn on the spectrogram, always on a dark box
PNG_DPI = 100
DYNAMIC_RANGE_DB = 80.0

PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1300px; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1.5em 1em 0; } img { max-width: 100%; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
"""


# --------------------------------------------------------------------------- pictures


def boxed_text(ax, x: float, y: float, text: str, color: str = "white", **kw) -> None:
    """Text drawn on a spectrogram, readable on any background: a dark box under light text."""
    ax.text(x, y, text, color=color, fontsize=LABEL_SIZE, clip_on=True,
            bbox={"boxstyle": "round,pad=0.25", "fc": "black", "ec": color, "alpha": 0.8, "lw": 1}, **kw)  # fmt: skip


def spectrogram_png(panels: Sequence[tuple[str, np.ndarray]], sr: int, hop: int, *, title: str = "",
                    overlay: Callable[[object, str], None] | None = None) -> bytes:  # fmt: skip
    """One panel per (name, complex STFT frames x bins), stacked on one time axis, in dB relative to
    the loudest bin of the first panel (one colour scale for all: before and after compare).

    ``overlay(ax, name)`` draws on each panel (its axes are seconds and kHz); :func:`boxed_text`
    keeps labels readable. Returns the PNG's bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dur = len(panels[0][1]) * hop / sr
    ref = 20 * np.log10(np.abs(panels[0][1]).max() + 1e-9)
    with plt.rc_context({"font.size": FONT_SIZE}):
        fig, axes = plt.subplots(len(panels), 1, figsize=(14, 1.2 + 2.9 * len(panels)), sharex=True,
                                 constrained_layout=True, squeeze=False)  # fmt: skip
        axes = axes[:, 0]
        for ax, (name, spec) in zip(axes, panels):
            db = 20 * np.log10(np.abs(spec).T + 1e-9) - ref
            im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-DYNAMIC_RANGE_DB, vmax=0,
                           extent=(0, dur, 0, sr / 2000), interpolation="nearest")  # fmt: skip
            ax.set_ylabel(f"{name}\nfrequency (kHz)")
            if overlay is not None:
                overlay(ax, name)
        axes[-1].set_xlabel("time (s)")
        fig.colorbar(im, ax=list(axes), label=f"dB re the {panels[0][0]} peak", pad=0.01, aspect=40)
        if title:
            axes[0].set_title(title)
        png = figure_png(fig, PNG_DPI)
        plt.close(fig)
    return png


# --------------------------------------------------------------------------- page


def players_html(files: Mapping[str, str], labels: Sequence[tuple[str, str]]) -> str:
    """One audio player per (key of ``files``, caption); ``preload="metadata"``: the duration shows at once."""
    e = html.escape
    return "\n".join(f'<figure><figcaption>{e(label)}</figcaption>'
                     f'<audio controls preload="metadata" src="{e(files[key])}"></audio></figure>'
                     for key, label in labels)  # fmt: skip


def page_html(title: str, body: str, css: str = "") -> str:
    """A self-contained page (no scripts, no external resources) around ``body``."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{PAGE_CSS}{css}</style>
</head>
<body>
{body}
</body>
</html>
"""


def relative_to_page(path: str | os.PathLike, out: Path) -> str:
    """``path`` as a link from a page in ``out`` (POSIX separators, as browsers and JSON readers expect)."""
    return Path(os.path.relpath(Path(path).resolve(), out.resolve())).as_posix()


def write_demo_folder(out: str | os.PathLike, audio: Mapping[str, np.ndarray], sr: int, png: bytes, result: dict,
                      page: Callable[[dict], str]) -> dict[str, str]:  # fmt: skip
    """Write ``<key>.wav`` for each of ``audio``, ``spectrogram.png``, ``result.json`` (``result``
    with ``files``: these names, relative to the page) and ``index.html`` (``page(result)``).
    Returns ``files``."""
    out = Path(out)
    files = {key: f"{key}.wav" for key in audio} | {"spectrogram": "spectrogram.png", "result": "result.json",
                                                    "index": "index.html"}  # fmt: skip
    result["files"] = files
    out.mkdir(parents=True, exist_ok=True)
    for key, x in audio.items():
        write_audio(out / files[key], x, sr)
    atomic_write_bytes(out / files["spectrogram"], png)
    atomic_write_text(out / files["result"], json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / files["index"], page(result))  # last: the page appears when all it shows exists
    return files


# --------------------------------------------------------------------------- the denoise demo

METRICS = (("pesq", "PESQ (wide-band)", ".3f"), ("stoi", "STOI", ".3f"), ("si_sdr", "SI-SDR (dB)", ".2f"))


def denoise_page(result: dict) -> str:
    """``index.html`` of the denoise demo: players, the numbers before and after, the spectrograms."""
    e, r, f = html.escape, result, result["files"]
    rows = "\n".join(f"<tr><td>{label}</td><td>{r['noisy'][k]:{fmt}}</td><td>{r['enhanced'][k]:{fmt}}</td>"
                     f"<td>{r['enhanced'][k] - r['noisy'][k]:+{fmt}}</td></tr>" for k, label, fmt in METRICS)  # fmt: skip
    players = players_html(f, (("noisy", "noisy (before: what the microphone hears)"),
                               ("enhanced", "enhanced (after: the denoiser's output)"),
                               ("clean", "clean speech (the reference)")))  # fmt: skip
    body = f"""<h1>stapes: speech in babble, denoised as it streams</h1>
<p>&ldquo;{e(r['text'])}&rdquo;, spoken by the TEST-ONLY voice <code>{e(r['voice'])}</code> (never trained on), in
babble of TRAIN-voice talkers at {r['snr']:g} dB SNR (seed {r['seed']}), streamed through the denoiser
<code>{e(Path(r['model'] or 'in memory').name)}</code> ({e(r['backend'])}) in {r['block_ms']:g} ms blocks, the causal path a hearing aid runs.</p>
{players}
<table>
<tr><th>measure (against the clean speech)</th><th>noisy (before)</th><th>enhanced (after)</th><th>change</th></tr>
{rows}
</table>
<table>
<tr><th>streaming</th><th></th></tr>
<tr><td>audio</td><td>{r['seconds_of_audio']:.2f} s in {r['blocks']} blocks of {r['block_ms']:g} ms</td></tr>
<tr><td>real-time factor (compute time / audio time, on the computer that ran the demo)</td><td>{r['real_time_factor']:.3f}</td></tr>
<tr><td>compute per block, median / 99th percentile</td><td>{r['block_latency_ms_median']:.3f} / {r['block_latency_ms_p99']:.3f} ms</td></tr>
<tr><td>algorithmic latency (STFT window; plus one block of buffering)</td><td>{r['algorithmic_latency_ms']:g} ms</td></tr>
</table>
<p><img src="{e(f['spectrogram'])}" alt="spectrograms of the clean, noisy and enhanced speech"></p>
<p>All three spectrograms share one colour scale (dB relative to the loudest bin of the clean speech).</p>"""
    return page_html("stapes demo: speech in babble, denoised", body)


def run_demo(out_dir: str | os.PathLike, denoiser, *, snr: float = 5.0, seed: int = 7,
             progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Synthesize the example, stream it through ``denoiser`` one hop per block, score and time it,
    write the folder (:func:`write_demo_folder`). Returns ``result.json``'s content with ``output``."""
    from rced.audio import resample
    from rced.config import FrontendConfig
    from rced.corpus import load_utterances, make_babble, mix, plan_utterances, rms, train_utterances
    from rced.frontend import stft
    from rced.metrics import all_metrics
    from rced.tts import test_voices

    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    say("synthesizing the example")
    utt = plan_utterances([test_voices()[0]], 1, seed=seed)[0]
    clean = load_utterances([utt], workers=1, desc="demo speech")[0]
    clean = (clean / rms(clean) * SPEECH_RMS).astype(np.float32)
    pool = load_utterances(train_utterances(BABBLE_UTTERANCES, BABBLE_SEED), desc="demo babble")
    noisy = mix(clean, make_babble(len(clean), pool, np.random.default_rng(seed)), snr)
    say("streaming through the denoiser")
    fe = denoiser.config.frontend
    x = resample(noisy, 16000, denoiser.sample_rate)  # the model's rate (identity for the shipped 16 kHz)
    per_block: list[float] = []  # seconds from handing a block in until the stream asks for the next

    def blocks():
        for i in range(0, len(x), fe.hop):
            t = time.perf_counter()
            yield x[i : i + fe.hop]
            per_block.append(time.perf_counter() - t)

    list(denoiser.stream([np.zeros(fe.n_fft, np.float32)]))  # warm-up: the network's first call sets it up
    t0 = time.perf_counter()
    enhanced = np.concatenate(list(denoiser.stream(blocks())))
    wall = time.perf_counter() - t0
    enhanced = resample(enhanced, denoiser.sample_rate, 16000)
    say("scoring and writing the page")
    m_noisy, m_enh = all_metrics(clean, noisy), all_metrics(clean, enhanced)
    ms = np.array(per_block) * 1000
    result = {
        "text": utt.text, "voice": utt.voice.id, "snr": snr, "seed": seed,
        "model": relative_to_page(denoiser.path, out) if denoiser.path else None,
        "backend": getattr(denoiser, "backend", "float"),
        "seconds_of_audio": round(len(noisy) / 16000, 3), "block_ms": 1000 * fe.hop / fe.sample_rate,
        "blocks": len(per_block), "noisy": m_noisy, "enhanced": m_enh,
        "real_time_factor": round(wall / (len(x) / denoiser.sample_rate), 4),
        "block_latency_ms_median": round(float(np.percentile(ms, 50)), 3),
        "block_latency_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "algorithmic_latency_ms": fe.latency_ms,
    }  # fmt: skip
    pic = FrontendConfig()  # the signals are at 16 kHz whatever the model's rate
    png = spectrogram_png([(name, stft(sig, pic)) for name, sig in (("clean", clean), ("noisy", noisy),
                                                                    ("enhanced", enhanced))],
                          pic.sample_rate, pic.hop,
                          title=f"{utt.voice.id} in babble at {snr:g} dB: SI-SDR {m_noisy['si_sdr']:.2f} → "
                                f"{m_enh['si_sdr']:.2f} dB, PESQ {m_noisy['pesq']:.2f} → {m_enh['pesq']:.2f}")  # fmt: skip
    write_demo_folder(out, {"clean": clean, "noisy": noisy, "enhanced": enhanced}, 16000, png, result, denoise_page)
    return {"output": str(out), **result}
