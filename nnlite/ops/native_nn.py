"""Compiled transformer kernels, the one compiled Adam and the gradients' sum of squares
(csrc/cpu/layernorm.cpp, embedding.cpp, adam_many.cpp, sum_squares.cpp).

Thin wrappers: arguments are checked with the same code as the numpy twins in
:mod:`nnlite.ops.reference` (so errors are identical), inputs made C-contiguous, outputs
allocated, then ``nnlite.ops._nn`` does the work without the GIL. Empty arrays are answered
here (nothing to compute); every other input the checks accept goes to the kernel.
"""
import numpy as np

from . import _checks as checks
from . import _nn

_c = checks.c_aligned      # C-contiguous and aligned to the itemsize (a copy when not)
_ndarray = np.ndarray
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _ids64(ids):
    return _c(ids, dtype=np.int64)


def layernorm(x, gamma, beta, eps=1e-5):
    """LayerNorm over the last axis: y = (x - μ) · rstd · γ + β, rstd = 1/√(σ² + ε).

    Returns (y, mean, rstd); mean and rstd have shape x.shape[:-1].
    """
    x, gamma, beta = checks.layernorm_args(x, gamma, beta)
    y = np.empty(x.shape, x.dtype)
    mean = np.empty(x.shape[:-1], x.dtype)
    rstd = np.empty(x.shape[:-1], x.dtype)
    if x.size:
        _nn.layernorm(_c(x), _c(gamma), _c(beta), float(eps), y, mean, rstd)
    return y, mean, rstd


def layernorm_backward(grad_out, x, gamma, mean, rstd, residual=None):
    """(dx, dgamma, dbeta) of LayerNorm, with g = grad_out, x̂ = (x - μ)·rstd and dx̂ = g ⊙ γ:

    dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂)),  dγ = Σ g ⊙ x̂,  dβ = Σ g
    (sums over every axis but the last). ``residual`` (x's shape), when given, is added to dx
    as the kernel writes it: the gradient that reaches x by a skip connection.
    """
    g, x, gamma, mean, rstd = checks.layernorm_backward_args(grad_out, x, gamma, mean, rstd)
    residual = checks.residual_arg("layernorm_backward", residual, x.shape, x.dtype)
    t = x.dtype
    dx = np.empty(x.shape, t)
    if x.size == 0:                               # no rows: the sums dγ, dβ are 0
        return dx, np.zeros(gamma.shape, t), np.zeros(gamma.shape, t)
    dgamma = np.empty(gamma.shape, t)
    dbeta = np.empty(gamma.shape, t)
    _nn.layernorm_backward(_c(g), _c(x), _c(gamma), _c(mean), _c(rstd), dx, dgamma, dbeta,
                           None if residual is None else _c(residual))
    return dx, dgamma, dbeta


def embedding(ids, table):
    """Gather rows: out[..., :] = table[ids[...], :] for integer ids of any shape."""
    table = checks.as_float_array("embedding", "table", table)
    checks.check_ndim("embedding", "table", table, 2)
    ids = checks.check_ids("embedding", ids, table.shape[0])
    out = np.empty(ids.shape + (table.shape[1],), table.dtype)
    if out.size:
        _nn.embedding(_ids64(ids).reshape(-1), _c(table), out)
    return out


def embedding_backward(ids, grad_out, dtable):
    """Scatter-add: dtable[ids[...], :] += grad_out[..., :] (repeated ids add up). In place.

    A non-contiguous (or misaligned) ``dtable`` is summed into a copy, then written back.
    """
    ids, g = checks.embedding_backward_args(ids, grad_out, dtable)
    if ids.size == 0 or dtable.size == 0:
        return
    direct = checks.writable_target(dtable)
    target = dtable if direct else _c(dtable)
    _nn.embedding_backward(_ids64(ids).reshape(-1), _c(g), target)
    if not direct:
        dtable[...] = target


def adam_update(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, step=1, decoupled=False):
    """Adam (decoupled=False, L2 added to g) or AdamW (decoupled=True, p ← p(1 - lr·λ)).

    m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  p ← p - lr · (m/(1-β₁ᵗ)) / (√(v/(1-β₂ᵗ)) + ε)

    One parameter through the kernel of :func:`adam_update_many`. Like the other single-array
    optimizer steps, param, m and v must be C-contiguous (the kernel writes through them); one
    misaligned for its dtype is updated through an aligned copy, written back.
    """
    param, grad, m, v = checks.adam_update_args(param, grad, m, v, step)
    copies = []
    p, m2, v2 = checks.inplace_arrays("adam_update", copies, False, param=param, m=m, v=v)
    _nn.adam_update_many([p], [_c(grad)], [m2], [v2], float(lr), float(beta1), float(beta2),
                         float(eps), [float(weight_decay)], int(step), bool(decoupled))
    for a, copy in copies:
        a[...] = copy


def adam_update_many(params, grads, ms, vs, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                     weight_decays=0.0, step=1, decoupled=True):
    """One Adam/AdamW step over many parameters at once (lists of arrays, updated in place).

    ``weight_decays`` is one float for all or a list with one per parameter (GPT training
    decays matrices only). Each parameter gets exactly :func:`reference.adam_update`, but
    all of them in one C++ call (one OpenMP region over every element).

    Every array is checked before any is updated. A param, m or v that is not C-contiguous
    (or not aligned to its itemsize) is updated through a contiguous copy, written back after
    the kernel.
    """
    params, grads, ms, vs = list(params), list(grads), list(ms), list(vs)
    wds = checks.adam_update_many_args(params, grads, ms, vs, weight_decays, step)
    if _kernel_ready(params, grads, ms, vs):
        # the optimizer's every step: straight to the kernel (the checks below would pass)
        _nn.adam_update_many(params, grads, ms, vs, float(lr), float(beta1), float(beta2),
                             float(eps), [float(w) for w in wds], int(step), bool(decoupled))
        return
    checked = [checks.adam_update_args(p, g, m, v, step)
               for p, g, m, v in zip(params, grads, ms, vs)]
    groups = {}                      # dtype -> lists for one kernel call
    copies = []                      # (original, contiguous copy) to write back
    for (p, g, m, v), wd in zip(checked, wds):
        grp = groups.setdefault(p.dtype, ([], [], [], [], []))
        arrays = []
        for a in (p, m, v):
            if not checks.writable_target(a):
                copies.append((a, _c(a)))
                a = copies[-1][1]
            arrays.append(a)
        for lst, a in zip(grp, (arrays[0], _c(g), arrays[1], arrays[2], float(wd))):
            lst.append(a)
    for ps, gs, mm, vv, ww in groups.values():
        _nn.adam_update_many(ps, gs, mm, vv, float(lr), float(beta1), float(beta2), float(eps),
                             ww, int(step), bool(decoupled))
    for a, copy in copies:
        a[...] = copy


def _kernel_ready(params, grads, ms, vs):
    """True when the kernel can take the lists as they are, every check of the general path
    passing: plain ndarrays of one float dtype, each (param, grad, m, v) of one shape, param,
    m and v C-contiguous, aligned and writable (numpy's "carray"), grad C-contiguous and
    aligned. Half the Python time of a baby-GPT step went to checking its 54 parameters one
    by one; this walks them once."""
    if not params or type(params[0]) is not _ndarray or params[0].dtype not in _FLOATS:
        return False
    dt = params[0].dtype
    for p, g, m, v in zip(params, grads, ms, vs):
        if not (type(p) is _ndarray and type(g) is _ndarray and type(m) is _ndarray
                and type(v) is _ndarray):
            return False
        if p.dtype != dt or g.dtype != dt or m.dtype != dt or v.dtype != dt:
            return False
        s = p.shape
        if g.shape != s or m.shape != s or v.shape != s:
            return False
        gf = g.flags
        if not (p.flags.carray and m.flags.carray and v.flags.carray and gf.c_contiguous
                and gf.aligned):
            return False
    return True


def sum_squares_many(arrays):
    """Σ x² over every entry of every array, accumulated in float64 (float32 and float64 may
    mix): one C++ call per dtype, threaded, and the same bits for any thread count."""
    groups = {}
    for a in checks.sum_squares_many_args(arrays):
        if a.size:
            groups.setdefault(a.dtype, []).append(_c(a))
    return sum((_nn.sum_squares_many(group) for group in groups.values()), 0.0)
