import numpy as np
import pytest

from nnlite import ops


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=ops.simd_paths() or [None])
def simd(request):
    """Run the test once per SIMD path this CPU supports (each forced in turn)."""
    if request.param is None:
        yield None
    else:
        with ops.force_simd(request.param):
            yield request.param
