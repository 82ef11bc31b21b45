"""Grammar augmentation benchmark: base vs greedy vs CEM on a split that was not searched on.

Data: the TEST-ONLY-voice command set of benchmarks/recognition.py (seed 202). For each voice,
its utterances (all SNR conditions of one utterance together) are split in halves: search on
one, test on the other. Dictionary: the shipped AM-specific pronunciation dictionary (built on
TRAIN voices). FAR target: the base grammar's FAR on the search half at its calibrated
threshold. Every grammar's threshold (base and each one the search tries) is calibrated on the
search half's non-commands plus the non-commands of the separate calibration set (seed 101,
same voices; 720 of them): with the search half's ~120 alone, the search picked grammars whose few
non-commands happened to score low, and test FAR doubled. CEM is run with 3 seeds. A ceiling row searches greedily on the test half itself (in-sample), which
no deployed grammar can do: what the acoustic model and the candidates allow. Writes benchmarks/results/augmentation.{json,md} and
benchmarks/results/augmentation_cem.png. Run: python benchmarks/augmentation.py
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.augment.candidates import DEFAULT_PER_WORD, DEFAULT_TOP_K, generate_candidates  # noqa: E402
from grammar.augment.dictionary import PronDict, default_dictionary_path  # noqa: E402
from grammar.augment.search import ScoreMatrix, augment  # noqa: E402
from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, decode  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from grammar.metrics import metrics_by_group  # noqa: E402
from rced.audio import atomic_save_png, atomic_write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from recognition import cached_posteriors, datasets  # noqa: E402


def split_halves(rows) -> tuple[list[int], list[int]]:
    """Per voice: utterance ids in order, even ones to search, odd ones to test."""
    uid = [int(re.match(r"(\d+)_", Path(r.path).name).group(1)) for r in rows]
    search, test = [], []
    for voice in sorted({r.extra.get("voice", "") for r in rows}):
        ids = sorted({u for u, r in zip(uid, rows) if r.extra.get("voice", "") == voice})
        half = {u for k, u in enumerate(ids) if k % 2 == 0}
        for i, (u, r) in enumerate(zip(uid, rows)):
            if r.extra.get("voice", "") == voice:
                (search if u in half else test).append(i)
    return search, test


def evaluate(grammar: Grammar, post, rows, idx) -> dict:
    preds = [decode(post[i], grammar).command for i in idx]
    return metrics_by_group([rows[i].label for i in idx], preds, [rows[i].extra.get("snr") for i in idx])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=None, help="candidates per command (default: grammar.augment.candidates')")
    ap.add_argument("--per-word", type=int, default=None, help="decodings per word (default: grammar.augment.candidates')")
    ap.add_argument("--target-far", type=float, default=0.05, help="for the base grammar's calibration")
    ap.add_argument("--dictionary", default=str(default_dictionary_path()))
    ap.add_argument("--out", default=str(ROOT / "results" / "augmentation"))
    ap.add_argument("--no-calib-non-commands", action="store_true",
                    help="calibrate on the search half's non-commands only (the earlier protocol)")
    args = ap.parse_args(argv)

    commands = load_commands(default_commands_path())
    rec = Recognizer.load(grammar=False)
    calib_m, test_m = datasets(2)
    rows = load_manifest(test_m)
    post = cached_posteriors(rec, rows, "test")
    s_idx, t_idx = split_halves(rows)
    labels = [r.label for r in rows]
    extra = [] if args.no_calib_non_commands else [r for r in load_manifest(calib_m) if r.label is None]
    extra_post = cached_posteriors(rec, extra, "calib_nc") if extra else []
    base = Grammar.from_commands(commands, once="")  # the search's base: each command once, as written
    open_base = base.with_threshold(-np.inf)
    dictionary = PronDict.load(args.dictionary)
    cand_kw = {k: v for k, v in (("top_k", args.top_k), ("per_word", args.per_word)) if v is not None}

    def search_set(idx: list[int]) -> tuple[list, list, float]:
        """Posteriors and labels of the rows ``idx`` plus the calibration non-commands, and the base
        grammar's threshold calibrated on all their non-commands."""
        posts = [post[i] for i in idx] + extra_post
        labs = [labels[i] for i in idx] + [None] * len(extra)
        non_scores = [decode(p, open_base).score for p, lab in zip(posts, labs) if lab is None]
        return posts, labs, calibrate_threshold(non_scores, args.target_far)

    search_post, search_labels, base_threshold = search_set(s_idx)
    base = base.with_threshold(base_threshold)
    grammars = {"base": base}
    times, histories = {}, {}
    for name, method, seed in [("greedy", "greedy", 0)] + [(f"cem seed {s}", "cem", s) for s in (0, 1, 2)]:
        t0 = time.perf_counter()
        g = augment(commands, search_post, search_labels, dictionary, method=method, budget=args.budget,
                    base_threshold=base.threshold, seed=seed, dataset=str(test_m), **cand_kw)  # fmt: skip
        times[name] = time.perf_counter() - t0
        histories[name] = g.provenance.get("history")
        grammars[name] = g
    # The ceiling: greedy searched on the test half itself (the same threshold rule, on the test half's
    # non-commands plus the calibration ones), so only the AM and the candidates limit it.
    test_post, test_labels, test_threshold = search_set(t_idx)
    ceiling = augment(commands, test_post, test_labels, dictionary, method="greedy", budget=args.budget,
                      base_threshold=test_threshold, dataset=str(test_m), **cand_kw)  # fmt: skip
    results = {n: {"search": evaluate(g, post, rows, s_idx), "test": evaluate(g, post, rows, t_idx),
                   "expressions": len(g.expressions), "threshold": g.threshold} for n, g in grammars.items()}  # fmt: skip
    cem = [results[f"cem seed {s}"]["test"]["all"] for s in (0, 1, 2)]
    summary = {
        "base_mdr_mcr": results["base"]["test"]["all"]["mdr"] + results["base"]["test"]["all"]["mcr"],
        "greedy_mdr_mcr": results["greedy"]["test"]["all"]["mdr"] + results["greedy"]["test"]["all"]["mcr"],
        "cem_mdr_mcr_mean": float(np.mean([m["mdr"] + m["mcr"] for m in cem])),
        "cem_far_mean": float(np.mean([m["far"] for m in cem])),
        "base_far": results["base"]["test"]["all"]["far"],
    }
    summary["cem_relative_cut"] = 1 - summary["cem_mdr_mcr_mean"] / max(summary["base_mdr_mcr"], 1e-12)
    ceil = evaluate(ceiling, post, rows, t_idx)["all"]
    ceil_base = ceiling.provenance["base"]
    summary["in_sample_ceiling"] = {"mdr": ceil["mdr"], "mcr": ceil["mcr"], "far": ceil["far"],
                                    "threshold": ceiling.threshold, "base_threshold": test_threshold,
                                    "relative_cut": 1 - (ceil["mdr"] + ceil["mcr"]) / max(ceil_base["mdr"] + ceil_base["mcr"], 1e-12)}  # fmt: skip
    # The bound: test-half errors of the base grammar (at the ceiling's base threshold) that any single
    # candidate fixes; no grammar from that candidate set fixes any other (ScoreMatrix.fixable).
    bounds = []
    for top_k, per_word in ((cand_kw.get("top_k", DEFAULT_TOP_K), cand_kw.get("per_word", DEFAULT_PER_WORD)),
                            (200, DEFAULT_PER_WORD), (400, 20)):  # fmt: skip
        cands = generate_candidates(tuple(commands), dictionary, top_k=top_k, per_word=per_word)
        m = ScoreMatrix.from_posteriors(test_post, test_labels, tuple(commands), cands, "len_norm")
        fixable = int(m.fixable(test_threshold).sum())
        cmd, score, ok = (a[0] for a in m.decisions(m.base_mask()))
        right_on_top = m.is_cmd & ok & (cmd == m.labels)
        errors = int((m.is_cmd & ~(right_on_top & (score >= test_threshold))).sum())
        kinds = {"right_on_top_rejected": int((right_on_top & (score < test_threshold)).sum()),
                 "other_on_top": int((m.is_cmd & ok & (cmd != m.labels)).sum())}  # fmt: skip
        bounds.append({"top_k": top_k, "per_word": per_word, "candidates": m.n_candidates, "base_errors": errors,
                       "fixable": fixable, "max_relative_cut": fixable / max(errors, 1), **kinds})  # fmt: skip
    summary["in_sample_bound"] = bounds
    _plot(histories, Path(args.out).with_name("augmentation_cem.png"))
    payload = {"data": str(test_m), "n_search": len(s_idx), "n_calib_non_commands": len(extra), "n_test": len(t_idx), "budget": args.budget,
               "search_seconds": times, "summary": summary, "results": results,
               "evals_per_second": {n: grammars[n].provenance.get("evals_per_second") for n in times}}  # fmt: skip
    md = [f"Search on {len(s_idx)} utterances, test on {len(t_idx)} others (TEST-ONLY voices, halves per voice); "
          f"budget {args.budget} extra expressions per command; FAR constraint: the base grammar's FAR on the "
          f"search half's non-commands plus {len(extra)} calibration-set non-commands, on which every "
          "grammar's threshold is calibrated.", "",
          "| grammar | expressions | threshold | test MDR | test MCR | test FAR | test accuracy | search time s |",
          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for n, r in results.items():
        m = r["test"]["all"]
        md.append(f"| {n} | {r['expressions']} | {r['threshold']:.3f} | {m['mdr']:.3f} | {m['mcr']:.3f} | {m['far']:.3f} | "
                  f"{m['accuracy']:.3f} | {times.get(n, 0.0):.2f} |")  # fmt: skip
    cut = summary["cem_relative_cut"]
    verb = f"cuts test MDR+MCR by {cut:.0%}" if cut >= 0.005 else f"does not cut test MDR+MCR ({-cut:+.1%})"
    md += ["", f"CEM (mean of 3 seeds) {verb} relative to the "
           f"base grammar ({summary['base_mdr_mcr']:.3f} -> {summary['cem_mdr_mcr_mean']:.3f}); "
           f"FAR {summary['base_far']:.3f} -> {summary['cem_far_mean']:.3f}.", "",
           f"Ceiling: greedy searched on the test half itself (in-sample, same rules and threshold calibration on "
           f"the test half's non-commands plus the calibration ones) cuts its MDR+MCR by "
           f"{summary['in_sample_ceiling']['relative_cut']:.0%} (MDR {ceil['mdr']:.3f}, MCR {ceil['mcr']:.3f}, "
           f"FAR {ceil['far']:.3f}, threshold {ceiling.threshold:.3f} against the base's {test_threshold:.3f}): an estimate of what this acoustic model and candidate set allow "
           f"(greedy is not exact).", "",
           "Bound (in-sample, the test half at that base threshold): a base error is fixable only if one candidate "
           "of the right command beats every base expression and clears the threshold, and no grammar from the "
           "candidate set fixes any other error (`grammar.augment.search.ScoreMatrix.fixable`), whatever its size:", "",
           "| candidates per command / decodings per word | candidates | base errors | fixable | largest possible cut |",
           "|---|---|---|---|---|"]  # fmt: skip
    md += [f"| {b['top_k']} / {b['per_word']} | {b['candidates']} | {b['base_errors']} | {b['fixable']} | "
           f"{b['max_relative_cut']:.0%} |" for b in bounds]  # fmt: skip
    md += ["", f"Of the {bounds[0]['base_errors']} base errors, {bounds[0]['other_on_top']} have another command's "
           f"expression most likely and {bounds[0]['right_on_top_rejected']} the right one below the threshold."]
    atomic_write_results(args.out, payload, md, indent=2, default=float)
    print("\n".join(md))
    return 0


def _plot(histories: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, h in histories.items():
        if name.startswith("cem") and h:
            ax.plot([step["best"] for step in h], label=f"{name}: best sample")
            ax.plot([step["mean"] for step in h], ":", label=f"{name}: mean")
    ax.set_xlabel("CEM iteration")
    ax.set_ylabel("search-set MDR + MCR")
    ax.legend()
    fig.tight_layout()
    atomic_save_png(path, fig, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
