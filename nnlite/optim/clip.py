"""Gradient clipping by global norm, and the global norm itself (checked before every step)."""
import math

from .. import ops


def global_norm(grads):
    r"""The global L2 norm :math:`\sqrt{\sum_k \|g_k\|^2}` of ``grads``; NaN or inf when an
    entry is.

    One compiled, threaded pass over all the arrays (``ops.sum_squares_many``), squares summed
    in float64: cheap enough for :meth:`Optimizer.step` to check every step, and a large but
    finite float32 gradient (past 1.8e19, whose square overflows float32) is not mistaken for
    an infinite one.
    """
    return math.sqrt(ops.sum_squares_many(list(grads)))


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
    total = global_norm(grads)
    if total > max_norm and math.isfinite(total):
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= g.dtype.type(scale)
    return total
