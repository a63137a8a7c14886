"""The FMA peak probe (csrc/common/peak.cpp, nnlite.ops.measure_peak): the denominator of the
benchmarks' "% of peak". Its arithmetic is checked exactly (timing-free), its figure only for
being a positive, finite number: no timed assertions."""
import math

import numpy as np
import pytest

from nnlite import ops

pytestmark = pytest.mark.skipif(ops.simd_path().startswith("none"),
                                reason="the probe is compiled code; no compiled kernels here")

LANES = {"scalar": 1, "avx2": 8, "avx512": 16}


def _gemm():
    from nnlite.ops import _gemm
    return _gemm


def chains_twin(iters, x, y, chains, lanes):
    """The probe's loop in numpy, float64: acc = acc·x + y, ``iters`` times, from acc = c."""
    acc = np.repeat(np.arange(chains, dtype=np.float64)[:, None], lanes, axis=1)
    for _ in range(iters):
        acc = acc * x + y
    return acc


@pytest.mark.parametrize("iters", [0, 1, 7, 1000])
def test_chains_run_every_iteration_on_every_lane(simd, iters):
    # x = 1, y = 0.5: every step adds exactly 0.5, so the final value counts the FMAs each
    # lane of each chain ran (exact in float32 for these counts)
    got = _gemm()._fma_chains(iters, 1.0, 0.5)
    assert got.shape == (12, LANES[simd or ops.simd_path()])
    np.testing.assert_array_equal(got, chains_twin(iters, 1.0, 0.5, *got.shape))


def test_chains_compute_acc_times_x_plus_y(simd):
    # x = 0.5, y = 1 are exact in binary: every step is exact until acc reaches 2
    got = _gemm()._fma_chains(9, 0.5, 1.0)
    np.testing.assert_array_equal(got, chains_twin(9, 0.5, 1.0, *got.shape))


@pytest.mark.parametrize("threads", [1, 2])
def test_peak_is_a_positive_finite_figure_with_the_right_flop_count(simd, threads):
    r = ops.measure_peak(threads=threads, seconds=0.005)
    path = simd or ops.simd_path()
    assert r["isa"] == path and r["lanes"] == LANES[path] and r["chains"] == 12
    assert r["threads"] == (threads if ops.has_openmp() else 1)
    assert r["windows"] >= 3 and r["iters"] == 200_000
    # one window: chains·iters FMAs of `lanes` lanes on each thread, 2 flops per lane
    assert r["window_flops"] == 2 * r["lanes"] * r["chains"] * r["iters"] * r["threads"]
    assert 0 < r["best_seconds"] <= r["total_seconds"]
    assert math.isfinite(r["gflops"]) and r["gflops"] > 0
    assert r["gflops"] == pytest.approx(r["window_flops"] / r["best_seconds"] / 1e9)
    assert f"{r['threads']} thread" in r["text"] and f"{r['gflops']:.1f} GFLOP/s" in r["text"]


def test_peak_defaults_to_the_kernels_thread_count():
    assert ops.measure_peak(seconds=0)["threads"] == (ops.num_threads() if ops.has_openmp()
                                                     else 1)


@pytest.mark.parametrize("kwargs, match", [({"threads": 0}, "threads must be >= 1"),
                                           ({"seconds": -1}, "seconds must be >= 0"),
                                           ({"seconds": float("nan")}, "seconds must be >= 0")])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.measure_peak(**kwargs)
