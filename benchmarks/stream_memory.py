"""Memory of the streaming denoiser over a long input: does it stay flat for an hour?

1. Streaming API, one fresh process per run: a synthetic 16 kHz signal (speech-like harmonic
   bursts with pauses, in white noise; deterministic, seed 0) is generated one second at a time,
   cut into ``--block-ms`` blocks and fed to ``Denoiser.stream`` / ``Int8Denoiser.stream``; the
   enhanced blocks are consumed (energy and length summed) and dropped, so nothing of the hour is
   held. At the start (model loaded), after the warm-up and every ``--every`` minutes of audio the
   run samples its resident memory (VmRSS and VmHWM of /proc/self/status), the Python allocator's
   live blocks (``sys.getallocatedblocks``) and, in runs marked ``trace``, tracemalloc's traced
   Python heap (started after the model load; numpy buffers included, what this file's own signal
   generator and records hold left out). tracemalloc slows the stream two to three times and its
   tables count in RSS, so real-time factors and RSS growth are quoted from runs without it.
2. ``rced stream`` as a user runs it: the same signal written as a 16-bit WAV (in chunks) of
   ``--cli-minutes``; the command runs as a subprocess whose VmRSS is sampled every half second
   (peak from wait4's maxrss). ``--cli-baseline REV`` runs the ``rced`` of an older commit (git
   archive) on ``--cli-baseline-minutes`` for comparison.

Writes benchmarks/results/stream_memory.{json,md}. Run (nice, to leave the CPU to other work):
    nice -n 19 python benchmarks/stream_memory.py --cli-baseline e42585a
A run spec is BACKEND:MINUTES[:trace]; ``--minutes M`` shortens every run (a quick check);
``--runs`` or ``--cli-minutes`` with nothing after it skips that part, and ``--merge`` keeps the
existing JSON's runs that this invocation does not redo.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(REPO))  # this checkout's rced, installed or not
SR = 16000
DEFAULT_RUNS = ("float:60", "int8:60", "float:10:trace", "int8:10:trace")


def synthetic_seconds(seed: int = 0, sr: int = SR) -> Iterator[np.ndarray]:
    """Endless deterministic speech-like signal, one second (float32) at a time.

    Each second is talk (70 %) or pause: a 9-harmonic voice with a wandering f0 in 90-240 Hz
    under a 3-5 Hz syllable envelope (zero at the second's edges), always in white noise
    (speech level about 6 dB above the noise while talking). Second k depends only on (seed, k).
    """
    t = np.arange(sr) / sr
    phase, k = 0.0, 0
    while True:
        rng = np.random.default_rng([seed, k])
        f0 = rng.uniform(90, 240) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 6.3)))
        ph = phase + 2 * np.pi * np.cumsum(f0) / sr
        phase = float(ph[-1] % (2 * np.pi))
        talk = rng.random() < 0.7
        x = 0.01 * rng.standard_normal(sr)
        if talk:
            env = 0.5 * (1 - np.cos(2 * np.pi * rng.integers(3, 6) * t))
            x += 0.04 * env * sum(np.sin(h * ph) / h for h in range(1, 10))
        yield x.astype(np.float32)
        k += 1


def memory() -> dict:
    """VmRSS and VmHWM of this process in MiB (/proc/self/status)."""
    return proc_memory("self")


def proc_memory(pid) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (minutes, value) points, per hour; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    m, v = np.array(points, float).T
    return float(np.polyfit(m, v, 1)[0] * 60)


# ----------------------------------------------------------------------------------- API runs


TRACE_FRAMES = 6  # enough to see this file's frame above numpy's for what the signal generator allocates


def stream_heap_bytes(loop_line: int) -> int:
    """Live traced bytes, less what this file allocates itself (its records, its signal generator, its
    re-blocking): a trace is left out when one of its frames is in this file, other than the streaming
    loop's line. Deep traces (TensorFlow) that reach no frame of this file are kept."""
    import tracemalloc

    own = api_run.__code__.co_filename
    return sum(t.size for t in tracemalloc.take_snapshot().traces
               if not any(f.filename == own and f.lineno != loop_line for f in t.traceback))  # fmt: skip


def api_run(backend: str, minutes: float, every: float, warmup: float, block_ms: float, trace: bool) -> dict:
    """One run in this process: stream ``minutes`` of synthetic audio block by block, sampling memory."""
    import tracemalloc

    from rced.audio import rechunk
    from rced.denoiser import Denoiser
    from rced.int8 import Int8Denoiser

    t_load = time.perf_counter()
    den = Int8Denoiser.load() if backend == "int8" else Denoiser.load()
    load_s = time.perf_counter() - t_load
    block = max(1, int(round(block_ms * SR / 1000)))
    total = int(round(minutes * 60 * SR))
    marks = sorted({warmup, *np.arange(every, minutes + 1e-9, every).round(6).tolist(), minutes})
    # sampled while streaming (the last when the final block has gone in, before the generators
    # that feed it finish and free their buffers); the start before the loop
    marks = [m for m in marks if 0 < m <= minutes]
    samples: list[dict] = []
    fed = 0
    gen_s = 0.0

    def sample(minute: float) -> None:
        s = {"minute": round(minute, 4), **{k.lower() + "_mib": round(v, 2) for k, v in memory().items()},
             "py_blocks": sys.getallocatedblocks()}  # fmt: skip
        if tracemalloc.is_tracing():  # reachable memory only: garbage cycles go first
            gc.collect()
            s["traced_kib"] = round(stream_heap_bytes(loop_line) / 1024, 2)
        samples.append(s)

    def seconds() -> Iterator[np.ndarray]:
        nonlocal gen_s
        left = total
        for x in synthetic_seconds():
            if left <= 0:
                return
            t = time.perf_counter()
            x = x[:left]
            left -= len(x)
            gen_s += time.perf_counter() - t
            yield x

    def blocks() -> Iterator[np.ndarray]:
        nonlocal fed
        for x in rechunk(seconds(), block):
            fed += len(x)
            yield x

    sample(0.0)
    src, first = inspect.getsourcelines(api_run)  # the streaming loop's line: what the stream allocates is traced from it
    loop_line = first + [ln.strip() for ln in src].index("for y in den.stream(blocks()):")
    if trace:
        tracemalloc.start(TRACE_FRAMES)
        stream_heap_bytes(loop_line)  # the first snapshot's one-off costs, before the warm-up sample
    out_n, out_energy = 0, 0.0
    next_mark = 0
    t0 = time.perf_counter()
    for y in den.stream(blocks()):
        out_n += len(y)
        out_energy += float(np.dot(y, y))
        while next_mark < len(marks) and fed >= marks[next_mark] * 60 * SR:
            sample(marks[next_mark])
            next_mark += 1
    wall = time.perf_counter() - t0
    if next_mark < len(marks):  # the final mark had no output block after it
        sample(minutes)
    if trace:
        tracemalloc.stop()
    after = {k.lower() + "_mib": round(v, 2) for k, v in memory().items()}  # the stream and its feeders done
    audio_s = fed / SR
    return {"backend": backend, "minutes": minutes, "trace": trace, "block_ms": block_ms, "blocks": -(-fed // block),
            "model_load_s": round(load_s, 2), "wall_s": round(wall, 1), "signal_generation_s": round(gen_s, 1),
            "real_time_factor": round((wall - gen_s) / audio_s, 4), "output_samples": out_n, "input_samples": fed,
            "output_rms": round(float(np.sqrt(out_energy / max(out_n, 1))), 6), "warmup_minutes": warmup,
            "samples": samples, "after_stream": after}  # fmt: skip


def summarize_api(run: dict) -> dict:
    s = run["samples"]
    start, end = s[0], s[-1]
    warm = next(x for x in s if x["minute"] >= run["warmup_minutes"])
    after = [x for x in s if x["minute"] >= run["warmup_minutes"]]
    hours = (end["minute"] - warm["minute"]) / 60
    out = {"rss_start_mib": start["vmrss_mib"], "rss_warm_mib": warm["vmrss_mib"], "rss_end_mib": end["vmrss_mib"],
           "rss_peak_mib": max(x["vmhwm_mib"] for x in [*s, run.get("after_stream", end)]),
           "rss_growth_per_hour_mib": round((end["vmrss_mib"] - warm["vmrss_mib"]) / hours, 2) if hours else None,
           "rss_slope_per_hour_mib": slope_per_hour([(x["minute"], x["vmrss_mib"]) for x in after]),
           "py_blocks_warm": warm["py_blocks"], "py_blocks_end": end["py_blocks"],
           "end_sampled_after_run": "after_stream" not in run}  # fmt: skip
    if "traced_kib" in end:
        out["traced_warm_kib"], out["traced_end_kib"] = warm["traced_kib"], end["traced_kib"]
        out["traced_growth_per_hour_kib"] = round((end["traced_kib"] - warm["traced_kib"]) / hours, 2) if hours else None
    if out["rss_slope_per_hour_mib"] is not None:
        out["rss_slope_per_hour_mib"] = round(out["rss_slope_per_hour_mib"], 2)
    return out


def spawn_api_run(spec: str, args: argparse.Namespace) -> dict:
    backend, minutes, *flags = spec.split(":")
    minutes = float(args.minutes) if args.minutes else float(minutes)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--worker-minutes", str(minutes),
           "--every", str(args.every), "--warmup", str(args.warmup), "--block-ms", str(args.block_ms)]  # fmt: skip
    if "trace" in flags:
        cmd.append("--worker-trace")
    print(f"[api] {spec} ({minutes:g} min) ...", file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode:
        raise SystemExit(f"stream_memory: worker {spec} failed:\n{res.stderr[-2000:]}")
    run = json.loads(res.stdout.strip().splitlines()[-1])
    run["summary"] = summarize_api(run)
    print(f"[api] {spec}: {json.dumps(run['summary'])} rtf {run['real_time_factor']}", file=sys.stderr, flush=True)
    return run


# ----------------------------------------------------------------------------------- CLI runs


def write_wav(path: Path, minutes: float) -> None:
    """The synthetic signal as a 16-bit WAV, written one second at a time."""
    import soundfile as sf

    left = int(round(minutes * 60 * SR))
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16", format="WAV") as fh:
        for x in synthetic_seconds():
            if left <= 0:
                break
            fh.write(x[:left])
            left -= len(x[:left])


def cli_run(label: str, source: Path, wav: Path, minutes: float, backend: str, block_ms: float, tmp: Path) -> dict:
    """``python -m rced stream`` from ``source`` on ``wav``; VmRSS every 0.5 s, peak from wait4."""
    import soundfile as sf

    out = tmp / f"out_{label}_{minutes:g}.wav"
    log_out, log_err = tmp / "stdout.txt", tmp / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(source)}
    cmd = [sys.executable, "-m", "rced", "stream", str(wav), "-o", str(out), "--json", "--block-ms", str(block_ms),
           "--backend", backend]  # fmt: skip
    print(f"[cli] {label} {minutes:g} min ...", file=sys.stderr, flush=True)
    with open(log_out, "w") as fo, open(log_err, "w") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=source, env=env, stdout=fo, stderr=fe)
        trace: list[tuple[float, float]] = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = proc_memory(proc.pid).get("VmRSS")
            if rss is not None:
                trace.append((time.perf_counter() - t0, rss))
            time.sleep(0.5)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"stream_memory: {label} CLI failed:\n{log_err.read_text()[-2000:]}")
    stats = json.loads(log_out.read_text().strip().splitlines()[-1])
    frames_in, frames_out = sf.info(str(wav)).frames, sf.info(str(out)).frames
    out.unlink()

    def at(frac: float) -> float:
        return next(r for t, r in trace if t >= frac * wall) if trace else float("nan")

    r25, r_end = at(0.25), trace[-1][1] if trace else float("nan")
    res = {"label": label, "minutes": minutes, "backend": backend, "input_mib": round(wav.stat().st_size / 2**20, 1),
           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "rss_25_mib": round(r25, 1),
           "rss_50_mib": round(at(0.5), 1), "rss_last_mib": round(r_end, 1),
           "rss_growth_per_hour_from_25_mib": round((r_end - r25) / (0.75 * minutes / 60), 1),
           "wall_s": round(wall, 1), "real_time_factor": stats["real_time_factor"], "blocks": stats["blocks"],
           "output_length_ok": frames_in == frames_out,
           "rss_trace": [(round(t, 1), round(r, 1)) for t, r in trace[:: max(1, len(trace) // 200)]]}  # fmt: skip
    print(f"[cli] {label} {minutes:g} min: peak {res['peak_rss_mib']} MiB, rtf {res['real_time_factor']}",
          file=sys.stderr, flush=True)  # fmt: skip
    return res


def cli_runs(args: argparse.Namespace) -> list[dict]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="stream_memory_") as td:
        tmp = Path(td)
        wavs = {}
        for m in sorted(set(args.cli_minutes) | set(args.cli_baseline_minutes if args.cli_baseline else [])):
            wavs[m] = tmp / f"synthetic_{m:g}min.wav"
            write_wav(wavs[m], m)
        if args.cli_baseline:
            old = tmp / "baseline"
            old.mkdir()
            archive = subprocess.run(["git", "archive", args.cli_baseline, "rced"], cwd=REPO, capture_output=True,
                                     check=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            rev = subprocess.run(["git", "rev-parse", "--short", args.cli_baseline], cwd=REPO, capture_output=True,
                                 text=True, check=True).stdout.strip()  # fmt: skip
            for m in args.cli_baseline_minutes:
                runs.append(cli_run(f"before ({rev})", old, wavs[m], m, "float", args.block_ms, tmp))
        for m in args.cli_minutes:
            runs.append(cli_run("this tree", REPO, wavs[m], m, "float", args.block_ms, tmp))
    return runs


# ----------------------------------------------------------------------------------- report


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())  # fmt: skip
    return f"{model}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def _f(v, fmt="{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def to_markdown(payload: dict) -> str:
    md = [f"Synthetic 16 kHz signal ({payload['signal']}), streamed in {payload['block_ms']:g} ms blocks "
          f"on {payload['machine']} (shared with other work, run under nice 19)."]  # fmt: skip
    api = payload.get("api", [])
    cli = payload.get("cli", [])
    head = []
    for backend in ("float", "int8"):
        runs = [r for r in api if r["backend"] == backend and not r["trace"]]
        if runs:
            r = max(runs, key=lambda r: r["minutes"])
            sm = r["summary"]
            head.append(f"{backend}: RSS {sm['rss_warm_mib']:.1f} MiB after the first minute, {sm['rss_end_mib']:.1f} MiB "
                        f"after {r['minutes']:g} min ({_f(sm['rss_growth_per_hour_mib'], '{:+.1f}')} MiB/h)")  # fmt: skip
    if cli:
        head.append("`rced stream` peak RSS: " + ", ".join(f"{r['label']} {r['minutes']:g} min {r['peak_rss_mib']:.0f} MiB"
                                                          for r in cli))  # fmt: skip
    if head:
        md += ["", "**Result:** " + "; ".join(head) + "."]
    if api:
        md += ["", "Streaming API, one fresh process per run; the output is consumed block by block and dropped. "
               "Warm-up = the first minute of audio; end = the sample taken when the last block has gone in; "
               "growth = (end - after warm-up) per hour of audio; peak = VmHWM after the run. "
               "Python heap = tracemalloc's live traced bytes (numpy buffers included; started after the model "
               "load; what the benchmark's own signal generator and records hold left out). tracemalloc slows "
               "the stream two to three times and its tables count in RSS, so real-time factors and RSS growth "
               "come from the runs without it.", "",
               "| backend | audio min | tracemalloc | RSS start MiB | after warm-up | end | peak | "
               "RSS growth MiB/h | Python heap growth KiB/h | real-time factor |",
               "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in api:
            s = r["summary"]
            md.append(f"| {r['backend']} | {r['minutes']:g} | {'on' if r['trace'] else 'off'} | "
                      f"{s['rss_start_mib']:.1f} | {s['rss_warm_mib']:.1f} | {s['rss_end_mib']:.1f}"
                      f"{' *' if s.get('end_sampled_after_run') else ''} | "
                      f"{s['rss_peak_mib']:.1f} | {_f(s['rss_growth_per_hour_mib'], '{:+.1f}')} | "
                      f"{_f(s.get('traced_growth_per_hour_kib'), '{:+.1f}')} | "
                      f"{r['real_time_factor']:.3f}{' (traced)' if r['trace'] else ''} |")  # fmt: skip
        traced = [r for r in api if r["trace"]]
        if traced:
            md += ["", "Traced Python heap at each sample (minute of audio: KiB): " + "; ".join(
                f"{r['backend']} " + ", ".join(f"{x['minute']:g}: {x['traced_kib']:.1f}" for x in r["samples"]
                                               if "traced_kib" in x) for r in traced) + "."]  # fmt: skip
        if any(r["summary"].get("end_sampled_after_run") for r in api):
            md += ["", "\\* sampled just after the stream ended (an earlier version of this script), when the "
                   "signal generator's buffers (about 0.5 MiB) were already freed."]  # fmt: skip
    if cli:
        md += ["", "`rced stream` on a 16-bit WAV of the same signal (float backend), RSS of the process sampled "
               "every 0.5 s; peak = maxrss. Growth = (last sample - sample at 25 % of the run) per hour of audio.", "",
               "| code | input | input MiB | peak RSS MiB | RSS at 25 % | at 50 % | last | growth MiB/h | "
               "real-time factor |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        notes: list[str] = []
        for label in dict.fromkeys(r["label"] for r in cli):
            runs = sorted((r for r in cli if r["label"] == label), key=lambda r: r["minutes"])
            if len(runs) > 1:
                per_min = (runs[-1]["peak_rss_mib"] - runs[0]["peak_rss_mib"]) / (runs[-1]["minutes"] - runs[0]["minutes"])
                notes.append(f"{label}: peak RSS {per_min:+.2f} MiB per minute of input between {runs[0]['minutes']:g} "
                             f"and {runs[-1]['minutes']:g} min")  # fmt: skip
        for r in cli:
            md.append(f"| {r['label']} | {r['minutes']:g} min | {r['input_mib']:.1f} | {r['peak_rss_mib']:.1f} | "
                      f"{r['rss_25_mib']:.1f} | {r['rss_50_mib']:.1f} | {r['rss_last_mib']:.1f} | "
                      f"{r['rss_growth_per_hour_from_25_mib']:+.1f} | {r['real_time_factor']:.3f} |")  # fmt: skip
        if notes:
            md += ["", "; ".join(notes) + "."]
    return "\n".join(md) + "\n"


def merge(old: list[dict], new: list[dict], key: tuple[str, ...]) -> list[dict]:
    """``old`` with the runs of ``new`` replacing those of the same key (order: old first, new ones appended)."""
    fresh = {tuple(r[k] for k in key): r for r in new}
    kept = [fresh.pop(tuple(r[k] for k in key), r) for r in old]
    return kept + list(fresh.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=list(DEFAULT_RUNS), help="API runs, BACKEND:MINUTES[:trace] (none: skip)")
    ap.add_argument("--minutes", type=float, default=None, help="override every API run's length (quick check)")
    ap.add_argument("--every", type=float, default=5.0, help="sample memory every N minutes of audio")
    ap.add_argument("--warmup", type=float, default=1.0, help="minutes of audio counted as warm-up")
    ap.add_argument("--block-ms", type=float, default=8.0)
    ap.add_argument("--cli-minutes", type=float, nargs="*", default=[10.0, 60.0], help="CLI input lengths (none: skip)")
    ap.add_argument("--cli-baseline", default=None, help="git revision whose rced stream is measured for comparison")
    ap.add_argument("--cli-baseline-minutes", type=float, nargs="*", default=[2.0, 10.0])
    ap.add_argument("--merge", action="store_true", help="keep the existing JSON's runs that this one does not redo")
    ap.add_argument("--out", default=str(ROOT / "results" / "stream_memory"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-minutes", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        run = api_run(args.worker, args.worker_minutes, args.every, args.warmup, args.block_ms, args.worker_trace)
        print(json.dumps(run))
        return 0

    from rced.audio import atomic_write_results

    out = Path(args.out)
    old = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    payload = {"signal": "speech-like harmonic bursts with pauses in white noise, seed 0", "block_ms": args.block_ms,
               "machine": machine(), "commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                                                             capture_output=True, text=True).stdout.strip()}  # fmt: skip
    api = [spawn_api_run(s, args) for s in args.runs]
    cli = cli_runs(args) if args.cli_minutes else []
    if args.merge:
        api = merge(old.get("api", []), api, ("backend", "minutes", "trace"))
        cli = merge(old.get("cli", []), cli, ("label", "minutes"))
    for r in api:  # merged runs too: one definition of the summary
        r["summary"] = summarize_api(r)
    payload["api"], payload["cli"] = api, cli
    atomic_write_results(out, payload, to_markdown(payload))
    print(to_markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
