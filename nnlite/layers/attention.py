r"""Multi-head self-attention (Vaswani et al. 2017), the GPT-2 / nanoGPT ``CausalSelfAttention``.

Legend (llm.c): B batch, T time, C channels, nh = n_head heads, hs = C / nh head size.
"""
import numpy as np

from .. import init as _init
from .. import ops
from ..init import INIT_STD  # noqa: F401  (GPT-2's 0.02, the "normal" default; defined once)
from ..random import get_rng
from . import _checks as checks
from .base import Layer
from .dropout import dropout_seed


class MultiHeadAttention(Layer):
    r"""Multi-head scaled dot-product self-attention with a fused QKV projection.

    .. math::

        [Q\ K\ V] = x W_{qkv} + b_{qkv}, \quad\text{split into } n_h \text{ heads of size }
        d = C / n_h

        A_h = \mathrm{softmax}\!\Big(\frac{Q_h K_h^\top}{\sqrt d} + M\Big) V_h, \qquad
        y = [A_1 \cdots A_{n_h}]\, W_o + b_o

    where :math:`M_{ts} = -\infty` for :math:`s > t` when ``causal`` (position t sees
    0..t), else 0. The attention itself is ``ops.attention`` (a flash-attention kernel: the
    (T, T) probabilities are never stored; it returns the row log-sum-exp, which
    ``ops.attention_backward`` reuses). The heads are views, never transposed by a copy here:
    the CPU kernel reads Q, K, V straight out of the (B, T, 3, n_h, d) projection through
    their strides, writes A straight into (B, T, n_h, d) = (B·T, C), and in the backward
    writes dQ, dK, dV straight into their columns of the projection's gradient (the CUDA
    wrapper copies between layouts on the device instead).
    The projections' gradients are plain GEMMs:
    :math:`\partial W_o = A^\top g`, :math:`\partial A = g W_o^\top`,
    :math:`\partial W_{qkv} = x^\top \partial[Q\,K\,V]`,
    :math:`\partial x = \partial[Q\,K\,V]\, W_{qkv}^\top`.

    Parameters
    ----------
    dim : int
        :math:`C`, the channels of the input and output; must be divisible by ``n_head``.
    n_head : int
    causal : bool, default True
        Mask future positions (a decoder, as GPT).
    dropout : float in [0, 1), default 0.0
        *Residual* dropout on the output :math:`y` while training (nanoGPT's
        ``resid_dropout``). Dropout on the attention probabilities (nanoGPT's
        ``attn_dropout``) is not supported: the flash kernel never forms them.
    init : str, callable or None, default "normal"
        The initial :math:`W_{qkv}` and :math:`W_o`: "normal" is GPT-2's :math:`N(0, 0.02^2)`
        (GPT-2's extra :math:`1/\sqrt{2 n_\text{layer}}` on :math:`W_o` is left to the model
        builder); any name or callable of :mod:`nnlite.init`; ``None``: zeros, nothing drawn
        (the caller sets them). Biases start at zero.
    rng : numpy.random.Generator or int, optional
        For the initial weights and the dropout masks (default the library-wide generator,
        looked up at each call).
    dtype : numpy dtype, default float32
    name : str, optional

    Attributes
    ----------
    params : {"W_qkv": (C, 3C), "b_qkv": (3C,), "W_o": (C, C), "b_o": (C,)}
        Columns of ``W_qkv``: Q, K, V, each split into heads ``[h * hs:(h + 1) * hs]``.
    grads : same keys and shapes, accumulated by ``backward``
    """

    def __init__(self, dim, n_head, causal=True, dropout=0.0, init="normal", rng=None,
                 dtype=np.float32, name=None):
        super().__init__(name=name)
        self.dim, self.n_head = checks.sizes("MultiHeadAttention", dim=dim, n_head=n_head)
        if self.dim % self.n_head != 0:
            raise ValueError(f"MultiHeadAttention: dim {self.dim} is not divisible by n_head "
                             f"{self.n_head} (each head gets dim / n_head channels)")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.causal, self.dropout = bool(causal), float(dropout)
        self._rng = None if rng is None else get_rng(rng)   # an int seed becomes one Generator
        draw, Cd = _init.get(init), self.dim
        self.params["W_qkv"] = np.ascontiguousarray(
            draw(Cd, 3 * Cd, rng=self._rng, dtype=dtype), dtype=dtype)
        self.params["b_qkv"] = np.zeros(3 * Cd, dtype=dtype)
        self.params["W_o"] = np.ascontiguousarray(draw(Cd, Cd, rng=self._rng, dtype=dtype),
                                                  dtype=dtype)
        self.params["b_o"] = np.zeros(Cd, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # caches for backward
        self._x2 = None         # input as (B*T, C), for dW_qkv
        self._qkv = None        # (q, k, v): (B, nh, T, hs) views of the (B*T, 3C) projection
        self._out = None        # (B, nh, T, hs) attention output, a view of _a2, and its
        self._lse = None        # (B, nh, T) row log-sum-exp
        self._a2 = None         # the output, heads merged: (B*T, C)
        self._seed = None       # residual dropout: its mask's seed (ops.dropout), or None

    def _describe(self):
        return f"MultiHeadAttention(dim={self.dim}, n_head={self.n_head})"

    def forward(self, x, training=True, residual=None):
        """The attention's output, plus ``residual`` (B, T, C) when given: a transformer
        block's skip connection, added by the output projection's GEMM as it writes y (after
        the residual dropout, when there is one); its gradient is the caller's (grad_out)."""
        p = self.params
        x = checks.as_input(self, x, p["W_qkv"].dtype)
        checks.check_sequence_shape(self, x.shape, self.dim)
        if residual is not None:
            residual = checks.as_residual(self, residual, x.shape, p["W_qkv"].dtype)
        xp = ops.array_module(x)
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        x2 = xp.ascontiguousarray(x).reshape(B * T, C)              # (B*T, C)
        qkv = ops.gemm(x2, p["W_qkv"], bias=p["b_qkv"])             # (B*T, 3C), + b_qkv
        # the heads are views (strided along B, nh, T; the kernel reads them in place)
        q, k, v = qkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)  # each (B, nh, T, hs)
        a = xp.empty((B, T, nh, hs), dtype=qkv.dtype)               # heads merged: (B*T, C)
        out = a.transpose(0, 2, 1, 3)                               # (B, nh, T, hs) view of a
        if training:
            _, lse = ops.attention(q, k, v, causal=self.causal, return_lse=True, out=out)
        else:                                                       # inference: no lse
            ops.attention(q, k, v, causal=self.causal, out=out)
            lse = None
        a2 = a.reshape(B * T, C)                                    # a view: no copy
        drop = training and self.training and self.dropout > 0.0
        r2 = None if residual is None or drop else residual.reshape(B * T, C)
        y = ops.gemm(a2, p["W_o"], bias=p["b_o"], residual=r2)      # (B*T, C), + b_o (+ r)
        y = y.reshape(B, T, C)
        # inference (training=False) keeps no cache: evaluate/predict hold no activations
        # (the views q, k, v, out would keep the projection and a2 alive)
        self._x2, self._qkv, self._out, self._lse, self._a2 = \
            (x2, (q, k, v), out, lse, a2) if training else (None,) * 5
        self._seed = None
        if drop:                                                    # residual dropout
            self._seed = dropout_seed(self._rng)
            y = ops.dropout(y, self.dropout, self._seed)
            if residual is not None:
                y += residual
        return y

    def backward(self, grad_out):
        checks.check_forward_called(self, self._out)
        p, gr = self.params, self.grads
        B, nh, T, hs = self._out.shape
        C = nh * hs
        g = checks.as_grad(self, grad_out, (B, T, C), p["W_o"].dtype)
        xp = ops.array_module(g)
        if self._seed is not None:                                  # the forward's mask again
            g = ops.dropout(g, self.dropout, self._seed)            # a new array: g untouched
        g2 = xp.ascontiguousarray(g).reshape(B * T, C)              # (B*T, C)
        # in the forward pass this was y = a2 W_o + b_o
        ops.gemm_tn(self._a2, g2, out=gr["W_o"], accumulate=True)         # dW_o += a2ᵀ g
        ops.bias_grad(g2, out=gr["b_o"], accumulate=True)           # db_o += Σ_n g_n
        da = ops.gemm_nt(g2, p["W_o"])                              # (B*T, C) = g W_oᵀ
        dout = da.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)       # (B, nh, T, hs), a view
        q, k, v = self._qkv
        # in the forward pass this was qkv = x2 W_qkv + b_qkv, then split into heads (views):
        # the kernel writes dq, dk, dv straight into their columns of dqkv, through views
        dqkv = xp.empty((B, T, 3, nh, hs), dtype=da.dtype)          # (B, T, 3, nh, hs)
        dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)                  # each (B, nh, T, hs)
        ops.attention_backward(q, k, v, self._out, dout, lse=self._lse, causal=self.causal,
                               dq=dq, dk=dk, dv=dv)
        dqkv = dqkv.reshape(B * T, 3 * C)                           # (B*T, 3C), a view
        ops.gemm_tn(self._x2, dqkv, out=gr["W_qkv"], accumulate=True)  # dW_qkv += xᵀ dqkv
        ops.bias_grad(dqkv, out=gr["b_qkv"], accumulate=True)       # db_qkv += Σ_n dqkv_n
        if not self.needs_input_grad:
            return None
        return ops.gemm_nt(dqkv, p["W_qkv"]).reshape(B, T, C)       # dx = dqkv W_qkvᵀ

    def output_shape(self, input_shape):
        checks.check_sequence_shape(self, tuple(input_shape), self.dim)
        return tuple(input_shape)

    def get_config(self):
        return {"dim": self.dim, "n_head": self.n_head, "causal": self.causal,
                "dropout": self.dropout, "dtype": checks.dtype_name(self.dtype),
                **super().get_config()}
