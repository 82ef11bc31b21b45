import numpy as np
import pytest

from rced.config import ModelConfig
from rced.errors import RcedError
from rced.models import build_model, count_params, device_model, macs_per_frame


@pytest.mark.parametrize("arch", ["rced", "crced"])
def test_paper_models_are_about_33k_parameters(arch):
    model = build_model(ModelConfig(arch=arch))
    assert 30_000 <= count_params(model) <= 35_000
    assert 3.5e6 <= macs_per_frame(model) <= 4.5e6  # ~ params x 129 positions
    y = model(np.zeros((3, 129, 1, 8), np.float32))
    assert y.shape == (3, 129)
    assert float(np.min(y)) >= 0.0 and float(np.max(y)) <= 1.0  # sigmoid mask


def test_rced_layer_plan_matches_paper():
    model = build_model(ModelConfig(arch="rced"))
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [12, 16, 20, 24, 32, 24, 20, 16, 12, 1]
    assert [c.kernel_size[0] for c in convs] == [13, 11, 9, 7, 7, 7, 9, 11, 13, 129]
    assert all(c.kernel_size[1] == 1 for c in convs)  # convolution along frequency only


def test_crced_has_skips_and_16_conv_layers():
    model = build_model(ModelConfig(arch="crced"))
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    adds = [layer for layer in model.layers if layer.__class__.__name__ == "Add"]
    assert len(convs) == 16 and len(adds) == 12


def test_batch_one_graph_and_width_multiplier():
    m = build_model(ModelConfig(arch="rced", width_mult=0.5), batch_size=1)
    assert m.input.shape == (1, 129, 1, 8)
    assert count_params(m) < 0.5 * count_params(build_model(ModelConfig(arch="rced")))


def test_only_frequency_receptive_field_is_causal():
    # the output at frame t depends only on its 8 input frames: one example = one frame
    m = build_model(ModelConfig(arch="rced"))
    x = np.random.default_rng(0).standard_normal((2, 129, 1, 8)).astype(np.float32)
    y1 = np.asarray(m(x))
    x2 = x.copy()
    x2[1] += 1.0
    y2 = np.asarray(m(x2))
    np.testing.assert_allclose(y1[0], y2[0], atol=1e-6)


def test_unknown_arch():
    with pytest.raises(RcedError, match="unknown architecture"):
        build_model(ModelConfig(arch="lstm"))


@pytest.mark.parametrize("bins,bands,sr", [(129, 48, 16000), (129, 32, 8000), (129, 129, 16000)])
def test_band_matrix_partitions_every_bin(bins, bands, sr):
    from rced.features import band_compression, band_matrix

    m = band_matrix(bins, bands, sr)
    assert m.shape == (bands, bins) and np.all(m >= 0)
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-6)  # each bin shared out whole
    assert np.all(m.sum(axis=1) > 0)  # no empty band
    low = int(np.sum(np.arange(bins) * sr / 2 / (bins - 1) < 300))
    np.testing.assert_array_equal(m[:low, :low], np.eye(low))  # identity below 300 Hz
    comp, expand = band_compression(bins, bands, sr)
    np.testing.assert_allclose(comp.sum(axis=0), 1.0, atol=1e-6)  # bands are weighted means of bins
    np.testing.assert_allclose(np.full((1, bands), 0.37, np.float32) @ expand, 0.37, atol=1e-7)


@pytest.mark.parametrize("cfg", [dict(n_bands=200), dict(n_bands=3), dict(n_bands=48.0), dict(arch="bced"),
                                 dict(arch="rced", n_bands=48)])  # fmt: skip
def test_bad_band_counts_are_refused(cfg):
    with pytest.raises(RcedError, match="n_bands"):
        ModelConfig(**{"arch": "bced", **cfg})


def test_bced_constant_band_mask_gives_that_mask_on_every_bin():
    m = build_model(ModelConfig(arch="bced", n_bands=48, width_mult=0.5))
    out = m.get_layer("out_conv")
    k, b = out.get_weights()
    out.set_weights([np.zeros_like(k), np.full_like(b, 0.8)])  # band logits all 0.8
    y = np.asarray(m(np.random.default_rng(0).standard_normal((2, 129, 1, 8)).astype(np.float32)))
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-0.8)), atol=1e-6)
    assert not m.get_layer("band_compress").trainable and not m.get_layer("band_expand").trainable


def test_bced_fits_50_mmac_per_second_and_converts_to_tflm_int8():
    from firmware_export.convert import convert_int8

    cfg = ModelConfig(arch="bced", n_bands=48, width_mult=0.5)
    m = build_model(cfg, batch_size=1)
    mmac_s = macs_per_frame(m) * cfg.frontend.frame_rate / 1e6
    assert 30 <= mmac_s <= 50  # 36.9 MMAC/s, band matrices included
    x = np.random.default_rng(1).standard_normal((16, 129, 1, 8)).astype(np.float32)
    dev = device_model(m, cfg)
    assert dev.output_shape == (1, 48) and "band_expand" not in [layer.name for layer in dev.layers]
    data = convert_int8(dev, x, "bced")  # raises unless every op is a TFLM builtin in int8
    assert len(data) < 32 * 1024


@pytest.mark.parametrize("bins,bands,sr", [(129, 48, 16000), (129, 32, 8000), (129, 129, 16000), (257, 64, 16000)])
def test_expansion_taps_equal_the_dense_expansion(bins, bands, sr):
    from rced.features import band_compression, expansion_taps

    expand = band_compression(bins, bands, sr)[1]
    first, w0, w1 = expansion_taps(expand)
    z = np.random.default_rng(2).standard_normal((5, bands)).astype(np.float32)
    np.testing.assert_allclose(z[:, first] * w0 + z[:, first + 1] * w1, z @ expand, atol=1e-6)
    with pytest.raises(RcedError, match="bin 0 takes bands"):  # bands 0 and 2: not two adjacent bands
        expansion_taps(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32))


@pytest.mark.parametrize("output", ["mask", "magnitude"])
def test_bced_device_graph_then_head_is_the_whole_model(output):
    from rced.features import device_head, device_output_width

    cfg = ModelConfig(arch="bced", n_bands=48, width_mult=0.5, output=output)
    m = build_model(cfg, batch_size=1)
    x = np.random.default_rng(3).standard_normal((1, 129, 1, 8)).astype(np.float32)
    z = np.asarray(device_model(m, cfg)(x))
    assert z.shape == (1, device_output_width(cfg))
    np.testing.assert_allclose(device_head(cfg)(z), np.asarray(m(x)), atol=1e-6)
    rced_cfg = ModelConfig(width_mult=0.25)
    rced = build_model(rced_cfg, batch_size=1)
    assert device_model(rced, rced_cfg) is rced and device_head(rced_cfg) is None
