"""Non-speech sounds taken for commands: hum, noise, beeps, sweeps, clicks and simple music.

A hearing aid hears its wearer's fridge, a fan, a kettle's beep and the radio far more often than
a command; each acceptance there is a false alarm. The clips are :func:`rced.nonspeech.nonspeech_clip`
of seeds 5,000,000 on (2 s each; training's negatives draw seeds below 1,000,000), alone (clean)
and in TRAIN-voice babble at 10 dB as the recognition benchmark mixes it. Each chain decides with
the default grammar at its shipped threshold (as calibrated on the calibration set, as
``benchmarks/real_commands.py`` does for other AMs); the shipped chain's int8 device graph runs
with the grammar's int8 threshold. Reported: the share of clips accepted as some command, per kind,
with the speech check `grammar recognize` ships (``Recognizer.speech_floor``: the input's level must
rise and fall as speech does; ``Recognizer.tonal_ceiling``: no second of it may be mostly frames of
one frequency; benchmarks/speech_check.py chose both), with its floor alone, and without it.

Continuous listening (the shipped chains only): ``grammar listen`` on a stream of longer sounds of
the same kinds (``--listen-per-kind`` of each, 10 s, other seeds, in a shuffled order joined by
0.5-s crossfades; no talk), its detections per hour with the speech check, its floor alone, and
without it.

Writes benchmarks/results/nonspeech.{json,md}.
Run: python benchmarks/nonspeech.py [--am FOLDER ... --label NAME ...] [--per-kind 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.decoding.decoder import Grammar  # noqa: E402
from grammar.decoding.listen import PosteriorStream, spot  # noqa: E402
from grammar.decoding.recognizer import SPEECH_FLOOR, TONAL_CEILING, Recognizer, default_grammar_path  # noqa: E402
from rced.audio import atomic_write_text  # noqa: E402
from rced.corpus import load_utterances, make_babble, mix, train_utterances  # noqa: E402
from rced.nonspeech import KINDS, nonspeech_clip  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from real_commands import shipped_threshold  # noqa: E402

SEED0 = 5_000_000
SNR = 10.0
LONG_S, FADE_S = 10.0, 0.5  # the listening stream's sounds and their crossfades


def clips(per_kind: int) -> list[dict]:
    """Every clip, clean and in babble: {kind, condition, audio}."""
    pool = load_utterances(train_utterances(60, 4323), desc="babble")
    rng = np.random.default_rng(SEED0)
    out = []
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            x, _ = nonspeech_clip(SEED0 + 1000 * k + i, kind=kind)
            out.append({"kind": kind, "condition": "clean", "audio": x})
            out.append({"kind": kind, "condition": f"{SNR:g} dB babble",
                        "audio": mix(x, make_babble(len(x), pool, rng), SNR)})  # fmt: skip
    return out


def decisions(rec: Recognizer, rows: list[dict], grammar: Grammar) -> list[tuple[str | None, float, float]]:
    """Each clip's command at the grammar's threshold (None: rejected), its speech modulation and tonality."""
    out = []
    for r in rows:
        d = rec.recognize(r["audio"], 16000, r["kind"], grammar, speech_check=False)
        out.append((d.command, d.speech_modulation, d.tonality))
    return out


def both_tables(rec: Recognizer, rows: list[dict], grammar: Grammar) -> dict[str, dict]:
    """:func:`table` with the chain's speech check (as shipped), with its modulation floor alone
    (the check before the tonal ceiling) and without it."""
    dec = decisions(rec, rows, grammar)
    return {"": table(rows, [c if rec.sounds_like_speech(m, t) else None for c, m, t in dec]),
            ", floor only": table(rows, [c if rec.sounds_like_speech(m) else None for c, m, _ in dec]),
            ", no speech check": table(rows, [c for c, _, _ in dec])}


def long_stream(per_kind: int, sr: int = 16000) -> tuple[np.ndarray, list[str]]:
    """``per_kind`` sounds of ``LONG_S`` seconds of each kind (seeds from ``SEED0`` + 500,000 on), in a
    shuffled order, each fading into the next over ``FADE_S`` seconds; and the kind of each sound in
    order (sound i starts at i * (LONG_S - FADE_S) seconds)."""
    order = [(k, i) for k in range(len(KINDS)) for i in range(per_kind)]
    np.random.default_rng(SEED0 + 1).shuffle(order)
    fade = int(FADE_S * sr)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = np.zeros(0, np.float32)
    for k, i in order:
        x, _ = nonspeech_clip(SEED0 + 500_000 + 1000 * k + i, LONG_S, sr, kind=KINDS[k])
        if len(out):
            x = np.concatenate([out[-fade:] * (1 - ramp) + x[:fade] * ramp, x[fade:]])
            out = out[:-fade]
        out = np.concatenate([out, x])
    return out, [KINDS[k] for k, _ in order]


def listening(rec: Recognizer, audio: np.ndarray, kinds: list[str]) -> dict:
    """``grammar listen``'s detections on ``audio`` (16 kHz; the sounds of :func:`long_stream`, whose
    ``kinds`` they are), with the chain's speech check, with its floor alone and without, in all and
    per kind of sound."""
    stream = PosteriorStream(rec, levels_kept_s=float("inf"))
    dets = spot(rec, audio, 16000, stream=stream, speech_check=False)
    measures = [stream.detection_measures(d) for d in dets]
    kept = [d for d, m in zip(dets, measures) if rec.sounds_like_speech(*m)]
    floor_only = [d for d, (m, _) in zip(dets, measures) if rec.sounds_like_speech(m)]
    hours = len(audio) / 16000 / 3600

    def kind_of(d) -> str:  # the sound the detection's middle falls in
        return kinds[min(len(kinds) - 1, int((d.start + d.end) / 2 // (LONG_S - FADE_S)))]

    by_kind = {k: [sum(kind_of(d) == k for d in x) for x in (kept, floor_only, dets)] for k in KINDS}
    return {"hours": round(hours, 4), "detections": len(kept), "detections_floor_only": len(floor_only),
            "detections_no_check": len(dets), "per_hour": round(len(kept) / hours, 1),
            "per_hour_floor_only": round(len(floor_only) / hours, 1), "per_hour_no_check": round(len(dets) / hours, 1),
            "by_kind": by_kind, "taken_for": sorted({d.command for d in dets})}  # fmt: skip


def table(rows: list[dict], preds: list[str | None]) -> dict:
    """Share accepted per kind and condition, overall, and the commands they were taken for."""
    out: dict = {}
    for cond in sorted({r["condition"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["condition"] == cond]
        out[cond] = {kind: float(np.mean([preds[i] is not None for i in idx if rows[i]["kind"] == kind]))
                     for kind in KINDS}  # fmt: skip
        out[cond]["all"] = float(np.mean([preds[i] is not None for i in idx]))
    taken = [p for p in preds if p is not None]
    out["taken_for"] = {c: taken.count(c) for c in sorted(set(taken), key=lambda c: (-taken.count(c), c))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", nargs="+", default=None, help="acoustic-model folders to compare (default: the shipped chain)")
    ap.add_argument("--label", nargs="+", default=None, help="a name per folder")
    ap.add_argument("--per-kind", type=int, default=40, help="clips of each kind")
    ap.add_argument("--listen-per-kind", type=int, default=10, help="10-s sounds of each kind in the listening stream")
    ap.add_argument("--max-far", type=float, default=0.10, help="FAR bound of the thresholds of --am folders")
    ap.add_argument("--out", default=str(ROOT / "results" / "nonspeech"))
    args = ap.parse_args(argv)
    rows = clips(args.per_kind)
    results, listened = {}, {}
    g = Grammar.load(default_grammar_path())
    if args.am is None:
        for backend in ("float", "int8"):
            rec = Recognizer.load(backend=backend, grammar=False)
            for suffix, t in both_tables(rec, rows, g.for_backend(backend)).items():
                results[f"stapes {backend}{suffix}"] = t
                print(backend + suffix, t, flush=True)
            if args.listen_per_kind:
                rec.grammar = g
                listened[f"stapes {backend}"] = listening(rec, *long_stream(args.listen_per_kind))
                print(backend, "listening", listened[f"stapes {backend}"], flush=True)
    else:
        names = args.label or [Path(a).name for a in args.am]
        if len(names) != len(args.am):
            ap.error(f"{len(args.am)} folders but {len(names)} labels")
        for name, folder in zip(names, args.am):
            rec = Recognizer.load(folder, grammar=False)
            thr = shipped_threshold(rec, g.score_kind, args.max_far)
            base = Grammar.from_commands(load_commands(default_commands_path()), thr, score_kind=g.score_kind,
                                         units=rec.config.unit_set.name)  # fmt: skip
            for suffix, t in both_tables(rec, rows, base).items():
                results[name + suffix] = t
                print(name + suffix, t, flush=True)
    conds = sorted({r["condition"] for r in rows})
    payload = {"per_kind": args.per_kind, "kinds": list(KINDS), "seconds": 2.0, "seed0": SEED0, "results": results,
               "listening": listened}  # fmt: skip
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    md = [f"Non-speech sounds (benchmarks/nonspeech.py): {args.per_kind} clips of 2 s of each kind "
          f"({', '.join(KINDS)}; rced.nonspeech, seeds no training drew), clean and in TRAIN-voice babble at "
          f"{SNR:g} dB; the share the default grammar accepts as some command, at each chain's shipped threshold, "
          f"with the speech check `grammar recognize` ships (modulation floor {SPEECH_FLOOR}, tonal ceiling "
          f"{TONAL_CEILING}), with its floor alone and without it.",
          "", "| chain | condition | " + " | ".join(KINDS) + " | all | taken for |",
          "|---|---|" + "---|" * (len(KINDS) + 2)]  # fmt: skip
    for name, t in results.items():
        top = ", ".join(f"{c} {n}" for c, n in list(t["taken_for"].items())[:3]) or "-"
        for i, cond in enumerate(conds):
            cells = " | ".join(f"{t[cond][k]:.0%}" for k in (*KINDS, "all"))
            md.append(f"| {name if i == 0 else ''} | {cond} | {cells} | {top if i == 0 else ''} |")
    if listened:
        first = next(iter(listened.values()))
        md += ["", f"Continuous listening: `grammar listen` on {first['hours'] * 60:.0f} minutes of these kinds of "
               f"sound ({args.listen_per_kind} sounds of {LONG_S:g} s of each kind, other seeds, crossfaded; no talk). "
               "Detections per hour, with the speech check / its modulation floor alone / without it:", ""]  # fmt: skip
        md += [f"- {name}: {r['per_hour']:g} / {r['per_hour_floor_only']:g} / {r['per_hour_no_check']:g} "
               f"({r['detections']} / {r['detections_floor_only']} / {r['detections_no_check']} detections; taken for "
               f"{', '.join(r['taken_for']) or 'nothing'}); by kind of sound, detections with the check / the floor "
               "alone / none: " + ", ".join(f"{k} {a} / {b} / {c}" for k, (a, b, c) in r["by_kind"].items())
               for name, r in listened.items()]  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
