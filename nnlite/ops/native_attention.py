"""Compiled flash-style attention (csrc/cpu/attention.cpp): ``attention``, ``attention_backward``,
twins of the same names in :mod:`nnlite.ops.reference` (same signatures, same results up to
rounding, same errors).

Thin wrappers: arguments go through the twin's own checks (``qkv_args``,
``attention_backward_args`` and ``attention_targets`` in :mod:`nnlite.ops._checks`), then
``nnlite.ops._attention`` does the work without the GIL. The kernel reads and writes every
(B, H, T, D) operand through its strides, so views with unit stride along D (q, k, v sliced out
of a (B, T, 3, H, D) projection, a (B, T, H, D) array viewed as (B, H, T, D)) are used in place,
and so are the destinations ``out=``, ``dq=``, ``dk=``, ``dv=``; other inputs are copied once,
C-contiguous. Unlike the twin, no (B, H, T, T) array is ever built: memory is O(T·D) per thread.
"""
import numpy as np

from . import _attention as _native
from . import _checks as checks

_c = checks.c_aligned      # C-contiguous and aligned to the itemsize (a copy when not)
_TooHard = getattr(np, "exceptions", np).TooHardError   # (np.exceptions: numpy >= 1.25)


def _scale(q, scale):
    return 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)


def _heads(a):
    """``a`` (B, H, T, D) as the kernel reads it: in place when aligned with unit stride along D
    (any strides along B, H, T), else a C-contiguous copy."""
    if ((a.shape[3] == 1 or a.strides[3] == a.itemsize) and a.flags.aligned
            and all(st % a.itemsize == 0 for st in a.strides[:3])):
        return a
    return _c(a)


def _overlap(a, b):
    try:
        return np.shares_memory(a, b, max_work=1000)
    except _TooHard:        # undecided within max_work: assume the worst
        return True


def _nested(a):
    """True when the rows of D elements of ``a`` (B, H, T, D) lie apart: axes of size > 1 sorted
    by stride, each stride spans everything inside it. Each row is written by one thread, so a
    destination whose rows overlap (a stride of 0, rows closer than D) would race."""
    extent = a.shape[3] * a.itemsize
    for stride, n in sorted((abs(s), n) for s, n in zip(a.strides[:3], a.shape[:3]) if n > 1):
        if stride < extent:
            return False
        extent += stride * (n - 1)
    return True


def _targets(given, inputs):
    """The destinations the kernel can write in place (others None: the kernel writes a new
    array, copied into the destination after). The kernel reads its inputs while it writes,
    so a destination sharing memory with one, with another destination or with itself, or
    misaligned, goes through a new array; then the result is the twin's (which computes first
    and writes after)."""
    direct = []
    for i, a in enumerate(given):
        ok = a is not None and a.flags.aligned and _nested(a) and not any(
            _overlap(a, b) for b in inputs + given[:i] + given[i + 1:] if b is not None)
        direct.append(a if ok else None)
    return direct


def _store(result, target):
    """``result``, or ``target`` holding it when the kernel wrote a new array instead."""
    if target is None or result is target:
        return result
    target[...] = result
    return target


def attention(q, k, v, causal=True, scale=None, return_lse=False, out=None):
    """Scaled dot-product attention over (B, H, T, D) arrays.

    out = softmax(Q Kᵀ / √D + mask) V, where the causal mask is -inf above the diagonal
    (query t sees keys 0..t). ``scale`` defaults to 1/√D. With ``return_lse`` also returns
    the row log-sum-exp L (B, H, T) of the scaled, masked scores, which the backward reuses.
    ``out``: an array of q's shape and dtype with unit stride along D (any strides along B, H,
    T, e.g. ``a.transpose(0, 2, 1, 3)`` of a (B, T, H, D) array) to write the result into, and
    return; by default a new C-contiguous one.
    """
    op = "attention"
    q, k, v = checks.qkv_args(op, q, k, v)
    checks.attention_targets(op, q, out=out)
    q, k, v = _heads(q), _heads(k), _heads(v)
    [direct] = _targets([out], [q, k, v])
    res, lse = _native.forward(q, k, v, bool(causal), _scale(q, scale), True, direct)
    res = _store(res, out)
    return (res, lse) if return_lse else res


def attention_backward(q, k, v, out, grad_out, lse=None, causal=True, scale=None, dq=None,
                       dk=None, dv=None):
    """Gradients (dq, dk, dv) of attention for the upstream gradient dO.

    With P = softmax(S), S = Q Kᵀ · scale (+ mask):
    dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - rowsum(dO ⊙ O)),  dQ = dS K · scale,
    dK = dSᵀ Q · scale. ``lse`` (B, H, T) from ``attention(..., return_lse=True)`` saves a pass
    over Q Kᵀ; without it the row statistics are recomputed first (no P·V).
    ``dq``, ``dk``, ``dv``: arrays to write the gradients into and return, as ``out`` of
    :func:`attention` (e.g. transposed views of one (B, T, 3, H, D) array: the gradient of a
    fused QKV projection, without a copy); by default new C-contiguous ones.
    """
    op = "attention_backward"
    q, k, v, out, grad_out = checks.attention_backward_args(q, k, v, out, grad_out)
    checks.attention_targets(op, q, dq=dq, dk=dk, dv=dv)
    s = _scale(q, scale)
    q, k, v = _heads(q), _heads(k), _heads(v)
    if lse is None:
        _, lse = _native.forward(q, k, v, bool(causal), s, False, None)
    else:
        lse = checks.as_float_array(op, "lse", lse)
        if lse.shape != q.shape[:3]:
            raise ValueError(f"{op}: lse must have shape (B, H, T) = {q.shape[:3]} for q "
                             f"{q.shape}, got {lse.shape}")
        lse = _c(lse, dtype=q.dtype)
    out, grad_out = _heads(out), _heads(grad_out)
    targets = [dq, dk, dv]
    direct = _targets(targets, [q, k, v, out, grad_out, lse])
    grads = _native.backward(q, k, v, out, grad_out, lse, bool(causal), s, *direct)
    return tuple(_store(g, t) for g, t in zip(grads, targets))
