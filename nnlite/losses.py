r"""Losses: ``loss = L(y_pred, y_true)`` → float, then ``backward()`` → ∂loss/∂y_pred.

All use mean reduction. ``L(y_pred, y_true, sample_weight=w)`` weighs each sample's terms by
:math:`w_n` and still divides by the number of terms, as Keras' ``sum_over_batch_size``:
:math:`L = \frac1M \sum_i w_{n(i)}\,\ell_i` (``fit(sample_weight=..., class_weight=...)``
uses it); weights of 1 give the unweighted loss.

Classification losses take *logits* (pre-softmax / pre-sigmoid scores) and fuse the
activation into the loss: it is cheaper and stays finite at extreme logits where
``log(softmax(z))`` would give ``log(0)``.

>>> loss = CrossEntropy()
>>> value = loss(logits, labels)        # forward
>>> dlogits = loss.backward()           # same shape as logits

Losses do not check for NaN/inf in predictions: they compute (and pass NaN on); the
training loop is what notices a diverged run.
"""
from typing import ClassVar

from . import ops
from ._configurable import Configurable
from .layers import _checks
from .layers.base import shape_str


def _as_float(loss, what, x, dtype=None):
    """``x`` as a float array (the layers' conversion); errors say "<loss>: <what> must be"."""
    return _checks.as_input(loss, x, dtype, what)


def _match_shapes(loss, y_pred, y_true):
    """Targets in the prediction's shape; (N,) against (N, 1) (and back) is allowed."""
    if y_true.shape == y_pred.shape:
        return y_true
    if y_true.shape + (1,) == y_pred.shape or y_true.shape == y_pred.shape + (1,):
        return y_true.reshape(y_pred.shape)
    raise ValueError(f"{loss}: predictions have shape {shape_str(y_pred.shape)} but targets "
                     f"have shape {shape_str(y_true.shape)}; they must match")


def _weights(loss, sample_weight, y_pred):
    """``sample_weight`` shaped to broadcast over ``y_pred``: one weight per sample, shape
    (N,), or per leading position, e.g. (B, T) for (B, T, V) logits; in y_pred's dtype."""
    xp = ops.array_module(y_pred)
    w = xp.asarray(sample_weight, dtype=y_pred.dtype)
    if w.ndim < 1 or w.shape != y_pred.shape[:w.ndim] or w.ndim > max(y_pred.ndim - 1, 1):
        raise ValueError(f"{loss}: sample_weight must have shape ({y_pred.shape[0]},), one "
                         f"weight per sample of y_pred {shape_str(y_pred.shape)}, got "
                         f"{shape_str(w.shape)}")
    return w.reshape(w.shape + (1,) * (y_pred.ndim - w.ndim))


class Loss(Configurable):
    """Base class: subclasses implement ``forward`` (caching what ``backward`` needs)."""

    registry: ClassVar[dict] = {}

    def __init__(self):
        self._grad = None       # cache: ∂loss/∂y_pred, computed with the forward pass

    def forward(self, y_pred, y_true, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self):
        """∂loss/∂y_pred for the last forward call, shaped and typed like y_pred."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}: backward() called before forward()")
        return self._grad

    def __call__(self, y_pred, y_true, sample_weight=None):
        if sample_weight is None:           # (a subclass's forward may not take weights)
            return self.forward(y_pred, y_true)
        return self.forward(y_pred, y_true, sample_weight=sample_weight)


class MSE(Loss):
    r"""Mean squared error over all elements.

    .. math:: L = \frac{1}{M}\sum_i (\hat y_i - y_i)^2, \qquad
              \frac{\partial L}{\partial \hat y_i} = \frac{2}{M}(\hat y_i - y_i)

    Parameters of ``forward``: y_pred ndarray of shape (N, ...), y_true same shape
    ((N,) against (N, 1) is accepted), sample_weight (N,) optional. M is the number of
    elements.
    """

    def forward(self, y_pred, y_true, sample_weight=None):
        p = _as_float("MSE", "y_pred", y_pred)
        t = _match_shapes("MSE", p, _as_float("MSE", "y_true", y_true, p.dtype))
        xp = ops.array_module(p)
        d = p - t
        self._grad = d * p.dtype.type(2.0 / max(d.size, 1))
        if sample_weight is None:
            return float(xp.mean(xp.square(d), dtype=xp.float64))
        w = _weights("MSE", sample_weight, p)
        self._grad *= w
        return float(xp.mean(xp.square(d) * w, dtype=xp.float64))


class L1(Loss):
    r"""Mean absolute error over all elements.

    .. math:: L = \frac{1}{M}\sum_i |\hat y_i - y_i|, \qquad
              \frac{\partial L}{\partial \hat y_i} = \frac{\operatorname{sign}(\hat y_i - y_i)}{M}

    using the subgradient 0 where :math:`\hat y_i = y_i`.
    """

    def forward(self, y_pred, y_true, sample_weight=None):
        p = _as_float("L1", "y_pred", y_pred)
        t = _match_shapes("L1", p, _as_float("L1", "y_true", y_true, p.dtype))
        xp = ops.array_module(p)
        d = p - t
        self._grad = xp.sign(d) * p.dtype.type(1.0 / max(d.size, 1))
        if sample_weight is None:
            return float(xp.mean(xp.abs(d), dtype=xp.float64))
        w = _weights("L1", sample_weight, p)
        self._grad *= w
        return float(xp.mean(xp.abs(d) * w, dtype=xp.float64))


class CrossEntropy(Loss):
    r"""Softmax cross-entropy from logits, averaged over all positions.

    Targets are either integer class labels of shape (...) or per-class target
    probabilities (one-hot or soft) of the logits' shape (..., C). Leading axes are
    merged: a GPT's logits (B, T, V) with targets (B, T) are N = B·T rows.

    .. math::

        \log p_{nc} = z_{nc} - \log\textstyle\sum_j e^{z_{nj}}, \qquad
        L = -\frac1N \sum_n \sum_c t_{nc} \log p_{nc}

        \frac{\partial L}{\partial z_{nc}} = \frac1N\Big(p_{nc}\textstyle\sum_j t_{nj} - t_{nc}\Big)
        \quad(= (p - t)/N \text{ for one-hot } t)

    Integer labels use the fused ``ops.softmax_cross_entropy`` kernel.
    """

    def forward(self, y_pred, y_true, sample_weight=None):
        name = "CrossEntropy"
        z = _as_float(name, "logits", y_pred)
        if z.ndim < 1 or z.shape[-1] < 1:
            raise ValueError(f"{name}: logits must have shape (..., classes), got "
                             f"{shape_str(z.shape)}")
        c = z.shape[-1]
        xp = ops.array_module(z)
        t = xp.asarray(y_true)
        w = None if sample_weight is None else _weights(name, sample_weight, z)
        if t.shape == z.shape[:-1]:                       # integer labels
            labels = self._labels(t, c, z.shape).reshape(-1)
            loss, dz = ops.softmax_cross_entropy(z.reshape(-1, c), labels)
            self._grad = dz.reshape(z.shape)
            if w is None:
                return float(loss)
            self._grad *= w                               # the fused kernel has no weights:
            z2 = z.reshape(-1, c)                         # the row losses again, weighted
            zs = z2 - z2.max(axis=1, keepdims=True)
            rows = xp.log(xp.exp(zs).sum(axis=1)) - zs[xp.arange(len(zs)), labels]
            return float((rows.reshape(z.shape[:-1]) * w[..., 0]).sum(dtype=xp.float64)) \
                / max(len(rows), 1)
        if t.shape == z.shape:                            # one-hot / probabilities
            t = _as_float(name, "targets", t, z.dtype).reshape(-1, c)
            z2 = z.reshape(-1, c)
            n = z2.shape[0]
            zs = z2 - z2.max(axis=1, keepdims=True)       # shift: exp never overflows
            logsum = xp.log(xp.exp(zs).sum(axis=1, keepdims=True))
            logp = zs - logsum
            terms = t * logp if w is None else (t * logp).reshape(z.shape) * w
            loss = -float(terms.sum(dtype=xp.float64)) / n
            p = xp.exp(logp)
            self._grad = ((p * t.sum(axis=1, keepdims=True) - t) / z.dtype.type(n)).reshape(z.shape)
            if w is not None:
                self._grad *= w
            return loss
        raise ValueError(f"{name}: logits have shape {shape_str(z.shape)}, so targets must be "
                         f"integer labels of shape {shape_str(z.shape[:-1])} or probabilities "
                         f"of shape {shape_str(z.shape)}; got targets of shape "
                         f"{shape_str(t.shape)}")

    @staticmethod
    def _labels(t, c, zshape):
        name = "CrossEntropy"
        xp = ops.array_module(t)
        if t.dtype.kind not in "iub":
            if t.dtype.kind == "f" and xp.all(xp.isfinite(t)) and xp.all(t == xp.round(t)):
                t = t.astype(xp.int64)
            else:
                raise TypeError(f"{name}: integer labels of shape {shape_str(t.shape)} expected "
                                f"for logits {shape_str(zshape)}, got dtype {t.dtype}")
        bad = (t < 0) | (t >= c)
        if bad.any():
            vals = xp.unique(t[bad])
            shown = ", ".join(str(v) for v in vals[:10]) + (", ..." if vals.size > 10 else "")
            raise ValueError(f"{name}: labels must lie in [0, {c}) for {c} classes (logits "
                             f"{shape_str(zshape)}), got out-of-range values [{shown}]")
        return t.astype(xp.int64, copy=False)


class BinaryCrossEntropy(Loss):
    r"""Sigmoid binary cross-entropy from logits, averaged over all elements.

    .. math::

        L = \frac1M \sum_i \max(z_i, 0) - z_i t_i + \log\big(1 + e^{-|z_i|}\big), \qquad
        \frac{\partial L}{\partial z_i} = \frac{\sigma(z_i) - t_i}{M}

    the usual :math:`-t\log\sigma(z) - (1-t)\log(1-\sigma(z))` rewritten so that no
    ``exp`` overflows and no ``log`` sees 0. Targets in [0, 1], shaped like the logits
    ((N,) against (N, 1) is accepted).
    """

    def forward(self, y_pred, y_true, sample_weight=None):
        z = _as_float("BinaryCrossEntropy", "logits", y_pred)
        t = _match_shapes("BinaryCrossEntropy", z,
                          _as_float("BinaryCrossEntropy", "targets", y_true, z.dtype))
        xp = ops.array_module(z)
        m = max(z.size, 1)
        per = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
        self._grad = (ops.act_forward(z, "sigmoid") - t) * z.dtype.type(1.0 / m)
        if sample_weight is not None:
            w = _weights("BinaryCrossEntropy", sample_weight, z)
            per = per * w
            self._grad *= w
        return float(per.sum(dtype=xp.float64) / m)


# Short names: Keras' and PyTorch's spellings map to the same classes.
MAE = L1
BCE = BinaryCrossEntropy
ALIASES = {
    "mse": MSE, "mean_squared_error": MSE,
    "l1": L1, "mae": L1, "mean_absolute_error": L1,
    "cross_entropy": CrossEntropy, "crossentropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy, "sparse_categorical_crossentropy": CrossEntropy,
    "bce": BinaryCrossEntropy, "binary_crossentropy": BinaryCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
}


def get(name_or_obj):
    """A loss from a name ("mse", "cross_entropy", "bce", ...), a Loss class or instance."""
    if isinstance(name_or_obj, Loss):
        return name_or_obj
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Loss):
        return name_or_obj()
    if isinstance(name_or_obj, str):
        key = name_or_obj.lower()
        cls = ALIASES.get(key) or Loss.registry.get(name_or_obj)
        if cls is not None:
            return cls()
        raise ValueError(f"unknown loss {name_or_obj!r}; expected one of {sorted(ALIASES)} "
                         f"or a Loss instance")
    raise TypeError(f"loss must be a name or a Loss, got {type(name_or_obj).__name__}")


__all__ = ["BCE", "L1", "MAE", "MSE", "BinaryCrossEntropy", "CrossEntropy", "Loss", "get"]
