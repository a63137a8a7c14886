r"""The machine's measured FMA peak: the denominator of the benchmarks' "% of peak".

.. math:: \text{peak} = \frac{2 \cdot \text{lanes} \cdot \text{chains} \cdot
          \text{iterations} \cdot \text{threads}}{\text{seconds of the fastest window}}

The compiled probe (csrc/common/peak.cpp, in ``nnlite.ops._gemm``) runs ``chains`` = 12
independent FMA chains ``acc = acc·x + y`` in SIMD registers, no memory traffic, on the SIMD
path the kernels use (the widest the CPU has, or the one forced), on ``threads`` OpenMP
threads at once, in windows of 200 000 iterations per thread, repeated for about ``seconds``;
the fastest window counts (a busy machine only ever slows a window down).
"""
from .. import ops


def _module():
    try:
        from . import _gemm
    except ImportError as e:
        raise RuntimeError(f"measure_peak: nnlite's compiled kernels are not built ({e}); the "
                           "probe is compiled code") from None
    return _gemm


def measure_peak(threads=None, seconds=0.05):
    """Measure the FMA peak of ``threads`` cores, in GFLOP/s.

    Parameters
    ----------
    threads : int, optional
        OpenMP threads running the probe at once (default: ``ops.num_threads()``). Without
        OpenMP the probe runs on the calling thread only, and ``threads`` in the result is 1.
    seconds : float
        Time budget (at least 3 windows run, whatever the budget).

    Returns
    -------
    dict
        ``gflops`` (the peak), ``isa``, ``lanes`` (floats per register), ``chains``,
        ``threads``, ``iters`` (iterations per thread per window), ``windows``,
        ``window_flops`` (= 2·lanes·chains·iters·threads), ``best_seconds``,
        ``total_seconds`` and ``text``, one line saying how it was measured.
    """
    threads = ops.num_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"measure_peak: threads must be >= 1, got {threads}")
    seconds = float(seconds)
    if not seconds >= 0:
        raise ValueError(f"measure_peak: seconds must be >= 0, got {seconds}")
    r = dict(_module()._fma_peak(seconds, threads))
    r["gflops"] = r["window_flops"] / r["best_seconds"] / 1e9
    r["text"] = (f"{r['threads']} thread{'s' * (r['threads'] != 1)} × {r['isa']} FMA, "
                 f"{r['chains']} independent chains of {r['lanes']} float"
                 f"{'s' * (r['lanes'] != 1)}, best of {r['windows']} windows "
                 f"({r['iters']:,} iterations each) in {1e3 * r['total_seconds']:.0f} ms: "
                 f"{r['gflops']:.1f} GFLOP/s")
    return r


__all__ = ["measure_peak"]
