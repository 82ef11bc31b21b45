"""Commands spoken by real people: a user-defined grammar of the phrases in real recordings.

The recordings: the eight channel names of ALSA's speaker test (``/usr/share/sounds/alsa``, from
Debian's alsa-utils: one woman says "front left", "rear center", ...; 48 kHz), a grammar of
near-identical phrases that only the words' sounds tell apart, and the two recordings of
:func:`rced.corpus.real_recordings` (a CMU ARCTIC sentence and a short word), which are no command
of the grammar: their acceptances are false alarms. Each recording is heard clean and in
3-8-talker TRAIN-voice babble at 20, 10 and 5 dB (``--draws`` babble draws per condition).

Each AM's threshold is the one its chain would ship with: calibrated on the calibration set's
non-commands (TEST-ONLY voices, seed 101; the default commands) to the shipped FAR target, as
``benchmarks/recognition.py`` does; the phrases' grammar is spelled in the AM's units. Nothing is
tuned on these recordings. PocketSphinx (en-us model, JSGF grammar of the phrases, no rejection)
runs on the same audio.
Writes benchmarks/results/real_commands.{json,md}.
Run: python benchmarks/real_commands.py [--am FOLDER ...]
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
from grammar.dataset import load_manifest, n_independent  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, decode, far_target_for_bound  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from rced.audio import atomic_write_results  # noqa: E402
from rced.corpus import (  # noqa: E402
    ALSA_DIR,
    ALSA_PHRASES,
    alsa_recordings,
    load_utterances,
    make_babble,
    mix,
    real_recordings,
    train_utterances,
)
from rced.errors import RcedError  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from recognition import best_and_scores, datasets  # noqa: E402

ALSA, PHRASES = ALSA_DIR, ALSA_PHRASES
SNRS = (None, 20.0, 10.0, 5.0)  # None: clean


def recordings() -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(phrase, 16-kHz audio) of the speaker-test recordings, and the other real recordings (non-commands)."""
    try:
        return alsa_recordings(), real_recordings()
    except RcedError as exc:
        raise SystemExit(str(exc)) from None


def trials(draws: int, seed: int = 0) -> list[dict]:
    """Every recording in every condition: {label, name, snr, audio}."""
    cmds, others = recordings()
    pool = load_utterances(train_utterances(60, 4322), desc="babble")
    rng = np.random.default_rng(seed)
    out = []
    for label, items in ((True, cmds), (False, others)):
        for name, audio in items:
            for snr in SNRS:
                for _ in range(1 if snr is None else draws):
                    noisy = audio if snr is None else mix(audio, make_babble(len(audio), pool, rng), snr)
                    out.append({"label": name if label else None, "name": name, "snr": snr, "audio": noisy})
    return out


def shipped_threshold(rec: Recognizer, score_kind: str, max_far: float) -> float:
    """The chain's threshold as recognition.py calibrates it (calibration set, default commands)."""
    calib = [r for r in load_manifest(datasets(2)[0]) if r.label is None]
    base = Grammar.from_commands(load_commands(default_commands_path()), score_kind=score_kind,
                                 units=rec.config.unit_set.name)  # fmt: skip
    _, scores = best_and_scores(rec, calib, base, "calib_nc")
    return calibrate_threshold(scores, far_target_for_bound(max_far, n_independent(calib)))


def decide(rec: Recognizer, rows: list[dict], threshold: float, score_kind: str) -> tuple[Grammar, list]:
    """The phrases' grammar, spelled in the AM's units at ``threshold``, and its decision on every trial."""
    g = Grammar.from_commands(PHRASES, threshold, score_kind=score_kind, units=rec.config.unit_set.name)
    return g, [decode(rec.posteriors(r["audio"], 16000, r["name"]), g) for r in rows]


def table(labels, preds, snrs) -> dict:
    """Accuracy on the phrases and false alarms on the other recordings, per condition and overall."""
    out = {}
    for cond in [*SNRS, "all"]:
        idx = [i for i, s in enumerate(snrs) if cond == "all" or s == cond]
        cmd = [i for i in idx if labels[i] is not None]
        non = [i for i in idx if labels[i] is None]
        out["clean" if cond is None else str(cond)] = {
            "accuracy": float(np.mean([preds[i] == labels[i] for i in cmd])) if cmd else None,
            "false_alarms": int(sum(preds[i] is not None for i in non)), "non_commands": len(non)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", nargs="+", default=[None], help="acoustic-model folders (default: the shipped one)")
    ap.add_argument("--label", nargs="+", default=None, help="a name per folder")
    ap.add_argument("--draws", type=int, default=5, help="babble draws per recording and noisy condition")
    ap.add_argument("--max-far", type=float, default=0.10, help="FAR bound of the threshold, as recognition.py")
    ap.add_argument("--score-kind", default="len_margin")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "results" / "real_commands"))
    args = ap.parse_args(argv)
    names = args.label or ["shipped AM" if a is None else Path(a).name for a in args.am]
    if len(names) != len(args.am):
        ap.error(f"{len(args.am)} folders but {len(names)} labels")
    rows = trials(args.draws)
    labels, snrs = [r["label"] for r in rows], [r["snr"] for r in rows]
    results = {}
    for name, folder in zip(names, args.am, strict=True):
        for chain, den in (("denoiser + AM", None), ("AM only (no denoiser)", False)):
            rec = Recognizer.load(folder, denoiser=den, grammar=False)
            thr = shipped_threshold(rec, args.score_kind, args.max_far)
            g, dec = decide(rec, rows, thr, args.score_kind)
            results[f"{name}: {chain}"] = {
                "threshold": thr, "calibrated": table(labels, [d.command for d in dec], snrs),
                "no_rejection": table(labels, [g.commands[g.command_of[d.expression]] for d in dec], snrs)}  # fmt: skip
            print(name, chain, results[f"{name}: {chain}"]["calibrated"]["all"], flush=True)
    if not args.no_pocketsphinx:
        import pocketsphinx_peer as ps

        preds = [ps.recognize(r["audio"], PHRASES) for r in rows]
        results["PocketSphinx (JSGF, no rejection)"] = {"no_rejection": table(labels, preds, snrs)}
    n_cmd = sum(lab is not None for lab in labels)
    payload = {"data": f"{len(PHRASES)} ALSA speaker-test recordings (one woman, alsa-utils) and "
                       f"{len(rows) - n_cmd} non-command trials of the two other real recordings; clean and "
                       f"{args.draws} babble draws at each of 20/10/5 dB", "n_trials": len(rows), "n_commands": n_cmd,
               "phrases": list(PHRASES), "results": results}  # fmt: skip
    md = [f"Real speech (benchmarks/real_commands.py): a grammar of the {len(PHRASES)} phrases of ALSA's speaker-test "
          f"recordings (one woman: \"front left\" ... \"side right\"), each clean and with {args.draws} draws of "
          "TRAIN-voice babble at 20, 10 and 5 dB; the two other real recordings (a CMU ARCTIC sentence, a short "
          "word) in the same conditions are the non-commands. Threshold: each chain's own, calibrated on the "
          "TTS calibration set as in the commands table; nothing is tuned on these recordings. "
          "Accuracy (false alarms of the non-commands) per condition.", "",
          "| system | clean | 20 dB | 10 dB | 5 dB | all |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, res in results.items():
        for kind in ("calibrated", "no_rejection"):
            if kind not in res:
                continue
            t = res[kind]
            cells = [f"{t[c]['accuracy']:.3f} ({t[c]['false_alarms']}/{t[c]['non_commands']})"
                     for c in ("clean", "20.0", "10.0", "5.0", "all")]  # fmt: skip
            label = name if kind == "calibrated" or "no rejection" in name else f"{name}, no rejection"
            md.append(f"| {label} | " + " | ".join(cells) + " |")
    atomic_write_results(args.out, payload, md, indent=2)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
