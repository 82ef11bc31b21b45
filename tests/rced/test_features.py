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
