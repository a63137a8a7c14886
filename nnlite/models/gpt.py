r"""GPT: a decoder-only transformer (GPT-2 / nanoGPT's ``model.py``), built as a Sequential.

Legend: B batch, T time (≤ block_size), C = n_embd channels, V vocabulary size, nh heads.

    ids (B, T) ─ Embedding ─ PositionalEmbedding ─ Dropout          # (B, T, C)
      n_layer × [ x + MultiHeadAttention(LayerNorm(x))              # pre-norm blocks
                  x + Dropout(Linear(GELU(Linear(LayerNorm(x)))))]  # MLP C → 4C → C
      LayerNorm ─ Linear(C, V)                                      # logits (B, T, V)

Nothing here is a training graph of its own: the blocks are ``Residual(Sequential([...]))``,
so ``compile``/``fit``/``save``/``load_model`` work as for any Sequential, with
``loss="cross_entropy"`` on logits (B, T, V) and next-token targets (B, T).

Initialisation as GPT-2 / nanoGPT: every weight matrix and both embedding tables
:math:`N(0, 0.02^2)`, biases 0, LayerNorm :math:`\gamma = 1, \beta = 0`; the two matrices
that write into the residual stream (attention's ``W_o`` and the MLP's second Linear)
:math:`N(0, (0.02/\sqrt{2\,n_\text{layer}})^2)`, so the stream's variance does not grow with
depth. The output head is the one exception: :math:`N(0, 1/C)` (LeCun normal), so the logits
start with unit variance on the final LayerNorm's unit-variance features. With GPT-2's 0.02 the
logits start ~10× too small and Adam, moving each weight ~lr per step, spends hundreds of
steps growing the head. On the ``baby`` run (2000 steps) it lowers val loss by 0.03 (seeds
1337, 1, 2: 1.8993 → 1.8646, 1.8768 → 1.8451, 1.8709 → 1.8407). Unlike nanoGPT the head is
not tied to the token embedding (a Sequential has no shared weights; tied, the same model in
PyTorch ended 0.04 worse) and has a bias.

References: Radford et al. 2019 (GPT-2); Karpathy, nanoGPT ``model.py``.

>>> model = nl.models.GPT(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
>>> model.compile(nl.optim.AdamW(1e-3, decay_filter="matrices"), "cross_entropy")
>>> model.fit(sampler, steps_per_epoch=250, epochs=8)
>>> model.generate(tok.encode("ROMEO:"), max_new_tokens=200, top_k=10, seed=0)
"""
import math

import numpy as np

from .. import random as _random
from ..layers import (GELU, Dropout, Embedding, LayerNorm, Linear, MultiHeadAttention,
                      PositionalEmbedding, Residual)
from .sequential import Sequential

INIT_STD = 0.02


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"GPT: {name} must be a positive int, got {value!r}")
    return int(value)


class GPT(Sequential):
    """A GPT language model: ``Sequential`` of embeddings, ``n_layer`` pre-norm transformer
    blocks (each two ``Residual``\\ s), a final LayerNorm and the Linear head.

    Parameters
    ----------
    vocab_size : int
        V: ids lie in ``[0, vocab_size)``.
    block_size : int
        The longest context (T ≤ block_size); ``generate`` crops to it.
    n_layer, n_head, n_embd : int
        Blocks, attention heads, channels C (divisible by ``n_head``).
    dropout : float in [0, 1), default 0.0
        After the embeddings, on attention's output and at the end of each MLP (nanoGPT's
        placements, minus dropout on the attention probabilities).
    rng : numpy.random.Generator or int, optional
        For the initial weights; default :func:`nnlite.random.get_rng`.
    name : str, optional

    Notes
    -----
    Parameter keys follow the layer indices: ``"0.W"`` token table, ``"1.P"`` positions,
    block ``i``'s attention ``"{3+2i}.0.1.W_qkv"``, its MLP ``"{4+2i}.0.1.W"``,
    the head ``"{3+2n_layer+1}.W"``.
    """

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout=0.0, rng=None,
                 name=None):
        self.vocab_size = _positive_int("vocab_size", vocab_size)
        self.block_size = _positive_int("block_size", block_size)
        self.n_layer = _positive_int("n_layer", n_layer)
        self.n_head = _positive_int("n_head", n_head)
        self.n_embd = C = _positive_int("n_embd", n_embd)
        if C % self.n_head:
            raise ValueError(f"GPT: n_embd {C} is not divisible by n_head {self.n_head}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"GPT: dropout must be in [0, 1), got {dropout}")
        self.dropout = p = float(dropout)
        layers = [Embedding(self.vocab_size, C),                       # (B, T) -> (B, T, C)
                  PositionalEmbedding(self.block_size, C),            # + P[:T]
                  Dropout(p)]
        for _ in range(self.n_layer):
            layers.append(Residual(Sequential([LayerNorm(C),
                                               MultiHeadAttention(C, self.n_head, causal=True,
                                                                  dropout=p)])))
            layers.append(Residual(Sequential([LayerNorm(C), Linear(C, 4 * C), GELU(),
                                               Linear(4 * C, C), Dropout(p)])))
        layers += [LayerNorm(C), Linear(C, self.vocab_size)]          # logits (B, T, V)
        super().__init__(layers, name=name, input_shape=(self.block_size,))
        self._init_weights(_random.get_rng(rng))

    def _blocks(self, kind):
        """The MultiHeadAttention layers (``"attention"``) or MLP Sequentials (``"mlp"``)."""
        first = 3 if kind == "attention" else 4
        for i in range(first, 3 + 2 * self.n_layer, 2):
            inner = self.layers[i].inner
            yield inner.layers[1] if kind == "attention" else inner

    def _init_weights(self, rng):
        """GPT-2's: every matrix (embedding tables included) N(0, 0.02²), the residual
        projections N(0, (0.02/√(2·n_layer))²); the head N(0, 1/n_embd) (see the module
        docstring); vectors (biases, LayerNorm) as the layers made them. All drawn here from
        ``rng``, in parameter order."""
        proj_std = INIT_STD / math.sqrt(2 * self.n_layer)
        std = {id(att.params["W_o"]): proj_std for att in self._blocks("attention")}
        std.update({id(mlp.layers[3].params["W"]): proj_std for mlp in self._blocks("mlp")})
        std[id(self.layers[-1].params["W"])] = 1.0 / math.sqrt(self.n_embd)     # the head
        for W in self.params.values():
            if W.ndim >= 2:
                W[...] = rng.standard_normal(W.shape) * std.get(id(W), INIT_STD)

    # -- config: the hyper-parameters rebuild the whole model ------------------------------
    def get_config(self):
        cfg = {"vocab_size": self.vocab_size, "block_size": self.block_size,
               "n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd,
               "dropout": self.dropout}
        if self.name:
            cfg["name"] = self.name
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"GPT({args}; {self.num_params():,} parameters)"

    # -- sampling --------------------------------------------------------------------------
    def generate(self, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, seed=None):
        """Continue ``prompt_ids`` by sampling one token at a time (nanoGPT's ``generate``).

        Each step feeds the last ``block_size`` tokens (the context is cropped), takes the
        logits of the last position, divides them by ``temperature``, keeps the ``top_k``
        largest and samples from their softmax.

        Parameters
        ----------
        prompt_ids : sequence of int, shape (T,) or (B, T)
            At least one id, each in ``[0, vocab_size)``.
        max_new_tokens : int >= 0
        temperature : float >= 0, default 1.0
            < 1 sharper, > 1 flatter; ``0`` means greedy (always the most likely token, no
            randomness). Negative raises ``ValueError``.
        top_k : int, optional
            Sample among the ``top_k`` most likely tokens only (clipped to ``vocab_size``).
        seed : int or numpy.random.Generator, optional
            The same seed gives the same text; default ``nl.random``'s generator.

        Returns
        -------
        ndarray of int64, shape (T + max_new_tokens,) or (B, T + max_new_tokens)
            The prompt followed by the new tokens.
        """
        ids = np.asarray(prompt_ids)
        if ids.ndim not in (1, 2) or ids.shape[-1] == 0 or ids.size == 0:
            raise ValueError(f"GPT.generate: the prompt must hold at least one token id, shape "
                             f"(T,) or (B, T), got shape {ids.shape}; start from e.g. the id of "
                             f"'\\n'")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"GPT.generate: prompt ids must be integers, got dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            vals = np.unique(ids[bad])[:10].tolist()
            raise ValueError(f"GPT.generate: prompt ids must lie in [0, {self.vocab_size}) "
                             f"(vocab_size {self.vocab_size}), got {vals}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
                or max_new_tokens < 0:
            raise ValueError(f"GPT.generate: max_new_tokens must be an int >= 0, got "
                             f"{max_new_tokens!r}")
        temperature = float(temperature)
        if not temperature >= 0.0:              # also NaN
            raise ValueError(f"GPT.generate: temperature must be >= 0 (0 = greedy), got "
                             f"{temperature}")
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
                raise ValueError(f"GPT.generate: top_k must be None or an int >= 1, got {top_k!r}")
            top_k = min(int(top_k), self.vocab_size)
        rng = np.random.default_rng(seed) if isinstance(seed, (int, np.integer)) else \
            _random.get_rng(seed)

        one = ids.ndim == 1
        out = np.empty((1 if one else ids.shape[0], ids.shape[-1] + int(max_new_tokens)), np.int64)
        out[:, :ids.shape[-1]] = ids.reshape(out.shape[0], -1)
        for t in range(ids.shape[-1], out.shape[1]):
            ctx = out[:, max(0, t - self.block_size):t]                 # (B, ≤ block_size)
            logits = self.forward(ctx, training=False)[:, -1, :]         # (B, V): last position
            out[:, t] = self._sample(logits.astype(np.float64), temperature, top_k, rng)
        return out[0] if one else out

    @staticmethod
    def _sample(logits, temperature, top_k, rng):
        """One id per row of ``logits`` (B, V)."""
        if temperature == 0.0:
            return logits.argmax(axis=-1)
        logits = logits / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = np.partition(logits, -top_k, axis=-1)[:, -top_k, None]   # k-th largest
            logits = np.where(logits < kth, -np.inf, logits)
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        cdf = np.cumsum(p, axis=-1)
        u = rng.random(len(p))[:, None] * cdf[:, -1:]                   # one draw per row
        return np.minimum((cdf <= u).sum(axis=-1), p.shape[-1] - 1)
