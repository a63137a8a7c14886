
import os

import numpy as np
import pytest
from _offline import DATA, NO_DATA

from nnlite import _origin, ops


def pytest_report_header(config):
    compiled = sum(s == "compiled" for s in ops.compiled_kernels().values())
    return [f"{_origin.describe()}",
            (f"kernels compiled: {compiled}/{len(ops.OPS)} (backend {ops.BACKEND}), "
            f"SIMD {ops.simd_path()}, OpenMP {'yes' if ops.has_openmp() else 'no'}")]


def _refusal(rootdir):
    """Why this session must not run, or None: the tests are for the compiled kernels, and an
    unbuilt source tree imported by accident would quietly test the numpy twins instead."""
    missing = [op for op, s in ops.compiled_kernels().items() if s != "compiled"]
    if missing and ops.BACKEND == "native" and not _origin.env_flag("NNLITE_ALLOW_TWINS"):
        return "\n  ".join(
            [(f"nnlite: {len(missing)} of {len(ops.OPS)} ops have no compiled kernel, so these "
             f"tests would test the numpy twins instead ({ops.compiled_kernels()[missing[0]]}).")]
            + _origin.advice()
            + [("NNLITE_ALLOW_TWINS=1 runs the tests anyway; NNLITE_BACKEND=numpy tests the "
               "twins on purpose")])
    if _origin.env_flag("NNLITE_TEST_INSTALLED") and _origin.running_from(rootdir):
        return (f"nnlite: NNLITE_TEST_INSTALLED=1, but the nnlite imported is the one in the tree "
                f"under test: {_origin.describe()}")
    return None


def pytest_configure(config):
    why = _refusal(config.rootpath)
    if why:
        raise pytest.UsageError(why)


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


@pytest.fixture(params=["shim", pytest.param("gpu", marks=pytest.mark.cuda)])
def cuda_dev(request):
    """A CUDA kernel test runs twice: through the shim on CPU threads (always), and on the GPU
    (marked ``cuda``; skipped, saying why, where there is none). See tests/_cuda_shim.py."""
    import _cuda_shim
    why = _cuda_shim.missing() if request.param == "shim" else ""
    if why:
        pytest.skip(why)
    try:
        return _cuda_shim.test_device(request.param)
    except RuntimeError as e:   # "no GPU: <reason>"
        pytest.skip(str(e))


def pytest_collection_modifyitems(config, items):
    """Under ThreadSanitizer (NNLITE_CUDA_SHIM_TSAN=1, .ci/cuda), every CUDA kernel test still
    runs, on fewer of its cases: a race is a matter of which threads touch which addresses
    between barriers, which the kernels' code decides, not the sizes or the dtype (float64 is
    the same template). So of each parametrized test in tests/test_cuda_*.py only the shim's
    float32 cases run, at most two of them (the first and the last: the smallest and the
    largest shapes, as the lists are ordered), which keeps the TSan step a few minutes long on
    2 cores. The plain shim run (the README's pytest) runs every case."""
    if not os.environ.get("NNLITE_CUDA_SHIM_TSAN"):
        return
    groups = {}
    for item in items:
        if os.path.basename(str(item.fspath)).startswith("test_cuda_") and \
                hasattr(item, "callspec"):
            groups.setdefault((str(item.fspath), item.originalname), []).append(item)
    drop = set()
    for group in groups.values():
        cases = [i for i in group if i.callspec.params.get("cuda_dev") != "gpu"]
        cases = [i for i in cases if "float64" not in i.name] or cases
        keep = {id(cases[0]), id(cases[-1])} if cases else set()
        drop.update(id(i) for i in group if id(i) not in keep)
    if drop:
        config.hook.pytest_deselected(items=[i for i in items if id(i) in drop])
        items[:] = [i for i in items if id(i) not in drop]


def pytest_terminal_summary(terminalreporter):
    """Say how many tests skipped for want of the data sets, and how to run them."""
    n = sum(NO_DATA in str(report.longrepr)
            for report in terminalreporter.stats.get("skipped", []))
    if n:
        terminalreporter.write_line(
            f"{n} test{'s' * (n != 1)} skipped: the data sets are not in {DATA}. To run them, "
            "point NNLITE_DATA at a folder holding mnist/, fashion-mnist/ and tinyshakespeare/ "
            "(the original files; see README.md).", yellow=True, bold=True)
