r"""GPT: a decoder-only transformer (GPT-2 / nanoGPT's ``model.py``), built as a Sequential.

Legend: B batch, T time (≤ block_size), C = n_embd channels, V vocabulary size, nh heads.

    ids (B, T) ─ wte ─ wpe ─ drop                          # (B, T, C): token + position
      h.0 … h.{n_layer-1}: Block                           # pre-norm, each:
          x = x + attn(ln_1(x))                            #   causal self-attention, nh heads
          x = x + mlp(ln_2(x))                             #   fc C → 4C, gelu, proj 4C → C, drop
      ln_f ─ lm_head                                       # logits (B, T, V)

The modules are named as nanoGPT's, and so are the parameter keys (``model.params``, the
keys of a saved file): ``wte.W``, ``wpe.P``, ``h.0.ln_1.gamma``, ``h.0.attn.qkv.W``,
``h.0.attn.proj.W``, ``h.0.mlp.fc.W``, ``h.0.mlp.proj.b``, ``ln_f.beta``, ``lm_head.W``. A GPT
is a :class:`~nnlite.Sequential` of ``[wte, wpe, drop, h.0, …, ln_f, lm_head]``, so
``compile``/``fit``/``save``/``load_model`` work as for any Sequential, with
``loss="cross_entropy"`` on logits (B, T, V) and next-token targets (B, T). Files written
before the modules had names (keys ``"0.W"``, ``"3.0.1.W_qkv"``, ...) still load
(:meth:`GPT.upgrade_keys`).

Initialisation as GPT-2 / nanoGPT, each matrix drawn once, by :class:`GPT` (the layers are
built with ``init=None``): every weight matrix and both embedding tables
:math:`N(0, 0.02^2)`, biases 0, LayerNorm :math:`\gamma = 1, \beta = 0`; the two matrices
that write into the residual stream (``attn.proj.W`` and ``mlp.proj.W``)
:math:`N(0, (0.02/\sqrt{2\,n_\text{layer}})^2)`, so the stream's variance does not grow with
depth. The output head is the one exception: :math:`N(0, 1/C)` (LeCun normal), so the logits
start with unit variance on the final LayerNorm's unit-variance features. With GPT-2's 0.02 the
logits start ~10× too small and Adam, moving each weight ~lr per step, spends hundreds of
steps growing the head. On the ``baby`` run (2000 steps) it lowers val loss by 0.03 (seeds
1337, 1, 2: 1.8993 → 1.8646, 1.8768 → 1.8451, 1.8709 → 1.8407). Unlike nanoGPT the head is
not tied to the token embedding (a Sequential has no shared weights; tied, the same model in
PyTorch ended 0.04 worse) and has a bias.

References: Radford et al. 2019 (GPT-2); Karpathy, nanoGPT ``model.py``.

>>> config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
>>> model = nl.models.GPT(config)          # or GPT(vocab_size=65, block_size=64, ...)
>>> model.compile(nl.optim.AdamW(1e-3, decay_filter="matrices"), "cross_entropy")
>>> model.fit(sampler, steps_per_epoch=250, epochs=8)
>>> model.generate(tok.encode("ROMEO:"), max_new_tokens=200, top_k=10, seed=0)
"""
import dataclasses
import math

import numpy as np

from .. import devices
from .. import init as _init
from .. import random as _random
from .._args import is_int
from ..init import INIT_STD
from ..layers import Dropout, Embedding, LayerNorm, Linear, PositionalEmbedding
from .gpt_blocks import ATTENTION_KEYS, Block, named_arrays
from .sequential import Sequential


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """A GPT's hyper-parameters: everything that fixes its architecture.

    Checked when made: each error names the field and the value. Frozen, since the model built
    from it cannot change shape; ``dataclasses.replace(config, dropout=0.1)`` makes a variant.
    """

    vocab_size: int         # V: ids lie in [0, V)
    block_size: int         # the longest context T; the position table has this many rows
    n_layer: int            # transformer blocks
    n_head: int             # attention heads per block
    n_embd: int             # C channels, divisible by n_head (head size C / n_head)
    # after the embeddings, on attention's and each MLP's output while training (nanoGPT's
    # placements, minus on the attention probabilities, which the flash kernel never forms).
    # 0.0 as nanoGPT ("for pretraining 0 is good, for finetuning try 0.1+"); a small text that
    # overfits wants more (the course-best preset: 0.2)
    dropout: float = 0.0

    def __post_init__(self):
        for f in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            v = getattr(self, f)
            if not is_int(v) or v < 1:
                raise ValueError(f"GPTConfig: {f} must be a positive int, got {v!r}")
            object.__setattr__(self, f, int(v))             # numpy ints too: JSON-able
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head "
                             f"{self.n_head} (each head gets n_embd / n_head channels)")
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float, np.number)) \
                or not 0.0 <= float(p) < 1.0:
            raise ValueError(f"GPTConfig: dropout must be a number in [0, 1), got {p!r}")
        object.__setattr__(self, "dropout", float(p))


class GPT(Sequential):
    """A GPT language model: token and position embeddings, ``n_layer`` pre-norm transformer
    :class:`~nnlite.models.gpt_blocks.Block`\\ s, a final LayerNorm and the Linear head.

    ``GPT(config, rng=None, name=None)`` or
    ``GPT(vocab_size, block_size, n_layer, n_head, n_embd, dropout=0.0, rng=None, name=None)``.

    Parameters
    ----------
    config : GPTConfig
        Or its fields, positionally or by name:
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
        For the initial weights; default :func:`nnlite.random.get_rng`. Inside
        :func:`nnlite.init.skip_init` nothing is drawn (all zeros).
    name : str, optional

    Attributes
    ----------
    config : GPTConfig
    wte : Embedding
        (V, C) token table.
    wpe : PositionalEmbedding
        (block_size, C) position table.
    drop : Dropout
    h : list of Block
        ``h[i]`` has ``ln_1``, ``attn``, ``ln_2``, ``mlp`` (``fc``, ``gelu``, ``proj``,
        ``drop``).
    ln_f : LayerNorm
    lm_head : Linear
        (C, V), with a bias.
    layers : list of Layer
        ``[wte, wpe, drop, h[0], …, h[n_layer - 1], ln_f, lm_head]``, in forward order.
    params, grads : dict
        Keyed by module path, in forward order: ``wte.W``, ``wpe.P``, then per block
        ``h.{i}.ln_1.gamma``, ``.ln_1.beta``, ``.attn.qkv.W``, ``.attn.qkv.b``,
        ``.attn.proj.W``, ``.attn.proj.b``, ``.ln_2.gamma``, ``.ln_2.beta``, ``.mlp.fc.W``,
        ``.mlp.fc.b``, ``.mlp.proj.W``, ``.mlp.proj.b``, then ``ln_f.gamma``, ``ln_f.beta``,
        ``lm_head.W``, ``lm_head.b``.
    """

    def __init__(self, *args, rng=None, name=None, **kwargs):
        if args and isinstance(args[0], GPTConfig) or isinstance(kwargs.get("config"), GPTConfig):
            config = args[0] if args else kwargs.pop("config")
            if len(args) > 1 or kwargs:
                raise TypeError(f"GPT takes a GPTConfig alone or the hyper-parameters, not "
                                f"both; got {config} and also {list(args[1:]) + list(kwargs)}: "
                                f"use dataclasses.replace(config, ...) for a variant")
        else:
            config = GPTConfig(*args, **kwargs)
        self.config = config
        for f in dataclasses.fields(config):            # model.n_layer etc., as before
            setattr(self, f.name, getattr(config, f.name))
        C, p = config.n_embd, config.dropout
        # built without drawing (init=None): _init_weights draws each matrix once, below
        self.wte = Embedding(config.vocab_size, C, init=None, name="wte")  # (B, T) -> (B, T, C)
        self.wpe = PositionalEmbedding(config.block_size, C, init=None, name="wpe")  # + P[:T]
        self.drop = Dropout(p, name="drop")
        self.h = [Block(C, config.n_head, p, init=None, name=f"h.{i}")
                  for i in range(config.n_layer)]                       # (B, T, C) each
        self.ln_f = LayerNorm(C, name="ln_f")
        self.lm_head = Linear(C, config.vocab_size, init=None, name="lm_head")   # (B, T, V)
        super().__init__([layer for _, layer in self.modules()], name=name,
                         input_shape=(config.block_size,))
        self._init_weights(_random.get_rng(rng))

    def modules(self):
        """``(name, layer)`` pairs in forward order: ``wte``, ``wpe``, ``drop``, ``h.0`` …,
        ``ln_f``, ``lm_head`` (nanoGPT's ``transformer.*`` and ``lm_head``)."""
        return [("wte", self.wte), ("wpe", self.wpe), ("drop", self.drop),
                *((f"h.{i}", block) for i, block in enumerate(self.h)),
                ("ln_f", self.ln_f), ("lm_head", self.lm_head)]

    def _arrays(self, which):
        """``params``/``grads`` keyed by module path (``"h.0.attn.qkv.W"``), not index."""
        return named_arrays(self.modules(), which)

    def _init_weights(self, rng):
        """GPT-2's, each matrix drawn once, here, from ``rng`` in parameter order: N(0, 0.02²),
        the residual projections ``*.proj.W`` N(0, (0.02/√(2·n_layer))²), the head
        N(0, 1/n_embd) (see the module docstring); vectors (biases, LayerNorm) as the layers
        made them. Nothing inside :func:`nnlite.init.skip_init` (a file load sets them)."""
        if _init.skipping():
            return
        proj_std = INIT_STD / math.sqrt(2 * self.n_layer)
        for key, W in self.params.items():
            if W.ndim < 2:
                continue
            std = (1.0 / math.sqrt(self.n_embd) if key == "lm_head.W" else
                   proj_std if key.endswith(".proj.W") else INIT_STD)
            W[...] = _init.normal(*W.shape, rng=rng, dtype=W.dtype, std=std)

    # -- files: today's keys, and those written before the modules had names -----------------
    def load_state_dict(self, state):
        """As :meth:`Sequential.load_state_dict`; also takes the keys of files written before
        the modules had names (``"0.W"``, ``"3.0.1.W_qkv"``, ...; see :meth:`upgrade_keys`),
        so ``load_model``, ``load_weights`` and ``set_weights(dict)`` read old checkpoints."""
        super().load_state_dict(self.upgrade_keys(state))

    def upgrade_keys(self, weights):
        """``weights`` with old keys renamed to today's; a dict with today's keys unchanged.

        Until named modules GPT was a plain Sequential of ``[Embedding, PositionalEmbedding,
        Dropout, (Residual(Sequential([LayerNorm, MultiHeadAttention])),
        Residual(Sequential([LayerNorm, Linear, GELU, Linear, Dropout]))) × n_layer,
        LayerNorm, Linear]``, keyed by position: ``"<layer>.0.<inner layer>.<param>"``. The
        parameters come in the same order then and now, so an optimizer's state (kept per
        parameter index) carries over as it is.

        >>> model.upgrade_keys({"3.0.1.W_qkv": W, ...})      # {"h.0.attn.qkv.W": W, ...}
        """
        if "0.W" not in weights:
            return weights
        new = self._old_key_names()
        return {new.get(k, k): v for k, v in weights.items()}

    def _old_key_names(self):
        """``{old key: new key}`` for this model's depth."""
        names = {"0.W": "wte.W", "1.P": "wpe.P"}            # layer 2 was the Dropout
        for i in range(self.n_layer):
            att, mlp, h = f"{3 + 2 * i}.0.", f"{4 + 2 * i}.0.", f"h.{i}."   # two Residuals
            names.update({att + "0.gamma": h + "ln_1.gamma", att + "0.beta": h + "ln_1.beta",
                          **{att + "1." + k: h + "attn." + v for k, v in ATTENTION_KEYS.items()},
                          mlp + "0.gamma": h + "ln_2.gamma", mlp + "0.beta": h + "ln_2.beta",
                          mlp + "1.W": h + "mlp.fc.W", mlp + "1.b": h + "mlp.fc.b",
                          mlp + "3.W": h + "mlp.proj.W", mlp + "3.b": h + "mlp.proj.b"})
        ln_f, head = 3 + 2 * self.n_layer, 4 + 2 * self.n_layer
        names.update({f"{ln_f}.gamma": "ln_f.gamma", f"{ln_f}.beta": "ln_f.beta",
                      f"{head}.W": "lm_head.W", f"{head}.b": "lm_head.b"})
        return names

    # -- config: the hyper-parameters rebuild the whole model ------------------------------
    def get_config(self):
        cfg = dataclasses.asdict(self.config)
        if self.name:
            cfg["name"] = self.name
        return cfg

    @classmethod
    def from_config(cls, config):
        cfg = dict(config)
        name = cfg.pop("name", None)
        return cls(GPTConfig(**cfg), name=name)

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
        numpy.ndarray of int64, shape (T + max_new_tokens,) or (B, T + max_new_tokens)
            The prompt followed by the new tokens (the model may be on a GPU: each step's
            last-position logits come back to sample from).
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
        if not is_int(max_new_tokens) or max_new_tokens < 0:
            raise ValueError(f"GPT.generate: max_new_tokens must be an int >= 0, got "
                             f"{max_new_tokens!r}")
        temperature = float(temperature)
        if not temperature >= 0.0:              # also NaN
            raise ValueError(f"GPT.generate: temperature must be >= 0 (0 = greedy), got "
                             f"{temperature}")
        if top_k is not None:
            if not is_int(top_k) or top_k < 1:
                raise ValueError(f"GPT.generate: top_k must be None or an int >= 1, got {top_k!r}")
            top_k = min(int(top_k), self.vocab_size)
        rng = np.random.default_rng(seed) if is_int(seed) else \
            _random.get_rng(seed)

        one = ids.ndim == 1
        out = np.empty((1 if one else ids.shape[0], ids.shape[-1] + int(max_new_tokens)), np.int64)
        out[:, :ids.shape[-1]] = ids.reshape(out.shape[0], -1)
        for t in range(ids.shape[-1], out.shape[1]):
            ctx = out[:, max(0, t - self.block_size):t]                 # (B, ≤ block_size)
            logits = self.forward(*self._on_device(ctx), training=False)[:, -1, :]  # (B, V)
            logits = devices.to_host(logits)        # last position; on the host (sampling)
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
