r"""A GPT's transformer block as named modules (nanoGPT's ``Block`` and ``MLP``).

Legend: B batch, T time, C = n_embd channels.

    Block:  x ─┬─ ln_1 ─ attn ─(+)─┬─ ln_2 ─ mlp ─(+)─ y          # pre-norm, two residual adds
               └────────────────┘  └───────────────┘
    MLP:    fc (C → 4C) ─ gelu ─ proj (4C → C) ─ drop        # fc computes the GELU (fused)

Parameter keys are module paths, ``"<module>.<param>"``: a Block's read ``ln_1.gamma``,
``attn.qkv.W``, ``attn.proj.b``, ``mlp.fc.W``, ``mlp.proj.W``, ... MultiHeadAttention stores
its two projections as ``W_qkv``, ``b_qkv``, ``W_o``, ``b_o``; they are named here as the two
Linears they are (nanoGPT's ``c_attn``, ``c_proj``): ``qkv.W``, ``qkv.b``, ``proj.W``,
``proj.b``. The arrays are the layers' own: ``params``/``grads`` are views, so optimizers and
``set_weights`` write into the layers.
"""
from ..layers import GELU, Dropout, LayerNorm, Linear, MultiHeadAttention, _checks
from ..layers.base import Layer
from ..random import get_rng

# MultiHeadAttention's arrays, named as nanoGPT's two Linears (c_attn, c_proj) would be
ATTENTION_KEYS = {"W_qkv": "qkv.W", "b_qkv": "qkv.b", "W_o": "proj.W", "b_o": "proj.b"}


def named_arrays(modules, which):
    """``{"<name>.<key>": array}`` over ``(name, layer)`` pairs, in order.

    Parameters
    ----------
    modules : iterable of (str, Layer)
    which : {"params", "grads"}
    """
    out = {}
    for name, layer in modules:
        rename = ATTENTION_KEYS if isinstance(layer, MultiHeadAttention) else {}
        for k, v in getattr(layer, which).items():
            out[f"{name}.{rename.get(k, k)}"] = v
    return out


class _Modules(Layer):
    """A layer made of named sub-layers, held as attributes listed in ``_names`` (forward
    order). ``params``/``grads`` are views of theirs keyed ``"<name>.<key>"``; a sub-layer's
    ``name`` is its path (``"h.0.attn"`` in a GPT), so its errors say where it sits."""

    _names = ()

    def __init__(self, name=None):
        # Layer.__init__ would assign self.params; here params/grads are views of the parts'
        self.name = name
        self.training = True
        self.needs_input_grad = True

    def _path(self, part):
        return f"{self.name}.{part}" if self.name else part

    def modules(self):
        """``(name, layer)`` pairs in forward order."""
        return [(n, getattr(self, n)) for n in self._names]

    @property
    def params(self):
        return named_arrays(self.modules(), "params")

    @property
    def grads(self):
        return named_arrays(self.modules(), "grads")

    def zero_grad(self):
        for _, layer in self.modules():
            layer.zero_grad()

    def sublayers(self):
        return [layer for _, layer in self.modules()]

    def astype(self, dtype):
        for _, layer in self.modules():
            layer.astype(dtype)
        return self


class MLP(_Modules):
    r"""The feed-forward half of a block, C → 4C → C:

    .. math:: y = \mathrm{Dropout}\big(\mathrm{GELU}(x W_{fc} + b_{fc})\, W_{proj} + b_{proj}\big)

    Parameters
    ----------
    n_embd : int
        C, the channels in and out.
    dropout : float in [0, 1), default 0.0
        On the output, while training (nanoGPT's placement).
    init : str, callable or None, default "normal"
        For ``fc.W`` and ``proj.W`` (see :class:`~nnlite.Linear`); ``None`` draws nothing.
    rng : numpy.random.Generator or int, optional
        For the initial weights and the dropout masks.
    name : str, optional
        Its path in a model (``"h.0.mlp"``); the parts are named below it.

    Attributes
    ----------
    fc, gelu, proj, drop : Layer
        ``fc`` computes the GELU with its bias (``Linear(act="gelu")``: one pass for both,
        and one for their gradients); ``gelu`` stays, passing its input through, for its name
        in the summary and the profile (:meth:`~nnlite.layers.GELU.fuse_into`).
    params, grads : dict
        ``fc.W``, ``fc.b``, ``proj.W``, ``proj.b``.
    """

    _names = ("fc", "gelu", "proj", "drop")

    def __init__(self, n_embd, dropout=0.0, init="normal", rng=None, name=None):
        super().__init__(name=name)
        self.n_embd, self.dropout = int(n_embd), float(dropout)
        C = self.n_embd
        rng = None if rng is None else get_rng(rng)     # an int seed becomes one Generator
        self.fc = Linear(C, 4 * C, init=init, rng=rng, name=self._path("fc"))  # (B, T, 4C)
        self.gelu = GELU(name=self._path("gelu")).fuse_into(self.fc)   # fc: GELU(xW + b)
        self.proj = Linear(4 * C, C, init=init, rng=rng, name=self._path("proj"))  # (B, T, C)
        self.drop = Dropout(self.dropout, rng=rng, name=self._path("drop"))

    def forward(self, x, training=True, residual=None):
        """proj(gelu(fc(x))) after dropout, plus ``residual`` when given (a block's skip
        connection: added by proj's GEMM as it writes its output when no dropout follows)."""
        training = training and self.training
        if residual is not None:
            x = _checks.as_input(self, x, self.fc.dtype)
            residual = _checks.as_residual(self, residual, x.shape, self.fc.dtype)
        h = self.gelu.forward(self.fc.forward(x, training=training), training=training)
        fused = residual is not None and not (training and self.drop.rate > 0.0)
        y = self.proj.forward(h, training=training, residual=residual if fused else None)
        y = self.drop.forward(y, training=training)     # (the identity when fused)
        if residual is not None and not fused:
            y += residual                   # y: dropout's new array
        return y

    def backward(self, grad_out):
        g = grad_out
        for _, layer in reversed(self.modules()):
            g = layer.backward(g)
        return g

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for _, layer in self.modules():
            shape = tuple(layer.output_shape(shape))
        return shape

    def get_config(self):
        return {"n_embd": self.n_embd, "dropout": self.dropout, **super().get_config()}


class Block(_Modules):
    r"""A pre-norm transformer block, GPT-2's:

    .. math::

        x_1 = x + \mathrm{attn}(\mathrm{ln}_1(x)), \qquad y = x_1 + \mathrm{mlp}(\mathrm{ln}_2(x_1))

        \partial x_1 = g + \mathrm{ln}_2'\big(\mathrm{mlp}'(g)\big), \qquad
        \partial x = \partial x_1 + \mathrm{ln}_1'\big(\mathrm{attn}'(\partial x_1)\big)

    (primes: each part's ``backward``). Both residual adds happen here; the parts cache what
    their own backward needs, the block only the input shape.

    Parameters
    ----------
    n_embd, n_head : int
        C channels, split into ``n_head`` heads (C divisible by ``n_head``).
    dropout : float in [0, 1), default 0.0
        On attention's output and the MLP's output, while training.
    init : str, callable or None, default "normal"
        For the four matrices (GPT-2's N(0, 0.02²)); ``None`` draws nothing (a GPT draws them
        itself, with its depth-scaled std on the two ``proj.W``).
    rng : numpy.random.Generator or int, optional
        For the initial weights and the dropout masks.
    name : str, optional
        Its path in a model (``"h.0"``).

    Attributes
    ----------
    ln_1, attn, ln_2, mlp : Layer
    params, grads : dict
        ``ln_1.gamma``, ``ln_1.beta``, ``attn.qkv.W``, ``attn.qkv.b``, ``attn.proj.W``,
        ``attn.proj.b``, ``ln_2.gamma``, ``ln_2.beta``, ``mlp.fc.W``, ``mlp.fc.b``,
        ``mlp.proj.W``, ``mlp.proj.b``, in that order.
    """

    _names = ("ln_1", "attn", "ln_2", "mlp")

    def __init__(self, n_embd, n_head, dropout=0.0, init="normal", rng=None, name=None):
        super().__init__(name=name)
        self.n_embd, self.n_head, self.dropout = int(n_embd), int(n_head), float(dropout)
        C = self.n_embd
        rng = None if rng is None else get_rng(rng)     # an int seed becomes one Generator
        self.ln_1 = LayerNorm(C, name=self._path("ln_1"))
        self.attn = MultiHeadAttention(C, self.n_head, causal=True, dropout=self.dropout,
                                       init=init, rng=rng, name=self._path("attn"))
        self.ln_2 = LayerNorm(C, name=self._path("ln_2"))
        self.mlp = MLP(C, self.dropout, init=init, rng=rng, name=self._path("mlp"))
        self._shape = None                  # cache: the input shape (B, T, C), for checks

    def _describe(self):
        return f"Block(n_embd={self.n_embd}, n_head={self.n_head})"

    def forward(self, x, training=True):
        x = _checks.as_input(self, x, self.ln_1.dtype)
        training = training and self.training
        # The residual adds are done by the branches' output projections, as their GEMMs
        # write each tile (gemm's residual=): no pass of their own. x itself is never written
        # (ln_1 and ln_2 keep their inputs for backward)
        a = self.attn.forward(self.ln_1.forward(x, training), training, residual=x)  # x + attn
        m = self.mlp.forward(self.ln_2.forward(a, training), training, residual=a)   # x1 + mlp
        self._shape = m.shape if training else None     # inference: nothing kept
        return m

    def backward(self, grad_out):
        _checks.check_forward_called(self, self._shape)
        g = _checks.as_grad(self, grad_out, self._shape, None)
        # in the forward pass this was y = x1 + mlp(ln_2(x1)): g reaches x1 by both paths.
        # The LayerNorm kernel adds the skip path's g as it writes its input gradient, a new
        # array (no pass of its own): g is left as it came
        dx1 = self.ln_2.backward(self.mlp.backward(g), residual=g)
        # and before it x1 = x + attn(ln_1(x))
        dx = self.ln_1.backward(self.attn.backward(dx1), residual=dx1)
        return dx if self.needs_input_grad else None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for _, layer in self.modules():
            layer.output_shape(shape)       # each part keeps the shape; this checks it
        return shape

    def get_config(self):
        return {"n_embd": self.n_embd, "n_head": self.n_head, "dropout": self.dropout,
                **super().get_config()}
