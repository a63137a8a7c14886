"""Compiled in-place updates (nnlite/ops/_optim_kernels.pyx): the SGD and RMSprop steps and the
bias gradient, with the same signatures and errors as the numpy twins in
:mod:`nnlite.ops.reference`, one fused in-place pass over the arrays. (Adam/AdamW has one
compiled version, in :mod:`nnlite.ops.native_nn`.)

The arrays an optimizer step updates in place (param and its state) must be C-contiguous: the
kernel writes through a flat view, and a silent copy would drop the update (one not aligned to
its itemsize is updated through an aligned copy, written back). ``grad`` is only read, so any
layout is accepted (a non-contiguous or misaligned one is copied, a read-only one is fine).
"""
import math

import numpy as np

from . import _checks as checks  # the twins' checks: identical errors
from . import _optim_kernels as _k

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_ndarray = np.ndarray


def _write_back(copies):
    for a, copy in copies:
        a[...] = copy


def _flat_grad(grad):
    return checks.c_aligned(grad).reshape(-1)


def sgd_update(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
               weight_decay=0.0):
    """g ← g + λp;  v ← μv + g;  p ← p - lr·(nesterov ? g + μv : v)   (plain SGD when μ = 0)."""
    op = "sgd_update"
    param, grad, velocity = checks.sgd_update_args(param, grad, velocity, momentum)
    copies = []
    if momentum:
        p, v = checks.inplace_arrays(op, copies, True, param=param, velocity=velocity)
    else:
        (p,) = checks.inplace_arrays(op, copies, True, param=param)
        v = p  # not read when momentum is 0
    _k.sgd_update(p, _flat_grad(grad), v, float(lr), float(momentum), bool(nesterov),
                  float(weight_decay))
    if copies:
        _write_back(copies)


def rmsprop_update(param, grad, sq, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """g ← g + λp;  s ← αs + (1-α)g²;  p ← p - lr·g/(√s + ε)."""
    op = "rmsprop_update"
    param, grad, sq = checks.rmsprop_update_args(param, grad, sq)
    copies = []
    p, s = checks.inplace_arrays(op, copies, True, param=param, sq=sq)
    _k.rmsprop_update(p, _flat_grad(grad), s, float(lr), float(alpha), float(eps),
                      float(weight_decay))
    if copies:
        _write_back(copies)


def bias_grad(grad_out, out=None, accumulate=False):
    """db = Σ_n grad_out[n, :], summed over every leading axis of grad_out (..., C): the bias
    gradient of y = x + b. With ``out`` (C,): written there (``accumulate``: out += db)."""
    # Fast path (a Linear layer's db += Σ g, every step): the cases where every check passes.
    # out: C-contiguous, aligned and writable (numpy's "carray" flag); grad_out: C-contiguous
    # and aligned (the kernel must not read an array misaligned for its dtype).
    if type(grad_out) is _ndarray and grad_out.ndim == 2 and type(out) is _ndarray:
        dt = grad_out.dtype
        if (dt == _F32 or dt == _F64) and out.dtype == dt and out.shape == grad_out.shape[1:] \
                and out.flags.carray:
            gf = grad_out.flags
            if gf.c_contiguous and gf.aligned:
                _k.bias_grad(grad_out, out, bool(accumulate))
                return out
    g = checks.bias_grad_args(grad_out, out, accumulate)
    g2 = checks.c_aligned(g).reshape(math.prod(g.shape[:-1]), g.shape[-1])    # (rows, C)
    direct = out is not None and checks.writable_target(out)
    target = out if direct else np.empty(g.shape[-1:], g.dtype)
    if target is not out and accumulate:
        target[...] = out
    _k.bias_grad(g2, target, bool(accumulate))
    if out is None:
        return target
    if target is not out:
        out[...] = target
    return out
