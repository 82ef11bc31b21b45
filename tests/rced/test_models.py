import numpy as np
import pytest

from rced.config import ModelConfig
from rced.errors import RcedError
from rced.models import build_model, count_params, macs_per_frame


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
