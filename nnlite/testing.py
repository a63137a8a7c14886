r"""Gradient checks: backprop against central differences, in float64.

The fake-loss trick (llm.c, Deep Learning from Scratch ch. 5): for a random ``dy``,

.. math:: L(x, \theta) = \sum (\text{layer}(x) \odot dy)
          \quad\Rightarrow\quad \partial L / \partial y = dy,

so ``layer.backward(dy)`` must equal the numerical :math:`\partial L/\partial x`, and
``layer.grads[k]`` the numerical :math:`\partial L/\partial \theta_k`.
"""
import numpy as np

from .random import get_rng


def numerical_gradient(f, x, eps=1e-6):
    r"""Central differences of the scalar ``f(x)`` w.r.t. every entry of ``x``.

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + \epsilon e_i) - f(x - \epsilon e_i)}{2\epsilon}

    ``x`` is changed in place one entry at a time and each entry restored, so ``f`` may
    read ``x`` through a layer's parameters instead of its argument.

    Parameters
    ----------
    f : callable, f(x) -> float
    x : ndarray (float64 for useful accuracy)
    eps : float

    Returns
    -------
    ndarray of x's shape
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = float(f(x))
        x[i] = old - eps
        fm = float(f(x))
        x[i] = old                      # restore
        grad[i] = (fp - fm) / (2 * eps)
        it.iternext()
    return grad


def _rel_error(a, n):
    """max |a - n| / max(|a|, |n|): scale-free, 0 for equal arrays."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0), 1e-12)
    return float(np.abs(a - n).max(initial=0.0) / scale)


def _compare(what, results, rtol, atol):
    errors, bad = {}, []
    for name, (a, n) in results.items():
        if a is None or np.shape(a) != np.shape(n):
            errors[name] = float("inf")
            bad.append(f"  {name}: backprop gave shape {np.shape(a)}, expected {np.shape(n)}")
            continue
        errors[name] = _rel_error(a, n)
        if not np.allclose(a, n, rtol=rtol, atol=atol):
            diff = np.abs(np.asarray(a, np.float64) - n).max()
            bad.append(f"  {name}: shape {np.shape(a)} vs {np.shape(n)}, max abs diff {diff:.3e}, "
                       f"rel err {errors[name]:.3e}")
    if bad:
        raise AssertionError(f"gradient check failed for {what} (rtol={rtol}, atol={atol}); "
                             f"backprop vs central differences:\n" + "\n".join(bad))
    return errors


def check_layer_gradients(layer, x, rtol=1e-5, atol=1e-7, rng=None, training=True):
    """Check ``layer.backward`` (the input gradient) and every ``layer.grads[k]``.

    The layer is cast to float64 in place (``layer.astype``); its gradients are zeroed.
    Deterministic layers only (a Dropout draws a new mask per forward).

    Parameters
    ----------
    layer : Layer
    x : ndarray, the input
    rtol, atol : float
        Tolerances of ``np.allclose(backprop, numerical)``.
    rng : Generator or int, optional
        For the random ``dy``.

    Returns
    -------
    dict
        ``{"x": rel_err, "W": rel_err, ...}``, max relative error per gradient.

    Raises
    ------
    AssertionError
        Naming each gradient that disagrees, with its max abs diff and relative error.
    """
    rng = get_rng(rng)
    layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)           # own copy: perturbed in place below
    y = layer.forward(x, training=training)
    dy = rng.standard_normal(np.shape(y))

    old_flag = layer.needs_input_grad
    layer.needs_input_grad = True
    try:
        layer.zero_grad()
        layer.forward(x, training=training)
        dx = layer.backward(dy)
    finally:
        layer.needs_input_grad = old_flag
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    def fake_loss(_):
        return float((layer.forward(x, training=training) * dy).sum())

    results = {"x": (dx, numerical_gradient(fake_loss, x))}
    for k, p in layer.params.items():
        results[k] = (analytic[k], numerical_gradient(fake_loss, p))
    return _compare(repr(layer), results, rtol, atol)


def check_loss_gradients(loss, y_pred, y_true, rtol=1e-5, atol=1e-7):
    """Check ``loss.backward()`` against central differences of ``loss(y_pred, y_true)``.

    Returns ``{"y_pred": rel_err}``; raises AssertionError with a report on mismatch.
    """
    y_pred = np.array(y_pred, dtype=np.float64)
    loss.forward(y_pred, y_true)
    analytic = np.array(loss.backward(), dtype=np.float64)
    num = numerical_gradient(lambda _: loss.forward(y_pred, y_true), y_pred)
    return _compare(repr(loss), {"y_pred": (analytic, num)}, rtol, atol)
