"""Speed of the inference commands as a user runs them: start-up, real-time factors, stream latency.

Every figure is the wall time of a real command-line run (a fresh ``python -m rced`` / ``python -m
grammar`` process, start-up included) divided by the seconds of audio it processed, on TEST-ONLY
voices and the two real recordings in 3-8-talker babble (``rced.corpus.eval_set``). The peers run
in the same script on the same files: DTLN (its TFLite pair through LiteRT, frame by frame as it
streams) and GTCRN (its ONNX graph through onnxruntime, one thread, whole utterances). The machine
and its load are recorded beside the numbers: times vary with what else runs.

Writes benchmarks/results/speed.{json,md}. Run: python benchmarks/speed.py [--n-per-voice 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from rced.audio import atomic_write_results

ROOT = Path(__file__).resolve().parent
PEERS = ROOT.parent.parent / "shared" / "peers"
BACKENDS = ("float", "int8")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib import metadata

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "litert": metadata.version("ai-edge-litert"), "onnxruntime": _version("onnxruntime"),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run(cmd: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a command; a failure stops the benchmark with its stderr."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return wall, res.stdout


def best_of(cmd: list[str], repeats: int) -> tuple[float, str]:
    """The median wall time of ``repeats`` runs (and the last run's stdout)."""
    runs = [run(cmd) for _ in range(repeats)]
    return statistics.median(w for w, _ in runs), runs[-1][1]


def write_inputs(folder: Path, n_per_voice: int) -> tuple[list[Path], float, Path, float]:
    """The benchmark's noisy files, their total seconds, and one long file (all of them in a row)."""
    from rced.corpus import eval_set

    items = eval_set(n_per_voice=n_per_voice, snrs=(0.0, 5.0))
    files, total = [], 0.0
    for i, it in enumerate(items):
        p = folder / f"noisy_{i:03d}.wav"
        sf.write(p, it.noisy, 16000, subtype="FLOAT")
        files.append(p)
        total += len(it.noisy) / 16000
    long = np.concatenate([it.noisy for it in items])
    long_path = folder / "long.wav"
    sf.write(long_path, long, 16000, subtype="FLOAT")
    return files, total, long_path, len(long) / 16000


def peer_rtfs(files: list[Path], seconds: float) -> dict:
    """Compute-only real-time factors of the peers on the same files (models loaded before timing)."""
    out = {}
    dtln = PEERS / "dtln"
    if dtln.exists():
        from rced.baselines import DTLN

        model = DTLN(dtln)
        t0 = time.perf_counter()
        for p in files:
            model.process(sf.read(p, dtype="float32")[0])
        out["DTLN (TFLite pair, LiteRT, frame by frame)"] = round((time.perf_counter() - t0) / seconds, 4)
    gtcrn = PEERS / "gtcrn"
    if gtcrn.exists() and _version("onnxruntime"):
        import importlib.util

        import onnxruntime as ort

        spec = importlib.util.spec_from_file_location("gtcrn_run", gtcrn / "run_onnx.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(gtcrn / "gtcrn_dns3.onnx"), opts, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        for p in files:
            mod.enhance(sess, sf.read(p, dtype="float32")[0])
        out["GTCRN (ONNX, onnxruntime, 1 thread)"] = round((time.perf_counter() - t0) / seconds, 4)
    return out


def decoder_ms(repeats: int) -> dict:
    """Milliseconds of the grammar decoder's CTC scoring (the best of ``repeats``): the shipped
    grammar on one 2-s listening window, and 200 random expressions on 300 frames (an augmented grammar)."""
    from grammar.alphabet import NUM_SYMBOLS
    from grammar.decoding.decoder import Grammar, ctc_log_likelihood
    from grammar.decoding.recognizer import default_grammar_path

    rng = np.random.default_rng(3)

    def logp(n_frames: int) -> np.ndarray:
        x = rng.normal(size=(n_frames, NUM_SYMBOLS)) * 1.5
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    shipped = Grammar.load(default_grammar_path())
    cases = {f"shipped grammar ({len(shipped.labels)} expressions), 125 frames (one 2-s window)": (logp(125), shipped.labels),
             "200 random expressions of 4-19 symbols, 300 frames": (
                 logp(300), [rng.integers(1, NUM_SYMBOLS, size=rng.integers(4, 20)) for _ in range(200)])}  # fmt: skip
    out = {}
    for name, (lp, labels) in cases.items():
        ctc_log_likelihood(lp, labels)
        best = np.inf
        for _ in range(max(3, repeats)):
            t0 = time.perf_counter()
            ctc_log_likelihood(lp, labels)
            best = min(best, time.perf_counter() - t0)
        out[name] = round(1e3 * best, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-per-voice", type=int, default=10, help="sentences per TEST-ONLY voice (default 10: about 190 s)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each command; the median is reported")
    ap.add_argument("--out", default=str(ROOT / "results" / "speed"), help="results path without suffix")
    args = ap.parse_args(argv)

    info = machine()
    py = sys.executable
    res: dict = {"machine": info, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files, seconds, long_path, long_s = write_inputs(tmp, args.n_per_voice)
        one = tmp / "one_second.wav"
        sf.write(one, sf.read(files[0], dtype="float32")[0][:16000], 16000)
        res["data"] = (f"{len(files)} files, {seconds:.0f} s: TEST-ONLY voices ({args.n_per_voice} sentences each) and "
                       f"the two real recordings in babble at 0 and 5 dB; one 1-second file; their {long_s:.0f} s "
                       "in a row for stream and listen")  # fmt: skip

        def row(what: str, backend: str, cmd: list[str], audio_s: float, extra: dict | None = None) -> dict:
            wall, out = best_of(cmd, args.repeats)
            r = {"command": what, "backend": backend, "wall_s": round(wall, 3), "audio_s": round(audio_s, 2),
                 "real_time_factor": round(wall / audio_s, 4), **(extra or {})}  # fmt: skip
            res["rows"].append(r)
            print(json.dumps(r), file=sys.stderr)
            return r | {"stdout": out}

        run([py, "-c", "import rced, grammar"])  # warm the file cache once, as a user's second run finds it
        for b in BACKENDS:
            row("rced denoise (1-second file)", b, [py, "-m", "rced", "denoise", str(one), "-o",
                str(tmp / f"one_{b}.wav"), "--backend", b], 1.0)  # fmt: skip
            row(f"rced denoise ({len(files)} files)", b, [py, "-m", "rced", "denoise", *map(str, files), "-o",
                str(tmp / f"out_{b}"), "--backend", b], seconds)  # fmt: skip
            r = row("rced stream (8 ms blocks)", b, [py, "-m", "rced", "stream", str(long_path), "-o",
                    str(tmp / f"stream_{b}.wav"), "--block-ms", "8", "--json", "--backend", b], long_s)  # fmt: skip
            stats = json.loads(r["stdout"].strip().splitlines()[-1])
            res["rows"][-1].update({k: stats[k] for k in stats if k.startswith("block_latency")}
                                   | {"stream_compute_rtf": stats.get("real_time_factor")})  # fmt: skip
            row(f"grammar recognize ({len(files)} files)", b, [py, "-m", "grammar", "recognize", *map(str, files),
                "--json", "--backend", b], seconds)  # fmt: skip
            row("grammar listen (one long file)", b, [py, "-m", "grammar", "listen", str(long_path), "--json",
                "--backend", b], long_s)  # fmt: skip
        start, _ = best_of([py, "-c", "import rced.denoiser, grammar.decoding.recognizer"], args.repeats)
        res["import_s"] = round(start, 3)
        res["peers"] = peer_rtfs(files, seconds)
    res["decoder_ms"] = decoder_ms(args.repeats)
    res["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    atomic_write_results(args.out, res, to_markdown(res))
    print(to_markdown(res))
    return 0


def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, LiteRT {m['litert']}; load average "
             f"{m['load_average_at_start'][0]} at the start and {res['load_average_at_end'][0]} at the end (the "
             "1-minute load of a 2-core machine: above 2, other work competed for the cores).",
             f"Data: {res['data']}. Each command is a fresh process (start-up included: `python -m ...`), the "
             f"median of its runs; importing the runtime (`rced.denoiser`, `grammar.decoding.recognizer`) takes "
             f"{res['import_s']} s in all.", "",
             "| command | backend | wall (s) | audio (s) | real-time factor | per-block latency median / p99 (ms) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        lat = (f"{r['block_latency_ms_median']} / {r['block_latency_ms_p99']}" if "block_latency_ms_median" in r
               else "")  # fmt: skip
        lines.append(f"| {r['command']} | {r['backend']} | {r['wall_s']:.2f} | {r['audio_s']:.1f} | "
                     f"{r['real_time_factor']:.3f} | {lat} |")  # fmt: skip
    if res.get("peers"):
        lines += ["", "Peers on the same files (compute only, models loaded before timing):", ""]
        lines += [f"- {k}: real-time factor {v:.3f}" for k, v in res["peers"].items()]
    if res.get("decoder_ms"):
        lines += ["", "Grammar decoder, CTC scoring of every expression (`ctc_log_likelihood`, in process, best of "
                  "the runs):", ""]  # fmt: skip
        lines += [f"- {k}: {v:.2f} ms" for k, v in res["decoder_ms"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
