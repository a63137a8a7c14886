"""One seedable random generator for the whole library (initialisation, dropout, shuffling).

``nl.random.seed(0)`` (also ``nl.set_seed(0)``, as Keras' ``set_random_seed`` and PyTorch's
``manual_seed``) makes a run repeatable: initial weights, dropout masks, ``fit``'s shuffling.
``np.random.seed`` does not: nnlite never draws from numpy's global generator. Layers and
loaders take an explicit ``rng`` (a ``numpy.random.Generator``) when given one and otherwise
draw from this one.

``fit`` draws nothing from it during an epoch: it installs the epoch's own generator,
:func:`epoch_rng` ``(seed, epoch)``, with :func:`using`, so the shuffle and the Dropout
masks of epoch ``e`` depend on the run's seed and ``e`` alone (a resumed run draws the same).
"""
import contextlib

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


def epoch_rng(seed, epoch):
    """The generator of epoch ``epoch`` (0-based) of a run seeded ``seed``: a function of the
    two numbers only, so epoch 7 draws the same whether or not epochs 0-6 ran in this
    process."""
    return np.random.default_rng([int(seed), int(epoch)])


@contextlib.contextmanager
def using(rng):
    """Make ``rng`` the library-wide generator inside the ``with`` block (what the layers and
    loaders without their own ``rng`` draw from); the previous one is back after it."""
    global _rng
    previous, _rng = _rng, rng
    try:
        yield rng
    finally:
        _rng = previous
