"""Input checks shared by the layers (and the losses' input conversion): each error names the
layer and the shapes involved."""
import numpy as np

from .. import ops
from .base import shape_str

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def describe(layer):
    """How errors name a layer: ``Linear(784 → 256)``, ``ReLU 'act1'``."""
    d = getattr(layer, "_describe", None)
    s = d() if d is not None else type(layer).__name__
    return f"{s} '{layer.name}'" if getattr(layer, "name", None) else s


def sizes(layer, **values):
    """A layer's size arguments as ints, each >= 1 (ValueError naming them all otherwise):
    ``sizes("Linear", in_features=0, out_features=3)`` raises ``Linear: in_features and
    out_features must be >= 1, got 0 and 3``."""
    ints = tuple(int(v) for v in values.values())
    if min(ints) < 1:
        raise ValueError(f"{layer}: {' and '.join(values)} must be >= 1, got "
                         + " and ".join(f"{v}" for v in values.values()))
    return ints


def as_input(layer, x, dtype=None, what=None):
    """``x`` as a float array of ``dtype``, of its own backend's array type (numpy for lists).

    Integer/bool inputs are cast; float inputs are cast to ``dtype`` when given (the layer's
    parameter dtype decides, so float64 data entering a float32 layer becomes float32).
    Parameter-free layers pass ``dtype=None``: they keep float32/float64 as they come.
    The losses use it too: ``layer`` is then the loss's name and ``what`` its argument
    (``"y_pred"``), and the errors read "<loss>: <what> must be ...".
    """
    xp = ops.array_module(x)
    if not isinstance(x, xp.ndarray):
        try:
            x = xp.asarray(x)
        except (ValueError, TypeError) as e:   # ragged nested lists
            raise TypeError(_not_numeric(layer, what, x, None)) from e
    if x.dtype.kind not in "biuf":
        raise TypeError(_not_numeric(layer, what, x, x.dtype))
    if dtype is None:
        dtype = x.dtype if x.dtype in FLOATS else np.float32
    return x.astype(dtype, copy=False)


def _not_numeric(layer, what, x, dtype):
    """as_input's error: ``x`` is not an array (``dtype`` None) or not a numeric one."""
    if what is None:
        got = (f"{type(x).__name__} that numpy cannot turn into one" if dtype is None else
               f"dtype {dtype} with shape {shape_str(x.shape)}")
        return f"{describe(layer)}: expected a numeric array, got {got}"
    if dtype is None:
        return f"{layer}: {what} must be a numeric array, got {type(x).__name__}"
    return f"{layer}: {what} must be numeric, got dtype {dtype} with shape {shape_str(x.shape)}"


def check_min_ndim(layer, x, ndim, layout, features=None):
    """At least ``ndim`` dimensions; ``layout`` describes them, e.g. ``"(batch, 784)"``.

    One axis short, the hint says which one is missing: the batch axis (``x[None]``), or,
    for a layer taking ``features == 1`` per sample, the feature axis (``x[:, None]``).
    """
    if x.ndim < ndim:
        hint = ""
        if x.ndim == ndim - 1 and x.ndim and features == 1:
            hint = f" (one feature per sample? x[:, None] has shape {shape_str((*x.shape, 1))})"
        elif x.ndim == ndim - 1 and (features is None or x.shape[-1] == features):
            hint = " (a single sample? add a batch axis: x[None])"
        raise ValueError(f"{describe(layer)}: expected input of shape {layout} with at least "
                         f"{ndim} dimensions, got shape {shape_str(x.shape)}{hint}")


def check_last_dim(layer, x, dim):
    if x.shape[-1] != dim:
        raise ValueError(f"{describe(layer)}: expected input with last dimension {dim}, "
                         f"got shape {shape_str(x.shape)}")


def check_sequence_shape(layer, shape, dim):
    """A (batch, T, dim) shape, as sequence layers take; ``None`` sizes (unknown) pass."""
    if len(shape) != 3:
        raise ValueError(f"{describe(layer)}: expected input of shape (batch, T, "
                         f"{dim}), got {shape_str(shape)}")
    if shape[-1] is not None and shape[-1] != dim:
        raise ValueError(f"{describe(layer)}: expected input with last dimension "
                         f"{dim}, got shape {shape_str(shape)}")


def check_forward_called(layer, cache):
    if cache is None:
        raise RuntimeError(f"{describe(layer)}: backward() called before forward(); run "
                           f"forward(x) first, it caches what backward needs")


def as_grad(layer, grad, shape, dtype):
    """The upstream gradient, checked against the shape of the last forward output."""
    grad = as_input(layer, grad, dtype)
    if grad.shape != tuple(shape):
        raise ValueError(f"{describe(layer)}: backward() got a gradient of shape "
                         f"{shape_str(grad.shape)}, expected {shape_str(shape)} (the shape "
                         f"of the last forward output)")
    return grad


def as_residual(layer, residual, shape, dtype, of="input"):
    """``residual`` (a skip connection's array, or its gradient) as ``layer``'s float dtype, of
    ``shape`` (the ``of``'s: "input" or "output"), or a ValueError naming both shapes."""
    residual = as_input(layer, residual, dtype, what="residual")
    if residual.shape != tuple(shape):
        raise ValueError(f"{describe(layer)}: residual must have the {of}'s shape "
                         f"{tuple(shape)}, got {residual.shape}")
    return residual


def dtype_name(dtype):
    """JSON-able name of a dtype, for get_config."""
    return np.dtype(dtype).name
