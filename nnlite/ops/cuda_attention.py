"""Flash attention on the GPU (csrc/cuda/attention_kernels.cuh): ``attention`` and
``attention_backward``, twins of the same names in :mod:`nnlite.ops.reference` (same
signatures, same results up to rounding, same errors), as :func:`kernels` ``(dev)`` returns them.

The checks are the twin's (``qkv_args`` and ``attention_backward_args`` in
:mod:`nnlite.ops._checks`), done on ``dev.xp`` arrays (CuPy's on a GPU, numpy's under the
shim); inputs are made C-contiguous (a (B, T, H, D) array viewed as (B, H, T, D) is copied
once), outputs allocated with ``dev.xp.empty``, and the kernels never build a (T, T) array.
``lse`` in the backward is checked like the CPU kernel's wrapper (nnlite/ops/native_attention.py)
checks it. The destinations ``out=``, ``dq=``, ``dk=``, ``dv=`` are checked as the twin's
(``attention_targets``; they must also be ``dev.xp`` arrays); the kernels write contiguous
results, which are then copied into them (a strided copy on the device). One difference from
the twin: head sizes D over
``dev.ext.attention_max_head_size`` (256) are a ValueError (the kernels keep a row slice of D in
registers).
"""
import numpy as np

from . import _checks as checks

__all__ = ["kernels"]


def _float_array(dev, op, name, x):
    """``x`` as a float32/float64 array on ``dev``, or the twin's error (``as_float_array``):
    integers become float64, anything else that is not float32/float64 is a TypeError."""
    xp = dev.xp
    if not isinstance(x, xp.ndarray):
        return xp.asarray(checks.as_float_array(op, name, x))   # lists, host arrays on a GPU
    if x.dtype not in checks.FLOAT_DTYPES:
        if x.dtype.kind in "biu":
            return x.astype(np.float64)
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype} "
                        f"with shape {x.shape}")
    return x


def _qkv(dev, op, q, k, v):
    """The twin's ``checks.qkv_args`` on ``dev``'s arrays, plus the kernels' limit on D."""
    q, k, v = (_float_array(dev, op, n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    checks.same_dtype(op, q=q, k=k, v=v)
    for name, a in (("q", q), ("k", k), ("v", v)):
        checks.check_ndim(op, name, a, 4)
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"{op}: q, k and v must have one shape (B, H, T, D), got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}")
    if q.shape[2] == 0 or q.shape[3] == 0:
        raise ValueError(f"{op}: T and D must be >= 1, got shape {q.shape}")
    max_d = dev.ext.attention_max_head_size
    if q.shape[3] > max_d:
        raise ValueError(f"{op}: the CUDA kernels take head sizes D <= {max_d}, got shape "
                         f"{q.shape}")
    return q, k, v


def _contiguous(dev, a, dtype=None):
    """C-contiguous (and, for numpy, aligned) for the kernels to read."""
    a = dev.xp.ascontiguousarray(a, dtype=dtype)
    return a if getattr(a.flags, "aligned", True) else a.copy()


def _targets(dev, op, q, **targets):
    """The twin's ``checks.attention_targets``, and each destination on ``dev``."""
    checks.attention_targets(op, q, **targets)
    for name, a in targets.items():
        if a is not None and not isinstance(a, dev.xp.ndarray):
            raise ValueError(f"{op}: {name} must be a {dev.xp.__name__} array like q, got "
                             f"{type(a).__name__}")


def _into(result, target):
    """``result``, or ``target`` holding it (copied on the device, through its strides)."""
    if target is None:
        return result
    target[...] = result
    return target


def _scale(q, scale):
    return 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)


def _suffix(dtype):
    return "f32" if dtype == np.float32 else "f64"


def kernels(dev):
    """{"attention": f, "attention_backward": f} running on ``dev``
    (a :class:`nnlite.ops.cuda_device.Device`)."""
    ext, xp, ptr = dev.ext, dev.xp, dev.ptr

    def forward(q, k, v, causal, scale, with_out):
        """(out or None, lse) of C-contiguous q, k, v."""
        B, H, T, D = q.shape
        lse = xp.empty((B, H, T), q.dtype)
        out = xp.empty(q.shape, q.dtype) if with_out else None
        getattr(ext, f"attention_forward_{_suffix(q.dtype)}")(
            ptr(q), ptr(k), ptr(v), ptr(out) if with_out else 0, ptr(lse), B * H, T, D,
            bool(causal), scale, dev.stream())
        return out, lse

    def attention(q, k, v, causal=True, scale=None, return_lse=False, out=None):
        """Scaled dot-product attention over (B, H, T, D) arrays.

        out = softmax(Q Kᵀ / √D + mask) V, where the causal mask is -inf above the diagonal
        (query t sees keys 0..t). ``scale`` defaults to 1/√D. With ``return_lse`` also returns
        the row log-sum-exp L (B, H, T) of the scaled, masked scores, which the backward reuses.
        ``out``: an array of q's shape and dtype with unit stride along D (any strides along B,
        H, T) to copy the result into, and return; by default a new C-contiguous one.
        """
        q, k, v = _qkv(dev, "attention", q, k, v)
        _targets(dev, "attention", q, out=out)
        q, k, v = (_contiguous(dev, a) for a in (q, k, v))
        res, lse = forward(q, k, v, causal, _scale(q, scale), True)
        res = _into(res, out)
        return (res, lse) if return_lse else res

    def attention_backward(q, k, v, out, grad_out, lse=None, causal=True, scale=None, dq=None,
                           dk=None, dv=None):
        """Gradients (dq, dk, dv) of attention for the upstream gradient dO.

        With P = softmax(S), S = Q Kᵀ · scale (+ mask):
        dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - rowsum(dO ⊙ O)),  dQ = dS K · scale,
        dK = dSᵀ Q · scale. ``lse`` (B, H, T) from ``attention(..., return_lse=True)`` saves a
        pass over Q Kᵀ; without it the row statistics are recomputed first (no P·V).
        ``dq``, ``dk``, ``dv``: arrays to copy the gradients into and return, as ``out`` of
        ``attention``; by default new C-contiguous ones.
        """
        op = "attention_backward"
        q, k, v = _qkv(dev, op, q, k, v)
        out = _float_array(dev, op, "out", out)
        grad_out = _float_array(dev, op, "grad_out", grad_out)
        checks.same_dtype(op, q=q, out=out, grad_out=grad_out)
        if out.shape != q.shape or grad_out.shape != q.shape:
            raise ValueError(f"{op}: out {out.shape} and grad_out {grad_out.shape} must have the "
                             f"shape of q {q.shape}")
        targets = (dq, dk, dv)
        _targets(dev, op, q, dq=dq, dk=dk, dv=dv)
        s = _scale(q, scale)
        q, k, v, out, grad_out = (_contiguous(dev, a) for a in (q, k, v, out, grad_out))
        if lse is None:
            _, lse = forward(q, k, v, causal, s, False)
        else:
            lse = _float_array(dev, op, "lse", lse)
            if lse.shape != q.shape[:3]:
                raise ValueError(f"{op}: lse must have shape (B, H, T) = {q.shape[:3]} for q "
                                 f"{q.shape}, got {lse.shape}")
            lse = _contiguous(dev, lse, q.dtype)
        B, H, T, D = q.shape
        delta = xp.empty((B, H, T), q.dtype)       # scratch: rowsum(dO ⊙ O)
        gq, gk, gv = (xp.empty(q.shape, q.dtype) for _ in range(3))
        getattr(ext, f"attention_backward_{_suffix(q.dtype)}")(
            ptr(q), ptr(k), ptr(v), ptr(out), ptr(grad_out), ptr(lse), ptr(delta), ptr(gq),
            ptr(gk), ptr(gv), B * H, T, D, bool(causal), s, dev.stream())
        return tuple(_into(g, t) for g, t in zip((gq, gk, gv), targets))

    return {"attention": attention, "attention_backward": attention_backward}
