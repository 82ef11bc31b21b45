"""Denoising evaluation: PESQ-wb, STOI, SI-SDR and their gains over the noisy input, per SNR.

Rows: each SNR over the TEST-ONLY synthetic voices, their mean ("all"), and the real human
recordings (mean over SNRs; on request each recording too); the natural TEST-ONLY voice and the
ALSA speaker-test phrases, when present, are groups of their own and never part of "all (test voices)". Columns per system:
absolute scores and deltas vs noisy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from rced.audio import DEFAULT_SR, atomic_write_results, resample
from rced.corpus import EvalItem
from rced.metrics import all_metrics
from rced.tts import natural_test_voices

METRICS = ("pesq", "stoi", "si_sdr")
System = Callable[[EvalItem], np.ndarray]


def _score(args: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    return all_metrics(*args)


def run_systems(items: list[EvalItem], systems: dict[str, System], workers: int = 2) -> dict[str, list[dict]]:
    """Enhance every item with every system, then score all outputs (metrics in parallel)."""
    from tqdm import tqdm

    out: dict[str, list[dict]] = {}
    for name, fn in systems.items():
        enhanced = [fn(it) for it in tqdm(items, desc=f"enhance: {name}", unit="utt", leave=False)]
        pairs = [(it.clean, e) for it, e in zip(items, enhanced)]
        with ProcessPoolExecutor(workers) as ex:
            scores = list(tqdm(ex.map(_score, pairs, chunksize=4), total=len(pairs), desc=f"score: {name}",
                               unit="utt", leave=False))  # fmt: skip
        out[name] = [{"name": it.name, "snr": it.snr, **s} for it, s in zip(items, scores)]
    return out


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def summarize(results: dict[str, list[dict]], noisy_key: str = "noisy", *, per_recording: bool = False) -> list[dict]:
    """Table rows: group (each SNR, all test voices, each voice, the real recordings, with
    ``per_recording`` each recording, the natural TEST-ONLY voice and the ALSA speaker-test
    phrases) x system, with means and gains over the noisy input."""
    rows = []
    base = results[noisy_key]
    natural = {v.id for v in natural_test_voices()}

    def groups(recs):
        real = [i for i, r in enumerate(recs) if r["name"].startswith("real:")]
        nat = [i for i, r in enumerate(recs) if r["name"].split("#")[0] in natural]
        alsa = [i for i, r in enumerate(recs) if r["name"].startswith("alsa:")]
        apart = set(real) | set(nat) | set(alsa)
        synth = [i for i in range(len(recs)) if i not in apart]
        for snr in sorted({recs[i]["snr"] for i in synth}):
            yield f"{snr:g} dB", [i for i in synth if recs[i]["snr"] == snr]
        yield "all (test voices)", synth
        voices = sorted({recs[i]["name"].split("#")[0] for i in synth})
        if len(voices) > 1:  # per voice: which unseen voice the model generalises to, and which not
            for v in voices:
                yield f"voice {v}", [i for i in synth if recs[i]["name"].split("#")[0] == v]
        if real:
            yield "real recordings", real
            if per_recording:
                for name in sorted({recs[i]["name"] for i in real}):
                    yield f"recording {name.removeprefix('real:')}", [i for i in real if recs[i]["name"] == name]
        if nat:
            yield "natural TEST-ONLY voice", nat
        if alsa:
            yield "ALSA speaker-test phrases", alsa

    for group, idx in groups(base):
        for system, recs in results.items():
            row = {"group": group, "system": system, "n": len(idx)}
            for m in METRICS:
                row[m] = _mean([recs[i][m] for i in idx])
                row[f"d_{m}"] = _mean([recs[i][m] - base[i][m] for i in idx])
            rows.append(row)
    return rows


def to_markdown(rows: list[dict]) -> str:
    head = "| group | system | PESQ-wb | ΔPESQ | STOI | ΔSTOI | SI-SDR dB | ΔSI-SDR |\n|---|---|---|---|---|---|---|---|\n"
    lines = [
        f"| {r['group']} | {r['system']} | {r['pesq']:.3f} | {r['d_pesq']:+.3f} | {r['stoi']:.3f} | "
        f"{r['d_stoi']:+.3f} | {r['si_sdr']:.2f} | {r['d_si_sdr']:+.2f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def shown_path(path: str | Path) -> str:
    """A model folder as result files name it: relative to the repository when inside it (the
    shipped ones), so a result reads the same on every machine; otherwise absolute."""
    p, root = Path(path).resolve(), Path(__file__).resolve().parents[1]
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def write_results(out_stem: str | Path, payload: dict, rows: list[dict], preamble: str = "") -> None:
    """Write ``<stem>.json`` and ``<stem>.md`` atomically."""
    atomic_write_results(out_stem, {**payload, "rows": rows}, preamble + to_markdown(rows), indent=2)


def standard_systems(denoiser, dtln_path: str | Path | None = None,
                     gtcrn_path: str | Path | None = None) -> dict[str, System]:  # fmt: skip
    """noisy, spectral subtraction, oracle IRM, the model (and the DTLN and GTCRN peers when given)."""
    from rced.baselines import DTLN, GTCRN, oracle_irm, spectral_subtraction

    sr = denoiser.sample_rate
    systems: dict[str, System] = {
        "noisy": lambda it: it.noisy,
        "spectral subtraction": lambda it: spectral_subtraction(it.noisy),
        "oracle IRM": lambda it: oracle_irm(it.clean, it.noisy),
        # evaluation items are at 16 kHz; a model at another rate (the `paper` preset) is scored at 16 kHz too
        f"R-CED model ({denoiser.config.arch})": lambda it: resample(denoiser.denoise(it.noisy, DEFAULT_SR), sr, DEFAULT_SR),
    }
    if dtln_path is not None:
        dtln = DTLN(dtln_path)
        systems["DTLN peer (1M params)"] = lambda it: dtln.process(it.noisy)
    if gtcrn_path is not None:
        gtcrn = GTCRN(gtcrn_path)
        systems["GTCRN peer (48K params)"] = lambda it: gtcrn.process(it.noisy)
    return systems
