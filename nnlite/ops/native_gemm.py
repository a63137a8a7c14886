"""Compiled GEMM (csrc/cpu/gemm.cpp): ``gemm``, ``gemm_nt``, ``gemm_tn``, twins of the same names in
:mod:`nnlite.ops.reference` (same signatures, same results up to rounding, same errors).

The wrappers are kept thin because an MLP training step calls them with small matrices, where
a few microseconds of Python overhead are a visible fraction of the work: the common case (two
2-D float arrays of one dtype) is recognised with a handful of attribute reads and goes straight
to C++; anything else takes the shared checks of :mod:`nnlite.ops._checks`, so errors match the
numpy twin's word for word.
"""
import numpy as np

from . import _checks as checks
from ._gemm import _gemm as _native

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_ndarray = np.ndarray


def _slow(op, a, b, trans_a, trans_b, out, accumulate):
    a, b = checks.gemm_args(op, a, b, trans_a, trans_b, out, accumulate)
    return _native(op, a, b, trans_a, trans_b, out, accumulate)


def _run(op, a, b, trans_a, trans_b, out, accumulate):
    # Fast path: exactly the cases where every check in _slow() passes.
    if type(a) is _ndarray and type(b) is _ndarray and a.ndim == 2 and b.ndim == 2:
        dt = a.dtype
        if (dt is b.dtype or dt == b.dtype) and (dt == _F32 or dt == _F64):
            sa, sb = a.shape, b.shape
            if sa[0 if trans_a else 1] == sb[1 if trans_b else 0]:
                if out is None:
                    if not accumulate:
                        return _native(op, a, b, trans_a, trans_b, None, False)
                elif type(out) is _ndarray and out.dtype == dt and \
                        out.shape == (sa[1 if trans_a else 0], sb[0 if trans_b else 1]):
                    return _native(op, a, b, trans_a, trans_b, out, bool(accumulate))
    return _slow(op, a, b, trans_a, trans_b, out, accumulate)


# The three ops repeat reference.py's gemm/gemm_nt/gemm_tn line for line (signature, docstring)
# on purpose: each is a plain function straight into _run, no generic wrapper on the fast path.
def _epilogue(a, b, out, accumulate, bias, residual):
    """gemm with a bias and/or a residual, added inside the kernel as each tile is finished."""
    a, b = checks.gemm_args("gemm", a, b, False, False, out, accumulate)
    bias, residual = checks.gemm_epilogue_args("gemm", bias, residual,
                                               (a.shape[0], b.shape[1]), a.dtype)
    if bias is not None:
        bias = checks.c_aligned(bias)
    if residual is not None:
        residual = checks.c_aligned(residual)
    return _native("gemm", a, b, False, False, out, bool(accumulate), bias, residual)


def gemm(a, b, out=None, accumulate=False, bias=None, residual=None):
    """C = A·B for A (M, K), B (K, N). With ``out``: written there (``accumulate``: out += A·B).

    ``bias`` (N,) and ``residual`` (M, N), when given, are added to the product: C = A·B + bias
    + residual, a Linear layer's output and a transformer's skip connection in one pass.
    """
    if bias is None and residual is None:
        return _run("gemm", a, b, False, False, out, accumulate)
    # Fast path (a Linear layer's forward): new output, the bias C-contiguous and aligned, no
    # residual or a C-contiguous aligned one, every check of _epilogue passing.
    if out is None and not accumulate and type(a) is _ndarray and type(b) is _ndarray \
            and a.ndim == 2 and b.ndim == 2:
        dt = a.dtype
        if (dt is b.dtype or dt == b.dtype) and (dt == _F32 or dt == _F64) \
                and a.shape[1] == b.shape[0]:
            n = b.shape[1]
            if (bias is None or (type(bias) is _ndarray and bias.dtype == dt
                                 and bias.shape == (n,) and _readable(bias))) and \
                    (residual is None or (type(residual) is _ndarray and residual.dtype == dt
                                          and residual.shape == (a.shape[0], n)
                                          and _readable(residual))):
                return _native("gemm", a, b, False, False, None, False, bias, residual)
    return _epilogue(a, b, out, accumulate, bias, residual)


def _readable(x):
    f = x.flags
    return f.c_contiguous and f.aligned


def gemm_nt(a, b, out=None, accumulate=False):
    """C = A·Bᵀ for A (M, K), B (N, K): the input gradient of a Linear layer, dX = dY·Wᵀ."""
    return _run("gemm_nt", a, b, False, True, out, accumulate)


def gemm_tn(a, b, out=None, accumulate=False):
    """C = Aᵀ·B for A (K, M), B (K, N): the weight gradient of a Linear layer, dW = Xᵀ·dY."""
    return _run("gemm_tn", a, b, True, False, out, accumulate)
