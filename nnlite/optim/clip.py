"""Gradient clipping by global norm."""
import math

from .. import ops


def _sum_of_squares(g):
    xp = ops.array_module(g)
    return float(xp.sum(xp.square(g, dtype=xp.float64)))


def clip_grad_norm(grads, max_norm):
    r"""Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    .. math::

        \|g\| = \sqrt{\textstyle\sum_k \|g_k\|^2}, \qquad
        g_k \leftarrow g_k \cdot \frac{\text{max\_norm}}{\|g\| + 10^{-6}}
        \quad\text{if } \|g\| > \text{max\_norm}

    One norm over all arrays (not per array) keeps the update's direction.

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
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= g.dtype.type(scale)
    return total
