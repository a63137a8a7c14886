"""Metrics: functions ``f(y_pred, y_true) -> float`` that ``fit``/``evaluate`` average over the
samples of an epoch (weighted by batch size), and :func:`get`, which ``compile`` uses to turn
``metrics=["accuracy", "mae", my_fn]`` into named functions.

>>> name, fn = get("accuracy", loss)        # ('accuracy', <function accuracy>)
>>> fn(logits, labels)                      # 0.9375

Each takes the arrays where the model computes (numpy, or CuPy for a model on a GPU: a
metric of your own should use ``xp = nl.ops.array_module(y_pred)``, not numpy) and returns a
Python float: one small device-to-host copy per batch.
"""
from .. import losses as _losses
from .. import ops


def _mean(xp, a):
    return float(xp.mean(a))


def accuracy_for(loss):
    """The accuracy function fitting ``loss``.

    Multi-class outputs (last axis > 1) compare the argmax with integer labels (or with the
    argmax of one-hot targets). One output column is binary: ``BinaryCrossEntropy`` takes
    logits, so the threshold is 0; any other loss is taken to output probabilities (0.5).
    """
    threshold = 0.0 if isinstance(loss, _losses.BinaryCrossEntropy) else 0.5

    def accuracy(y_pred, y_true):
        xp = ops.array_module(y_pred)
        y_true = xp.asarray(y_true)
        if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:      # multi-class logits: argmax
            pred = y_pred.argmax(axis=-1)
            true = y_true.argmax(axis=-1) if y_true.shape == y_pred.shape else y_true
            return _mean(xp, pred == true.reshape(pred.shape))
        pred = y_pred.reshape(-1) > threshold
        return _mean(xp, pred == (y_true.reshape(-1) > 0.5))
    return accuracy


def sparse_categorical_accuracy(y_pred, y_true):
    """The argmax of the scores ``(..., C)`` against integer labels ``(...)`` (Keras')."""
    xp = ops.array_module(y_pred)
    pred, y_true = y_pred.argmax(axis=-1), xp.asarray(y_true)
    if y_true.size != pred.size:
        raise ValueError(f"sparse_categorical_accuracy: expected integer labels of shape "
                         f"{pred.shape} for scores {y_pred.shape}, got targets of shape "
                         f"{y_true.shape}; for one-hot targets use 'categorical_accuracy'")
    return _mean(xp, pred == y_true.reshape(pred.shape))


def categorical_accuracy(y_pred, y_true):
    """The argmax of the scores against the argmax of one-hot targets (Keras')."""
    xp = ops.array_module(y_pred)
    return _mean(xp, y_pred.argmax(axis=-1) == xp.asarray(y_true).argmax(axis=-1))


def mae(y_pred, y_true):
    """Mean absolute error, accumulated in float64."""
    xp = ops.array_module(y_pred)
    return float(xp.mean(xp.abs(y_pred - y_true.reshape(y_pred.shape)), dtype=xp.float64))


def mse(y_pred, y_true):
    """Mean squared error, accumulated in float64."""
    xp = ops.array_module(y_pred)
    return float(xp.mean(xp.square(y_pred - y_true.reshape(y_pred.shape)), dtype=xp.float64))


def get(metric, loss):
    """``(name, fn(y_pred, y_true) -> float)`` from a name or a function.

    Parameters
    ----------
    metric : str or callable
        ``"accuracy"``/``"acc"``, ``"sparse_categorical_accuracy"`` (integer labels),
        ``"categorical_accuracy"`` (one-hot), ``"mae"``/``"mean_absolute_error"``,
        ``"mse"``/``"mean_squared_error"`` (any case), or a function, named by its
        ``__name__``. A name is kept as given: it is the key in the logs.
    loss : Loss
        The compiled loss (accuracy's threshold depends on it).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    key = str(metric).lower()
    if key in ("accuracy", "acc"):
        return metric, accuracy_for(loss)
    if key == "sparse_categorical_accuracy":
        return metric, sparse_categorical_accuracy
    if key == "categorical_accuracy":
        return metric, categorical_accuracy
    if key in ("mae", "mean_absolute_error"):
        return metric, mae
    if key in ("mse", "mean_squared_error"):
        return metric, mse
    raise ValueError(f"unknown metric {metric!r}; expected 'accuracy' (or 'acc'), "
                     f"'sparse_categorical_accuracy', 'categorical_accuracy', 'mae', 'mse' "
                     f"or a function f(y_pred, y_true) -> float")
