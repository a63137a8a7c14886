"""Activations, the bias gradient (also after an activation's backward, as one op), softmax and
softmax cross-entropy on a GPU (csrc/cuda/pointwise_kernels.cuh), and dropout (the twin's own
array code on the device: its counter-based mask is elementwise integer arithmetic, which CuPy
compiles), with the signatures, results and errors of their numpy twins in
:mod:`nnlite.ops.reference`.

``kernels(dev)`` returns ``{op name: function}`` for a :class:`nnlite.ops.cuda_device.Device`:
arrays live on the device (CuPy arrays on a GPU, numpy arrays under the test shim); inputs that
are not device arrays (lists, numpy arrays on a GPU) are converted as the twins convert them and
copied over. The checks below are the twins' (:mod:`nnlite.ops._checks`), written so that they
work on CuPy arrays as well (the twins' own checks take numpy arrays): same order, same errors.
The softmax family's module-level functions take an extra ``row_threads`` (0: the launcher
chooses; 32: a warp per row; a larger multiple of 32: a block of that many threads per row),
which the tests use to run both paths on every row length.
"""
import math

import numpy as np

from . import _checks as checks
from . import reference

__all__ = ["kernels", "OPS"]

OPS = ("bias_act", "act_forward", "act_backward", "act_backward_bias_grad", "bias_grad", "dropout",
       "softmax", "softmax_backward", "softmax_cross_entropy")

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def kernels(dev):
    """{op name: function} for the ops in OPS on ``dev``, each with its twin's signature."""

    def bias_act_(x, b, act="none", alpha=0.01, out=None):
        return bias_act(dev, x, b, act, alpha, out)

    def act_forward_(x, act, alpha=0.01):
        return act_forward(dev, x, act, alpha)

    def act_backward_(grad_out, x, y, act, alpha=0.01):
        return act_backward(dev, grad_out, x, y, act, alpha)

    def act_backward_bias_grad_(grad_out, x, y, act, alpha=0.01, db=None, accumulate=False,
                                out=None):
        return act_backward_bias_grad(dev, grad_out, x, y, act, alpha, db, accumulate, out)

    def bias_grad_(grad_out, out=None, accumulate=False):
        return bias_grad(dev, grad_out, out, accumulate)

    def dropout_(x, rate, seed):
        return dropout(dev, x, rate, seed)

    def softmax_(x):
        return softmax(dev, x)

    def softmax_backward_(grad_out, y):
        return softmax_backward(dev, grad_out, y)

    def softmax_cross_entropy_(logits, labels):
        return softmax_cross_entropy(dev, logits, labels)

    fns = dict(bias_act=bias_act_, act_forward=act_forward_, act_backward=act_backward_,
               act_backward_bias_grad=act_backward_bias_grad_, bias_grad=bias_grad_,
               dropout=dropout_, softmax=softmax_, softmax_backward=softmax_backward_,
               softmax_cross_entropy=softmax_cross_entropy_)
    for name, f in fns.items():
        f.__name__ = f.__qualname__ = name
        f.__doc__ = globals()[name].__doc__
    return fns


# ----------------------------------------------------------------------------- checks
# The twins' checks (nnlite/ops/_checks.py) for arrays of either module: numpy's own checks
# where an input is not yet a device array, device-side equivalents where it is.


def _is_dev(dev, a):
    return isinstance(a, dev.xp.ndarray)


def _float(dev, op, name, x):
    """checks.as_float_array, for device arrays too; the result is a device array."""
    if dev.xp is np or not _is_dev(dev, x):
        return dev.xp.asarray(checks.as_float_array(op, name, x))
    if x.dtype not in checks.FLOAT_DTYPES:
        if x.dtype.kind in "biu":
            return x.astype(np.float64)
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype} "
                        f"with shape {x.shape}")
    return x


def _check_out(dev, op, out, shape, dtype):
    """checks.check_out for device arrays."""
    if out is None:
        return
    if not _is_dev(dev, out) or out.shape != tuple(shape) or out.dtype != dtype:
        got = (out.shape, out.dtype) if _is_dev(dev, out) else type(out).__name__
        raise ValueError(f"{op}: out must be an ndarray of shape {tuple(shape)} and dtype {dtype}, "
                         f"got {got}")


def _check_writable(op, out, name="out"):
    """checks.check_writable (CuPy arrays are always writable: no such flag)."""
    if not getattr(out.flags, "writeable", True):
        raise ValueError(f"{op}: {name} is read-only; it is updated in place")


def _labels(dev, op, labels, n_rows, n_classes):
    """checks.check_labels for device arrays: int64 labels (N,) in [0, C), on the device."""
    xp = dev.xp
    if not _is_dev(dev, labels):
        labels = xp.asarray(np.asarray(labels))
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and labels.size and bool(xp.all(xp.isfinite(labels))) \
                and bool(xp.all(labels == xp.round(labels))):
            labels = labels.astype(np.int64)
        else:
            raise TypeError(f"{op}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (n_rows,):
        raise ValueError(f"{op}: labels must have shape ({n_rows},) to match logits with "
                         f"{n_rows} rows, got {labels.shape}")
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{op}: labels must lie in [0, {n_classes}) for {n_classes} classes, "
                             f"got values in [{lo}, {hi}]")
    return labels.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------- helpers


def _c(dev, a, dtype=None):
    """``a`` C-contiguous (and aligned to its itemsize, for numpy views at odd offsets)."""
    a = dev.xp.ascontiguousarray(a, dtype)
    return a if getattr(a.flags, "aligned", True) else a.copy()


def _fn(dev, name, dtype):
    return getattr(dev.ext, f"{name}_{_SUFFIX[np.dtype(dtype)]}")


def _writable_target(dev, out, *inputs):
    """``out`` if the kernel may write it directly: C-contiguous, aligned, and either exactly
    one of the inputs (elementwise in place is safe) or overlapping none of them; else None."""
    if out is None or not out.flags.c_contiguous or not getattr(out.flags, "aligned", True):
        return None
    for a in inputs:
        if a is None or not dev.xp.may_share_memory(out, a):
            continue
        if not (dev.ptr(a) == dev.ptr(out) and a.strides == out.strides and a.shape == out.shape):
            return None
    return out


def _finish(out, y):
    if out is None:
        return y
    if y is not out:
        out[...] = y
    return out


_ACT_CODES = {}     # compiled module -> {activation name: code}, read once from the binding


def _act_code(dev, act):
    codes = _ACT_CODES.get(dev.ext)
    if codes is None:
        codes = _ACT_CODES[dev.ext] = dict(dev.ext.pointwise_act_codes())
    return codes[act]


def _host_scalar(a):
    """a[0] of a 1-element device array, as a Python float (waits for the device)."""
    return float((a.get() if hasattr(a, "get") else a)[0])


# ----------------------------------------------------------------------------- activations


def bias_act(dev, x, b, act="none", alpha=0.01, out=None):
    """y = act(x + b) for x (..., C) and b (C,).
    ``act`` in none|relu|leaky_relu|tanh|sigmoid|gelu."""
    op = "bias_act"
    x = _float(dev, op, "x", x)
    b = _float(dev, op, "b", b)
    checks.same_dtype(op, x=x, b=b)
    checks.check_act(op, act)
    if b.ndim != 1 or x.ndim < 1 or x.shape[-1] != b.shape[0]:
        raise ValueError(f"{op}: b must have shape ({x.shape[-1] if x.ndim else '?'},) to match "
                         f"x {x.shape}, got {b.shape}")
    _check_out(dev, op, out, x.shape, x.dtype)
    if out is not None:
        _check_writable(op, out)
    if x.size == 0:
        return out if out is not None else dev.xp.empty(x.shape, x.dtype)
    xc, bc = _c(dev, x), _c(dev, b)
    y = _writable_target(dev, out, xc, bc)
    if y is None:
        y = dev.xp.empty(x.shape, x.dtype)
    C = x.shape[-1]
    _fn(dev, "bias_act", x.dtype)(dev.ptr(xc), dev.ptr(bc), dev.ptr(y), x.size // C, C,
                                  _act_code(dev, act), float(alpha), dev.stream())
    return _finish(out, y)


def act_forward(dev, x, act, alpha=0.01):
    """y = act(x), elementwise."""
    x = _float(dev, "act_forward", "x", x)
    checks.check_act("act_forward", act)
    y = dev.xp.empty(x.shape, x.dtype)
    if x.size:
        xc = _c(dev, x)     # held until the call returns: dev.ptr is only an address
        _fn(dev, "bias_act", x.dtype)(dev.ptr(xc), 0, dev.ptr(y), 1, x.size,
                                      _act_code(dev, act), float(alpha), dev.stream())
    return y


def act_backward(dev, grad_out, x, y, act, alpha=0.01):
    """dx = grad_out · act'(x), using whichever of the forward input x and output y is cheaper."""
    op = "act_backward"
    checks.check_act(op, act)
    g = _float(dev, op, "grad_out", grad_out)
    x = _float(dev, op, "x", x)
    y = _float(dev, op, "y", y)
    checks.same_dtype(op, grad_out=g, x=x, y=y)
    if not (g.shape == x.shape == y.shape):
        raise ValueError(f"{op}: grad_out {g.shape}, x {x.shape} and y {y.shape} must "
                         f"have one shape")
    dx = dev.xp.empty(x.shape, x.dtype)
    if x.size:
        gc, xc, yc = _c(dev, g), _c(dev, x), _c(dev, y)
        _fn(dev, "act_backward", x.dtype)(dev.ptr(gc), dev.ptr(xc), dev.ptr(yc), dev.ptr(dx),
                                          x.size, _act_code(dev, act), float(alpha),
                                          dev.stream())
    return dx


def bias_grad(dev, grad_out, out=None, accumulate=False):
    """db = Σ_n grad_out[n, :], summed over every leading axis of grad_out (..., C): the bias
    gradient of y = x + b. With ``out`` (C,): written there (``accumulate``: out += db)."""
    op = "bias_grad"
    g = _float(dev, op, "grad_out", grad_out)
    if g.ndim < 1:
        raise ValueError(f"{op}: grad_out must have at least 1 dimension (..., C), got shape "
                         f"{g.shape}")
    _check_out(dev, op, out, g.shape[-1:], g.dtype)
    if accumulate and out is None:
        raise ValueError(f"{op}: accumulate=True needs an out array to add into")
    if out is not None:
        _check_writable(op, out)
    C = g.shape[-1]
    rows = math.prod(g.shape[:-1])
    if C == 0:
        return out if out is not None else dev.xp.empty((0,), g.dtype)
    gc = _c(dev, g)
    target = _writable_target(dev, out, gc)
    if target is None:
        target = dev.xp.empty((C,), g.dtype)
        if accumulate:
            target[...] = out
    _fn(dev, "bias_grad", g.dtype)(dev.ptr(gc), dev.ptr(target), rows, C, bool(accumulate),
                                   dev.stream())
    return _finish(out, target)


def act_backward_bias_grad(dev, grad_out, x, y, act, alpha=0.01, db=None, accumulate=False,
                           out=None):
    """dx = grad_out · act'(x) and db = Σ_n dx[n, :] (over every leading axis; ``accumulate``:
    db += ...); dx to ``out`` or a new array, db to ``db`` or a new (C,) array; returns
    ``(dx, db)``. On the GPU: the act_backward kernel, then the bias_grad kernel on its result
    (two passes; the CPU kernel makes one)."""
    op = "act_backward_bias_grad"
    checks.check_act(op, act)
    g = _float(dev, op, "grad_out", grad_out)
    x = _float(dev, op, "x", x)
    y = _float(dev, op, "y", y)
    checks.act_backward_bias_grad_shapes(g, x, y, db, accumulate, out,
                                         is_arr=lambda a: _is_dev(dev, a))
    if db is not None:
        _check_writable(op, db, "db")
    if out is not None:
        _check_writable(op, out)
    gc, xc, yc = _c(dev, g), _c(dev, x), _c(dev, y)
    dx = _writable_target(dev, out, gc, xc, yc)
    if dx is None or (db is not None and dev.xp.may_share_memory(db, dx)):
        dx = dev.xp.empty(g.shape, g.dtype)     # (out overlapping db: written last)
    if g.size:
        _fn(dev, "act_backward", g.dtype)(dev.ptr(gc), dev.ptr(xc), dev.ptr(yc), dev.ptr(dx),
                                          g.size, _act_code(dev, act), float(alpha),
                                          dev.stream())
    if db is None:
        db = dev.xp.zeros(g.shape[-1:], g.dtype)
    db = bias_grad(dev, dx, db, accumulate)
    return _finish(out, dx), db


# ----------------------------------------------------------------------------- softmax


def softmax(dev, x, row_threads=0):
    """Row-wise softmax over the last axis: y_i = exp(x_i - max x) / Σ_j exp(x_j - max x)."""
    x = _float(dev, "softmax", "x", x)
    if x.ndim < 1:
        raise ValueError(f"softmax: x must have at least 1 dimension, got shape {x.shape}")
    y = dev.xp.empty(x.shape, x.dtype)
    if x.size:
        C = x.shape[-1]
        xc = _c(dev, x)
        _fn(dev, "softmax", x.dtype)(dev.ptr(xc), dev.ptr(y), x.size // C, C,
                                     row_threads, dev.stream())
    return y


def softmax_backward(dev, grad_out, y, row_threads=0):
    """dx = y ⊙ (g - Σ_j g_j y_j), row-wise over the last axis, for g = grad_out."""
    op = "softmax_backward"
    g = _float(dev, op, "grad_out", grad_out)
    y = _float(dev, op, "y", y)
    checks.same_dtype(op, grad_out=g, y=y)
    if g.shape != y.shape:
        raise ValueError(f"{op}: grad_out {g.shape} and y {y.shape} must have one shape")
    if y.ndim < 1:
        raise ValueError(f"{op}: y must have at least 1 dimension, got shape {y.shape}")
    dx = dev.xp.empty(y.shape, y.dtype)
    if y.size:
        C = y.shape[-1]
        gc, yc = _c(dev, g), _c(dev, y)
        _fn(dev, "softmax_backward", y.dtype)(dev.ptr(gc), dev.ptr(yc), dev.ptr(dx), y.size // C,
                                              C, row_threads, dev.stream())
    return dx


def softmax_cross_entropy(dev, logits, labels, row_threads=0):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = -(1/N) Σ_n log softmax(z_n)[t_n],   dz = (softmax(z) - onehot(t)) / N
    Returns (loss as a Python float, dlogits (N, C) in the logits' dtype, on the device).
    """
    op = "softmax_cross_entropy"
    z = _float(dev, op, "logits", logits)
    checks.check_ndim(op, "logits", z, 2)
    n, c = z.shape
    t = _labels(dev, op, labels, n, c)
    if n == 0:
        raise ValueError(f"{op}: logits has no rows, shape {z.shape}")
    # the checks leave N >= 1 rows and labels in [0, C), so C >= 1 too
    xp = dev.xp
    dz = xp.empty(z.shape, z.dtype)
    row_loss = xp.empty((n,), np.float64)
    loss = xp.empty((1,), np.float64)
    zc, tc = _c(dev, z), _c(dev, t, np.int64)
    _fn(dev, "softmax_xent", z.dtype)(dev.ptr(zc), dev.ptr(tc), dev.ptr(dz), dev.ptr(row_loss),
                                      dev.ptr(loss), n, c, row_threads, dev.stream())
    return _host_scalar(loss), dz


def dropout(dev, x, rate, seed):
    """Inverted dropout, y = x · m / (1 - rate), with the twin's counter-based mask made on the
    device: :func:`nnlite.ops.reference.dropout_apply` run with the device's array module (its
    uint64 arithmetic wraps as numpy's), so a seed gives the same mask on every backend."""
    x = _float(dev, "dropout", "x", x)
    x, rate, seed = checks.dropout_args(x, rate, seed)
    return reference.dropout_apply(x, rate, seed, dev.xp)
