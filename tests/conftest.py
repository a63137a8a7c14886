import numpy as np
import pytest
from _offline import DATA, NO_DATA

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


def pytest_terminal_summary(terminalreporter):
    """Say how many tests skipped for want of the data sets, and how to run them."""
    n = sum(NO_DATA in str(report.longrepr)
            for report in terminalreporter.stats.get("skipped", []))
    if n:
        terminalreporter.write_line(
            f"{n} test{'s' * (n != 1)} skipped: the data sets are not in {DATA}. To run them, "
            "point NNLITE_DATA at a folder holding mnist/, fashion-mnist/ and tinyshakespeare/ "
            "(the original files; see README.md).", yellow=True, bold=True)
