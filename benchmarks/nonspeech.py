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

Held-out alarm sounds (the shipped chains only): kinds the generator above does not make (telephone
keypad pairs, square-wave buzzers, a smoke alarm, a ringback tone, a whistle; :func:`alarm_clip`),
since the speech check's tonality measure was picked while looking at the clips above.

Continuous listening (the shipped chains only): ``grammar listen`` on a stream of longer sounds of
the same kinds (``--listen-per-kind`` of each, 10 s, other seeds, in a shuffled order joined by
0.5-s crossfades; no talk), its detections per hour with the speech check, its floor alone, and
without it.

Writes benchmarks/results/nonspeech.{json,md}.
Run: python benchmarks/nonspeech.py [--am FOLDER ... --label NAME ...] [--per-kind 40]
"""

from __future__ import annotations

import argparse
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
from rced.audio import atomic_write_results  # noqa: E402
from rced.corpus import crossfade_join, load_utterances, make_babble, mix, train_utterances  # noqa: E402
from rced.nonspeech import KINDS, at_random_level, nonspeech_clip  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from real_commands import shipped_threshold  # noqa: E402

SEED0 = 5_000_000
SNR = 10.0
LONG_S, FADE_S = 10.0, 0.5  # the listening stream's sounds and their crossfades


def clips(per_kind: int, seed0: int = SEED0) -> list[dict]:
    """Every clip, clean and in babble: {kind, condition, audio}; clip i of kind k from seed
    ``seed0 + 1000 k + i`` (another ``seed0``: another set of the same make)."""
    pool = load_utterances(train_utterances(60, 4323), desc="babble")
    rng = np.random.default_rng(seed0)
    out = []
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            x, _ = nonspeech_clip(seed0 + 1000 * k + i, kind=kind)
            out.append({"kind": kind, "condition": "clean", "audio": x})
            out.append({"kind": kind, "condition": f"{SNR:g} dB babble",
                        "audio": mix(x, make_babble(len(x), pool, rng), SNR)})  # fmt: skip
    return out


#: Held-out sounds: alarms and signals that ``rced.nonspeech`` does not make (so no training saw
#: their kind), for the speech check's tonal ceiling, whose measure was picked while looking at the
#: clips above: telephone keypad (DTMF) pairs, square-wave buzzer beeps, a smoke alarm's pulsed
#: 3 kHz, a ringback tone (440 + 480 Hz), a whistle with vibrato.
ALARM_KINDS = ("dtmf", "buzzer", "smoke alarm", "ringback", "whistle")
ALARM_SEED0 = 7_000_000


def _gate(n: int, sr: int, rng: np.random.Generator, on: tuple[float, float], off: tuple[float, float]) -> np.ndarray:
    """On/off envelope: on for ``on`` seconds (uniform), off for ``off``, from the start."""
    g, pos = np.zeros(n), 0
    while pos < n:
        length = int(rng.uniform(*on) * sr)
        g[pos : pos + length] = 1.0
        pos += length + int(rng.uniform(*off) * sr)
    return g


def alarm_clip(kind: str, seed: int, seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    """A held-out alarm sound of ``kind`` (:data:`ALARM_KINDS`) from ``seed``, at -40 to -15 dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if kind == "dtmf":
        lo, hi = rng.choice([697, 770, 852, 941]), rng.choice([1209, 1336, 1477])
        x = (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)) * _gate(n, sr, rng, (0.08, 0.2), (0.05, 0.3))
    elif kind == "buzzer":
        x = np.sign(np.sin(2 * np.pi * rng.uniform(500, 3000) * t)) * _gate(n, sr, rng, (0.05, 0.5), (0.05, 0.5))
    elif kind == "smoke alarm":
        x = np.sin(2 * np.pi * rng.uniform(2900, 3400) * t) * _gate(n, sr, rng, (0.4, 0.6), (0.1, 0.2))
    elif kind == "ringback":
        x = (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)) * _gate(n, sr, rng, (0.8, 1.2), (0.3, 0.6))
    elif kind == "whistle":
        f = rng.uniform(800, 2500) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(4, 7) * t) + rng.uniform(-0.2, 0.2) * t / seconds)
        x = np.sin(2 * np.pi * np.cumsum(f) / sr) * _gate(n, sr, rng, (0.2, 0.8), (0.1, 0.4))
    else:
        raise ValueError(f"alarm kind {kind!r} (known: {', '.join(ALARM_KINDS)})")
    return at_random_level(x, rng, -40.0, -15.0)


def alarm_clips(per_kind: int) -> list[dict]:
    """The held-out alarm sounds, clean: {kind, condition, audio}."""
    return [{"kind": kind, "condition": "clean", "audio": alarm_clip(kind, ALARM_SEED0 + 1000 * k + i)}
            for k, kind in enumerate(ALARM_KINDS) for i in range(per_kind)]  # fmt: skip


def decisions(rec: Recognizer, rows: list[dict], grammar: Grammar) -> list[tuple[str | None, float, float]]:
    """Each clip's command at the grammar's threshold (None: rejected), its speech modulation and tonality."""
    out = []
    for r in rows:
        d = rec.recognize(r["audio"], 16000, r["kind"], grammar, speech_check=False)
        out.append((d.command, d.speech_modulation, d.tonality))
    return out


def both_tables(rec: Recognizer, rows: list[dict], grammar: Grammar, kinds: tuple[str, ...] = KINDS) -> dict[str, dict]:
    """:func:`table` with the chain's speech check (as shipped), with its modulation floor alone
    (the check before the tonal ceiling) and without it."""
    dec = decisions(rec, rows, grammar)
    return {"": table(rows, [c if rec.sounds_like_speech(m, t) else None for c, m, t in dec], kinds),
            ", floor only": table(rows, [c if rec.sounds_like_speech(m) else None for c, m, _ in dec], kinds),
            ", no speech check": table(rows, [c for c, _, _ in dec], kinds)}


def long_stream(per_kind: int, sr: int = 16000) -> tuple[np.ndarray, list[str]]:
    """``per_kind`` sounds of ``LONG_S`` seconds of each kind (seeds from ``SEED0`` + 500,000 on), in a
    shuffled order, each fading into the next over ``FADE_S`` seconds; and the kind of each sound in
    order (sound i starts at i * (LONG_S - FADE_S) seconds)."""
    order = [(k, i) for k in range(len(KINDS)) for i in range(per_kind)]
    np.random.default_rng(SEED0 + 1).shuffle(order)
    sounds = [nonspeech_clip(SEED0 + 500_000 + 1000 * k + i, LONG_S, sr, kind=KINDS[k])[0] for k, i in order]
    return crossfade_join(sounds, int(FADE_S * sr)), [KINDS[k] for k, _ in order]


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


def table(rows: list[dict], preds: list[str | None], kinds: tuple[str, ...] = KINDS) -> dict:
    """Share accepted per kind (of ``kinds``) and condition, overall, and the commands they were taken for."""
    out: dict = {}
    for cond in sorted({r["condition"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["condition"] == cond]
        out[cond] = {kind: float(np.mean([preds[i] is not None for i in idx if rows[i]["kind"] == kind]))
                     for kind in kinds}  # fmt: skip
        out[cond]["all"] = float(np.mean([preds[i] is not None for i in idx]))
    taken = [p for p in preds if p is not None]
    out["taken_for"] = {c: taken.count(c) for c in sorted(set(taken), key=lambda c: (-taken.count(c), c))}
    return out


def md_table(results: dict[str, dict], kinds: tuple[str, ...]) -> list[str]:
    """Markdown rows of :func:`table` results: one line per chain and condition, per kind."""
    lines = ["| chain | condition | " + " | ".join(kinds) + " | all | taken for |", "|---|---|" + "---|" * (len(kinds) + 2)]
    for name, t in results.items():
        top = ", ".join(f"{c} {n}" for c, n in list(t["taken_for"].items())[:3]) or "-"
        conds = sorted(k for k in t if k != "taken_for")
        for i, cond in enumerate(conds):
            cells = " | ".join(f"{t[cond][k]:.0%}" for k in (*kinds, "all"))
            lines.append(f"| {name if i == 0 else ''} | {cond} | {cells} | {top if i == 0 else ''} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", nargs="+", default=None, help="acoustic-model folders to compare (default: the shipped chain)")
    ap.add_argument("--label", nargs="+", default=None, help="a name per folder")
    ap.add_argument("--per-kind", type=int, default=40, help="clips of each kind")
    ap.add_argument("--listen-per-kind", type=int, default=10, help="10-s sounds of each kind in the listening stream")
    ap.add_argument("--alarms-per-kind", type=int, default=40,
                    help="held-out alarm clips of each kind (the shipped chains only; 0: none)")
    ap.add_argument("--max-far", type=float, default=0.10, help="FAR bound of the thresholds of --am folders")
    ap.add_argument("--out", default=str(ROOT / "results" / "nonspeech"))
    args = ap.parse_args(argv)
    rows = clips(args.per_kind)
    alarms = alarm_clips(args.alarms_per_kind) if args.am is None and args.alarms_per_kind > 0 else []
    results, listened, alarm_results = {}, {}, {}
    g = Grammar.load(default_grammar_path())
    if args.am is None:
        for backend in ("float", "int8"):
            rec = Recognizer.load(backend=backend, grammar=False)
            for suffix, t in both_tables(rec, rows, g.for_backend(backend)).items():
                results[f"stapes {backend}{suffix}"] = t
                print(backend + suffix, t, flush=True)
            if alarms:
                for suffix, t in both_tables(rec, alarms, g.for_backend(backend), ALARM_KINDS).items():
                    alarm_results[f"stapes {backend}{suffix}"] = t
                    print("alarms", backend + suffix, t, flush=True)
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
    payload = {"per_kind": args.per_kind, "kinds": list(KINDS), "seconds": 2.0, "seed0": SEED0, "results": results,
               "listening": listened, "alarms_per_kind": args.alarms_per_kind if alarms else 0,
               "alarm_kinds": list(ALARM_KINDS), "alarm_seed0": ALARM_SEED0, "alarms": alarm_results}  # fmt: skip
    md = [f"Non-speech sounds (benchmarks/nonspeech.py): {args.per_kind} clips of 2 s of each kind "
          f"({', '.join(KINDS)}; rced.nonspeech, seeds no training drew), clean and in TRAIN-voice babble at "
          f"{SNR:g} dB; the share the default grammar accepts as some command, at each chain's shipped threshold, "
          f"with the speech check `grammar recognize` ships (modulation floor {SPEECH_FLOOR}, tonal ceiling "
          f"{TONAL_CEILING}), with its floor alone and without it.", "", *md_table(results, KINDS)]  # fmt: skip
    if alarm_results:
        md += ["", f"Held-out alarm sounds (`alarm_clip`: {', '.join(ALARM_KINDS)}; kinds `rced.nonspeech` does not "
               f"make, {args.alarms_per_kind} clips of 2 s of each, clean), the same way:", "",
               *md_table(alarm_results, ALARM_KINDS)]  # fmt: skip
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
    atomic_write_results(args.out, payload, md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
