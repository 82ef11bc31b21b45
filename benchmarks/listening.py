"""Continuous listening: the float and the int8 chain side by side on long streams of TEST-ONLY voices.

Two streams, each one recording of demo scenes played one after the other
(:func:`grammar.decoding.demo.make_scene`: 4 of the 20 default commands among non-command sentences of one
TEST-ONLY voice, in babble of TRAIN-voice talkers at 20 dB, 1 s of babble before and after):
- ``demo x30``: the README's demo scene (``grammar demo``: seed 7, the first TEST-ONLY voice) 30
  times: 120 commands in 10.2 minutes; each repeat meets the int8 AM's fixed windows at another phase;
- ``30 scenes``: scenes of seeds 1000..1029, the voice going round the three TEST-ONLY voices.
Each chain listens as ``grammar listen`` does (:func:`grammar.decoding.listen.listen_blocks`: 0.25-s blocks,
``LISTEN_WINDOW_S`` windows every 0.25 s, the grammar's threshold for its backend moved by
``grammar.decoding.listen.LISTEN_THRESHOLD_OFFSET``, events that ``LISTEN_MIN_WINDOWS`` windows accepted
and whose best window reaches the threshold plus ``LISTEN_BEST_OFFSET``);
detections are matched to the
truth as the demo does (:func:`grammar.decoding.demo.match`). Reported per chain: commands found,
misclassified (another command detected on one), missed, false alarms (detections on no command)
and false alarms per hour of non-command time (the stream less its commands), and the real-time factor.
Nothing is chosen on these streams: the int8 chain's posterior floor (grammar.acoustic.int8.ZERO_LOG_POSTERIOR,
``--zero-posterior`` measures it) and its threshold come from the calibration set of
benchmarks/recognition.py (TEST-ONLY voices, seed 101).

``--factors`` adds rows that change one thing at a time between the float chain and the int8 chain
as it was before (posteriors floored at half an LSB, threshold -1.0308): the float AM in the
device's windows, on its quantised input, with the half-LSB floor; the int8 denoiser alone.
Writes benchmarks/results/listening.{json,md}. Run: python benchmarks/listening.py --factors
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.acoustic.int8 import ZERO_LOG_POSTERIOR, Int8AM  # noqa: E402
from grammar.decoding.decoder import Grammar  # noqa: E402
from grammar.decoding.demo import Segment, make_scene, match, summary  # noqa: E402
from grammar.decoding.listen import (  # noqa: E402
    LISTEN_BEST_OFFSET,
    LISTEN_COMMAND_OFFSETS,
    LISTEN_HOP_S,
    LISTEN_MIN_WINDOWS,
    LISTEN_WINDOW_S,
    listen_blocks,
    listening_grammar,
)
from grammar.decoding.recognizer import Recognizer, default_grammar_path  # noqa: E402
from rced.audio import atomic_write_results  # noqa: E402
from rced.corpus import crossfade_join  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
SNR = 20.0  # the demo's default
DEMO_SEED = 7  # `grammar demo`'s default scene
SEED0 = 1000  # the other stream: seeds SEED0, SEED0 + 1, ...
BLOCK_S = 0.25  # what `grammar listen` reads at a time (its --hop-s)
# Scenes fade into each other over this much of their babble (each has LEAD_S = 1 s of babble before
# its first utterance and after its last): a stream's babble runs on without a step at a join
JOIN_FADE_S = 0.5
# The int8 chain before its posterior floor was measured (commit history): half an LSB of the int8
# softmax, and the threshold calibrated with it.
BEFORE_INT8_THRESHOLD = -1.0308471054117838


@dataclasses.dataclass(frozen=True)
class Stream:
    name: str
    audio: np.ndarray
    segments: list[Segment]
    sr: int
    scenes: list[dict]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sr

    @property
    def command_seconds(self) -> float:
        return sum(s.end - s.start for s in self.segments if s.command is not None)


def make_stream(name: str, commands, seeds: list[int], voices: list[int], snr: float = SNR, split: str = "test") -> Stream:
    """Demo scenes of ``seeds`` (spoken by TEST-ONLY ``voices``, or with ``split="dev"`` the Kokoro
    dev speakers) one after the other, each fading into the next over ``JOIN_FADE_S`` of babble;
    segment times on the stream's clock."""
    audio, segments, scenes, t = [], [], [], 0
    fade = int(JOIN_FADE_S * 16000)
    cache: dict = {}
    for seed, voice in zip(seeds, voices):
        sc = cache.get((seed, voice)) or make_scene(commands, snr, seed, 4, voice=voice, split=split)
        cache[(seed, voice)] = sc
        off = t / sc.sr
        segments += [dataclasses.replace(s, start=round(s.start + off, 3), end=round(s.end + off, 3)) for s in sc.segments]
        scenes.append({"seed": sc.seed, "voice": sc.voice, "start": round(off, 3), "seconds": len(sc.noisy) / sc.sr})
        audio.append(sc.noisy)
        t += len(sc.noisy) - fade
    return Stream(name, crossfade_join(audio, fade), segments, 16000, scenes)


def streams(commands, n: int) -> list[Stream]:
    from rced.tts import test_voices

    k = len(test_voices())
    return [make_stream(f"demo x{n}", commands, [DEMO_SEED] * n, [0] * n),
            make_stream(f"{n} scenes", commands, [SEED0 + i for i in range(n)], [i % k for i in range(n)])]  # fmt: skip


# --------------------------------------------------------------------------- chains


class FloatInWindows(Int8AM):
    """The float AM run as the device runs the int8 one (the fixed windows of ``int8_am``), optionally
    on the int8 model's quantised input and with a floor on its posteriors: one factor at a time."""

    backend = "float"

    def __init__(self, float_rec: Recognizer, int8_am: Int8AM, quantised_input: bool = False, floor: float = 0.0):
        for key in ("cfg", "norm", "frames", "context", "tail", "hop", "pad"):
            setattr(self, key, getattr(int8_am, key))
        self.rec, self.q, self.quantised_input = float_rec, int8_am.model, quantised_input
        self.floor = max(floor, np.finfo(np.float32).tiny)

    def probabilities(self, window: np.ndarray) -> np.ndarray:
        from rced.runtime import dequantize, quantize

        if self.quantised_input:
            window = dequantize(quantize(window, self.q.in_scale, self.q.in_zp), self.q.in_scale, self.q.in_zp)
        return np.exp(self.rec.log_posteriors(window))


def windowed_float_chain(rec: Recognizer, int8_am: Int8AM, **kw) -> Recognizer:
    """``rec`` with its float AM run as the device runs ``int8_am`` (its fixed windows; ``kw``:
    :class:`FloatInWindows`' other factors), the rest of the chain as it is."""
    inner = copy.copy(rec)  # reads the AM as it is: the outer chain applies the readout once
    inner.config = rec.config.without_readout()
    return Recognizer(FloatInWindows(inner, int8_am, **kw), rec.config, rec.norm, rec.denoiser, rec.grammar, rec.path)


def chains(factors: bool) -> list[tuple[str, Callable[[], Recognizer]]]:
    """(row name, a function that builds the chain): float, int8, int8 as before; with ``factors`` the
    steps between float and int8-before."""

    def int8(floor_half_lsb: bool = False, threshold: float | None = None) -> Recognizer:
        rec = Recognizer.load(backend="int8")
        if floor_half_lsb:
            rec.model.floor = 0.5 * rec.model.model.out_scale
        if threshold is not None:
            rec.grammar = dataclasses.replace(rec.grammar, int8_threshold=threshold)
        return rec

    def float_windows(**kw) -> Recognizer:
        rec = Recognizer.load()
        return windowed_float_chain(rec, Int8AM.load(rec.path), **kw)

    def int8_denoiser() -> Recognizer:
        rec = Recognizer.load()
        rec.denoiser = Recognizer.load(backend="int8", grammar=False).denoiser
        return rec

    half = 0.5 / 256  # half an LSB of the shipped int8 AM's softmax output (scale 1/256)
    rows = [("float", Recognizer.load), ("int8", int8),
            ("int8 before: floor half an LSB, threshold -1.0308", lambda: int8(True, BEFORE_INT8_THRESHOLD))]
    if factors:
        rows += [
            ("float AM in the device's windows", float_windows),
            ("float AM in the device's windows, quantised input", lambda: float_windows(quantised_input=True)),
            ("float AM in the device's windows, quantised input, floor half an LSB",
             lambda: float_windows(quantised_input=True, floor=half)),
            ("float AM, int8 denoiser", int8_denoiser),
            ("int8, measured floor, threshold -1.0308 (before)", lambda: int8(False, BEFORE_INT8_THRESHOLD)),
        ]  # fmt: skip
    return rows


def listen(rec: Recognizer, stream: Stream) -> dict:
    """The stream through ``rec`` as ``grammar listen`` reads it; the demo's matching; the counts."""
    block = int(round(BLOCK_S * stream.sr))
    t0 = time.perf_counter()
    dets = list(listen_blocks(rec, (stream.audio[i : i + block] for i in range(0, len(stream.audio), block))))
    wall = time.perf_counter() - t0
    s = summary(match(stream.segments, dets))
    non_hours = (stream.seconds - stream.command_seconds) / 3600
    return {"found": s["hits"], "misclassified": s["wrong"], "missed": s["missed"], "false_alarms": s["false_alarms"],
            "false_alarms_per_hour": round(s["false_alarms"] / non_hours, 1), "n_commands": s["n_commands"],
            "threshold": round(listening_grammar(rec).threshold, 4), "real_time_factor": round(wall / stream.seconds, 4)}  # fmt: skip


# --------------------------------------------------------------------------- the posterior floor


def zero_posterior() -> dict:
    """The float AM's mean log-posterior over those below half an LSB of the int8 softmax, on the
    calibration set of benchmarks/recognition.py: what an int8 posterior of 0 stands for."""
    from recognition import cached_posteriors, datasets

    from grammar.dataset import load_manifest

    rows = load_manifest(datasets(2)[0])
    rec = Recognizer.load(grammar=False)  # the AM's own posteriors, as the int8 softmax gives them (no readout)
    rec.config = rec.config.without_readout()
    logp = np.concatenate(cached_posteriors(rec, rows, "calib_all"))
    half = math.log(0.5 * Int8AM.load(rec.path).model.out_scale)
    low = logp[logp < half]
    return {"data": "calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101)", "utterances": len(rows),
            "posteriors": int(logp.size), "below_half_lsb": round(low.size / logp.size, 4),
            "mean_log_below_half_lsb": round(float(low.mean()), 4)}  # fmt: skip


# --------------------------------------------------------------------------- report


def markdown(payload: dict) -> str:
    per_command = ", each command's moved by its per-command offset" if payload.get("command_offsets") else ""
    if payload.get("best_offset") is not None:
        per_command += f", and whose best window reaches the grammar's threshold {payload['best_offset']:+g}"
    lines = [f"Continuous listening, TEST-ONLY voices among other speech in {payload['snr']:g} dB babble "
             f"(benchmarks/listening.py): each stream through `grammar listen`'s path (0.25-s blocks, "
             f"{payload.get('window_s', 2.0):g}-s windows every 0.25 s, events that {payload.get('min_windows', 1)} windows accepted at the threshold below"
             f"{per_command}). Found / misclassified / missed out of the stream's commands; false alarms per hour "
             "of the stream less its commands. Nothing was tuned on these streams.", ""]  # fmt: skip
    for st in payload["streams"]:
        lines += [f"**{st['name']}** ({st['seconds'] / 60:.1f} min, {st['n_commands']} commands; {st['about']})", "",
                  "| chain | found | misclassified | missed | false alarms | per hour | threshold | real-time factor |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, r in st["chains"].items():
            lines.append(f"| {name} | {r['found']}/{r['n_commands']} | {r['misclassified']} | {r['missed']} | "
                         f"{r['false_alarms']} | {r['false_alarms_per_hour']:.1f} | {r['threshold']:.4f} | "
                         f"{r['real_time_factor']:.3f} |")  # fmt: skip
        lines.append("")
    z = payload.get("zero_posterior")
    if z:
        lines.append(f"The int8 AM's posterior of 0 reads log {ZERO_LOG_POSTERIOR:.2f} "
                     f"(`grammar.acoustic.int8.ZERO_LOG_POSTERIOR`). Measured again: the float AM's mean "
                     f"log-posterior over the {z['below_half_lsb']:.0%} of its posteriors below half an LSB "
                     f"(1/512) on the {z['data']} is {z['mean_log_below_half_lsb']:.2f}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=30, help="scenes per stream (default 30: about 10 minutes)")
    ap.add_argument("--factors", action="store_true", help="also the rows that change one factor at a time")
    ap.add_argument("--zero-posterior", action="store_true",
                    help="only measure what an int8 posterior of 0 stands for (grammar.acoustic.int8.ZERO_LOG_POSTERIOR)")
    ap.add_argument("--out", default=str(ROOT / "results" / "listening"))
    args = ap.parse_args(argv)
    if args.zero_posterior:
        print(json.dumps(zero_posterior()))
        return 0
    commands = Grammar.load(default_grammar_path()).commands
    about = {f"demo x{args.scenes}": f"`grammar demo`'s scene (seed {DEMO_SEED}, voice flite:rms) repeated",
             f"{args.scenes} scenes": f"seeds {SEED0}..{SEED0 + args.scenes - 1}, the three TEST-ONLY voices in turn"}  # fmt: skip
    out = []
    rows = chains(args.factors)
    for st in streams(commands, args.scenes):
        res = {}
        for name, build in rows:
            res[name] = listen(build(), st)
            print(st.name, name, res[name], flush=True)
        out.append({"name": st.name, "about": about[st.name], "seconds": round(st.seconds, 2),
                    "n_commands": sum(s.command is not None for s in st.segments),
                    "command_seconds": round(st.command_seconds, 2), "scenes": st.scenes, "chains": res})  # fmt: skip
    payload = {"snr": SNR, "block_s": BLOCK_S, "window_s": LISTEN_WINDOW_S, "hop_s": LISTEN_HOP_S, "min_windows": LISTEN_MIN_WINDOWS,
               "command_offsets": dict(LISTEN_COMMAND_OFFSETS), "best_offset": LISTEN_BEST_OFFSET,
               "streams": out,
               "zero_posterior": zero_posterior()}  # fmt: skip
    md = markdown(payload)
    atomic_write_results(args.out, payload, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
