import numpy as np
import pytest

from rced.errors import RcedError
from rced.features import LOG_EPS, compress

MAG = np.array([[0.0, 0.5, 2.0]], np.float32)


@pytest.mark.parametrize(("kind", "expected"), [("log", np.log(MAG + LOG_EPS)), ("pow0.3", MAG**0.3),
                                                ("pow1", MAG)])  # fmt: skip
def test_compress(kind, expected):
    np.testing.assert_allclose(compress(MAG, kind), expected, rtol=1e-6)


@pytest.mark.parametrize("kind", ["powx", "foo", "pow0"])
def test_compress_refuses_unknown_features_with_rced_error(kind):
    with pytest.raises(RcedError, match="unknown input feature"):
        compress(MAG, kind)


def _tracker_cfg(trackers=((0.5, 0.5), (2.0, 0.05)), context: int = 3):
    from rced.config import FrontendConfig, ModelConfig

    return ModelConfig(frontend=FrontendConfig(context=context), trackers=trackers)


@pytest.mark.parametrize(("height", "gain"), [(2.0, 0.25), (-3.0, 0.5)])
def test_track_step_response_closed_form(height, gain):
    """From a start on 0, a step of ``height`` is followed with the rise gain when above, the fall
    gain when below: after n frames s = h (1 - (1 - k)^n)."""
    from rced.features import track

    gains = np.array([[0.25, 0.5]], np.float32)  # rise 0.25, fall 0.5
    feats = np.concatenate([np.zeros((1, 4)), np.full((9, 4), height)]).astype(np.float32)
    out, last = track(feats, gains)
    n = np.arange(1, 10)
    np.testing.assert_allclose(out[1:, 0, 0], height * (1 - (1 - gain) ** n), rtol=1e-5)
    np.testing.assert_array_equal(out[0, 0], feats[0])  # started on the first frame
    np.testing.assert_array_equal(last, out[-1])


def test_tracker_gains_from_time_constants():
    """A time constant of tau seconds at 125 frames/s: gain 1 - exp(-1 / (125 tau))."""
    from rced.features import tracker_gains

    g = tracker_gains(_tracker_cfg())
    np.testing.assert_allclose(g, 1 - np.exp(-1 / (125 * np.array([[0.5, 0.5], [2.0, 0.05]]))), rtol=1e-6)
    assert tracker_gains(_tracker_cfg(None)).shape == (0, 2)


@pytest.mark.parametrize("trackers", [None, ((0.5, 0.5), (2.0, 0.05))])
@pytest.mark.parametrize("blocks", [[1], [7, 1, 30], [200]])
def test_input_stream_in_blocks_equals_model_inputs(trackers, blocks):
    """Any split of the frames into blocks gives the inputs of one run: the context frames (silence
    before the first), then each tracker's value after the current frame."""
    from rced.features import InputStream, Normalizer, model_inputs, track, tracker_gains

    cfg = _tracker_cfg(trackers)
    mag = np.abs(np.random.default_rng(3).standard_normal((90, 129))).astype(np.float32)
    norm = Normalizer(tuple([-1.0] * 129), tuple([2.0] * 129))
    ref = model_inputs(mag, cfg, norm)
    assert ref.shape == (90, 129, 1, cfg.input_channels)
    stream, parts, i = InputStream(cfg, norm), [], 0
    while i < len(mag):
        for b in blocks:
            parts.append(stream.push(mag[i : i + b]))
            i += b
    np.testing.assert_array_equal(np.concatenate(parts), ref)
    feats = norm.apply(compress(mag, "log"))
    np.testing.assert_array_equal(ref[5, :, 0, 2], feats[5])  # the current frame last among the context
    np.testing.assert_array_equal(ref[5, :, 0, 0], feats[3])
    if trackers:
        tracks = track(feats, tracker_gains(cfg))[0]
        np.testing.assert_array_equal(ref[:, :, 0, 3:], tracks.transpose(0, 2, 1))
