"""MAC counting of TFLite graphs (benchmarks/quality_compute.py): a tiny converted Keras model
whose multiply-accumulates are worked out by hand, and the DTLN peer against its published
architecture when its files are present."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.quality_compute import op_macs, tflite_counts

DTLN_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "dtln"


def test_op_macs_of_each_weighted_op():
    assert op_macs("FULLY_CONNECTED", [(2, 7), (5, 7), None], (2, 5)) == 2 * 5 * 7
    assert op_macs("CONV_2D", [(1, 8, 1, 3), (4, 3, 1, 3), (4,)], (1, 8, 1, 4)) == 8 * 4 * 3 * 3
    assert op_macs("DEPTHWISE_CONV_2D", [(1, 8, 1, 4), (1, 3, 1, 4), (4,)], (1, 8, 1, 4)) == 8 * 4 * 3
    assert op_macs("BATCH_MATMUL", [(2, 3, 6), (2, 6, 4)], (2, 3, 4)) == 2 * 3 * 4 * 6
    assert op_macs("BATCH_MATMUL", [(2, 6, 3), (2, 6, 4)], (2, 3, 4)) == 2 * 3 * 4 * 6  # adj_x
    lstm = [(1, 10, 3)] + [(2, 3)] * 4 + [(2, 2)] * 4 + [None] * 3 + [(2,)] * 4
    assert op_macs("UNIDIRECTIONAL_SEQUENCE_LSTM", lstm, (1, 10, 2)) == 10 * 4 * 2 * (3 + 2)
    assert op_macs("ADD", [(1, 5), (1, 5)], (1, 5)) == 0


def test_converted_keras_model_counts(tmp_path):
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    inp = keras.Input((8, 1, 3), batch_size=1)
    x = keras.layers.Conv2D(4, (3, 1), padding="same", bias_initializer="ones")(inp)
    x = keras.layers.Reshape((8, 4))(x)
    out = keras.layers.Dense(5, bias_initializer="ones")(x)  # zero biases are folded away
    model = keras.Model(inp, out)
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    macs, params, kinds = tflite_counts(path)
    assert macs == 8 * 4 * 3 * 3 + 8 * 5 * 4
    assert params == (3 * 3 * 4 + 4) + (4 * 5 + 5)
    assert sum(kinds.values()) == 2


@pytest.mark.skipif(not (DTLN_DIR / "model_1.tflite").exists(), reason="DTLN peer files not present")
def test_dtln_matches_its_architecture():
    """Stage 1: two 128-unit LSTMs on 257 bins and a 257-unit sigmoid mask; stage 2: 512 -> 256
    encoder, two 128-unit LSTMs on 256 features, a 256-unit mask, 256 -> 512 decoder."""
    lstm = lambda n_in: 4 * 128 * (n_in + 128)  # noqa: E731
    assert tflite_counts(DTLN_DIR / "model_1.tflite")[0] == lstm(257) + lstm(128) + 128 * 257
    assert tflite_counts(DTLN_DIR / "model_2.tflite")[0] == 512 * 256 + lstm(256) + lstm(128) + 128 * 256 + 256 * 512


def test_denoise_benchmark_rows_one_per_stapes_model():
    """benchmarks/denoise.py: the shipped default, then every shipped preset, each a row where
    rced.evaluate.standard_systems has its one model row, each with its compute."""
    from benchmarks.denoise import build_systems, shipped_presets, stapes_models, system_compute
    from rced.denoiser import preset_model_path

    assert preset_model_path("lite") in shipped_presets()
    models = stapes_models(None)
    labels = list(models)
    assert labels[0] == "R-CED default (rced)" and "lite preset (rced w0.5)" in labels
    assert len(labels) == 1 + len(shipped_presets())
    systems = list(build_systems(models, None, None))
    assert systems == ["noisy", "spectral subtraction", "oracle IRM", *labels]
    compute = system_compute(models, None, None)
    from rced.config import ModelConfig, load_json
    from rced.denoiser import default_model_path
    from rced.models import build_model, macs_per_frame

    shipped = build_model(load_json(ModelConfig, default_model_path() / "config.json"))
    assert compute["R-CED default (rced)"].macs_per_call == macs_per_frame(shipped)  # rced.models' count (its own tests)
    assert compute["lite preset (rced w0.5)"].mmac_per_second < compute["R-CED default (rced)"].mmac_per_second / 3
