"""Spotting in conversation: commands found, misclassified and false alarms per hour, and DET curves.

The benchmark stream (:mod:`grammar.decoding.conversation`, split ``test``): 33 minutes of talk by the
TEST-ONLY voices (flite rms, festival ked and slt, and the natural voice hibari ``heart``), turn
after turn of ordinary sentences, with 95 commands of the default grammar among them (each set
apart by a 1-2 s pause, every voice saying its share), all in babble of TRAIN-voice talkers at
10 dB. A development stream of the same make (split ``dev``: eight Kokoro speakers that no training
saw, :func:`rced.tts.kokoro_dev_voices`; 20 minutes) is where the spotter's settings (:data:`grammar.decoding.listen.LISTEN_MIN_WINDOWS`,
``LISTEN_THRESHOLD_OFFSET``) and PocketSphinx's threshold are chosen (:func:`choose`); nothing is
chosen on the benchmark stream.

Each chain hears the stream as ``grammar listen`` does (0.25-s blocks, 2-s windows every 0.25 s):
the float chain and the int8 device chain. Every window's best hit is recorded once
(:func:`grammar.decoding.listen.window_records`) and :func:`grammar.decoding.listen.replay` gives the detections at
any threshold: the DET curve (missed commands, wrong command included, against false alarms per
hour of non-command time) comes from the same decoding as the operating point. PocketSphinx
(its en-us model, the commands as keyphrases of its ``kws`` search, :mod:`pocketsphinx_peer`)
runs on the same stream at a sweep of its keyphrase threshold.

Writes benchmarks/results/spotting.{json,md} and spotting_det.png.
Run: python benchmarks/spotting.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.decoding.conversation import ConversationConfig, make_conversation  # noqa: E402
from grammar.decoding.decoder import Grammar  # noqa: E402
from grammar.decoding.demo import Scene, match, summary  # noqa: E402
from grammar.decoding.listen import (  # noqa: E402
    LISTEN_HOP_S,
    LISTEN_MIN_WINDOWS,
    LISTEN_THRESHOLD_OFFSET,
    LISTEN_WINDOW_S,
    Detection,
    PosteriorStream,
    replay,
    window_records,
)
from grammar.decoding.recognizer import Recognizer, default_grammar_path  # noqa: E402
from rced.audio import atomic_save_npy, atomic_save_png, atomic_write_text  # noqa: E402
from rced.corpus import cache_dir  # noqa: E402
from rced.tts import natural_test_voices  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
BLOCK_S = 0.25
STREAMS = {"test": ConversationConfig(), "dev": ConversationConfig(split="dev", seed=3030, minutes=20.0)}
PS_THRESHOLDS = (1e-40, 1e-30, 1e-20, 1e-15, 1e-10, 1e-5, 1e0, 1e5, 1e10)
PS_DEFAULT = 1e-20  # the keyphrase threshold of PocketSphinx's keyword-spotting examples
MAX_FA_PER_HOUR = 20.0  # the listening target: at most 20 false alarms an hour (a line on the plot)


# --------------------------------------------------------------------------- chains and their windows


def posteriors(rec: Recognizer, scene: Scene, key: str) -> np.ndarray:
    """The chain's log-posteriors of the stream, streamed in 0.25-s blocks as `grammar listen`
    reads it (cached by stream and :func:`recognition.chain_digest`)."""
    from recognition import chain_digest

    path = cache_dir() / "spotting" / f"{key}_{chain_digest(rec)}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    from tqdm import tqdm

    stream = PosteriorStream(rec)
    block = int(round(BLOCK_S * scene.sr))
    out = [stream.push(scene.noisy[i : i + block]) for i in tqdm(range(0, len(scene.noisy), block), desc=f"{key} {rec.backend}")]
    out.append(stream.flush())
    logp = np.concatenate(out).astype(np.float32)
    atomic_save_npy(path, logp)
    return logp


# --------------------------------------------------------------------------- scoring


def score(scene: Scene, dets: list[Detection]) -> dict:
    """Found / misclassified / missed / false alarms (and per hour of non-command time), overall
    and for the commands of the natural voice apart."""
    rows = match(scene.segments, dets)
    s = summary(rows)
    cmd_s = sum(g.end - g.start for g in scene.segments if g.command is not None)
    hours = (len(scene.noisy) / scene.sr - cmd_s) / 3600
    natural = {v.id for v in natural_test_voices()}
    nat = [r for r in rows if r["truth"] and r["truth"].get("voice") in natural]
    out = {"found": s["hits"], "misclassified": s["wrong"], "missed": s["missed"], "n_commands": s["n_commands"],
           "false_alarms": s["false_alarms"], "false_alarms_per_hour": round(s["false_alarms"] / hours, 1),
           "miss_rate": round(1 - s["hits"] / max(1, s["n_commands"]), 4)}  # fmt: skip
    if nat:
        out["natural_found"] = sum(r["status"] == "hit" for r in nat)
        out["natural_commands"] = len(nat)
        out["other_found"] = out["found"] - out["natural_found"]
        out["other_commands"] = out["n_commands"] - len(nat)
    return out


def sweep(records, scene: Scene, frame_s: float, min_windows: int) -> list[dict]:
    """The DET curve: the score at every distinct threshold among the windows' best hits."""
    scores = np.unique([h.score for _, h in records if h is not None])
    grid = np.quantile(scores, np.linspace(0, 1, 61)) if len(scores) > 61 else scores
    out = []
    for t in grid:
        r = score(scene, replay(records, float(t), frame_s, min_windows=min_windows))
        out.append({"threshold": round(float(t), 4), "miss_rate": r["miss_rate"], "fa_per_hour": r["false_alarms_per_hour"]})
    return out


def pocketsphinx_rows(scene: Scene, commands, key: str) -> dict:
    """PocketSphinx's counts at every threshold of PS_THRESHOLDS. Its detections (and the real-time
    factor measured with them) are cached by stream key and threshold: they do not depend on
    stapes' models, so a rerun after a new AM does not spend 15 minutes recomputing them."""
    import pocketsphinx_peer as ps

    out = {}
    for thr in PS_THRESHOLDS:
        path = cache_dir() / "spotting" / f"{key}_pocketsphinx_{thr:g}.json"
        if path.exists():
            cached = json.loads(path.read_text())
        else:
            t0 = time.perf_counter()
            spotted = [[c, float(a), float(b)] for c, a, b in ps.spot(scene.noisy, commands, thr, BLOCK_S)]
            rtf = round((time.perf_counter() - t0) / (len(scene.noisy) / scene.sr), 4)
            cached = {"detections": spotted, "real_time_factor": rtf}
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(cached))
        r = score(scene, [Detection(c, a, b, 0.0) for c, a, b in cached["detections"]])
        r["real_time_factor"] = cached["real_time_factor"]
        out[f"{thr:g}"] = r
        print("pocketsphinx", thr, r, flush=True)
    return out


# --------------------------------------------------------------------------- choosing on dev

MIN_WINDOWS_GRID = range(1, 9)
OFFSET_GRID = np.round(np.arange(-1.6, 0.301, 0.05), 2)
CHOOSE_FA_PER_HOUR = 10.0  # half the target: room for a new stream's spread
CHOOSE_MISCLASSIFIED = 0.10  # at most 2 in 20 commands taken for another


def choose(dev: dict, frame_s: float) -> tuple[dict, tuple[int, float] | None]:
    """The spotter settings (min windows, threshold offset) that find the most commands on the dev
    stream, counted on the worse of the chains, with every chain at most ``CHOOSE_FA_PER_HOUR``
    false alarms per hour and ``CHOOSE_MISCLASSIFIED`` of its commands misclassified; ties: fewer
    false alarms, then the offset nearest 0. Returns every grid point's counts and the choice."""
    grid: dict = {}
    best_key, best = None, None
    for m in MIN_WINDOWS_GRID:
        for off in OFFSET_GRID:
            res = {n: score(c["scene"], replay(c["records"], c["threshold"] + off, frame_s, min_windows=m))
                   for n, c in dev.items()}  # fmt: skip
            grid[f"{m} {off:+.2f}"] = res
            ok = all(r["false_alarms_per_hour"] <= CHOOSE_FA_PER_HOUR
                     and r["misclassified"] <= CHOOSE_MISCLASSIFIED * r["n_commands"] for r in res.values())  # fmt: skip
            if not ok:
                continue
            key = (min(r["found"] for r in res.values()), -sum(r["false_alarms"] for r in res.values()), -abs(off))
            if best_key is None or key > best_key:
                best_key, best = key, (m, float(off))
    return grid, best


def pocketsphinx_choice(dev: dict) -> str | None:
    """PocketSphinx's keyphrase threshold chosen on the dev stream by the same rule."""
    ok = {k: r for k, r in dev.items() if r["false_alarms_per_hour"] <= CHOOSE_FA_PER_HOUR
          and r["misclassified"] <= CHOOSE_MISCLASSIFIED * r["n_commands"]}  # fmt: skip
    return max(ok, key=lambda k: (ok[k]["found"], -ok[k]["false_alarms"]), default=None)


# --------------------------------------------------------------------------- report


def markdown(payload: dict) -> str:
    st, dev = payload["streams"]["test"], payload["streams"]["dev"]
    ch, sh = payload["chosen_on_dev"], payload["shipped"]
    lines = [f"Spotting in conversation (benchmarks/spotting.py): {st['seconds'] / 60:.1f} minutes of ordinary "
             f"sentences by the TEST-ONLY voices (flite rms, festival ked and slt, and the natural voice hibari "
             f"`heart`), {st['n_commands']} commands among them (each after a 1-2 s pause, every voice saying its "
             f"share), in babble at {payload['snr']:g} dB; `grammar listen`'s path (0.25-s blocks, 2-s windows every "
             f"0.25 s). Found / misclassified / missed out of the commands; false alarms per hour of non-command "
             f"time. Nothing was tuned on this stream: the spotter's settings and PocketSphinx's threshold were "
             f"chosen on a development stream of eight Kokoro speakers no training saw ({dev['seconds'] / 60:.1f} min, {dev['n_commands']} "
             f"commands; the most commands found on the worse chain at <= {CHOOSE_FA_PER_HOUR:g} false alarms per "
             f"hour and <= {CHOOSE_MISCLASSIFIED:.0%} misclassified).", "",
             "| system | found | natural voice | misclassified | missed | false alarms | per hour |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in payload["rows"].items():
        nat = f"{r['natural_found']}/{r['natural_commands']}" if "natural_found" in r else "-"
        lines.append(f"| {name} | {r['found']}/{r['n_commands']} | {nat} | {r['misclassified']} | {r['missed']} | "
                     f"{r['false_alarms']} | {r['false_alarms_per_hour']:.1f} |")  # fmt: skip
    if ch is None:
        lines += ["", "On the development stream no setting met the rule; the shipped ones are kept."]
    else:
        same = (ch["min_windows"], ch["threshold_offset"]) == (sh["min_windows"], sh["threshold_offset"])
        lines += ["", f"Chosen on the development stream: min {ch['min_windows']} windows, threshold offset "
                  f"{ch['threshold_offset']:+g}" + (" (what `grammar listen` ships)." if same else
                  f"; `grammar listen` ships min {sh['min_windows']}, {sh['threshold_offset']:+g}: update "
                  f"grammar.decoding.listen.LISTEN_MIN_WINDOWS / LISTEN_THRESHOLD_OFFSET.")]  # fmt: skip
    lines += ["", "DET curves (missed commands, wrong command included, against false alarms per hour, sweeping "
              "the threshold; + marks the rows above, 0 per hour drawn at 0.5): `benchmarks/results/spotting_det.png`. "
              "Speed of the chains: the speed section."]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(payload: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, pts in payload["det"].items():
        fa = [max(p["fa_per_hour"], 0.5) for p in pts]
        ax.plot(fa, [p["miss_rate"] for p in pts], marker="." if "sphinx" in name else None, label=name)
    for r in payload["rows"].values():
        ax.plot([max(r["false_alarms_per_hour"], 0.5)], [r["miss_rate"]], "k+", ms=9)
    ax.axvline(MAX_FA_PER_HOUR, color="0.6", ls=":", lw=1)
    ax.axhline(0.3, color="0.6", ls=":", lw=1)  # the target: at least 70 % found
    ax.set_xscale("log")
    ax.set_xlim(0.5, 5000)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false alarms per hour of conversation")
    ax.set_ylabel("missed commands (wrong command included)")
    ax.set_title("Spotting in conversation, 10 dB babble (TEST-ONLY voices)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    atomic_save_png(path, fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-pocketsphinx", action="store_true", help="leave out the PocketSphinx rows")
    ap.add_argument("--out", default=str(ROOT / "results" / "spotting"))
    args = ap.parse_args(argv)
    commands = Grammar.load(default_grammar_path()).commands
    scenes = {k: make_conversation(commands, cfg) for k, cfg in STREAMS.items()}
    keys = {k: f"{k}_{cfg.key(commands)}" for k, cfg in STREAMS.items()}  # the caches' name of each stream
    chains = {"float": Recognizer.load(), "int8": Recognizer.load(backend="int8")}
    frame_s = PosteriorStream(chains["float"]).frame_s
    runs: dict = {}
    for split, scene in scenes.items():
        for name, rec in chains.items():
            logp = posteriors(rec, scene, keys[split])
            g = rec.decoding_grammar()
            runs[split, name] = {"scene": scene, "records": window_records(logp, g, frame_s), "threshold": g.threshold}
    grid, chosen = choose({n: runs["dev", n] for n in chains}, frame_s)
    print("chosen on dev (min windows, threshold offset):", chosen, flush=True)
    settings = {"every accepted event at the grammar's threshold (before)": (1, 0.0),
                f"`grammar listen`: min {LISTEN_MIN_WINDOWS} windows, threshold {LISTEN_THRESHOLD_OFFSET:+g}":
                    (LISTEN_MIN_WINDOWS, LISTEN_THRESHOLD_OFFSET)}  # fmt: skip
    rows, det = {}, {}
    for name in chains:
        c = runs["test", name]
        for label, (m, off) in settings.items():
            r = score(c["scene"], replay(c["records"], c["threshold"] + off, frame_s, min_windows=m))
            r["threshold"] = round(c["threshold"] + off, 4)
            rows[f"stapes {name}, {label}"] = r
            det[f"stapes {name}, min {m} window{'s' if m > 1 else ''}"] = sweep(c["records"], c["scene"], frame_s, m)
    ps_choice = None
    if not args.no_pocketsphinx:
        ps_dev = pocketsphinx_rows(scenes["dev"], commands, keys["dev"])
        ps_choice = pocketsphinx_choice(ps_dev)
        ps = pocketsphinx_rows(scenes["test"], commands, keys["test"])
        rows[f"PocketSphinx kws, threshold {PS_DEFAULT:g} (its examples')"] = ps[f"{PS_DEFAULT:g}"]
        if ps_choice is not None:
            rows[f"PocketSphinx kws, threshold {ps_choice} (chosen on dev)"] = ps[ps_choice]
        det["PocketSphinx kws"] = [{"threshold": float(k), "miss_rate": r["miss_rate"], "fa_per_hour": r["false_alarms_per_hour"]}
                                   for k, r in ps.items()]  # fmt: skip
    payload = {"snr": STREAMS["test"].snr, "block_s": BLOCK_S, "window_s": LISTEN_WINDOW_S, "hop_s": LISTEN_HOP_S,
               "shipped": {"min_windows": LISTEN_MIN_WINDOWS, "threshold_offset": LISTEN_THRESHOLD_OFFSET},
               "chosen_on_dev": None if chosen is None else {"min_windows": chosen[0], "threshold_offset": chosen[1]},
               "pocketsphinx_chosen_on_dev": ps_choice,
               "streams": {k: {"config": dataclasses.asdict(STREAMS[k]), "seconds": round(len(s.noisy) / s.sr, 2),
                               "n_commands": sum(g.command is not None for g in s.segments)} for k, s in scenes.items()},
               "rows": rows, "det": det, "dev_grid": grid}  # fmt: skip
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    plot(payload, out.with_name(out.name + "_det.png"))
    md = markdown(payload)
    atomic_write_text(out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
