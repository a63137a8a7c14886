"""One seedable random generator for the whole library (initialisation, dropout, shuffling).

``nl.random.seed(0)`` (also ``nl.set_seed(0)``, as Keras' ``set_random_seed`` and PyTorch's
``manual_seed``) makes a run repeatable: initial weights, dropout masks, ``fit``'s shuffling.
``np.random.seed`` does not: nnlite never draws from numpy's global generator. Layers and
loaders take an explicit ``rng`` (a ``numpy.random.Generator``) when given one and otherwise
draw from this one.
"""
import numpy as np

_rng = np.random.default_rng()


def seed(s):
    """Reseed the library-wide generator (``nl.set_seed`` is this function); ``np.random.seed``
    does not reach it."""
    global _rng
    _rng = np.random.default_rng(s)


def get_rng(rng=None):
    """``rng`` if given (a Generator or an int seed), else the library-wide generator."""
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
