"""Where stapes stands against the targets of its open issues (17: commands on natural speech and in
conversation; 18: denoisers), read from the other benchmarks' result files.

It measures nothing itself: every value comes from a table in benchmarks/results/ (named in the
row), so it is only as fresh as those; run it after them. Writes benchmarks/results/targets.{json,md}.
Run: python benchmarks/targets.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
LIGHT_MMAC_PER_S = 50.0  # issue 18: a preset within 50 MMAC/s
DEFAULT_PREFIX, DTLN_PREFIX = "R-CED default", "DTLN peer"
#: What writes each result file it reads.
PRODUCERS = {
    "denoise": "python benchmarks/denoise.py",
    "denoiser_presets": "python benchmarks/denoiser_presets.py",
    "export_bced": "python benchmarks/export.py --model rced/presets/bced --out benchmarks/results/export_bced",
    "recognition": "python benchmarks/recognition.py",
    "real_commands": "python benchmarks/real_commands.py",
    "spotting": "python benchmarks/spotting.py",
    "export": "python benchmarks/export.py",
    "bundle_report": "firmware-export build -o bundle; cp bundle/report.json benchmarks/results/bundle_report.json",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One target of an issue: what is asked, what the tables say, and whether that meets it."""

    issue: int
    what: str
    target: str
    measured: str
    met: bool
    source: str


def load(results: Path, name: str, producer: str | None = None) -> dict:
    """The result file ``name``.json; missing or unreadable, an exit naming it and what makes it."""
    path = results / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such result; make it first: {producer or PRODUCERS[name]}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not JSON ({exc.msg})") from None


def gains(rows: list[dict], group: str, system: str) -> tuple[float, float, float]:
    """(ΔPESQ, ΔSTOI, ΔSI-SDR dB) of ``system`` on ``group`` in a denoise table's rows."""
    for r in rows:
        if r["group"] == group and r["system"] == system:
            return r["d_pesq"], r["d_stoi"], r["d_si_sdr"]
    raise SystemExit(f"denoise.json: no row for {system!r} on {group!r}")


def fmt_gains(g: tuple[float, float, float]) -> str:
    return f"{g[0]:+.3f} / {g[1]:+.3f} / {g[2]:+.2f} dB"


def pct(x: float, digits: int = 1) -> str:
    return f"{x * 100:.{digits}f} %"


def meets(g: tuple[float, float, float], floor: tuple[float, float, float]) -> bool:
    return all(v >= f for v, f in zip(g, floor, strict=True))


def system_named(names, prefix: str, what: str) -> str:
    found = [n for n in names if n.startswith(prefix)]
    if not found:
        raise SystemExit(f"denoise.json: no {what} system (a name starting {prefix!r})")
    return found[0]


def denoiser_targets(denoise: dict, presets: dict, export_light: dict) -> list[Target]:
    """Issue 18: the default ahead of DTLN at the floors on TTS voices and real speech; a preset within
    50 MMAC/s at today's default's floors, small enough and int8 within 0.05 PESQ of float."""
    rows, compute = denoise["rows"], denoise["compute"]
    default = system_named(compute, DEFAULT_PREFIX, "default")
    dtln = system_named(compute, DTLN_PREFIX, "DTLN")
    groups = (("TTS test voices", "all (test voices)"), ("real recordings", "real recordings"))
    out = []
    for (label, group), floor in zip(groups, ((0.15, 0.0, 2.0), (0.16, 0.0, 3.0)), strict=True):
        g, peer = gains(rows, group, default), gains(rows, group, dtln)
        ahead = all(a > b for a, b in zip(g, peer, strict=True))
        out.append(Target(18, f"default denoiser, {label}",
                          f"≥ {floor[0]:+.2f} / ≥ 0 / ≥ {floor[2]:+.1f} dB and ahead of DTLN on all three",
                          f"{fmt_gains(g)} (DTLN {fmt_gains(peer)})", meets(g, floor) and ahead,
                          "denoise"))  # fmt: skip
    light = [s for s in denoise["stapes_models"] if compute[s]["mmac_per_second"] <= LIGHT_MMAC_PER_S]
    if not light:
        return out + [Target(18, f"a preset within {LIGHT_MMAC_PER_S:g} MMAC/s", "one shipped", "none", False, "denoise")]
    best = max(light, key=lambda s: gains(rows, "all (test voices)", s)[0])
    mmac = compute[best]["mmac_per_second"]
    for (label, group), floor in zip(groups, ((0.12, 0.0, 1.6), (0.14, 0.0, 1.9)), strict=True):
        g = gains(rows, group, best)
        out.append(Target(18, f"{best}, {mmac:.1f} MMAC/s, {label}",
                          f"≥ {floor[0]:+.2f} / ≥ 0 / ≥ {floor[2]:+.1f} dB", fmt_gains(g), meets(g, floor),
                          "denoise"))  # fmt: skip
    folder = Path(denoise["stapes_models"][best]).name
    row = next((r for r in presets["rows"] if Path(r["folder"]).name == folder), None)
    if row is None:
        out.append(Target(18, f"{best}, int8 size", "≤ 32 KB flash, ≤ 16 KB arena", "not in the presets table",
                          False, "denoiser_presets"))  # fmt: skip
    else:
        flash, arena = row["int8_flash_bytes"], row["tflm_arena_bytes"]
        out.append(Target(18, f"{best}, int8 size", "≤ 32 KB flash, ≤ 16 KB arena (TFLM)",
                          f"{flash:,} B flash, {arena:,} B arena", flash <= 32 * 1024 and arena <= 16 * 1024,
                          "denoiser_presets"))  # fmt: skip
    diff = export_light["denoiser"]["int8_minus_float"]["pesq"]
    out.append(Target(18, f"{best}, int8 against float", "mean PESQ within 0.05",
                      f"{diff['mean']:+.4f} mean, {diff['worst']:+.3f} worst mixture", abs(diff["mean"]) <= 0.05,
                      "export_bced"))  # fmt: skip
    return out


def recognition_targets(recognition: dict, real: dict, spotting: dict, export: dict, bundle: dict) -> list[Target]:
    """Issue 17: isolated commands at FAR <= 5 %, real phrases, continuous listening and the device budget."""
    out = []
    chain = "denoiser + AM"
    for label, voices, floor in (("isolated commands, TTS test voices", "TTS voices", 0.80),
                                 ("isolated commands, natural voice", "natural voice", 0.70)):  # fmt: skip
        a = recognition["natural_and_peer"][voices][chain]["all"]
        measured = f"{pct(a['accuracy'])} at FAR {pct(a['far'])} (the shipped threshold)"
        d = recognition.get("det_point", {}).get(voices, {}).get(chain)
        if d is not None:  # older result files lack it
            measured += f"; {pct(d['accuracy'])} at FAR {pct(d['far'])} on the test set's own DET curve"
        out.append(Target(17, label, f"≥ {pct(floor, 0)} right at FAR ≤ 5 %", measured,
                          a["accuracy"] >= floor and a["far"] <= 0.05, "recognition"))  # fmt: skip
    r = real["results"][f"shipped AM: {chain}"]["calibrated"]["all"]
    out.append(Target(17, "real recordings, a grammar of their own phrases", "≥ 85 % right",
                      f"{pct(r['accuracy'])}, {r['false_alarms']} of {r['non_commands']} non-commands accepted",
                      r["accuracy"] >= 0.85, "real_commands"))  # fmt: skip
    for backend in ("float", "int8"):
        name = next((k for k in spotting["rows"] if k.startswith(f"stapes {backend}, `grammar listen`")), None)
        if name is None:
            raise SystemExit(f"spotting.json: no row of the shipped listener ({backend})")
        s = spotting["rows"][name]
        n = s["n_commands"]
        ok = s["found"] >= 0.7 * n and s["misclassified"] <= 0.1 * n and s["false_alarms_per_hour"] <= 20
        out.append(Target(17, f"listening in conversation at 10 dB ({backend})",
                          "≥ 70 % found, ≤ 2 in 20 misclassified, ≤ 20 false alarms an hour",
                          f"{s['found']}/{n} found ({pct(s['found'] / n, 0)}), {s['misclassified']} misclassified, "
                          f"{s['false_alarms_per_hour']:g} an hour", ok, "spotting"))  # fmt: skip
    am = next((m for m in bundle["models"] if m["name"] == "am"), None)
    if am is None:
        raise SystemExit("bundle_report.json: no am model")
    out.append(Target(17, "int8 AM on the device", "≤ 256 KB flash, ≤ 96 KB arena (TFLM)",
                      f"{am['flash_bytes']:,} B flash, {am['arena_bytes']:,} B arena",
                      am["flash_bytes"] <= 256 * 1024 and am["arena_bytes"] <= 96 * 1024, "bundle_report"))  # fmt: skip
    f, i = export["chain"]["float"], export["chain"]["int8"]
    gap = f["accuracy"] - i["accuracy"]
    out.append(Target(17, "int8 chain against float", "within 2 points",
                      f"{pct(i['accuracy'])} against {pct(f['accuracy'])} ({abs(gap) * 100:.1f} points "
                      f"{'below' if gap > 0 else 'above'})", abs(gap) <= 0.02 + 1e-9,
                      "export"))  # fmt: skip
    return out


def markdown(targets: list[Target]) -> str:
    met = sum(t.met for t in targets)
    lines = [f"Targets of the open issues, as the result tables stand (`python benchmarks/targets.py`): {met} of "
             f"{len(targets)} met. Denoiser gains are ΔPESQ / ΔSTOI / ΔSI-SDR against the noisy input.",
             "", "| issue | what | target | measured | met | table |", "|---|---|---|---|---|---|"]  # fmt: skip
    for t in targets:
        lines.append(f"| {t.issue} | {t.what} | {t.target} | {t.measured} | {'yes' if t.met else '**no**'} | "
                     f"`benchmarks/results/{t.source}.md` |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the result files it reads")
    ap.add_argument("--out", type=Path, default=RESULTS / "targets", help="results path without suffix")
    args = ap.parse_args(argv)
    from rced.audio import atomic_write_results

    res = {name: load(args.results, name) for name in PRODUCERS}
    targets = (denoiser_targets(res["denoise"], res["denoiser_presets"], res["export_bced"])
               + recognition_targets(res["recognition"], res["real_commands"], res["spotting"], res["export"],
                                     res["bundle_report"]))  # fmt: skip
    text = markdown(targets)
    atomic_write_results(args.out, {"targets": [dataclasses.asdict(t) for t in targets]}, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
