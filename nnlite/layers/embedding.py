r"""Token and learned positional embeddings (GPT-2's ``wte`` and ``wpe``).

Legend (llm.c): B batch, T time (sequence length), C = dim channels, V vocabulary size.
"""
import numpy as np

from .. import init as _init
from .. import ops
from ..init import INIT_STD  # noqa: F401  (GPT-2's 0.02, the "normal" default; defined once)
from . import _checks as checks
from .base import Layer, shape_str


class Embedding(Layer):
    r"""Look up a learned vector per integer id: the token embedding of a GPT.

    .. math::

        y_{\ldots,:} = W_{\mathrm{ids}_{\ldots},:}, \qquad
        \frac{\partial L}{\partial W_{v,:}} = \sum_{n:\ \mathrm{ids}_n = v} g_{n,:}

    Repeated ids add up (a scatter-add). The ids are discrete: they have no gradient,
    so ``backward`` returns ``None`` (put this layer first).

    Parameters
    ----------
    num_embeddings : int
        :math:`V`, the vocabulary size; ids must lie in ``[0, V)``.
    embedding_dim : int
        :math:`C`, the size of each vector.
    init : str, callable or None, default "normal"
        The initial table: "normal" is GPT-2's :math:`W \sim N(0, 0.02^2)`; any name or
        callable of :mod:`nnlite.init`; ``None``: zeros, nothing drawn (the caller sets it).
    rng : numpy.random.Generator or int, optional
        For the initial table.
    dtype : numpy dtype, default float32
    name : str, optional

    Attributes
    ----------
    params : {"W": ndarray of shape (num_embeddings, embedding_dim)}
    grads : same key and shape, accumulated by ``backward``
    input_dtype : int64
        What ``Sequential`` converts its inputs to when this layer comes first.
    """

    input_dtype = np.dtype(np.int64)

    def __init__(self, num_embeddings, embedding_dim, init="normal", rng=None, dtype=np.float32,
                 name=None):
        super().__init__(name=name)
        self.num_embeddings, self.embedding_dim = checks.sizes(
            "Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        W = _init.get(init)(self.num_embeddings, self.embedding_dim, rng=rng, dtype=dtype)
        self.params["W"] = np.ascontiguousarray(W, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._ids = None                    # cache: the ids, for the scatter-add

    def _describe(self):
        return f"Embedding({self.num_embeddings} → {self.embedding_dim})"

    def _check_ids(self, ids):
        xp = ops.array_module(ids)
        ids = xp.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{checks.describe(self)}: expected integer ids, got dtype "
                            f"{ids.dtype} with shape {shape_str(ids.shape)}")
        bad = (ids < 0) | (ids >= self.num_embeddings)
        if bad.any():
            vals = xp.unique(ids[bad])
            shown = ", ".join(str(v) for v in vals[:10]) + (", ..." if vals.size > 10 else "")
            raise ValueError(f"{checks.describe(self)}: ids must lie in "
                             f"[0, {self.num_embeddings}) (vocabulary size "
                             f"{self.num_embeddings}), got {int(bad.sum())} out of range: {shown}")
        return xp.ascontiguousarray(ids)

    def forward(self, ids, training=True):
        ids = self._check_ids(ids)
        self._ids = ids if training else None               # inference: no cache
        return ops.embedding(ids, self.params["W"])         # (..., C), e.g. (B, T, C)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._ids)
        W = self.params["W"]
        g = checks.as_grad(self, grad_out, (*self._ids.shape, self.embedding_dim), W.dtype)
        ops.embedding_backward(self._ids, g, self.grads["W"])    # dW[ids] += g
        return None                                         # ids have no gradient

    def output_shape(self, input_shape):
        return (*input_shape, self.embedding_dim)

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "dtype": checks.dtype_name(self.dtype), **super().get_config()}


class PositionalEmbedding(Layer):
    r"""Add a learned vector per position: :math:`y_{b,t,:} = x_{b,t,:} + P_{t,:}`.

    .. math::

        \frac{\partial L}{\partial x} = g, \qquad
        \frac{\partial L}{\partial P_{t,:}} = \sum_b g_{b,t,:} \quad (t < T)

    A sequence may be shorter than ``block_size``; rows ``P[T:]`` then get no gradient.

    Parameters
    ----------
    block_size : int
        The longest sequence (context length) the table covers.
    dim : int
        :math:`C`, the channels of ``x``.
    init, rng, dtype, name
        As for :class:`Embedding` ("normal" is nanoGPT's :math:`P \sim N(0, 0.02^2)` here).

    Attributes
    ----------
    params : {"P": ndarray of shape (block_size, dim)}
    grads : same key and shape
    """

    def __init__(self, block_size, dim, init="normal", rng=None, dtype=np.float32, name=None):
        super().__init__(name=name)
        self.block_size, self.dim = checks.sizes("PositionalEmbedding", block_size=block_size,
                                                 dim=dim)
        P = _init.get(init)(self.block_size, self.dim, rng=rng, dtype=dtype)
        self.params["P"] = np.ascontiguousarray(P, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._shape = None                  # cache: the input shape (B, T, C)

    def _describe(self):
        return f"PositionalEmbedding({self.block_size}, {self.dim})"

    def _check_shape(self, shape):
        checks.check_sequence_shape(self, shape, self.dim)
        if shape[1] is not None and shape[1] > self.block_size:
            raise ValueError(f"{checks.describe(self)}: sequence length {shape[1]} exceeds "
                             f"block_size {self.block_size} (input shape {shape_str(shape)})")

    def forward(self, x, training=True):
        P = self.params["P"]
        x = checks.as_input(self, x, P.dtype)
        self._check_shape(x.shape)
        self._shape = B, T, C = x.shape
        y = ops.bias_act(x.reshape(B, T * C), P[:T].reshape(T * C))   # the bias P[:T], per (t, c)
        return y.reshape(B, T, C)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._shape)
        P = self.params["P"]
        B, T, C = self._shape
        g = checks.as_grad(self, grad_out, self._shape, P.dtype)
        self.grads["P"][:T] += ops.bias_grad(g.reshape(B, T * C)).reshape(T, C)  # dP[:T] += Σ_b g
        return g if self.needs_input_grad else None         # dx = g (not written into)

    def output_shape(self, input_shape):
        self._check_shape(tuple(input_shape))
        return tuple(input_shape)

    def get_config(self):
        return {"block_size": self.block_size, "dim": self.dim,
                "dtype": checks.dtype_name(self.dtype), **super().get_config()}
