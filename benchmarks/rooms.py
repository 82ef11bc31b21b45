"""Commands heard in rooms: the shipped chain on the test commands as a microphone 0.5-3 m away hears
them in a reverberant room, quiet and in 10 dB babble.

Every test set of the chain is dry: TTS and the natural voice are synthesised, the real phrases were
recorded close. A hearing aid hears its wearer's partner across a room. Here the clean rows of the
test set (TEST-ONLY TTS voices, seed 202), of the natural TEST-ONLY voice's set and the real phrases
(the eight ALSA speaker-test phrases under a grammar of their own, the two other real recordings as
non-commands) are each heard through one of ``N_ROOMS`` simulated shoebox rooms
(:func:`rced.rooms.room_responses`: RT60 0.2-0.7 s, the whole response; rooms of a seed no training
drew), alone and with babble of TRAIN-voice talkers heard in the same rooms at 10 dB. The float chain
decides with the base grammar at the shipped threshold, as the recognition table does (no speech
check); the dry rows are the reference. Nothing here changes the shipped chain.

Writes benchmarks/results/rooms.{json,md}.
Run: python benchmarks/rooms.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from real_commands import PHRASES, recordings  # noqa: E402
from recognition import datasets, natural_dataset  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import Grammar, decode  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from rced.audio import atomic_write_results, load_audio  # noqa: E402
from rced.corpus import load_utterances, make_babble, mix, train_utterances  # noqa: E402
from rced.rooms import RT60_S, in_rooms, reverberate, room_responses  # noqa: E402

N_ROOMS, ROOM_SEED = 24, 8_080_808
SNR = 10.0
CONDITIONS = ("dry", "room", f"room, {SNR:g} dB babble")
RT60_SPLIT = 0.45  # the rows' two halves of RT60_S


def rooms_and_babble(seed: int, talkers_seed: int) -> tuple[list, list[np.ndarray]]:
    """``N_ROOMS`` rooms of ``seed``, and babble talkers (60 TRAIN-voice utterances of the plan
    ``talkers_seed``) each heard in a room of ``seed + 1``: what :func:`heard` plays its items in."""
    rooms = room_responses(N_ROOMS, 16000, seed)
    pool = in_rooms(load_utterances(train_utterances(60, talkers_seed), desc="babble"), 1.0, 16000, seed + 1)
    return rooms, pool


def heard(items: list[tuple[str | None, np.ndarray]], rooms, pool, seed: int) -> list[dict]:
    """Each (label, audio) in every condition: {label, condition, rt60, audio}; item i in room i mod
    len(rooms) (each set spread over every room), its babble drawn from a generator of ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (label, audio) in enumerate(items):
        room = rooms[i % len(rooms)]
        wet = reverberate(audio, room)[0]
        noisy = mix(wet, make_babble(len(wet), pool, rng), SNR)
        for cond, x in zip(CONDITIONS, (audio, wet, noisy)):
            out.append({"label": label, "condition": cond, "rt60": None if cond == "dry" else room.rt60, "audio": x})
    return out


def score(rows: list[dict], decided: list[tuple[str | None, float]], threshold: float) -> dict:
    """Per condition (in the rows' order): commands right and accepted, non-commands accepted, and in a
    room, commands right per RT60 half."""
    out = {}
    for cond in dict.fromkeys(r["condition"] for r in rows):
        sel = [(r, d) for r, d in zip(rows, decided) if r["condition"] == cond]
        cmd = [(r, c == r["label"] and s >= threshold) for r, (c, s) in sel if r["label"] is not None]
        nc = [s >= threshold for r, (_, s) in sel if r["label"] is None]
        res = {"accuracy": float(np.mean([ok for _, ok in cmd])), "n_commands": len(cmd),
               "far": float(np.mean(nc)) if nc else None, "n_non_commands": len(nc)}  # fmt: skip
        if cond != CONDITIONS[0]:
            for name, long in (("rt60_short", False), ("rt60_long", True)):
                part = [ok for r, ok in cmd if (r["rt60"] >= RT60_SPLIT) == long]
                res[name] = {"accuracy": float(np.mean(part)) if part else None, "n": len(part)}
        out[cond] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "rooms"))
    args = ap.parse_args(argv)
    rec = Recognizer.load()
    threshold = rec.grammar.threshold
    units, kind = rec.config.unit_set.name, rec.grammar.score_kind
    base = Grammar.from_commands(load_commands(default_commands_path()), threshold, score_kind=kind, units=units)
    phrases = Grammar.from_commands(PHRASES, threshold, score_kind=kind, units=units)
    rooms, pool = rooms_and_babble(ROOM_SEED, 4324)
    cmds, others = recordings()
    sets = {"TTS test voices": (datasets(2)[1], base), "natural voice": (natural_dataset(2), base)}
    results = {}
    for k, (name, (manifest, grammar)) in enumerate(sets.items()):
        items = [(r.label, load_audio(r.path)) for r in load_manifest(manifest) if r.extra.get("snr") == "clean"]
        results[name] = (heard(items, rooms, pool, ROOM_SEED + 10 + k), grammar)
    real = [(phrase, audio) for phrase, audio in cmds] + [(None, audio) for _, audio in others]
    results["real phrases"] = (heard(real * 3, rooms, pool, ROOM_SEED + 20), phrases)  # three rooms each
    table = {}
    for name, (rows, grammar) in results.items():
        decided = []
        for r in tqdm(rows, desc=name, unit="utt"):
            d = decode(rec.posteriors(r["audio"], 16000, name), grammar)
            decided.append((grammar.commands[grammar.command_of[d.expression]], float(d.score)))
        table[name] = score(rows, decided, threshold)
    payload = {"rooms": {"n": N_ROOMS, "seed": ROOM_SEED, "rt60_s": list(RT60_S),
                         "rt60": sorted(round(r.rt60, 3) for r in rooms)},
               "snr_db": SNR, "threshold": threshold, "results": table}  # fmt: skip
    md = [f"Commands in rooms (benchmarks/rooms.py): the clean rows of the test set (TEST-ONLY TTS voices, seed 202), "
          f"of the natural TEST-ONLY voice's set and the real phrases (the {len(PHRASES)} ALSA speaker-test phrases, "
          f"each in three rooms, under a grammar of their own; the two other real recordings as non-commands), each "
          f"heard through one of {N_ROOMS} simulated shoebox rooms (RT60 {RT60_S[0]:g}-{RT60_S[1]:g} s, talker "
          f"0.5-3 m from the microphone, the whole response), alone and with babble heard in the same rooms at "
          f"{SNR:g} dB; the float chain at the shipped threshold ({threshold:.3f}), no speech check, as the "
          f"recognition table. Commands right / non-commands accepted, and commands right in the rooms with RT60 "
          f"below and above {RT60_SPLIT:g} s.", "",
          f"| test set | condition | commands right | FAR | RT60 < {RT60_SPLIT:g} s | RT60 >= {RT60_SPLIT:g} s |",
          "|---|---|---|---|---|---|"]  # fmt: skip
    for name, per in table.items():
        for cond, r in per.items():
            far = "" if r["far"] is None else f"{r['far']:.3f} ({r['n_non_commands']})"
            halves = [f"{r[h]['accuracy']:.3f} ({r[h]['n']})" if r.get(h, {}).get("accuracy") is not None else ""
                      for h in ("rt60_short", "rt60_long")]  # fmt: skip
            md.append(f"| {name} | {cond} | {r['accuracy']:.3f} ({r['n_commands']}) | {far} | "
                      + " | ".join(halves) + " |")  # fmt: skip
    atomic_write_results(args.out, payload, md, indent=1, default=float)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
