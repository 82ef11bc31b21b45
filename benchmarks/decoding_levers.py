"""Decoding-time levers for natural speech: can the shipped AM's outputs be read better at test time?

On natural and real speech the shipped chain loses most commands to rejection, not to the wrong
command (the shipped AM section). These levers change only how the chain reads the AM, no
training: they cost the device a few operations per frame.

- *posteriors x a, blank - b*: log-posteriors scaled by ``a`` (a temperature of 1/a) and the
  blank's lowered by ``b`` nats, renormalised, before the grammar decoder (a CTC blank penalty).
- *confusion-smoothed*: the posteriors p[t] read as (1 - e) p[t] + e C p[t] before the readout, where
  row c of C is the AM's mean posterior over the frames a Viterbi CTC alignment gives to symbol c
  on TRAIN-voice speech it never trained on (:func:`aligned_confusion`; the blank's row kept): an
  expression then pays less for the symbols the AM usually hears in place of its own.
- *utterance mean*: the normalised log-mel features of each utterance shifted by ``alpha`` times
  the gap between their mean over its louder 60 % of frames and the same mean over the calibration
  set (a partial cepstral mean normalisation against speaker and channel).

Every row reads the AM's own posteriors (its config's readout set aside), so the shipped readout
(``AMConfig.posterior_scale`` / ``blank_penalty``, marked) is one row among the others. Each setting
gets its own threshold on the calibration set's non-commands (TEST-ONLY TTS voices,
seed 101; FAR <= 10 % with 95 % confidence, the shipped rule of benchmarks/recognition.py), and
its commands right there are the number a lever would be chosen by; it replaces the shipped
readout only when it beats it beyond chance on the same commands (:func:`beats`, McNemar's paired
test at 5 %): two mixings of the same voices once put two readouts first in turn, by less than the
noise between them; and not when it accepts more non-speech beyond chance (the same test on a dev set
of :mod:`rced.nonspeech` clips, seeds of their own, clean and in babble, each with the shipped speech
check): a readout that finds more commands by taking hum and music for them is no better. At that
threshold, for
information (nothing is chosen on them): the test set (seed 202), the natural TEST-ONLY voice and
the real phrases of benchmarks/real_commands.py under a grammar of their own.
Writes benchmarks/results/decoding_levers.{json,md}; ``--apply`` writes the chosen posterior readout
into the AM's config.json (then the thresholds and everything after them are recalibrated:
``bash scripts/ship_am.sh grammar/default_am 3``).
Run: python benchmarks/decoding_levers.py [--apply]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from grammar.acoustic.features import speech_modulation, tonality, with_trackers  # noqa: E402
from grammar.alphabet import BLANK_ID, encode  # noqa: E402
from grammar.augment.dictionary import DICTIONARY_SEED, train_voice_posteriors  # noqa: E402
from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.config import AMConfig  # noqa: E402
from grammar.dataset import load_manifest, n_independent  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, decode, far_target_for_bound  # noqa: E402
from grammar.decoding.listen import ctc_align  # noqa: E402
from grammar.decoding.recognizer import Recognizer, log_softmax, read_posteriors  # noqa: E402
from grammar.metrics import MCNEMAR_CHI2, beats, clustered_mcnemar, discordant  # noqa: E402
from rced.audio import atomic_write_results, load_audio  # noqa: E402
from rced.config import load_json, save_json  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from nonspeech import clips  # noqa: E402
from real_commands import PHRASES, trials  # noqa: E402
from recognition import accuracy_at, datasets, natural_dataset  # noqa: E402

LOUD_SHARE = 0.6  # frames whose mean log-mel is above the 40th percentile of the utterance's


@dataclass(frozen=True)
class Lever:
    """One setting: posteriors scaled by ``scale`` with the blank lowered by ``blank``; features
    shifted by ``alpha`` of their utterance mean's gap to the calibration mean."""

    name: str
    scale: float = 1.0
    blank: float = 0.0
    alpha: float = 0.0
    confusion: float = 0.0


LEVERS = (Lever("the AM as it is"),
          *(Lever(f"posteriors x {a:g}, blank - {b:g}", scale=a, blank=b)
            for a in (1.0, 1.4, 2.0) for b in (0.0, 0.5, 1.0) if (a, b) != (1.0, 0.0)),
          *(Lever(f"posteriors x 3, blank - {b:g}", scale=3.0, blank=b) for b in (1.0, 2.0)),
          *(Lever(f"confusion-smoothed {e:g}, then x 2, blank - 1", scale=2.0, blank=1.0, confusion=e)
            for e in (0.1, 0.3)),
          *(Lever(f"utterance mean, alpha {al:g}", alpha=al) for al in (0.3, 0.6)))  # fmt: skip
#: TRAIN-voice utterances (each clean and in babble) whose alignments make the confusion matrix
CONFUSION_UTTS = 600
#: The non-speech dev clips: per kind, clean and in babble, from seeds of their own (training's
#: negatives draw below 1,000,000, benchmarks/nonspeech.py from 5,000,000)
NONSPEECH_PER_KIND, NONSPEECH_SEED0 = 20, 3_000_000


def aligned_confusion(items) -> np.ndarray:
    """(V, V) confusion of an AM from (reference text, log-posteriors) items: row c is the mean
    posterior over the frames the Viterbi CTC alignment of the reference gives to symbol c (the blank
    included); a symbol never aligned keeps a one-hot row. Items whose text cannot fit are skipped."""
    total, count = None, None
    for text, logp in items:
        logp = np.asarray(logp, np.float64)
        if total is None:
            total, count = np.zeros((logp.shape[1], logp.shape[1])), np.zeros(logp.shape[1])
        label = encode(text)
        path = ctc_align(logp, label)
        if path is None:
            continue
        sym = np.where(path < 0, BLANK_ID, label[np.maximum(path, 0)])
        np.add.at(total, sym, np.exp(logp))
        np.add.at(count, sym, 1.0)
    if total is None:
        raise SystemExit("aligned_confusion: no utterances")
    eye = np.eye(len(count))
    return np.where(count[:, None] > 0, total / np.maximum(count, 1.0)[:, None], eye)


def smooth(logp: np.ndarray, confusion: np.ndarray, weight: float) -> np.ndarray:
    """Log of (1 - weight) p + weight C p per frame (C: :func:`aligned_confusion`, its blank row
    replaced by the identity's, so silence is read as it is), renormalised."""
    mix = (1.0 - weight) * np.eye(len(confusion)) + weight * confusion
    mix[BLANK_ID] = np.eye(len(confusion))[BLANK_ID]
    with np.errstate(divide="ignore"):
        return log_softmax(np.log(np.exp(logp) @ mix.T))


def loud_mean(feats: np.ndarray) -> np.ndarray:
    """Mean over the utterance's louder frames (``LOUD_SHARE`` of them) of (frames, mels) features."""
    level = feats.mean(axis=1)
    return feats[level >= np.percentile(level, 100 * (1 - LOUD_SHARE))].mean(axis=0)


def log_posteriors(rec: Recognizer, feats: np.ndarray, lever: Lever, ref_mean: np.ndarray,
                   confusion: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The AM's log-posteriors of one utterance's features, read through ``lever`` (``confusion``:
    the matrix of a confusion-smoothed lever)."""
    if lever.alpha:
        feats = feats - lever.alpha * (loud_mean(feats) - ref_mean)
    feats = with_trackers(feats, rec.config)[0]  # the AM's input, after the lever moved the bands
    pad = (-len(feats)) % rec.config.stride
    if pad:
        feats = np.concatenate([feats, np.repeat(feats[-1:], pad, axis=0)])
    readout = dataclasses.replace(rec.config, posterior_scale=lever.scale, blank_penalty=lever.blank)
    logp = rec.log_posteriors(feats)  # rec reads the AM as it is (main)
    if lever.confusion:
        if confusion is None:
            raise ValueError(f"lever {lever.name!r} needs a confusion matrix")
        logp = smooth(logp, confusion, lever.confusion)
    return read_posteriors(logp, readout)


def nonspeech_set(rec: Recognizer) -> tuple[list[np.ndarray], list[bool]]:
    """The non-speech dev clips' features and whether each passes the shipped speech check (which
    reads the features, not the posteriors: the same under every lever)."""
    feats, passes = [], []
    for clip in tqdm(clips(NONSPEECH_PER_KIND, NONSPEECH_SEED0), desc="non-speech"):
        f = rec.features(clip["audio"], 16000, clip["kind"])
        levels, tonal = rec.speech_tracks(f)
        feats.append(f)
        passes.append(bool(rec.sounds_like_speech(speech_modulation(levels), tonality(tonal))))
    return feats, passes


def evaluate(rec, lever, sets, grammars, target_far, ref_mean, test_far: float | None = None,
             confusion: np.ndarray | None = None, nonspeech: tuple[list, list] | None = None) -> dict:  # fmt: skip
    """Calibration accuracy at the lever's own threshold, and every other set's at it; with
    ``test_far``, also the test set's accuracy at the threshold its own non-commands put at that FAR
    (a point of its DET curve: levers compared at equal test false alarms, a diagnostic only); with
    ``nonspeech`` (:func:`nonspeech_set`), the share of its clips accepted as a command there."""
    decided = {}
    for name, (_, feats) in sets.items():
        decided[name] = [decode(log_posteriors(rec, f, lever, ref_mean, confusion), grammars[name]) for f in feats]
    labels = sets["calibration"][0]
    thr = calibrate_threshold(np.array([d.score for d, lab in zip(decided["calibration"], labels) if lab is None]),
                              target_far)  # fmt: skip
    out = {"threshold": float(thr)}
    for name, (labels, _) in sets.items():
        g = grammars[name]
        ok = [g.commands[g.command_of[d.expression]] == lab for d, lab in zip(decided[name], labels)]
        s = np.array([d.score for d in decided[name]])
        cmd = np.array([lab is not None for lab in labels])
        out[name] = accuracy_at(ok, s, cmd, thr)
        if name == "calibration":  # each command right and accepted: what the paired rule compares
            out["calibration_right"] = [bool(k and v >= thr) for k, v, c in zip(ok, s, cmd) if c]
        if name == "test" and test_far is not None:
            r = accuracy_at(ok, s, cmd, calibrate_threshold(s[~cmd], test_far))
            out["test_at_equal_far"] = {"accuracy": r["accuracy"], "far": r["far"]}
    if nonspeech is not None:
        g = grammars["calibration"]
        taken = [bool(ok and decode(log_posteriors(rec, f, lever, ref_mean, confusion), g).score >= thr)
                 for f, ok in zip(*nonspeech)]  # fmt: skip
        out["non-speech"] = {"accepted": float(np.mean(taken)), "n": len(taken)}
        out["nonspeech_accepted"] = taken
    return out


def replaces(right: list[bool], shipped_right: list[bool], taken: list[bool], shipped_taken: list[bool]) -> bool:
    """Whether a readout replaces the shipped one: more of the same calibration commands right beyond
    chance (``right``: each command right and accepted), and not more of the same non-speech clips
    accepted beyond chance (``taken``); McNemar's paired test at 5 % (:func:`beats`) for both."""
    return beats(right, shipped_right) and not beats(taken, shipped_taken)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", default=None, help="acoustic-model folder (default: the shipped one)")
    ap.add_argument("--max-far", type=float, default=0.10, help="FAR bound of the threshold, as recognition.py")
    ap.add_argument("--draws", type=int, default=5, help="babble draws per real recording and noisy condition")
    ap.add_argument("--out", default=str(ROOT / "results" / "decoding_levers"))
    ap.add_argument("--apply", action="store_true",
                    help="write the chosen posterior readout into the AM's config.json")  # fmt: skip
    args = ap.parse_args(argv)
    rec = Recognizer.load(args.am, grammar=False)
    shipped_readout = rec.config.readout
    rec.config = rec.config.without_readout()  # rows are absolute
    read = next((lv for lv in LEVERS if not lv.alpha and (lv.scale, lv.blank) == shipped_readout), None)
    if read is None:
        a, b = shipped_readout
        read = Lever(f"posteriors x {a:g}, blank - {b:g}", scale=a, blank=b)
    levers = [read, *(lv for lv in LEVERS if lv != read)]  # the shipped readout first: its test FAR is the reference
    units = rec.config.unit_set.name
    commands = load_commands(default_commands_path())
    shipped = Grammar.load(Path(__file__).resolve().parents[1] / "grammar" / "data" / "grammar_default.json")
    calib_m, test_m = datasets(2)
    calib, test, natural = load_manifest(calib_m), load_manifest(test_m), load_manifest(natural_dataset(2))
    target_far = far_target_for_bound(args.max_far, n_independent([r for r in calib if r.label is None]))
    sets = {}
    for name, rows in (("calibration", calib), ("test", test), ("natural voice", natural)):
        sets[name] = ([r.label for r in rows],
                      [rec.features(load_audio(r.path), 16000, str(r.path)) for r in tqdm(rows, desc=name)])  # fmt: skip
    real = trials(args.draws)
    sets["real phrases"] = ([r["label"] for r in real],
                            [rec.features(r["audio"], 16000, r["name"]) for r in tqdm(real, desc="real phrases")])  # fmt: skip
    base = Grammar.from_commands(commands, score_kind=shipped.score_kind, units=units)
    grammars = {"calibration": base, "test": base, "natural voice": base,
                "real phrases": Grammar.from_commands(PHRASES, score_kind=shipped.score_kind, units=units)}  # fmt: skip
    ref_mean = np.mean([loud_mean(f) for f in sets["calibration"][1]], axis=0)
    confusion = None
    if any(lv.confusion for lv in levers):  # the AM's own posteriors (no readout) on TRAIN-voice speech
        confusion = aligned_confusion(train_voice_posteriors(rec, CONFUSION_UTTS, DICTIONARY_SEED, desc="confusion"))
    nonspeech = nonspeech_set(rec)
    results = []
    for lever in tqdm(levers, desc="levers"):
        test_far = results[0]["test"]["far"] if results else None
        results.append({"lever": lever.name, "scale": lever.scale, "blank": lever.blank, "alpha": lever.alpha,
                        "confusion": lever.confusion, "shipped": lever == read,
                        **evaluate(rec, lever, sets, grammars, target_far, ref_mean, test_far, confusion, nonspeech)})  # fmt: skip
    results[0]["test_at_equal_far"] = dict(results[0]["test"])
    best = max(results, key=lambda r: r["calibration"]["accuracy"])
    right = {r["lever"]: r.pop("calibration_right") for r in results}
    taken = {r["lever"]: r.pop("nonspeech_accepted") for r in results}
    first = best["lever"]  # the calibration set's best; it replaces the shipped readout only beyond chance
    shipped_right, shipped_taken = right[results[0]["lever"]], taken[results[0]["lever"]]
    b, c = discordant(right[first], shipped_right)
    units = [(r.extra.get("voice"), r.extra.get("text")) for r in calib if r.label is not None]  # as n_independent
    clustered = clustered_mcnemar(right[first], shipped_right, units)
    nb, nc = discordant(taken[first], shipped_taken)
    more_nonspeech = beats(taken[first], shipped_taken)
    if not replaces(right[first], shipped_right, taken[first], shipped_taken):
        best = results[0]
    chosen = best["lever"]
    payload = {"data": {"calibration": str(calib_m), "test": str(test_m), "natural": str(natural_dataset(2)),
                        "real_trials": len(real), "max_far": args.max_far, "target_far": target_far,
                        "confusion_utterances": {"n": CONFUSION_UTTS, "seed": DICTIONARY_SEED,
                                                 "conditions": "each clean and in babble at 5-20 dB"}},
               "score_kind": shipped.score_kind, "chosen_on_calibration": chosen, "first_on_calibration": first,
               "first_against_shipped": {"only_first_right": b, "only_shipped_right": c, "clustered_chi2": clustered,
                                         "nonspeech_only_first": nb, "nonspeech_only_shipped": nc},
               "results": results}  # fmt: skip
    names = list(sets)
    md = [f"Decoding-time levers on the shipped chain (benchmarks/decoding_levers.py): each setting's threshold "
          f"calibrated on the calibration set's {results[0]['calibration']['n_non_commands']} non-commands (TEST-ONLY "
          f"TTS voices, seed 101; target FAR {target_far:.3f}, the shipped rule), commands right at it on the "
          f"calibration set (the choosing number), and at the same threshold, for information only: the test set "
          f"(seed 202), the natural TEST-ONLY voice (hibari `heart`) and the real phrases (ALSA speaker test, "
          f"clean and in babble, a grammar of its {len(PHRASES)} phrases; the other real recordings as "
          f"non-commands). Accuracy / FAR per set. Column 'test at equal FAR', a diagnostic: the test set at the threshold its "
          f"own non-commands put at the shipped readout's test FAR (levers compared at equal test false alarms). "
          f"Every row reads the AM's own posteriors; the shipped readout is marked. The confusion matrix: "
          f"{CONFUSION_UTTS} TRAIN-voice utterances (seed {DICTIONARY_SEED}, the dictionary's), each clean and in "
          f"babble at 5-20 dB. Non-speech: the share of {len(nonspeech[0])} dev clips (rced.nonspeech, "
          f"{NONSPEECH_PER_KIND} of each kind from seed {NONSPEECH_SEED0:,} on, clean and in babble at 10 dB, "
          f"the shipped speech check applied) accepted as a command at the lever's threshold. "
          f"Chosen on the calibration set: **{chosen}**" + ("." if first == chosen else (
              f" (first there: {first}, not beyond chance against the shipped readout on the same commands: "
              f"{b} right only with it, {c} only with the shipped one; McNemar at 5 %)."
              if not more_nonspeech else
              f" (first there: {first}, {b} commands right only with it and {c} only with the shipped readout, "
              f"but it accepts more of the non-speech clips beyond chance: {nb} only with it, {nc} only with the "
              f"shipped one; McNemar at 5 %).")) + (
              "" if first == results[0]["lever"] else
              f" For information: counting each voice's text once in all its conditions and renditions (as the "
              f"FAR bound does), the clustered McNemar statistic of the first against the shipped readout is "
              f"{clustered:.1f} (beyond chance above {MCNEMAR_CHI2})."), "",
          "| lever | threshold | " + " | ".join(names) + " | test at equal FAR | non-speech accepted |",
          "|---|---|" + "---|" * (len(names) + 2)]  # fmt: skip
    for r in results:
        cells = [r[n] for n in names] + [r["test_at_equal_far"]]
        md.append(f"| {r['lever']}{' (shipped)' if r['shipped'] else ''} | {r['threshold']:.3f} | "
                  + " | ".join(f"{c['accuracy']:.3f} / {c['far']:.3f}" for c in cells)
                  + f" | {r['non-speech']['accepted']:.3f} |")  # fmt: skip
    atomic_write_results(args.out, payload, md, indent=2)
    print("\n".join(md))
    if args.apply:
        if best["alpha"] or best["confusion"]:
            print(f"--apply: the chosen lever ({chosen}) is not a posterior readout; config.json left as it is")
            return 0
        path = Path(rec.path) / "config.json"
        readout = {"posterior_scale": None if best["scale"] == 1.0 else best["scale"],
                   "blank_penalty": None if best["blank"] == 0.0 else best["blank"]}  # fmt: skip
        save_json(dataclasses.replace(load_json(AMConfig, path), **readout), path)
        print(f"wrote the readout {chosen} into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
