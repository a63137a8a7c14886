"""Compiled activations, softmax and softmax cross-entropy (csrc/pointwise.cpp, csrc/softmax.cpp).

Thin wrappers: the arguments are checked with the same :mod:`nnlite.ops._checks` calls as the
numpy twins in :mod:`nnlite.ops.reference` (so errors are identical), inputs are made
C-contiguous, outputs allocated, then ``nnlite.ops._pointwise`` does the work without the GIL.
Empty and 0-d arrays go to the twin: nothing to speed up, and it defines the edge-case results.
"""
import numpy as np

from . import _checks as C
from . import _pointwise as _pw
from . import reference

_ACT = dict(_pw.ACT_CODES)


def _writable_target(out, *inputs):
    """``out`` itself if the kernel can write it directly, else None (use a temporary).

    Direct writes need a C-contiguous, writable ``out`` that either is one of the inputs
    exactly (elementwise in place is safe) or does not overlap them at all.
    """
    if out is None or not (out.flags.c_contiguous and out.flags.writeable):
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
    """y = act(x + b) for x (..., F) and b (F,). ``act`` in none|relu|leaky_relu|tanh|sigmoid|gelu."""
    x, b = C.bias_act_args("bias_act", x, b, act, out)
    if x.size == 0:
        return reference.bias_act(x, b, act, alpha, out)
    xc = np.ascontiguousarray(x)
    bc = np.ascontiguousarray(b)
    y = _writable_target(out, xc, bc)
    if y is None:
        y = np.empty(x.shape, x.dtype)
    _pw.bias_act(xc, bc, y, _ACT[act], float(alpha))
    return _finish(out, y)


def act_forward(x, act, alpha=0.01):
    """y = act(x), elementwise."""
    x = C.as_float_array("act_forward", "x", x)
    C.check_act("act_forward", act)
    if x.size == 0 or x.ndim == 0:
        return reference.act_forward(x, act, alpha)
    xc = np.ascontiguousarray(x)
    y = np.empty(x.shape, x.dtype)
    _pw.bias_act(xc, None, y, _ACT[act], float(alpha))
    return y


def act_backward(grad, x, y, act, alpha=0.01):
    """dx = grad · act'(x), using whichever of the forward input x and output y is cheaper."""
    grad, x, y = C.act_backward_args(grad, x, y, act)
    if x.size == 0 or x.ndim == 0:
        return reference.act_backward(grad, x, y, act, alpha)
    dx = np.empty(x.shape, x.dtype)
    _pw.act_backward(np.ascontiguousarray(grad), np.ascontiguousarray(x),
                     np.ascontiguousarray(y), dx, _ACT[act], float(alpha))
    return dx


def softmax(x):
    """Row-wise softmax over the last axis: y_i = exp(x_i - max x) / Σ_j exp(x_j - max x)."""
    x = C.softmax_args(x)
    if x.size == 0:
        return reference.softmax(x)
    y = np.empty(x.shape, x.dtype)
    _pw.softmax(np.ascontiguousarray(x), y)
    return y


def softmax_backward(grad, y):
    """dx = y ⊙ (g - Σ_j g_j y_j), row-wise over the last axis."""
    grad, y = C.softmax_backward_args(grad, y)
    if grad.size == 0 or grad.ndim == 0:
        return reference.softmax_backward(grad, y)
    dx = np.empty(y.shape, y.dtype)
    _pw.softmax_backward(np.ascontiguousarray(grad), np.ascontiguousarray(y), dx)
    return dx


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = -(1/N) Σ_n log softmax(z_n)[t_n],   dz = (softmax(z) - onehot(t)) / N
    Returns (loss as a Python float, dlogits (N, C) in the logits' dtype).
    """
    z, t = C.softmax_cross_entropy_args(logits, labels)
    if z.shape[1] == 0:
        return reference.softmax_cross_entropy(z, t)
    d = np.empty(z.shape, z.dtype)
    loss = _pw.softmax_cross_entropy(np.ascontiguousarray(z), np.ascontiguousarray(t, np.int64), d)
    return float(loss), d
