r"""Weight initialisers: ``W = init(fan_in, fan_out, rng)`` → array of shape (fan_in, fan_out).

All draw from a seedable generator (``rng``, else :func:`nnlite.random.get_rng`).

Notes
-----
He (Kaiming) keeps the activation variance constant through ReLU layers, which zero half
their input; Glorot (Xavier) averages fan-in and fan-out, for tanh/sigmoid/linear layers:

.. math::

    \text{he\_uniform}: U(-a, a),\ a = \sqrt{6/n_\text{in}} \qquad
    \text{he\_normal}: N(0, 2/n_\text{in})

    \text{glorot\_uniform}: U(-a, a),\ a = \sqrt{6/(n_\text{in} + n_\text{out})} \qquad
    \text{glorot\_normal}: N(0, 2/(n_\text{in} + n_\text{out}))
"""
import numpy as np

from .random import get_rng


def he_uniform(fan_in, fan_out, rng=None, dtype=np.float32):
    """U(-√(6/fan_in), √(6/fan_in)): variance 2/fan_in, for ReLU nets."""
    a = np.sqrt(6.0 / fan_in)
    return get_rng(rng).uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


def he_normal(fan_in, fan_out, rng=None, dtype=np.float32):
    """N(0, 2/fan_in), for ReLU nets."""
    std = np.sqrt(2.0 / fan_in)
    return (get_rng(rng).standard_normal((fan_in, fan_out)) * std).astype(dtype)


def glorot_uniform(fan_in, fan_out, rng=None, dtype=np.float32):
    """U(-√(6/(fan_in+fan_out)), +…): variance 2/(fan_in+fan_out), for tanh/sigmoid nets."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return get_rng(rng).uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


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
    # the other common names for the same thing
    "kaiming_uniform": he_uniform, "kaiming_normal": he_normal,
    "xavier_uniform": glorot_uniform, "xavier_normal": glorot_normal,
}


def get(name_or_fn):
    """An initialiser by name (e.g. ``"he_uniform"``), or a callable returned as is."""
    if callable(name_or_fn):
        return name_or_fn
    key = str(name_or_fn).lower()
    if key not in INITIALIZERS:
        raise ValueError(f"unknown initialiser {name_or_fn!r}; expected one of "
                         f"{sorted(INITIALIZERS)}")
    return INITIALIZERS[key]
