"""One seedable random generator for the whole library (initialisation, dropout, shuffling).

``nl.random.seed(0)`` makes a run repeatable. Layers and loaders take an explicit ``rng``
(a ``numpy.random.Generator``) when given one and otherwise draw from this one.
"""
import numpy as np

_rng = np.random.default_rng()


def seed(s):
    """Reseed the library-wide generator."""
    global _rng
    _rng = np.random.default_rng(s)


def get_rng(rng=None):
    """``rng`` if given (a Generator or an int seed), else the library-wide generator."""
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
