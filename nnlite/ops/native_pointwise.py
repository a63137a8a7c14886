"""Compiled activations, softmax and softmax cross-entropy (csrc/cpu/pointwise.cpp, csrc/cpu/softmax.cpp).

Thin wrappers: the arguments are checked with the same :mod:`nnlite.ops._checks` calls as the
numpy twins in :mod:`nnlite.ops.reference` (so errors are identical), inputs are made
C-contiguous and aligned, outputs allocated, then ``nnlite.ops._pointwise`` does the work without the GIL.
Empty arrays are answered here (an empty result, nothing to compute); every other input the
checks accept goes to the kernel.
"""
import numpy as np

from . import _checks as checks
from . import _pointwise as _pw

_c = checks.c_aligned      # C-contiguous and aligned to the itemsize (a copy when not)

_ACT = dict(_pw.ACT_CODES)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_ndarray = np.ndarray


def _writable_target(out, *inputs):
    """``out`` itself if the kernel can write it directly, else None (use a temporary).

    Direct writes need a C-contiguous, aligned, writable ``out`` (numpy's "carray") that either
    is one of the inputs exactly (elementwise in place is safe) or does not overlap them at all.
    """
    if out is None or not out.flags.carray:
        return None
    for a in inputs:
        if a is None or not np.may_share_memory(out, a):
            continue
        same = (a.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                and a.strides == out.strides and a.shape == out.shape)
        if not same:
            return None
    return out


def _finish(out, y):
    if out is None:
        return y
    if y is not out:
        out[...] = y
    return out


def bias_act(x, b, act="none", alpha=0.01, out=None):
    """y = act(x + b) for x (..., C) and b (C,). ``act`` in none|relu|leaky_relu|tanh|sigmoid|gelu.

    ``out=x`` adds the bias in place (a Linear layer's y = xW, then y += b).
    """
    # Fast path (a Linear layer's bias, every step): exactly the cases where every check in
    # bias_act_args passes and the kernel can write a new array, or x itself, directly
    # (C-contiguous and aligned: the kernel must not touch arrays misaligned for their dtype).
    if type(x) is _ndarray and type(b) is _ndarray and (out is None or out is x):
        dt = x.dtype
        if (dt == _F32 or dt == _F64) and b.dtype == dt and b.ndim == 1 and x.ndim \
                and x.shape[-1] == b.shape[0] and x.size and type(act) is str and act in _ACT:
            xf, bf = x.flags, b.flags
            if xf.c_contiguous and xf.aligned and bf.c_contiguous and bf.aligned \
                    and (out is None or xf.writeable):
                y = np.empty(x.shape, dt) if out is None else out
                _pw.bias_act(x, b, y, _ACT[act], float(alpha))
                return y
    x, b = checks.bias_act_args("bias_act", x, b, act, out)
    if x.size == 0:
        return out if out is not None else np.empty(x.shape, x.dtype)
    xc = _c(x)
    bc = _c(b)
    y = _writable_target(out, xc, bc)
    if y is None:
        y = np.empty(x.shape, x.dtype)
    _pw.bias_act(xc, bc, y, _ACT[act], float(alpha))
    return _finish(out, y)


def act_forward(x, act, alpha=0.01):
    """y = act(x), elementwise."""
    x = checks.as_float_array("act_forward", "x", x)
    checks.check_act("act_forward", act)
    y = np.empty(x.shape, x.dtype)
    if x.size:
        _pw.bias_act(_c(x), None, y, _ACT[act], float(alpha))
    return y


def act_backward(grad_out, x, y, act, alpha=0.01):
    """dx = grad_out · act'(x), using whichever of the forward input x and output y is cheaper."""
    g, x, y = checks.act_backward_args(grad_out, x, y, act)
    dx = np.empty(x.shape, x.dtype)
    if x.size:
        _pw.act_backward(_c(g), _c(x), _c(y), dx, _ACT[act], float(alpha))
    return dx


def act_backward_bias_grad(grad_out, x, y, act, alpha=0.01, db=None, accumulate=False,
                           out=None):
    """dx = grad_out · act'(x) and db = Σ_n dx[n, :] (over every leading axis; ``accumulate``:
    db += ...) in one pass over the data. dx goes to ``out`` or a new array, db to ``db`` or
    a new (C,) array; returns ``(dx, db)``. See act_backward and bias_grad."""
    # Fast path (a Linear layer's fused backward, every step): every check passes and the
    # kernel reads the inputs and writes a new dx and db itself (C-contiguous and aligned).
    # The kernel writes db only after it has read every input, so db may overlap them.
    if type(grad_out) is _ndarray and type(x) is _ndarray and type(y) is _ndarray \
            and type(db) is _ndarray and out is None and type(act) is str and act in _ACT:
        dt = grad_out.dtype
        if (dt == _F32 or dt == _F64) and x.dtype == dt and y.dtype == dt and db.dtype == dt \
                and grad_out.ndim and grad_out.shape == x.shape == y.shape \
                and db.shape == grad_out.shape[-1:] and db.flags.carray:
            gf, xf, yf = grad_out.flags, x.flags, y.flags
            if gf.c_contiguous and gf.aligned and xf.c_contiguous and xf.aligned \
                    and yf.c_contiguous and yf.aligned:
                dx = np.empty(grad_out.shape, dt)
                _pw.act_backward_bias_grad(grad_out, x, y, dx, db, _ACT[act], float(alpha),
                                           bool(accumulate))
                return dx, db
    g, x, y = checks.act_backward_bias_grad_args(grad_out, x, y, act, db, accumulate, out)
    gc, xc, yc = _c(g), _c(x), _c(y)
    dx = _writable_target(out, gc, xc, yc)
    if dx is None or (db is not None and np.may_share_memory(db, dx)):
        dx = np.empty(g.shape, g.dtype)     # (out overlapping db: written last, as the twin)
    target = db
    if db is None or not db.flags.carray:
        target = np.zeros(g.shape[-1:], g.dtype) if db is None else np.array(db, order="C")
    _pw.act_backward_bias_grad(gc, xc, yc, dx, target, _ACT[act], float(alpha), bool(accumulate))
    if db is None:
        db = target
    elif target is not db:
        db[...] = target
    return _finish(out, dx), db


def softmax(x):
    """Row-wise softmax over the last axis: y_i = exp(x_i - max x) / Σ_j exp(x_j - max x)."""
    x = checks.softmax_args(x)
    y = np.empty(x.shape, x.dtype)
    if x.size:
        _pw.softmax(_c(x), y)
    return y


def softmax_backward(grad_out, y):
    """dx = y ⊙ (g - Σ_j g_j y_j), row-wise over the last axis, for g = grad_out."""
    g, y = checks.softmax_backward_args(grad_out, y)
    dx = np.empty(y.shape, y.dtype)
    if y.size:
        _pw.softmax_backward(_c(g), _c(y), dx)
    return dx


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = -(1/N) Σ_n log softmax(z_n)[t_n],   dz = (softmax(z) - onehot(t)) / N
    Returns (loss as a Python float, dlogits (N, C) in the logits' dtype).
    """
    # the checks leave N >= 1 rows and labels in [0, C), so C >= 1 too
    z, t = checks.softmax_cross_entropy_args(logits, labels)
    d = np.empty(z.shape, z.dtype)
    loss = _pw.softmax_cross_entropy(_c(z), _c(t, np.int64), d)
    return float(loss), d


def dropout(x, rate, seed):
    """Inverted dropout, the mask from (seed, flat index): y = x · m / (1 - rate); see the twin
    (reference.dropout) for the generator. ``dropout(grad, rate, seed)`` is the backward."""
    x, rate, seed = checks.dropout_args(x, rate, seed)
    y = np.empty(x.shape, x.dtype)
    if x.size:
        _pw.dropout(_c(x), y, seed, checks.dropout_threshold(rate), 1.0 / (1.0 - rate))
    return y
