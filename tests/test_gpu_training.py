"""The JAX trainers of scripts/gpu: one network definition (the Keras one), packs, checks, merges.

The tests marked ``jax`` train for a few steps on CPU and need ``pip install -e '.[train-jax]'``
(skipped without it); the others run anywhere.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import speechlike

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "scripts" / "gpu"
sys.path.insert(0, str(GPU))

import merge_models  # noqa: E402
import pack_am_data  # noqa: E402
import pack_rced_data  # noqa: E402

from rced.audio import atomic_save_npz  # noqa: E402

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


@pytest.fixture(scope="module", autouse=True)
def _jax_compilation_cache(tmp_path_factory):
    """The trainer runs of this module share one XLA compilation cache, new for each test run: most of
    them compile the same small steps, and a cached compile halves a run (16 s to 8 s on a Xeon core)."""
    ENV.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip


def _imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every ``from module import name`` in a script, at any depth."""
    tree = ast.parse(path.read_text())
    return {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}


def test_trainers_build_the_packages_networks_and_define_none():
    assert ("rced.models", "build_model") in _imports(GPU / "train_rced_jax.py")
    assert ("grammar.acoustic.am", "build_am") in _imports(GPU / "train_am_jax.py")
    for script in GPU.glob("*.py"):  # no second definition: no hand-written convolution or BatchNorm
        text = script.read_text()
        assert "conv_general_dilated" not in text and "moving_variance" not in text, script.name
    assert not list(GPU.glob("import_*.py")), "the weight-import/parity scripts are gone"


def _rced_pack(path: Path, n: int = 10, n_val: int = 3) -> list[np.ndarray]:
    audio = [speechlike(seconds=0.6 + 0.1 * i, seed=i) for i in range(n)]
    blob, coded = pack_rced_data.encode_chunk(audio, 7)
    meta = [(0, i, i < n_val, m, sc) for i, (m, sc) in enumerate(coded)]
    atomic_save_npz(path, pack_rced_data.pack_arrays([blob], meta, 7))
    return audio


def _am_pack(path: Path) -> None:
    from grammar.alphabet import encode

    rng = np.random.default_rng(0)

    def utt(frames: int) -> np.ndarray:
        return (rng.standard_normal((frames, 40)) * 2 - 4).astype(np.float32)

    texts = ["volume up", "mute", "next song", "call home"]
    labels = [encode(texts[i % 4]) for i in range(8)]
    atomic_save_npz(path, pack_am_data.pack_arrays([utt(60 + 10 * i) for i in range(8)], [0, 2] * 4, labels,
                                                   [utt(50), utt(70)], labels[:2], texts[:2], utt(400)))  # fmt: skip


def test_an_empty_label_is_ctcs_all_blank_path(tmp_path):
    """A non-speech negative (label length 0) loads as a row of padding, and the trainer's CTC then
    costs exactly -sum of log p(blank) over the frames (the closed form of the one empty path)."""
    pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    import train_am_jax

    rng = np.random.default_rng(0)
    feats = [(rng.standard_normal((40 + 10 * i, 40)) - 4).astype(np.float32) for i in range(3)]
    labels = [np.zeros(0, np.int32), np.array([3, 4, 5], np.int32), np.zeros(0, np.int32)]
    atomic_save_npz(tmp_path / "n.npz", pack_am_data.pack_arrays(feats, [0, 0, 0], labels, feats[:1], labels[1:2],
                                                                 ["abc"], feats[0]))  # fmt: skip
    d = train_am_jax.load_pack(tmp_path / "n.npz", 64, 8)
    assert d["y"].tolist()[0] == [0] * 8 and d["y"].tolist()[1][:3] == [3, 4, 5]
    logits = rng.standard_normal((3, 20, 6)).astype(np.float32)
    pad = np.zeros((3, 20), np.float32)
    pad[2, 15:] = 1  # a shorter utterance
    ypad = (d["y"] == 0).astype(np.float32)
    loss = np.asarray(optax.ctc_loss(logits, pad, d["y"], ypad, blank_id=0))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert loss[0] == pytest.approx(-logp[0, :, 0].sum(), rel=1e-5)
    assert loss[2] == pytest.approx(-logp[2, :15, 0].sum(), rel=1e-5)
    assert np.isfinite(loss[1])


def test_rced_pack_round_trip(tmp_path):
    audio = _rced_pack(tmp_path / "p.npz")
    z = np.load(tmp_path / "p.npz", allow_pickle=False)
    back = pack_rced_data.decode(z)
    assert [len(b) for b in back] == [len(a) for a in audio]
    assert z["is_val"].tolist() == [True] * 3 + [False] * 7
    for a, b in zip(audio, back):  # 7-bit µ-law with pre-emphasis: coding noise well below the speech
        snr = 10 * np.log10(np.sum(a.astype(np.float64) ** 2) / np.sum((a - b) ** 2))
        assert snr > 25, snr


def test_am_pack_round_trip(tmp_path):
    x = np.random.default_rng(1).uniform(-13, 8, (37, 40)).astype(np.float32)
    q = pack_am_data.quantise(x)
    assert np.array_equal(pack_am_data.decode(pack_am_data.encode(q), 40), q)
    assert np.max(np.abs(q * pack_am_data.STEP + pack_am_data.LO - x)) <= pack_am_data.STEP / 2 + 1e-5
    _am_pack(tmp_path / "a.npz")
    z = np.load(tmp_path / "a.npz", allow_pickle=False)
    assert z["lens"].tolist() == [60 + 10 * i for i in range(8)] and z["val_text"].tolist() == ["volume up", "mute"]


def _run(script: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(GPU / script), *map(str, args)], capture_output=True, text=True,
                       env=ENV, cwd=ROOT, timeout=600)  # fmt: skip
    if check and r.returncode:
        raise AssertionError(f"{script} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.mark.parametrize("script", ["train_rced_jax.py", "train_am_jax.py"])
def test_trainers_refuse_bad_inputs_before_any_work(tmp_path, script):
    """Checked before JAX is imported: these hold where JAX is not installed too."""
    pack = tmp_path / "p.npz"
    pack.write_bytes(b"x")
    file = tmp_path / "afile"
    file.write_text("x")
    cases = {
        (tmp_path / "missing.npz", tmp_path / "run1", None): "missing.npz: pack not found",
        (pack, file / "run", None): "afile",
        (pack, file, None): "afile: output path exists and is not a folder",
        (pack, tmp_path / "run2", tmp_path): "not a model folder (no model.keras)",
    }
    for (p, out, init), message in cases.items():
        r = _run(script, "--pack", p, "--out", out, *(["--init", init] if init else []), check=False)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and message in lines[0], r.stderr
        assert not (tmp_path / "run1").exists() and not (tmp_path / "run2").exists()
    r = _run(script, "--pack", pack, "--out", tmp_path / "r", "--init", ROOT / "rced" / "default_model",
             "--batch", "0", check=False)  # fmt: skip
    assert r.returncode == 2 and "--batch" in r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("share", ["-0.5", "1.5"])
def test_am_data_script_refuses_a_reverb_share_outside_0_1_before_any_work(tmp_path, share):
    r = _run("make_am_data.py", tmp_path / "d.npz", "--seeds", "1", "--reverb-share", share, check=False)
    assert r.returncode == 2 and "--reverb-share" in r.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--command-share", "1.5", "--commands", "grammar/data/commands_default.txt"], "--command-share 1.5"),
        (["--command-share", "0.5"], "--command-share needs --commands"),
        (["--command-share", "0.5", "--commands", "no_such_commands.txt"], "no_such_commands.txt"),
    ],
)
def test_am_data_script_refuses_bad_command_options_before_any_work(tmp_path, args, message):
    r = _run("make_am_data.py", tmp_path / "d.npz", "--seeds", "1", *args, check=False)
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "rced/default_model", "--width-mult", "2"], "for a start from scratch"),
        (["--arch", "rced", "--n-bands", "32"], "--n-bands needs --arch bced"),
        (["--arch", "bced", "--context", "0"], "must be positive"),
        (["--arch", "bced", "--width-mult", "-1"], "must be positive"),
        (["--reverb-share", "1.5"], "--reverb-share must be in [0, 1]"),
        (["--reverb-share", "0.3", "--rooms", "0"], "--rooms positive"),
        (["--distill-weight", "0.5"], "--distill-weight needs --teacher"),
        (["--teacher", "rced/default_model", "--distill-weight", "1.5"], "--distill-weight must be in [0, 1]"),
    ],
)
def test_rced_trainer_refuses_bad_options_before_any_work(tmp_path, args, message):
    """The network's shape is the --init folder's, or set from scratch; rooms need a share in [0, 1]
    and at least one room; all refused before any work."""
    pack = tmp_path / "p.npz"
    pack.write_bytes(b"x")
    r = _run("train_rced_jax.py", "--pack", pack, "--out", tmp_path / "r", *args, check=False)
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "r").exists()


def test_run_folder_resumes_a_run_older_than_an_option(tmp_path):
    """An option added after a run was started is unset (None) in it: the run resumes unless it is set."""
    import argparse

    from common import RunFolder

    old = {"lr": 0.001, "out": str(tmp_path), "minutes": 5.0}
    atomic_save_npz(tmp_path / "checkpoint.npz", {"w": np.zeros(2), "meta": np.array(json.dumps({"args": old}))})
    args = {"lr": 0.001, "out": tmp_path, "minutes": 9.0, "context": None}
    assert RunFolder(tmp_path, argparse.Namespace(**args)).load()["meta"]["args"] == old
    for change in ({"context": 16}, {"lr": 0.01}):
        with pytest.raises(SystemExit, match=f"other arguments \\({next(iter(change))}\\)"):
            RunFolder(tmp_path, argparse.Namespace(**{**args, **change})).load()


def test_merge_is_task_arithmetic(tmp_path):
    """start + alpha * sum(tuned - start) over every weight, BatchNorm statistics included."""
    import shutil

    from rced.config import ModelConfig
    from rced.denoiser import load_model_folder

    start = ROOT / "rced" / "default_model"
    model, _, _ = load_model_folder(start, ModelConfig, "model folder")
    base = model.get_weights()
    rng = np.random.default_rng(0)
    deltas = []
    for name in ("t1", "t2"):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("config.json", "norm.json"):
            shutil.copyfile(start / f, folder / f)
        d = [rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in base]
        model.set_weights([w + e for w, e in zip(base, d)])
        model.save(folder / "model.keras")
        deltas.append(d)
    merge_models.main([str(start), str(tmp_path / "t1"), str(tmp_path / "t2"), "-o", str(tmp_path / "m"), "--alpha", "0.5"])
    merged, _, _ = load_model_folder(tmp_path / "m", ModelConfig, "model folder")
    for w, b, d1, d2 in zip(merged.get_weights(), base, *deltas):
        np.testing.assert_allclose(w, b + 0.5 * (d1 + d2), rtol=0, atol=1e-6)
    (tmp_path / "t2" / "norm.json").write_text(json.dumps({"mean": [0.0] * 129, "std": [1.0] * 129}))
    with pytest.raises(SystemExit, match="t2: config.json or norm.json differs"):
        merge_models.main([str(start), str(tmp_path / "t1"), str(tmp_path / "t2"), "-o", str(tmp_path / "m2")])
    assert not (tmp_path / "m2").exists()


# ------------------------------------------------------------------------------------ with JAX
JAX_OUTPUTS = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras, numpy as np
folder, x, out = sys.argv[1:4]
model = keras.saving.load_model(os.path.join(folder, "model.keras"), safe_mode=True, compile=False)
np.save(out, np.asarray(model(np.load(x), training=False)))
"""


def _jax_outputs(folder: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The model folder's outputs on ``x`` with Keras on its JAX backend (another process)."""
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", JAX_OUTPUTS, str(folder), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, env=ENV, capture_output=True)  # fmt: skip
    return np.load(tmp_path / "y.npy")


def _tf_model(folder: Path, cls):
    from rced.denoiser import load_model_folder

    return load_model_folder(folder, cls, "model folder")[0]


def _ckpt(folder: Path) -> dict:
    z = np.load(folder / "checkpoint.npz", allow_pickle=False)
    return {k: z[k] for k in z.files if k != "meta"}


def test_rced_trainer_warm_start_resume_and_backend_parity(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from rced.config import ModelConfig, load_json

    _rced_pack(tmp_path / "p.npz")
    shipped = ROOT / "rced" / "default_model"
    common = ["--pack", tmp_path / "p.npz", "--init", shipped, "--batch", "4", "--frames", "8", "--val-segments", "8",
              "--eval-every-s", "0", "--warmup", "2", "--minutes", "1e6", "--history-s", "0.1"]  # fmt: skip
    channels = load_json(ModelConfig, shipped / "config.json").input_channels  # context frames and trackers
    x = np.random.default_rng(1).standard_normal((32, 129, 1, channels)).astype(np.float32)
    # a warm start that trains no step writes the shipped network back
    _run("train_rced_jax.py", *common, "--out", tmp_path / "w0", "--max-steps", "0")
    np.testing.assert_array_equal(_tf_model(tmp_path / "w0", ModelConfig)(x), _tf_model(shipped, ModelConfig)(x))
    # 2 steps, then the same command resumed to 3, equals 3 steps in one go
    _run("train_rced_jax.py", *common, "--out", tmp_path / "a", "--max-steps", "2", "--select", "last")
    r = _run("train_rced_jax.py", *common, "--out", tmp_path / "a", "--max-steps", "3", "--select", "last")
    assert "resumed at step 2" in r.stdout
    _run("train_rced_jax.py", *common, "--out", tmp_path / "b", "--max-steps", "3", "--select", "last")
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert [int(r.split(",")[0]) for r in (tmp_path / "a" / "training_log.csv").read_text().splitlines()[1:]] == [0, 1, 2, 3]
    # the written model.keras: the TensorFlow backend reproduces the JAX backend
    tf_out = np.asarray(_tf_model(tmp_path / "a", ModelConfig)(x))
    assert np.max(np.abs(tf_out - np.asarray(_tf_model(shipped, ModelConfig)(x)))) > 1e-4  # it did train
    np.testing.assert_allclose(tf_out, _jax_outputs(tmp_path / "a", x, tmp_path), rtol=0, atol=1e-5)
    r = _run("train_rced_jax.py", *common, "--out", tmp_path / "a", "--max-steps", "3", "--lr", "0.1", check=False)
    assert r.returncode != 0 and "other arguments (lr, select)" in r.stderr


def test_rced_trainer_builds_a_bced_from_scratch(tmp_path):
    """--arch bced with its shape: the written folder holds that network, its fixed band matrices untouched."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from rced.config import ModelConfig
    from rced.features import band_compression

    _rced_pack(tmp_path / "p.npz")
    _run("train_rced_jax.py", "--pack", tmp_path / "p.npz", "--out", tmp_path / "b", "--arch", "bced",
         "--width-mult", "0.25", "--n-bands", "24", "--context", "4", "--batch", "4", "--frames", "8",
         "--val-segments", "8", "--eval-every-s", "0", "--max-steps", "2", "--select", "last")  # fmt: skip
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (cfg["arch"], cfg["width_mult"], cfg["n_bands"], cfg["frontend"]["context"]) == ("bced", 0.25, 24, 4)
    model = _tf_model(tmp_path / "b", ModelConfig)
    x = np.random.default_rng(2).standard_normal((5, 129, 1, 4)).astype(np.float32)
    assert np.asarray(model(x)).shape == (5, 129)
    assert model.get_layer("l1_conv").get_weights()[0].shape[-1] == 3  # round(12 * 0.25) filters
    comp, expand = band_compression(129, 24, 16000)
    np.testing.assert_array_equal(model.get_layer("band_compress").get_weights()[0][0, 0], comp)
    np.testing.assert_array_equal(model.get_layer("band_expand").get_weights()[0], expand)


def test_rced_trainer_adds_trackers_to_a_model_at_zero_weight(tmp_path):
    """--trackers with --init: the new input channels start at zero weight (the folder's model, whatever the
    trackers read), the written config holds them, and a few steps train them."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from rced.config import ModelConfig, load_json

    _rced_pack(tmp_path / "p.npz")
    shipped = ROOT / "rced" / "presets" / "lite"  # a model without trackers
    assert load_json(ModelConfig, shipped / "config.json").trackers is None
    common = ["--pack", tmp_path / "p.npz", "--init", shipped, "--batch", "4", "--frames", "8", "--val-segments", "8",
              "--eval-every-s", "0", "--trackers", "0.5,0.5", "2,0.05", "--history-s", "0.1", "--select", "last"]  # fmt: skip
    _run("train_rced_jax.py", *common, "--out", tmp_path / "t0", "--max-steps", "0")
    cfg = json.loads((tmp_path / "t0" / "config.json").read_text())
    assert cfg["trackers"] == [[0.5, 0.5], [2.0, 0.05]]
    x = np.random.default_rng(4).standard_normal((6, 129, 1, 10)).astype(np.float32)
    start, before = _tf_model(tmp_path / "t0", ModelConfig), _tf_model(shipped, ModelConfig)
    np.testing.assert_allclose(np.asarray(start(x)), np.asarray(before(x[..., :8])), rtol=0, atol=1e-6)
    _run("train_rced_jax.py", *common, "--out", tmp_path / "t2", "--lr", "0.01", "--warmup", "1", "--max-steps", "2")
    w = _tf_model(tmp_path / "t2", ModelConfig).get_layer("l1_conv").get_weights()[0]
    assert w.shape[2] == 10 and np.abs(w[:, :, 8:]).max() > 0  # the tracker channels trained
    r = _run("train_rced_jax.py", *common[:-7], "--trackers", "1,x", "--out", tmp_path / "bad", check=False)
    assert r.returncode != 0 and "--trackers" in r.stderr


def test_rced_trainer_adds_trackers_after_a_models_own(tmp_path):
    """--trackers may extend the --init model's trackers: its own come first and keep their weights,
    the new start at zero; other trackers are refused. --cold-share trains with trackers started late."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from rced.config import ModelConfig

    _rced_pack(tmp_path / "p.npz")
    bced = ROOT / "rced" / "presets" / "bced"  # two trackers
    have = [",".join(str(v) for v in t) for t in json.loads((bced / "config.json").read_text())["trackers"]]
    common = ["--pack", tmp_path / "p.npz", "--init", bced, "--batch", "4", "--frames", "8", "--val-segments", "8",
              "--eval-every-s", "0", "--history-s", "0.1", "--select", "last", "--cold-share", "0.5"]  # fmt: skip
    _run("train_rced_jax.py", *common, "--trackers", *have, "0.02,1", "--out", tmp_path / "t0", "--max-steps", "0")
    assert len(json.loads((tmp_path / "t0" / "config.json").read_text())["trackers"]) == len(have) + 1
    channels = 8 + len(have)
    x = np.random.default_rng(5).standard_normal((6, 129, 1, channels + 1)).astype(np.float32)
    start, before = _tf_model(tmp_path / "t0", ModelConfig), _tf_model(bced, ModelConfig)
    np.testing.assert_allclose(np.asarray(start(x)), np.asarray(before(x[..., :channels])), rtol=0, atol=1e-5)
    _run("train_rced_jax.py", *common, "--trackers", *have, "0.02,1", "--out", tmp_path / "t2", "--lr", "0.01",
         "--warmup", "1", "--max-steps", "2")  # fmt: skip
    w = _tf_model(tmp_path / "t2", ModelConfig).get_layer("l1_conv").get_weights()[0]
    assert w.shape[2] == channels + 1 and np.isfinite(w).all() and np.abs(w[:, :, channels:]).max() > 0
    r = _run("train_rced_jax.py", *common, "--trackers", "0.02,1", *have, "--out", tmp_path / "bad", check=False)
    assert r.returncode != 0 and "--trackers must begin with them" in r.stderr
    r = _run("train_rced_jax.py", *common[:-2], "--cold-share", "2", "--trackers", *have, "--out", tmp_path / "b2",
             check=False)  # fmt: skip
    assert r.returncode == 2 and "--cold-share" in r.stderr
    _run("train_rced_jax.py", *common, "--out", tmp_path / "own", "--max-steps", "0")  # the init's own trackers
    lite = ROOT / "rced" / "presets" / "lite"  # no trackers
    r = _run("train_rced_jax.py", *[lite if c == bced else c for c in common], "--out", tmp_path / "none", check=False)
    assert r.returncode != 0 and "--cold-share needs a network with trackers" in r.stderr


def test_convolve_valid_is_numpys_valid_convolution():
    pytest.importorskip("jax")
    from train_rced_jax import convolve_valid

    rng = np.random.default_rng(3)
    x, h = rng.normal(size=(2, 300)), rng.normal(size=(2, 64))
    got = np.asarray(convolve_valid(x.astype(np.float32), h.astype(np.float32)))
    want = np.stack([np.convolve(xi, hi, mode="valid") for xi, hi in zip(x, h)])
    assert got.shape == (2, 300 - 64 + 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("delay", [1, 37, 500])
def test_rced_trainer_rooms_hear_the_whole_tail_and_silence_before_the_utterance(delay):
    """A room whose whole response is a pure delay and whose early part is the direct sound: the
    microphone hears the target ``delay`` samples late, the samples before the segment included,
    and silence where the segment starts its utterance. Babble at 200 dB SNR is negligible."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from train_rced_jax import RIR_TAPS, device_arrays, make_sampler, to_device_pool

    n = 800
    rng = np.random.default_rng(5)
    utts = [rng.normal(size=n).astype(np.float32) for _ in range(3)]  # each exactly one segment long
    utts += [rng.normal(size=RIR_TAPS + 2 * n).astype(np.float32)]  # room for babble's pre-roll
    pool = to_device_pool(utts, n)
    full, early = np.zeros((1, RIR_TAPS), np.float32), np.zeros((1, RIR_TAPS), np.float32)
    full[0, delay], early[0, 0] = 1.0, 1.0
    pool |= {"rir_full": jnp.asarray(full), "rir_early": jnp.asarray(early)}
    sample = jax.jit(make_sampler(pool, n, 16, (200.0, 200.0), reverb_share=1.0))
    noisy, clean = (np.asarray(v) for v in sample(jax.random.PRNGKey(0), device_arrays(pool)))
    np.testing.assert_allclose(noisy[:, delay:], clean[:, :-delay], rtol=0, atol=1e-4)
    starts_utterance = np.array([any(np.allclose(c / c[0], u[:n] / u[0], atol=1e-3) for u in utts[:3]) for c in clean])
    assert starts_utterance.any()
    assert np.abs(noisy[starts_utterance, :delay]).max() < 1e-4
    dry = jax.jit(make_sampler(pool, n, 16, (200.0, 200.0)))
    d_noisy, d_clean = (np.asarray(v) for v in dry(jax.random.PRNGKey(0), device_arrays(pool)))
    np.testing.assert_allclose(d_noisy, d_clean, rtol=0, atol=1e-4 * np.abs(d_clean).max())


@pytest.mark.parametrize("start", [0, 5, 11])
def test_rced_trainer_features_are_rced_features_started_on_any_frame(start):
    """The trainer's on-device features with trackers started on frame ``start`` of a segment equal
    rced.features' context frames and rced.features.track run from that frame (a stream's start)."""
    jax = pytest.importorskip("jax")
    import dataclasses

    from train_rced_jax import make_dsp

    from rced.config import ModelConfig, load_json
    from rced.features import LOG_EPS, track, tracker_gains

    cfg = load_json(ModelConfig, ROOT / "rced" / "presets" / "bced" / "config.json")
    cfg = dataclasses.replace(cfg, trackers=((0.5, 0.5), (0.05, 0.02), (2.0, 0.05)))
    bins, ctx, frames, history = cfg.frontend.n_bins, cfg.frontend.context, 6, 5
    rng = np.random.default_rng(7)
    mean, std = rng.normal(size=bins).astype(np.float32), rng.uniform(0.5, 2, bins).astype(np.float32)
    stft, features, _, lead, _, n = make_dsp(cfg, mean, std, frames, history)
    assert start <= lead == history + ctx - 1
    x = np.stack([speechlike(seconds=n / 16000 + 0.01, seed=s)[:n] for s in (1, 2)]).astype(np.float32)
    got = np.asarray(features(stft(jax.numpy.asarray(x)), jax.numpy.asarray([0, start]))).reshape(2, frames, bins, -1)
    f = (np.log(np.abs(np.asarray(stft(jax.numpy.asarray(x)))) + LOG_EPS) - mean) / std
    for b, s0 in enumerate((0, start)):
        want_ctx = np.stack([f[b, history + j : history + j + frames] for j in range(ctx)], -1)
        np.testing.assert_allclose(got[b, :, :, :ctx], want_ctx, rtol=0, atol=1e-4)
        tracks = track(f[b, s0:], tracker_gains(cfg))[0][lead - s0 :]  # (frames, trackers, bins)
        np.testing.assert_allclose(got[b, :, :, ctx:], tracks.transpose(0, 2, 1), rtol=0, atol=1e-4)


def test_am_trainer_warm_start_and_backend_parity(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from grammar.config import AMConfig
    from rced.config import load_json

    _am_pack(tmp_path / "p.npz")
    shipped = ROOT / "grammar" / "default_am"
    common = ["--pack", tmp_path / "p.npz", "--batch", "4", "--frames", "160", "--eval-every-s", "0", "--warmup", "2"]
    width = load_json(AMConfig, shipped / "config.json").input_channels  # from scratch: the shipped inputs too
    x = np.random.default_rng(1).standard_normal((2, 96, 1, width)).astype(np.float32)
    _run("train_am_jax.py", *common, "--init", shipped, "--out", tmp_path / "w0", "--max-steps", "0")
    np.testing.assert_array_equal(_tf_model(tmp_path / "w0", AMConfig)(x), _tf_model(shipped, AMConfig)(x))
    _run("train_am_jax.py", *common, "--channels", "16", "--blocks", "1", "--out", tmp_path / "s",
         "--max-steps", "2", "--select", "last")  # fmt: skip
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (cfg["channels"], cfg["blocks"], cfg["n_mels"]) == (16, 1, 40)
    tf_out = np.asarray(_tf_model(tmp_path / "s", AMConfig)(x))
    np.testing.assert_allclose(tf_out, _jax_outputs(tmp_path / "s", x, tmp_path), rtol=0, atol=1e-5)
    # --select last kept the last weights: last_weights.py writes the same network from the checkpoint
    r = _run("last_weights.py", tmp_path / "s", "-o", tmp_path / "last")
    assert "the weights of step 2 of" in r.stdout
    assert sorted(f.name for f in (tmp_path / "last").iterdir()) == ["config.json", "model.keras", "norm.json",
                                                                    "training_log.csv"]  # fmt: skip
    np.testing.assert_array_equal(_tf_model(tmp_path / "last", AMConfig)(x), tf_out)
    r = _run("last_weights.py", tmp_path / "s", "-o", tmp_path / "last", check=False)
    assert r.returncode and r.stderr.strip().splitlines()[-1].endswith("last: already exists (the folder is written "
                                                                       "whole, never over another)")  # fmt: skip


def test_am_trainer_adds_trackers_at_zero_weight(tmp_path):
    """--trackers from an AM without them: the tracker channels start at zero weight (that AM, whatever
    they read), the folder records them, and a few steps train them. Other trackers than an --init
    AM's own are refused."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from grammar.config import AMConfig
    from tests.grammar.conftest import tiny_am_folder

    _am_pack(tmp_path / "p.npz")
    (tmp_path / "plain").mkdir()
    shipped = tiny_am_folder(tmp_path / "plain")  # no trackers
    common = ["--pack", tmp_path / "p.npz", "--init", shipped, "--batch", "4", "--frames", "160", "--eval-every-s", "0",
              "--trackers", "0.5,0.5", "2,0.05", "--select", "last"]  # fmt: skip
    _run("train_am_jax.py", *common, "--out", tmp_path / "t0", "--max-steps", "0")
    cfg = json.loads((tmp_path / "t0" / "config.json").read_text())
    assert (cfg["trackers"], cfg["tracker_bands"]) == ([[0.5, 0.5], [2.0, 0.05]], 4)
    x = np.random.default_rng(2).standard_normal((2, 96, 1, 60)).astype(np.float32)
    np.testing.assert_array_equal(_tf_model(tmp_path / "t0", AMConfig)(x), _tf_model(shipped, AMConfig)(x[..., :40]))
    _run("train_am_jax.py", *common, "--out", tmp_path / "t2", "--lr", "0.01", "--warmup", "1", "--max-steps", "2")
    w = _tf_model(tmp_path / "t2", AMConfig).get_layer("in_conv").get_weights()[0]
    assert w.shape[2] == 60 and np.abs(w[:, :, 40:]).max() > 0
    r = _run("train_am_jax.py", *common[:-2], "--tracker-bands", "3", "--out", tmp_path / "bad", check=False)
    assert r.returncode != 0 and "divisor of n_mels" in r.stderr.strip().splitlines()[-1], r.stderr
    r = _run("train_am_jax.py", *common[:8], "--tracker-bands", "4", "--out", tmp_path / "bad", check=False)
    assert r.returncode != 0 and "--tracker-bands needs --trackers" in r.stderr
    r = _run("train_am_jax.py", *common[:3], tmp_path / "t0", *common[4:10], "--trackers", "1,1", "--out",
             tmp_path / "bad", check=False)  # fmt: skip
    assert r.returncode != 0 and "must name the same" in r.stderr.strip().splitlines()[-1], r.stderr


def test_am_trainer_trackers_are_the_runtimes():
    """The trainer's JAX trackers equal grammar.acoustic.features.with_trackers, row by row."""
    pytest.importorskip("jax")
    import train_am_jax

    from grammar.acoustic.features import with_trackers
    from grammar.config import AMConfig

    cfg = AMConfig(trackers=((0.5, 0.5), (2.0, 0.05)), tracker_bands=8)
    x = np.random.default_rng(5).standard_normal((3, 70, 40)).astype(np.float32)
    got = np.asarray(train_am_jax.tracker_fn(cfg)(x))
    assert got.shape == (3, 70, 10)
    for b in range(3):
        np.testing.assert_allclose(got[b], with_trackers(x[b], cfg)[0][:, 40:], rtol=0, atol=1e-5)
    assert np.asarray(train_am_jax.tracker_fn(AMConfig())(x)).shape == (3, 70, 0)


def test_am_trainer_switches_units_keeping_the_trunk(tmp_path):
    """--units phones from the shipped character AM: the transcripts are respelled in ARPAbet, every
    layer but the output projection keeps the shipped weights, and the folder says its units."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from grammar.config import AMConfig

    _am_pack(tmp_path / "p.npz")
    shipped = ROOT / "grammar" / "default_am"
    r = _run("train_am_jax.py", "--pack", tmp_path / "p.npz", "--batch", "4", "--frames", "160", "--eval-every-s", "0",
             "--warmup", "2", "--init", shipped, "--units", "phones", "--out", tmp_path / "ph", "--max-steps", "0")
    assert "respelled in phones: kept 8 of 8 utterances, 2 of 2 for validation" in r.stdout
    assert json.loads((tmp_path / "ph" / "config.json").read_text())["units"] == "phones"
    new, old = _tf_model(tmp_path / "ph", AMConfig), _tf_model(shipped, AMConfig)
    assert new.output_shape[-1] == 41 and old.output_shape[-1] == 29
    for layer in new.layers:
        if layer.name != "logits":
            for a, b in zip(layer.get_weights(), old.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
    rows = (tmp_path / "ph" / "training_log.csv").read_text().splitlines()
    assert float(rows[1].split(",")[-1]) > 0.5  # a new head: the unit error rate is far from 0
    _run("train_am_jax.py", "--pack", tmp_path / "p.npz", "--batch", "4", "--frames", "160", "--eval-every-s", "0",
         "--warmup", "2", "--channels", "16", "--blocks", "1", "--units", "phones", "--out", tmp_path / "s",
         "--max-steps", "1")  # fmt: skip
    assert _tf_model(tmp_path / "s", AMConfig).output_shape[-1] == 41  # from scratch in phonemes


def test_relabel_respells_and_drops_what_the_lexicon_cannot_spell():
    import train_am_jax

    from grammar.alphabet import encode
    from grammar.units import CHARS, Units

    texts = ["volume up", "turn qzxv on", "mute"]
    y = train_am_jax._pad_ragged(np.concatenate([encode(t) for t in texts]).astype(np.int32),
                                 np.array([len(t) for t in texts]), 12)  # fmt: skip
    d = {"x": np.arange(3), "lens": np.arange(3), "kinds": np.arange(3), "y": y, "val_x": np.arange(2),
         "val_lens": np.arange(2), "val_text": ["mute", "qzxv"]}  # fmt: skip
    assert train_am_jax.relabel(d, CHARS)["val_ref"] == ["mute", "qzxv"]
    ph = Units("phones")
    out = train_am_jax.relabel(d, ph)
    assert out["x"].tolist() == [0, 2] and out["val_lens"].tolist() == [0] and out["val_ref"] == [ph.spell("mute")]
    assert ph.decode(out["y"][0]) == ph.spell("volume up") and ph.decode(out["y"][1]) == ph.spell("mute")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--distill-weight", "0.5"], "need --teacher"),
        (["--teacher", "grammar/default_am", "--distill-weight", "1.5"], "0 <= --distill-weight <= 1"),
        (["--teacher", "grammar/default_am", "--temperature", "0"], "--temperature > 0"),
        (["--teacher", "grammar"], "grammar: not a model folder (no model.keras)"),
    ],
)
def test_am_trainer_refuses_bad_distillation(tmp_path, args, message):
    _am_pack(tmp_path / "p.npz")
    r = _run("train_am_jax.py", "--pack", tmp_path / "p.npz", "--out", tmp_path / "r", *args, check=False)
    assert r.returncode != 0 and message in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "r").exists()


def test_distill_kl_closed_form():
    pytest.importorskip("jax")
    import train_am_jax

    rng = np.random.default_rng(0)
    s, t = rng.normal(0, 3, (2, 5, 4)), rng.normal(0, 3, (2, 5, 4))
    mask = np.ones((2, 5))
    mask[1, 3:] = 0

    def ref(temperature):
        def logp(z):
            z = z / temperature
            return z - np.log(np.exp(z).sum(-1, keepdims=True))

        kl = (np.exp(logp(t)) * (logp(t) - logp(s))).sum(-1)
        return temperature**2 * (kl * mask).sum() / mask.sum()

    for temperature in (1.0, 2.0):
        got = float(train_am_jax.distill_kl(s, t, mask, temperature))
        assert got == pytest.approx(ref(temperature), rel=1e-5) and got > 0
    assert float(train_am_jax.distill_kl(t, t, mask, 2.0)) == pytest.approx(0.0, abs=1e-6)
    s2 = s.copy()
    s2[1, 3:] += 100.0  # masked frames do not count
    assert float(train_am_jax.distill_kl(s2, t, mask, 1.0)) == pytest.approx(ref(1.0), rel=1e-5)


def test_am_student_moves_toward_its_teacher(tmp_path):
    """--distill-weight 1: a tiny student's KL to the shipped AM falls as it trains; another kind of
    folder is refused as a teacher."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    _am_pack(tmp_path / "p.npz")
    common = ["--pack", tmp_path / "p.npz", "--batch", "4", "--frames", "160", "--eval-every-s", "0", "--warmup", "2"]
    _run("train_am_jax.py", *common, "--channels", "16", "--blocks", "1", "--teacher", ROOT / "grammar" / "default_am",
         "--distill-weight", "1", "--lr", "3e-3", "--out", tmp_path / "s", "--max-steps", "40", "--select", "last")  # fmt: skip
    rows = (tmp_path / "s" / "training_log.csv").read_text().splitlines()
    head = rows[0].split(",")
    kl = [float(r.split(",")[head.index("train_kl")]) for r in rows[2:]]
    loss = [float(r.split(",")[head.index("train_loss")]) for r in rows[2:]]
    assert len(kl) == 40 and kl == loss  # weight 1: the loss is the KL alone
    assert np.mean(kl[-5:]) < 0.7 * np.mean(kl[:5]), kl
    r = _run("train_am_jax.py", *common, "--teacher", ROOT / "rced" / "default_model", "--out", tmp_path / "x",
             "--max-steps", "1", check=False)  # fmt: skip
    assert r.returncode != 0 and "default_model: not an acoustic-model folder" in r.stderr.strip().splitlines()[-1]


MASKED_BN = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, numpy as np
from common import masked_bn_call
from grammar.acoustic.am import build_am
from grammar.config import AMConfig
m = build_am(AMConfig(channels=8, blocks=1))
tv = [v.value for v in m.trainable_variables]
ntv = [v.value for v in m.non_trainable_variables]
x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 16, 1, 40)), jnp.float32)
plain = m.stateless_call(tv, ntv, x, training=True)
ones = masked_bn_call(m, tv, ntv, x, jnp.ones((2, 8, 1)), True)
assert float(jnp.abs(plain[0] - ones[0]).max()) < 1e-6
assert max(float(jnp.abs(a - b).max()) for a, b in zip(plain[1], ones[1])) < 1e-6
# the blocks' depthwise convolutions run as shifted products (common._depthwise_by_shifts): same
# outputs (above) and the same gradients as Keras' grouped convolution
import common
assert common._time_depthwise(m.get_layer("b0_dw")) and not common._time_depthwise(m.get_layer("in_conv"))
g_keras = jax.grad(lambda tv: (m.stateless_call(tv, ntv, x, training=True)[0] ** 2).sum())(tv)
g_fast = jax.grad(lambda tv: (masked_bn_call(m, tv, ntv, x, jnp.ones((2, 8, 1)), True)[0] ** 2).sum())(tv)
names = [v.path for v in m.trainable_variables]
assert "b0_dw/kernel" in names
assert max(float(jnp.abs(a - b).max() / (jnp.abs(a).max() + 1e-9)) for a, b in zip(g_keras, g_fast)) < 1e-4
# the first BatchNorm's statistics with the second utterance's last 3 frames masked: those of the rest
mask = jnp.asarray(np.array([[1] * 8, [1] * 5 + [0] * 3], np.float32)[:, :, None])
_, new = masked_bn_call(m, tv, ntv, x, mask, True)
h = jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), (3, 0), (0, 0), (0, 0))), tv[0], (2, 1), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
real = jnp.concatenate([h[0, :, 0], h[1, :5, 0]])
assert [v.path for v in m.non_trainable_variables][:2] == ["in_bn/moving_mean", "in_bn/moving_variance"]
assert float(jnp.abs(new[0] - 0.01 * real.mean(0)).max()) < 1e-5
assert float(jnp.abs(new[1] - (0.99 + 0.01 * real.var(0))).max()) < 1e-5
print("ok")
"""


def test_masked_batchnorm_statistics():
    """The AM trainer's BatchNorm statistics see the real frames only, and its depthwise convolutions
    match Keras' in outputs and gradients (common.masked_bn_call)."""
    pytest.importorskip("jax")
    r = subprocess.run([sys.executable, "-c", MASKED_BN, str(GPU)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_rced_trainer_distils_from_a_teacher_denoiser(tmp_path):
    """--teacher: with --distill-weight 1 the training MSE is the one against the teacher's output, not the
    target's (the same batches, another loss); the validation MSE stays the target's. A teacher of another
    kind, front-end or trackers is refused by name."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    _rced_pack(tmp_path / "p.npz")
    common = ["--pack", tmp_path / "p.npz", "--init", ROOT / "rced" / "presets" / "bced", "--batch", "4", "--frames",
              "8", "--val-segments", "8", "--eval-every-s", "0", "--history-s", "0.1", "--max-steps", "1",
              "--select", "last", "--lr", "1e-9"]  # fmt: skip

    def first_row(out: Path) -> dict:
        rows = list(csv.DictReader((out / "training_log.csv").read_text().splitlines()))
        return rows[1]  # row 0 is the start's validation

    _run("train_rced_jax.py", *common, "--out", tmp_path / "plain")
    _run("train_rced_jax.py", *common, "--out", tmp_path / "kd", "--teacher", ROOT / "rced" / "default_model",
         "--distill-weight", "1")  # fmt: skip
    plain, kd = first_row(tmp_path / "plain"), first_row(tmp_path / "kd")
    assert float(kd["train_mse"]) > 0 and abs(float(kd["train_mse"]) - float(plain["train_mse"])) > 1e-4
    assert float(kd["val_mse"]) == pytest.approx(float(plain["val_mse"]), abs=1e-5)  # lr 1e-9: the same weights
    for teacher, message in ((ROOT / "grammar" / "default_am", "not a denoiser folder"),
                             (ROOT / "rced" / "presets" / "lite", "trackers None; the student has")):  # fmt: skip
        r = _run("train_rced_jax.py", *common, "--out", tmp_path / "bad", "--teacher", teacher, check=False)
        assert r.returncode != 0 and message in r.stderr.strip().splitlines()[-1], r.stderr
