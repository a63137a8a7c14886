"""Compiled flash-style attention (csrc/cpu/attention.cpp): ``attention``, ``attention_backward``,
twins of the same names in :mod:`nnlite.ops.reference` (same signatures, same results up to
rounding, same errors).

Thin wrappers: arguments go through the twin's own checks (``qkv_args`` and
``attention_backward_args`` in :mod:`nnlite.ops._checks`), inputs are made C-contiguous (a
(B, T, H, D) array viewed as (B, H, T, D) is copied once), then ``nnlite.ops._attention`` does
the work without the GIL.
Unlike the twin, no (B, H, T, T) array is ever built: memory is O(T·D) per thread.
"""
import numpy as np

from . import _attention as _native
from . import _checks as checks

_c = checks.c_aligned      # C-contiguous and aligned to the itemsize (a copy when not)


def _scale(q, scale):
    return 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)


def attention(q, k, v, causal=True, scale=None, return_lse=False):
    """Scaled dot-product attention over (B, H, T, D) arrays.

    out = softmax(Q Kᵀ / √D + mask) V, where the causal mask is -inf above the diagonal
    (query t sees keys 0..t). ``scale`` defaults to 1/√D. With ``return_lse`` also returns
    the row log-sum-exp L (B, H, T) of the scaled, masked scores, which the backward reuses.
    """
    q, k, v = checks.qkv_args("attention", q, k, v)
    out, lse = _native.forward(_c(q), _c(k), _c(v), bool(causal), _scale(q, scale), True)
    return (out, lse) if return_lse else out


def attention_backward(q, k, v, out, grad_out, lse=None, causal=True, scale=None):
    """Gradients (dq, dk, dv) of attention for the upstream gradient dO.

    With P = softmax(S), S = Q Kᵀ · scale (+ mask):
    dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - rowsum(dO ⊙ O)),  dQ = dS K · scale,
    dK = dSᵀ Q · scale. ``lse`` (B, H, T) from ``attention(..., return_lse=True)`` saves a pass
    over Q Kᵀ; without it the row statistics are recomputed first (no P·V).
    """
    op = "attention_backward"
    q, k, v, out, grad_out = checks.attention_backward_args(q, k, v, out, grad_out)
    s = _scale(q, scale)
    q, k, v = _c(q), _c(k), _c(v)
    if lse is None:
        _, lse = _native.forward(q, k, v, bool(causal), s, False)
    else:
        lse = checks.as_float_array(op, "lse", lse)
        if lse.shape != q.shape[:3]:
            raise ValueError(f"{op}: lse must have shape (B, H, T) = {q.shape[:3]} for q "
                             f"{q.shape}, got {lse.shape}")
        lse = _c(lse, dtype=q.dtype)
    return _native.backward(q, k, v, _c(out), _c(grad_out), lse, bool(causal), s)
