r"""Weight initialisers: ``W = init(fan_in, fan_out, rng)`` → array of shape (fan_in, fan_out).

All draw from a seedable generator (``rng``, else :func:`nnlite.random.get_rng`). Layers take
one by name (``Linear(..., init="he_uniform")``), as a callable, or ``None``: zeros, nothing
drawn, for weights the caller sets itself (a model that draws its own, as GPT). Inside
``with skip_init():`` every initialiser here returns zeros without drawing: ``load_model``
builds the model that way, since the file overwrites every tensor.

Notes
-----
He (Kaiming) keeps the activation variance constant through ReLU layers, which zero half
their input; Glorot (Xavier) averages fan-in and fan-out, for tanh/sigmoid/linear layers:

.. math::

    \text{he\_uniform}: U(-a, a),\ a = \sqrt{6/n_\text{in}} \qquad
    \text{he\_normal}: N(0, 2/n_\text{in})

    \text{glorot\_uniform}: U(-a, a),\ a = \sqrt{6/(n_\text{in} + n_\text{out})} \qquad
    \text{glorot\_normal}: N(0, 2/(n_\text{in} + n_\text{out}))

GPT-2 draws every matrix from :math:`N(0, 0.02^2)` (``normal``, :data:`INIT_STD`), whatever
its fan-in.
"""
import contextlib
import contextvars
import functools

import numpy as np

from .random import get_rng

INIT_STD = 0.02     # GPT-2 / nanoGPT: weights and embedding tables N(0, 0.02²), biases 0

_SKIP = contextvars.ContextVar("nnlite_skip_init", default=False)


@contextlib.contextmanager
def skip_init():
    """Inside this block the initialisers of this module return zeros and draw nothing.

    For building a model whose every tensor is about to be overwritten (``load_model``): a
    50 000-layer GPT then costs its allocations, not seconds of random numbers, and the
    random generators are left as they were. Per thread / async task (a context variable).

    >>> with nl.init.skip_init():
    ...     model = nl.models.GPT(65, 256, n_layer=48, n_head=8, n_embd=512)   # all zeros
    """
    token = _SKIP.set(True)
    try:
        yield
    finally:
        _SKIP.reset(token)


def skipping():
    """True inside :func:`skip_init`."""
    return _SKIP.get()


def _skippable(fn):
    """Zeros instead of ``fn``'s draw inside :func:`skip_init`."""
    @functools.wraps(fn)
    def init(fan_in, fan_out, rng=None, dtype=np.float32, **kwargs):
        if _SKIP.get():
            return np.zeros((fan_in, fan_out), dtype=dtype)
        return fn(fan_in, fan_out, rng=rng, dtype=dtype, **kwargs)
    return init


@_skippable
def normal(fan_in, fan_out, rng=None, dtype=np.float32, std=INIT_STD):
    """N(0, std²), default GPT-2's std 0.02 (``fan_in``, ``fan_out``: just the shape)."""
    return (get_rng(rng).standard_normal((fan_in, fan_out)) * std).astype(dtype)


@_skippable
def he_uniform(fan_in, fan_out, rng=None, dtype=np.float32):
    """U(-√(6/fan_in), √(6/fan_in)): variance 2/fan_in, for ReLU nets."""
    a = np.sqrt(6.0 / fan_in)
    return get_rng(rng).uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


@_skippable
def he_normal(fan_in, fan_out, rng=None, dtype=np.float32):
    """N(0, 2/fan_in), for ReLU nets."""
    std = np.sqrt(2.0 / fan_in)
    return (get_rng(rng).standard_normal((fan_in, fan_out)) * std).astype(dtype)


@_skippable
def glorot_uniform(fan_in, fan_out, rng=None, dtype=np.float32):
    """U(-√(6/(fan_in+fan_out)), +…): variance 2/(fan_in+fan_out), for tanh/sigmoid nets."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return get_rng(rng).uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


@_skippable
def glorot_normal(fan_in, fan_out, rng=None, dtype=np.float32):
    """N(0, 2/(fan_in+fan_out)), for tanh/sigmoid nets."""
    std = np.sqrt(2.0 / (fan_in + fan_out))
    return (get_rng(rng).standard_normal((fan_in, fan_out)) * std).astype(dtype)


def zeros(fan_in, fan_out, rng=None, dtype=np.float32):
    """All zeros (biases; never for weights of hidden layers: every unit would stay equal)."""
    return np.zeros((fan_in, fan_out), dtype=dtype)


INITIALIZERS = {
    "he_uniform": he_uniform, "he_normal": he_normal,
    "glorot_uniform": glorot_uniform, "glorot_normal": glorot_normal, "zeros": zeros,
    "normal": normal,
    # the other common names for the same thing
    "kaiming_uniform": he_uniform, "kaiming_normal": he_normal,
    "xavier_uniform": glorot_uniform, "xavier_normal": glorot_normal,
}


def get(name_or_fn):
    """An initialiser by name (e.g. ``"he_uniform"``), a callable returned as is, or for
    ``None`` :func:`zeros` (nothing drawn: the caller sets the weights)."""
    if name_or_fn is None:
        return zeros
    if callable(name_or_fn):
        return name_or_fn
    key = str(name_or_fn).lower()
    if key not in INITIALIZERS:
        raise ValueError(f"unknown initialiser {name_or_fn!r}; expected one of "
                         f"{sorted(INITIALIZERS)}")
    return INITIALIZERS[key]
