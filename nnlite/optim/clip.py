"""Gradient clipping by global norm, and the global norm itself (checked before every step)."""
import math

import numpy as np

from .. import ops


def _sum_of_squares(g):
    xp = ops.array_module(g)
    return float(xp.sum(xp.square(g, dtype=xp.float64)))


def global_norm(grads):
    r"""The global L2 norm :math:`\sqrt{\sum_k \|g_k\|^2}` of ``grads``; NaN or inf when an
    entry is.

    One BLAS dot product per array (``g · g``, no temporary: a few µs for an MLP), so
    :meth:`Optimizer.step` can check every step. When that sum overflows (a float32 sum of
    squares past 3.4e38, or a NaN/inf entry) it is redone in float64, so a large but finite
    gradient is not mistaken for an infinite one.
    """
    grads = list(grads)
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):     # an overflow is handled below
        for g in grads:
            r = g.reshape(-1)
            total += float(ops.array_module(g).dot(r, r))
        if not math.isfinite(total):
            total = sum(_sum_of_squares(g) for g in grads)
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm):
    r"""Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    .. math::

        \|g\| = \sqrt{\textstyle\sum_k \|g_k\|^2}, \qquad
        g_k \leftarrow g_k \cdot \frac{\text{max\_norm}}{\|g\| + 10^{-6}}
        \quad\text{if } \|g\| > \text{max\_norm}

    One norm over all arrays (not per array) keeps the update's direction. A NaN or inf norm
    leaves the gradients as they are (scaling by ``max_norm / inf = 0`` would turn every inf
    into NaN and every finite entry into 0): the caller decides; :meth:`Optimizer.step`
    raises before any update.

    Parameters
    ----------
    grads : iterable of ndarray
    max_norm : float

    Returns
    -------
    float
        The total norm *before* clipping (worth logging: spikes show instability).
    """
    grads = list(grads)
    # accumulate in float64: float32 sums of squares of many entries lose digits
    total = math.sqrt(sum(_sum_of_squares(g) for g in grads))
    if total > max_norm and math.isfinite(total):
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= g.dtype.type(scale)
    return total
