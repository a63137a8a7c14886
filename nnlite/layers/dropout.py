"""Inverted dropout."""
import numpy as np

from ..random import get_rng
from . import _checks as C
from .base import Layer


class Dropout(Layer):
    r"""Zero each input with probability ``rate`` while training; identity at evaluation.

    .. math::

        m_i \sim \text{Bernoulli}(1 - p), \qquad
        y = \frac{m \odot x}{1 - p}, \qquad
        \partial x = \frac{m \odot g}{1 - p}

    "Inverted": survivors are scaled up during training, so E[y] = x and evaluation
    needs no rescaling (``training=False`` returns ``x`` itself).

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
        self._mask = None       # cache: the scaled mask m/(1-p), or 1.0 when it was the identity
        self._shape = None

    def forward(self, x, training=True):
        x = C.as_input(self, x)
        self._shape = x.shape
        if not (training and self.training) or self.rate == 0.0:
            self._mask = 1.0
            return x
        keep = get_rng(self._rng).random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, grad_out):
        C.check_forward_called(self, self._mask)
        g = C.as_grad(self, grad_out, self._shape, None)
        return g * self._mask if isinstance(self._mask, np.ndarray) else g

    def get_config(self):
        return {"rate": self.rate, **super().get_config()}
