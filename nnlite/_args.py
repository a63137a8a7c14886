"""Argument checks for plain Python values (counts, seeds, fractions), shared by every part.

Low level on purpose: it imports nothing from nnlite, so ops, layers, losses, optim, models,
training, data, datasets and io can all use it without a dependency going the wrong way.
Errors name the owner and the argument and show what came in.

``bool`` is a subclass of ``int``, so ``isinstance(True, int)`` holds; an argument that
counts something never means a bool, so these checks refuse it. numpy integers
(``np.int64(3)``) are accepted: numpy registers them as :class:`numbers.Integral`.
"""
import numbers

import numpy as np


def is_int(value):
    """True for Python and numpy integers, False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner, name, value, low=None):
    """``int(value)`` for an integer argument of at least ``low``.

    TypeError when ``value`` is not an integer (bools included), ValueError when it is
    below ``low``: ``check_int("DataLoader", "batch_size", 0, low=1)`` raises
    ``ValueError: DataLoader: batch_size must be >= 1, got 0``.
    """
    if not is_int(value):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{owner}: {name} must be >= {low}, got {value}")
    return int(value)


def check_fraction(owner, name, value):
    """``float(value)`` for a real number in [0, 1] (not a bool); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_seed(owner, seed, generators=False):
    """``seed`` unchanged when it is None or an integer (or, with ``generators``, a
    ``numpy.random.Generator`` to draw from); TypeError otherwise."""
    if seed is None or is_int(seed) or (generators and isinstance(seed, np.random.Generator)):
        return seed
    allowed = "None, an int or a numpy.random.Generator" if generators else "None or an int"
    raise TypeError(f"{owner}: seed must be {allowed}, got {seed!r}")
