"""Inverted dropout."""
import numpy as np

from .. import ops
from ..random import get_rng
from . import _checks as checks
from .base import Layer


def dropout_seed(rng=None):
    """One 64-bit seed for :func:`nnlite.ops.dropout`, drawn from a numpy Generator (``rng``,
    default the library-wide one): a seed gives the same masks on every backend."""
    return int(get_rng(rng).integers(0, 2 ** 64, dtype=np.uint64))


class Dropout(Layer):
    r"""Zero each input with probability ``rate`` while training; identity at evaluation.

    .. math::

        m_i \sim \text{Bernoulli}(1 - p), \qquad
        y = \frac{m \odot x}{1 - p}, \qquad
        \partial x = \frac{m \odot g}{1 - p}

    "Inverted": survivors are scaled up during training, so E[y] = x and evaluation
    needs no rescaling (``training=False`` returns ``x`` itself).

    The mask is not stored: each forward draws one 64-bit seed and :func:`nnlite.ops.dropout`
    makes the mask from (seed, element index) with a counter-based generator, so the backward
    makes the same mask again from the seed (no mask array cached between the passes).

    Parameters
    ----------
    rate : float in [0, 1)
        :math:`p`, the probability of dropping an element.
    rng : numpy.random.Generator or int, optional
        Generator for the masks; default the library-wide one (``nl.random.seed``), looked
        up at each call so reseeding takes effect.
    name : str, optional
    """

    def __init__(self, rate=0.5, rng=None, name=None):
        super().__init__(name=name)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self._rng = None if rng is None else get_rng(rng)   # an int seed becomes one Generator
        self._seed = None       # cache: the forward's mask seed, None when nothing was dropped
        self._shape = None

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        self._shape = x.shape
        if not (training and self.training) or self.rate == 0.0:
            self._seed = None
            return x
        self._seed = dropout_seed(self._rng)
        return ops.dropout(x, self.rate, self._seed)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._shape)
        g = checks.as_grad(self, grad_out, self._shape, None)
        return g if self._seed is None else ops.dropout(g, self.rate, self._seed)

    def get_config(self):
        return {"rate": self.rate, **super().get_config()}
