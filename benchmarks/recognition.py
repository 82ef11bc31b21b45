"""Recognition benchmark: character error rate of the AM and command accuracy of the chain.

CER: greedy decoding of TEST-ONLY-voice sentences, clean and in babble at 10 and 5 dB, with
and without the denoiser. Commands: the 20 default commands and non-commands from the
TEST-ONLY voices (clean, 20, 10, 5 dB); the rejection threshold of each chain is calibrated
on a separate data set (other utterances of the same voices, seed 101) to a target FAR, and
measured on the test set (seed 202). Writes benchmarks/results/recognition.{json,md} and a
DET-style PNG. The natural TEST-ONLY voice (hibari ``heart``) has a test set of its own (seed 202, the same
make), scored at the thresholds calibrated on the other voices (nothing is calibrated on it), and
PocketSphinx (its en-us model, a JSGF grammar of the commands, no rejection: :mod:`pocketsphinx_peer`)
is a row on both test sets.
Run: python benchmarks/recognition.py
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest, make_dataset, n_independent  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, decode, far_target_for_bound  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from grammar.metrics import char_error_rate, det_curve, metrics_by_group, plot_det  # noqa: E402
from rced.audio import atomic_save_npz, atomic_write_results, load_audio  # noqa: E402
from rced.corpus import cache_dir, load_utterances, make_babble, mix, rms, test_utterances, train_utterances  # noqa: E402
from rced.tts import audio_revision, natural_test_voices, test_voices  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def dataset_folder(name: str) -> Path:
    """The cache folder of a synthesized data set: under the speech's :func:`rced.tts.audio_revision`
    (its babble talkers include Piper), so a set built from older audio is never reused."""
    return cache_dir() / "datasets" / audio_revision() / name


def datasets(reps: int) -> tuple[Path, Path]:
    """Calibration (seed 101) and test (seed 202) manifests from the TEST-ONLY voices (cached).

    The calibration set has three times the test set's non-commands (30 random and 30 near-miss
    texts per voice): false alarms come in clusters (one near-miss text in all four conditions),
    so the threshold needs many distinct texts more than many utterances.
    """
    commands = load_commands(default_commands_path())
    out = []
    for name, seed, n_nc in (("calib", 101, 30), ("test", 202, 10)):
        suffix = "" if n_nc == 10 else f"_nc{n_nc}"
        folder = dataset_folder(f"commands_{name}_r{reps}_s{seed}{suffix}")
        manifest = folder / "manifest.csv"
        if not manifest.exists():
            make_dataset(folder, commands, test_voices(), n_command_reps=reps, n_random=n_nc, n_near_miss=n_nc, seed=seed)
        out.append(manifest)
    return out[0], out[1]


def natural_dataset(reps: int) -> Path:
    """The natural TEST-ONLY voice's test set (seed 202, as the test set of :func:`datasets`; cached)."""
    commands = load_commands(default_commands_path())
    folder = dataset_folder(f"commands_natural_r{reps}_s202")
    manifest = folder / "manifest.csv"
    if not manifest.exists():
        make_dataset(folder, commands, natural_test_voices(), n_command_reps=reps, n_random=10, n_near_miss=10, seed=202)
    return manifest


def pocketsphinx_predictions(rows, commands) -> list[str | None]:
    """PocketSphinx's command for every row (JSGF grammar of the commands; always one when it hears any)."""
    import pocketsphinx_peer as ps
    from tqdm import tqdm

    return [ps.recognize(load_audio(r.path), commands) for r in tqdm(rows, desc="pocketsphinx")]


def chain_digest(rec: Recognizer) -> str:
    """What a chain's posteriors depend on: its backend (and a windowed AM's schedule), the AM folder's
    and the denoiser's model files and normalisation, the gain settings of the AM's front-end (so a
    change to the listener's shaping alone keeps a cache) and the readout of its posteriors."""
    h = hashlib.sha256(rec.backend.encode())
    schedule = getattr(rec.model, "schedule", None)
    if schedule is not None:  # the int8 AM's windows: posteriors cached under another schedule are stale
        h.update(schedule.encode())
    den_path = getattr(rec.denoiser, "path", None)
    for folder in (rec.path, den_path):
        for name in ("model.keras", "model_float.tflite", "model_int8.tflite", "config.json", "norm.json"):
            if folder is not None and (Path(folder) / name).exists():
                h.update((Path(folder) / name).read_bytes())
    if rec.denoiser is not None:
        h.update(json.dumps(dataclasses.asdict(rec.am_denoiser.config), sort_keys=True).encode())
    readout = getattr(rec.config, "readout", (1.0, 0.0))
    if readout != (1.0, 0.0):  # the readout in use (a benchmark may set it apart from config.json)
        h.update(json.dumps(readout).encode())
    return h.hexdigest()[:16]


def mean_posteriors(logps: list[np.ndarray]) -> np.ndarray:
    """Log of the mean posteriors of several AMs on one input (frames cut to the shortest)."""
    n = min(len(p) for p in logps)
    return np.logaddexp.reduce(np.stack([p[:n] for p in logps]), axis=0) - np.log(len(logps))


class Ensemble:
    """Several AMs in one chain, read as the mean of their posteriors frame by frame: a teacher made
    of models already trained (no device runs it). Each member keeps its own front end."""

    def __init__(self, members: list[Recognizer]):
        units, strides = {m.config.unit_set.name for m in members}, {m.config.stride for m in members}
        if len(units) != 1 or len(strides) != 1:
            raise SystemExit(f"an ensemble needs one unit set and stride, got units {sorted(units)}, strides {sorted(strides)}")
        self.members, self.config = members, members[0].config

    def posteriors(self, audio: np.ndarray, sr: int, name: str = "input") -> np.ndarray:
        return mean_posteriors([m.posteriors(audio, sr, name) for m in self.members])


def cached_posteriors(rec: Recognizer | Ensemble, rows, tag: str) -> list[np.ndarray]:
    """Log-posteriors of every row, cached by :func:`chain_digest` and the file list (an ensemble's
    from its members' caches)."""
    from tqdm import tqdm

    if isinstance(rec, Ensemble):
        per_member = [cached_posteriors(m, rows, tag) for m in rec.members]
        return [mean_posteriors(list(ps)) for ps in zip(*per_member, strict=True)]
    h = hashlib.sha256(chain_digest(rec).encode())
    h.update("\n".join(str(r.path) for r in rows).encode())
    path = cache_dir() / "posteriors" / f"{tag}_{h.hexdigest()[:16]}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return [z[f"p{i}"] for i in range(len(rows))]
    out = [rec.posteriors(load_audio(r.path), 16000, str(r.path)) for r in tqdm(rows, desc=f"posteriors {tag}")]
    atomic_save_npz(path, {f"p{i}": p for i, p in enumerate(out)})
    return out


def cer_table(recs: dict[str, Recognizer], n_per_voice: int) -> list[dict]:
    utts = test_utterances(n_per_voice, 4321)
    audio = load_utterances(utts, desc="CER speech")
    pool = load_utterances(train_utterances(60, 4322), desc="CER babble")
    rng = np.random.default_rng(0)
    conds = {"clean": [a for a in audio]}
    for snr in (10.0, 5.0):
        conds[f"{snr:g} dB"] = [mix(a / rms(a) * 0.05, make_babble(len(a), pool, rng), snr) for a in audio]
    rows = []
    for chain, rec in recs.items():
        for cond, sigs in conds.items():
            hyps = [rec.transcribe(s, 16000) for s in sigs]
            row = {"chain": chain, "condition": cond, "cer": char_error_rate([u.text for u in utts], hyps)}
            for v in test_voices():
                idx = [i for i, u in enumerate(utts) if u.voice == v]
                row[v.id] = char_error_rate([utts[i].text for i in idx], [hyps[i] for i in idx])
            rows.append(row)
    return rows


def accuracy_at(ok, scores, is_cmd, threshold: float) -> dict:
    """At ``threshold``: the share of commands right and accepted, of non-commands accepted, and of
    commands right with no rejection (``ok``: the best command is the row's label)."""
    ok, is_cmd = np.asarray(ok, bool), np.asarray(is_cmd, bool)
    accepted = np.asarray(scores) >= threshold
    return {"accuracy": float(np.mean(ok[is_cmd] & accepted[is_cmd])), "far": float(np.mean(accepted[~is_cmd])),
            "accuracy_no_rejection": float(np.mean(ok[is_cmd])),
            "n_commands": int(is_cmd.sum()), "n_non_commands": int((~is_cmd).sum())}  # fmt: skip


#: The issue's operating point for isolated commands: at most this share of non-commands accepted.
DET_FAR = 0.05


def det_point(curve: dict, max_far: float = DET_FAR) -> dict:
    """The best accuracy on a DET curve (:func:`grammar.metrics.det_curve`) at any threshold whose
    FAR is at most ``max_far`` (of equals, the one with the lowest FAR): where the test set's own
    curve crosses the target, a readout of what the scores allow, not a threshold the chain could
    have chosen without the test set."""
    far, acc = np.asarray(curve["far"]), np.asarray(curve["accuracy"])
    ok = np.nonzero(far <= max_far + 1e-12)[0]
    i = int(min(ok, key=lambda j: (-acc[j], far[j])))  # ties: the fewer false alarms
    return {"max_far": max_far, "threshold": float(curve["threshold"][i]), "accuracy": float(curve["accuracy"][i]),
            "far": float(curve["far"][i])}  # fmt: skip


def best_and_scores(rec: Recognizer, rows, grammar: Grammar, tag: str) -> tuple[list[str], np.ndarray]:
    """Best command and confidence score of every row, open grammar (posteriors cached)."""
    open_g = grammar.with_threshold(-math.inf)
    decoded = [decode(p, open_g) for p in cached_posteriors(rec, rows, tag)]
    return [d.command for d in decoded], np.asarray([d.score for d in decoded])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--am", default=None)
    ap.add_argument("--denoiser", default=None, help="denoiser model folder (default: the shipped one)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--max-far", type=float, default=0.10,
                    help="FAR bound the threshold must keep with 95%% confidence (grammar.decoding.decoder.far_target_for_bound)")
    ap.add_argument("--n-per-voice", type=int, default=10)
    ap.add_argument("--score-kind", default="len_margin", help="confidence score (grammar.decoding.decoder.SCORE_KINDS)")
    ap.add_argument("--out", default=str(ROOT / "results" / "recognition"))
    ap.add_argument("--write-default-grammar", default=None, help="save the calibrated base grammar here")
    ap.add_argument("--card", action="store_true", help="copy the tables into the AM folder's MODEL_CARD.md")
    args = ap.parse_args(argv)
    t0 = time.time()
    commands = load_commands(default_commands_path())
    base = Grammar.from_commands(commands, score_kind=args.score_kind)
    recs = {"denoiser + AM": Recognizer.load(args.am, denoiser=args.denoiser, grammar=base),
            "AM only (no denoiser)": Recognizer.load(args.am, denoiser=False, grammar=base)}  # fmt: skip
    calib_m, test_m = datasets(args.reps)
    calib, test = load_manifest(calib_m), load_manifest(test_m)
    cal_nc = [r for r in calib if r.label is None]
    n_ind = n_independent(cal_nc)
    target_far = far_target_for_bound(args.max_far, n_ind)
    results, curves, thresholds = {}, {}, {}
    for chain, rec in recs.items():  # the posterior cache key tells the chains apart (denoiser files)
        _, cal_scores = best_and_scores(rec, cal_nc, base, "calib_nc")
        thr = calibrate_threshold(cal_scores, target_far)
        thresholds[chain] = thr
        best, scores = best_and_scores(rec, test, base, "test")
        labels = [r.label for r in test]
        groups = [r.extra.get("snr") for r in test]
        preds = [b if s >= thr else None for b, s in zip(best, scores)]
        results[chain] = {"calibrated": metrics_by_group(labels, preds, groups),
                          "no_rejection": metrics_by_group(labels, best, groups)}  # fmt: skip
        curves[chain] = det_curve(labels, best, scores)
        if chain == "denoiser + AM" and args.write_default_grammar:
            base.with_threshold(thr).save(args.write_default_grammar)
    natural = load_manifest(natural_dataset(args.reps))
    peers: dict = {"TTS voices": {c: results[c]["calibrated"] for c in recs}, "natural voice": {}}
    det = {"TTS voices": {c: det_point(curves[c]) for c in recs}, "natural voice": {}}
    labels, groups = [r.label for r in natural], [r.extra.get("snr") for r in natural]
    for chain, rec in recs.items():
        best, scores = best_and_scores(rec, natural, base, "natural")
        preds = [b if s >= thresholds[chain] else None for b, s in zip(best, scores)]
        peers["natural voice"][chain] = metrics_by_group(labels, preds, groups)
        det["natural voice"][chain] = det_point(det_curve(labels, best, scores))
    for name, rows in (("TTS voices", test), ("natural voice", natural)):
        labels, groups = [r.label for r in rows], [r.extra.get("snr") for r in rows]
        peers[name]["PocketSphinx (JSGF, no rejection)"] = metrics_by_group(labels, pocketsphinx_predictions(rows, commands), groups)
    plot_det(curves, Path(args.out).with_name("recognition_det.png"),
             operating_points={c: results[c]["calibrated"]["all"] for c in recs})  # fmt: skip
    cer = cer_table(recs, args.n_per_voice)
    payload = {"data": {"calibration": str(calib_m), "test": str(test_m), "n_test": len(test),
                        "voices": [v.id for v in test_voices()], "max_far": args.max_far, "target_far": target_far,
                        "score_kind": args.score_kind},
               "thresholds": thresholds, "commands": results, "cer": cer, "natural_and_peer": peers, "det_point": det,
               "natural_test": str(natural_dataset(args.reps)),
               "seconds": round(time.time() - t0, 1)}  # fmt: skip
    md = [f"Command recognition on TEST-ONLY voices ({', '.join(payload['data']['voices'])}); "
          f"{len(test)} test utterances (20 commands x {args.reps} reps x 3 voices + 60 non-commands, each clean "
          f"and at 20/10/5 dB babble). Threshold calibrated per chain on a separate calibration set of the same voices "
          f"(its {len(cal_nc)} non-commands: {n_ind} texts, each in four conditions) to FAR "
          f"{target_far:.1%}, the largest rate whose 95% upper confidence bound stays <= {args.max_far:.0%} with one "
          f"sample per text (`grammar.decoding.decoder.far_target_for_bound`; a text false-alarms in all its conditions or in "
          f"none); confidence score "
          f"`{args.score_kind}`.", "",
          "| chain | condition | accuracy | MDR | MCR | FAR | accuracy, no rejection | FAR, no rejection |",
          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for chain, res in results.items():
        for g, m in res["calibrated"].items():
            n = res["no_rejection"][g]
            md.append(f"| {chain} | {g} | {m['accuracy'] + 0.0:.3f} | {m['mdr']:.3f} | {m['mcr']:.3f} | {m['far']:.3f} "
                      f"| {n['accuracy']:.3f} | {n['far']:.3f} |")  # fmt: skip
    md += ["", "Character error rate of greedy decoding (TEST-ONLY voices, "
           f"{args.n_per_voice} random-word sentences each):", "",
           "| chain | condition | CER | " + " | ".join(v.id for v in test_voices()) + " |",
           "|---|---|---|" + "---|" * len(test_voices())]  # fmt: skip
    for r in cer:
        md.append(f"| {r['chain']} | {r['condition']} | {r['cer']:.3f} | "
                  + " | ".join(f"{r[v.id]:.3f}" for v in test_voices()) + " |")  # fmt: skip
    conds = list(next(iter(peers["TTS voices"].values())))
    md += ["", f"The natural TEST-ONLY voice (hibari `heart`: {len(natural)} utterances of the same make) at the thresholds "
           "above (nothing calibrated on it), and PocketSphinx (en-us model, JSGF grammar of the commands, no "
           "rejection) on both test sets: accuracy (FAR) per condition.", "",
           "| test set | chain | " + " | ".join(conds) + " |", "|---|---|" + "---|" * len(conds)]  # fmt: skip
    for name, per in peers.items():
        for chain, res in per.items():
            md.append(f"| {name} | {chain} | " + " | ".join(f"{res[g]['accuracy']:.3f} ({res[g]['far']:.2f})" for g in conds) + " |")
    md += ["", f"Where each test set's own DET curve crosses FAR {DET_FAR:.0%} (all conditions): the best accuracy at any "
           "threshold that accepts at most that share of its non-commands. A readout of what the scores allow, not a "
           "threshold the chain could choose without the test set.", "",
           "| test set | chain | accuracy | FAR | threshold |", "|---|---|---|---|---|"]  # fmt: skip
    for name, per in det.items():
        for chain, d in per.items():
            md.append(f"| {name} | {chain} | {d['accuracy']:.3f} | {d['far']:.3f} | {d['threshold']:.3f} |")
    atomic_write_results(args.out, payload, md, indent=2, default=float)
    if args.card:
        from denoise import update_card

        update_card(Path(recs["denoiser + AM"].path) / "MODEL_CARD.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
