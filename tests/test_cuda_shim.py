"""The shim that runs nnlite's CUDA kernels on CPU threads (csrc/cuda/shim/cuda_shim.h): its
execution model checked by the self-test kernel, and its ThreadSanitizer build shown to catch a
missing __syncthreads. Every kernel family's own tests (tests/test_cuda_*.py) build on this."""
import os
import subprocess
import sys

import numpy as np
import pytest

from nnlite.ops import cuda_device
import _cuda_shim

pytestmark = pytest.mark.skipif(bool(_cuda_shim.missing()), reason=_cuda_shim.missing())


@pytest.fixture(scope="module")
def dev():
    return _cuda_shim.test_device("shim")


def test_shim_module_reports_itself(dev):
    assert dev.ext.build_kind() == "shim"
    assert dev.ext.device_count() == 1
    assert "shim" in dev.ext.device_info(0)["name"]
    assert "selftest" in dev.ext.families


@pytest.mark.parametrize("n,threads", [(1, 32), (7, 32), (63, 64), (65, 64), (257, 96),
                                       (1000, 256), (4097, 1024)])
def test_selftest_kernel_matches_numpy(dev, n, threads):
    got, want = cuda_device.selftest(dev, n=n, threads=threads)
    assert got[1] == want[1]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


def test_bad_launch_is_an_error_not_a_crash(dev):
    with pytest.raises(ValueError, match="multiple of 32"):
        cuda_device.selftest(dev, n=10, threads=48)


def test_dynamic_shared_memory_is_poisoned_before_each_block(dev):
    # The shim fills dynamic shared memory with NaN bytes before every block, so a kernel that
    # read it before writing would produce NaN; the self-test writes first, so its sum is finite.
    got, _ = cuda_device.selftest(dev, n=5000, threads=128)
    assert np.isfinite(got[0])


_RACE = """
import sys
sys.path.insert(0, {tests!r})
import _cuda_shim
from nnlite.ops import cuda_device
dev = _cuda_shim.device(tsan=True)
got, want = cuda_device.selftest(dev, n=4096, threads=256, fault={fault})
print("result", got, want)
"""


@pytest.mark.parametrize("skip", [False, True])
def test_thread_sanitizer_sees_a_missing_syncthreads(skip, tmp_path):
    """The TSan build is clean with the barrier and reports a data race without it: the check
    that makes the shim tests worth running under TSan in CI."""
    if _cuda_shim.tsan_runtime() is None:
        pytest.fail(f"{_cuda_shim.compiler()} has no libtsan.so; CI needs it (gcc's libtsan)")
    _cuda_shim.build(tsan=True)
    r = subprocess.run([sys.executable, "-c", _RACE.format(tests=os.path.dirname(__file__),
                                                             fault=int(skip))],
                       env=_cuda_shim.tsan_env(), capture_output=True, text=True, timeout=600)
    if skip:
        assert r.returncode == 66, r.stdout + r.stderr[-3000:]
        assert "ThreadSanitizer: data race" in r.stderr
        assert "selftest_block_sum" in r.stderr
    else:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "ThreadSanitizer" not in r.stderr


_HANG = """
import sys
sys.path.insert(0, {tests!r})
import _cuda_shim
from nnlite.ops import cuda_device
cuda_device.selftest(_cuda_shim.device(), n=256, threads=64, fault=2)
"""


def test_a_deadlocked_kernel_fails_instead_of_hanging():
    """Threads waiting at barriers that others never reach: the shim's watchdog aborts the
    process with a message after NNLITE_SHIM_TIMEOUT seconds, so CI fails instead of hanging."""
    _cuda_shim.build()
    r = subprocess.run([sys.executable, "-c", _HANG.format(tests=os.path.dirname(__file__))],
                       env=dict(os.environ, NNLITE_SHIM_TIMEOUT="2"), capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode != 0
    assert "never reached a __syncthreads" in r.stderr, r.stderr[-2000:]
