"""Compiled optimizer steps (nnlite/ops/_optim_kernels.pyx): same signatures and errors as the
numpy twins in :mod:`nnlite.ops.reference`, one fused in-place pass over the arrays.

The arrays updated in place (param and the optimizer state) must be C-contiguous: the kernel
writes through a flat view, and a silent copy would drop the update. ``grad`` is only read,
so any layout is accepted (a non-contiguous one is copied).
"""
import numpy as np

from . import _checks as C  # the twins' checks: identical errors
from . import _optim_kernels as _k


def _flat_inplace(op, **arrays):
    """1-D views of arrays the kernel writes, with a clear error when that is impossible."""
    flat = []
    for name, a in arrays.items():
        if not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous to be updated in place, got "
                             f"shape {a.shape} with strides {a.strides}; use "
                             f"np.ascontiguousarray once when creating it")
        if not a.flags.writeable:
            raise ValueError(f"{op}: {name} is read-only")
        flat.append(a.reshape(-1))
    return flat


def _flat_grad(grad):
    return np.ascontiguousarray(grad).reshape(-1)


def sgd_update(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
               weight_decay=0.0):
    """g ← g + λp;  v ← μv + g;  p ← p - lr·(nesterov ? g + μv : v)   (plain SGD when μ = 0)."""
    op = "sgd_update"
    C.sgd_update_args(param, grad, velocity, momentum)
    if momentum:
        p, v = _flat_inplace(op, param=param, velocity=velocity)
    else:
        (p,) = _flat_inplace(op, param=param)
        v = p  # not read when momentum is 0
    _k.sgd_update(p, _flat_grad(grad), v, float(lr), float(momentum), bool(nesterov),
                  float(weight_decay))


def adam_update(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, step=1, decoupled=False):
    """Adam (decoupled=False, L2 added to g) or AdamW (decoupled=True, p ← p(1 - lr·λ)).

    m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  p ← p - lr · (m/(1-β₁ᵗ)) / (√(v/(1-β₂ᵗ)) + ε)
    """
    op = "adam_update"
    C.adam_update_args(param, grad, m, v, step)
    p, mf, vf = _flat_inplace(op, param=param, m=m, v=v)
    _k.adam_update(p, _flat_grad(grad), mf, vf, float(lr), float(beta1), float(beta2),
                   float(eps), float(weight_decay), int(step), bool(decoupled))


def rmsprop_update(param, grad, sq, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """g ← g + λp;  s ← αs + (1-α)g²;  p ← p - lr·g/(√s + ε)."""
    op = "rmsprop_update"
    C.opt_arrays(op, param=param, grad=grad, sq=sq)
    p, s = _flat_inplace(op, param=param, sq=sq)
    _k.rmsprop_update(p, _flat_grad(grad), s, float(lr), float(alpha), float(eps),
                      float(weight_decay))
