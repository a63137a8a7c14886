"""Compiled transformer kernels (csrc/layernorm.cpp, embedding.cpp, adam_many.cpp).

Thin wrappers: arguments are checked with the same code as the numpy twins in
:mod:`nnlite.ops.reference` (so errors are identical), inputs made C-contiguous, outputs
allocated, then ``nnlite.ops._nn`` does the work without the GIL. Empty arrays (and the odd
inputs the kernels do not take, see each function) go to the twin, which defines those results.
"""
import numpy as np

from . import _checks as C
from . import _nn
from . import reference


def _ids64(ids):
    return np.ascontiguousarray(ids, dtype=np.int64)


def layernorm(x, gamma, beta, eps=1e-5):
    """LayerNorm over the last axis: y = (x - μ) · rstd · γ + β, rstd = 1/√(σ² + ε).

    Returns (y, mean, rstd); mean and rstd have shape x.shape[:-1].
    """
    x, gamma, beta = C.layernorm_args(x, gamma, beta)
    if x.size == 0:
        return reference.layernorm(x, gamma, beta, eps)
    y = np.empty(x.shape, x.dtype)
    mean = np.empty(x.shape[:-1], x.dtype)
    rstd = np.empty(x.shape[:-1], x.dtype)
    _nn.layernorm(np.ascontiguousarray(x), np.ascontiguousarray(gamma),
                  np.ascontiguousarray(beta), float(eps), y, mean, rstd)
    return y, mean, rstd


def layernorm_backward(grad, x, gamma, mean, rstd):
    """(dx, dgamma, dbeta) of LayerNorm, with x̂ = (x - μ)·rstd and dx̂ = g ⊙ γ:

    dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂)),  dγ = Σ g ⊙ x̂,  dβ = Σ g
    (sums over every axis but the last).
    """
    grad, x, gamma = C.layernorm_backward_args(grad, x, gamma)
    mean_a, rstd_a = np.asarray(mean), np.asarray(rstd)
    if (x.size == 0 or mean_a.shape != x.shape[:-1] or rstd_a.shape != x.shape[:-1]
            or mean_a.dtype.kind != "f" or rstd_a.dtype.kind != "f"):
        # the twin broadcasts or fails on odd mean/rstd; let it define that
        return reference.layernorm_backward(grad, x, gamma, mean, rstd)
    t = x.dtype
    dx = np.empty(x.shape, t)
    dgamma = np.empty(gamma.shape, t)
    dbeta = np.empty(gamma.shape, t)
    _nn.layernorm_backward(np.ascontiguousarray(grad), np.ascontiguousarray(x),
                           np.ascontiguousarray(gamma), np.ascontiguousarray(mean_a, t),
                           np.ascontiguousarray(rstd_a, t), dx, dgamma, dbeta)
    return dx, dgamma, dbeta


def embedding(ids, table):
    """Gather rows: out[..., :] = table[ids[...], :] for integer ids of any shape."""
    table = C.as_float_array("embedding", "table", table)
    C.check_ndim("embedding", "table", table, 2)
    ids = C.check_ids("embedding", ids, table.shape[0])
    if ids.size == 0 or table.shape[1] == 0:
        return reference.embedding(ids, table)
    out = np.empty(ids.shape + (table.shape[1],), table.dtype)
    _nn.embedding(_ids64(ids).reshape(-1), np.ascontiguousarray(table), out)
    return out


def embedding_backward(ids, grad, dtable):
    """Scatter-add: dtable[ids[...], :] += grad[..., :] (repeated ids add up). In place."""
    ids, grad = C.embedding_backward_args(ids, grad, dtable)
    if ids.size == 0 or dtable.size == 0 or not dtable.flags.writeable:
        return reference.embedding_backward(ids, grad, dtable)
    direct = dtable.flags.c_contiguous
    target = dtable if direct else np.ascontiguousarray(dtable)
    _nn.embedding_backward(_ids64(ids).reshape(-1), np.ascontiguousarray(grad), target)
    if not direct:
        dtable[...] = target


def adam_update_many(params, grads, ms, vs, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                     weight_decays=0.0, step=1, decoupled=True):
    """One Adam/AdamW step over many parameters at once (lists of arrays, updated in place).

    ``weight_decays`` is one float for all or a list with one per parameter (GPT training
    decays matrices only). Each parameter gets exactly :func:`reference.adam_update`, but
    all of them in one C++ call (one OpenMP region over every element).

    Every array is checked before any is updated. Parameters whose param/m/v are not
    C-contiguous and writable are updated by the twin (the kernel writes through flat views).
    """
    params, grads, ms, vs = list(params), list(grads), list(ms), list(vs)
    wds = C.adam_update_many_args(params, grads, ms, vs, weight_decays)
    for p, g, m, v in zip(params, grads, ms, vs):
        C.adam_update_args(p, g, m, v, step)
    groups = {}                      # dtype -> lists for one kernel call
    slow = []
    for p, g, m, v, wd in zip(params, grads, ms, vs, wds):
        if all(a.flags.c_contiguous and a.flags.writeable for a in (p, m, v)):
            grp = groups.setdefault(p.dtype, ([], [], [], [], []))
            for lst, a in zip(grp, (p, np.ascontiguousarray(g), m, v, float(wd))):
                lst.append(a)
        else:
            slow.append((p, g, m, v, wd))
    for ps, gs, mm, vv, ww in groups.values():
        _nn.adam_update_many(ps, gs, mm, vv, float(lr), float(beta1), float(beta2), float(eps),
                             ww, int(step), bool(decoupled))
    for p, g, m, v, wd in slow:
        reference.adam_update(p, g, m, v, lr, beta1, beta2, eps, wd, step, decoupled)
