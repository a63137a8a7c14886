"""GEMM on the GPU (csrc/cuda/gemm_kernels.cuh): ``gemm``, ``gemm_nt``, ``gemm_tn``, twins of the
same names in :mod:`nnlite.ops.reference` (same signatures, same results up to rounding, same
errors), for float32 and float64 arrays of ``dev.xp`` (cupy on a GPU, numpy under the shim).

``kernels(dev)`` returns ``{"gemm": f, "gemm_nt": f, "gemm_tn": f}`` bound to a
:class:`nnlite.ops.cuda_device.Device`.

The kernel takes row-major matrices with a leading dimension and a transpose flag each, so most
views need no copy: a row-major view with unit column stride (a slice of rows or columns) is
passed with its row stride as the leading dimension, and a column-major one (a transposed
array, ``a.T``) as its transpose, flipping the flag. Anything else (a step along the columns,
negative or zero strides, data not aligned to its item size) is copied to C order first.
``out`` is written in place when the kernel can address it the same way and it shares no
memory with the inputs; otherwise the product goes through a fresh array, added or copied into
``out`` as the numpy twin does.
"""
import numpy as np

from . import _checks as checks
from . import reference

__all__ = ["kernels"]

_FLOAT = (np.dtype(np.float32), np.dtype(np.float64))


# -- the twin's checks (nnlite/ops/_checks.py: gemm_args) for arrays of any array module: the
# same errors word for word, with dev.xp in place of numpy
def _as_float_array(xp, op, name, x):
    if not isinstance(x, xp.ndarray):
        try:
            x = xp.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{op}: {name} must be a numeric array, got {type(x).__name__}") from e
    if x.dtype not in _FLOAT:
        if x.dtype.kind in "biu":
            x = x.astype(np.float64)
        else:
            raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype} "
                            f"with shape {x.shape}")
    return x


def _check_out(xp, op, out, shape, dtype):
    if out is None:
        return
    if not isinstance(out, xp.ndarray) or out.shape != tuple(shape) or out.dtype != dtype:
        got = (out.shape, out.dtype) if isinstance(out, xp.ndarray) else type(out).__name__
        raise ValueError(f"{op}: out must be an ndarray of shape {tuple(shape)} and dtype {dtype}, "
                         f"got {got}")


def _args(xp, op, a, b, trans_a, trans_b, out, accumulate):
    """Validated (a, b, (M, N, K)) for op(a) @ op(b), as checks.gemm_args validates them."""
    a = _as_float_array(xp, op, "a", a)
    b = _as_float_array(xp, op, "b", b)
    dtype = checks.same_dtype(op, a=a, b=b)
    m, n, k = checks.gemm_shapes(op, a, b, trans_a, trans_b)
    _check_out(xp, op, out, (m, n), dtype)
    if accumulate and out is None:
        raise ValueError(f"{op}: accumulate=True needs an out array to add into")
    if out is not None and not getattr(out.flags, "writeable", True):   # cupy has no such flag
        raise ValueError(f"{op}: out is read-only")
    return a, b, (m, n, k)


# -- how the kernel sees an array: a row-major matrix at a pointer with a leading dimension
def _row_major_ld(dev, x):
    """The leading dimension (elements) of 2-D ``x`` read as a row-major matrix in place, or
    None when it cannot be: the column stride must be one element and the row stride a whole
    number of elements, at least the row length; the data aligned to the item size."""
    item = x.itemsize
    (rows, cols), (s0, s1) = x.shape, x.strides
    if dev.ptr(x) % item:
        return None
    if cols > 1 and s1 != item:
        return None
    if rows <= 1:
        return max(cols, 1)          # one row: any leading dimension >= its length will do
    if s0 % item or s0 // item < cols:
        return None
    return s0 // item


def _operand(dev, x, trans):
    """(array, trans, ld) such that the kernel's op(array as row-major, ld) is ``op(x)``:
    ``x`` itself when row-major, ``x.T`` with the transpose flipped when column-major, else a C
    copy."""
    ld = _row_major_ld(dev, x)
    if ld is not None:
        return x, trans, ld
    ld = _row_major_ld(dev, x.T)
    if ld is not None:
        return x.T, not trans, ld
    x = x.copy(order="C")
    return x, trans, max(x.shape[1], 1)


def _run(dev, op, a, b, trans_a, trans_b, out, accumulate):
    xp = dev.xp
    a, b, (m, n, k) = _args(xp, op, a, b, trans_a, trans_b, out, accumulate)
    accumulate = bool(accumulate)
    if m == 0 or n == 0:
        return xp.empty((m, n), a.dtype) if out is None else out
    target, ldc = out, None
    if out is not None:
        ldc = _row_major_ld(dev, out)
        if ldc is not None and (xp.may_share_memory(out, a) or xp.may_share_memory(out, b)):
            ldc = None               # gemm(a, b, out=a): the kernel would read what it wrote
    if ldc is None:                  # no out, or one the kernel cannot write in place
        target, ldc = xp.empty((m, n), a.dtype), n
    a_, ta, lda = _operand(dev, a, trans_a)
    b_, tb, ldb = _operand(dev, b, trans_b)
    launch = dev.ext.gemm_f32 if a.dtype == np.float32 else dev.ext.gemm_f64
    launch(ta, tb, m, n, k, dev.ptr(a_), lda, dev.ptr(b_), ldb, dev.ptr(target), ldc,
           accumulate and target is out, dev.stream())
    if out is None:
        return target
    if target is not out:
        if accumulate:
            out += target
        else:
            out[...] = target
    return out


def _epilogue(dev, a, b, out, accumulate, bias, residual):
    """gemm + bias + residual: the product into a new array, the adds on it, then into ``out``
    (which may be the residual itself)."""
    xp = dev.xp
    a, b, (m, n, _) = _args(xp, "gemm", a, b, False, False, out, accumulate)
    if bias is not None:
        bias = _as_float_array(xp, "gemm", "bias", bias)
    if residual is not None:
        residual = _as_float_array(xp, "gemm", "residual", residual)
    bias, residual = checks.gemm_epilogue_args("gemm", bias, residual, (m, n), a.dtype)
    r = _run(dev, "gemm", a, b, False, False, None, False)
    if bias is not None:
        r += bias
    if residual is not None:
        r += residual
    if out is None:
        return r
    if accumulate:
        out += r
    else:
        out[...] = r
    return out


def kernels(dev):
    """``{"gemm": f, "gemm_nt": f, "gemm_tn": f}`` on ``dev``, with the twins' signatures."""

    def gemm(a, b, out=None, accumulate=False, bias=None, residual=None):
        if bias is None and residual is None:
            return _run(dev, "gemm", a, b, False, False, out, accumulate)
        return _epilogue(dev, a, b, out, accumulate, bias, residual)

    def gemm_nt(a, b, out=None, accumulate=False):
        return _run(dev, "gemm_nt", a, b, False, True, out, accumulate)

    def gemm_tn(a, b, out=None, accumulate=False):
        return _run(dev, "gemm_tn", a, b, True, False, out, accumulate)

    fns = {"gemm": gemm, "gemm_nt": gemm_nt, "gemm_tn": gemm_tn}
    for name, f in fns.items():
        f.__doc__ = getattr(reference, name).__doc__
        f.__qualname__ = f"cuda_gemm.{name}"
    return fns
