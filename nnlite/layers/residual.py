r"""Residual connection: y = x + f(x), the skip around each block of a transformer."""
from . import _checks as checks
from .base import Layer, known_layers, shape_str


class Residual(Layer):
    r"""Add a layer's output to its input: :math:`y = x + f(x)`.

    .. math:: \frac{\partial L}{\partial x} = g + \Big(\frac{\partial f}{\partial x}\Big)^{\!\top} g

    The upstream gradient :math:`g` is shared by both paths; neither writes into it.
    A pre-norm transformer block can be written as ``Residual(Sequential([LayerNorm(C),
    MultiHeadAttention(C, nh)]))`` followed by ``Residual(Sequential([LayerNorm(C),
    Linear(C, 4C), GELU(), Linear(4C, C)]))``; :class:`nnlite.models.GPT` uses the same math in
    its named ``Block`` (``nnlite/models/gpt_blocks.py``).

    Parameters
    ----------
    inner : Layer
        :math:`f`, any layer (typically a :class:`~nnlite.Sequential`) whose output has the
        shape of its input.
    name : str, optional

    Attributes
    ----------
    inner : Layer
    params, grads : dict
        Views of the inner layer's, keyed ``"0.<inner key>"`` like a one-layer Sequential's,
        so in a Sequential the keys read e.g. ``"3.0.1.W_qkv"``: layer 3, its inner layer, that
        layer's layer 1, parameter ``W_qkv``. Optimizers and save/load use them unchanged.
    """

    def __init__(self, inner, name=None):
        if not isinstance(inner, Layer):
            what = "a class: call it, e.g. nl.Linear(64, 64)" if isinstance(inner, type) else \
                type(inner).__name__
            raise TypeError(f"Residual expects a Layer instance, got {what}")
        # Layer.__init__ would assign self.params; here params/grads are views of the inner's
        self.inner = inner
        self.name = name
        self.training = True
        # the inner layer always computes its input gradient (it is half of ours); ours can be
        # switched off (Sequential does so when nothing upstream uses it)
        self.needs_input_grad = True
        self._shape = None                  # cache: the input shape

    def _describe(self):
        return f"Residual({type(self.inner).__name__})"

    @property
    def params(self):
        return {f"0.{k}": v for k, v in self.inner.params.items()}

    @property
    def grads(self):
        return {f"0.{k}": v for k, v in self.inner.grads.items()}

    @property
    def buffers(self):
        return {f"0.{k}": v for k, v in self.inner.buffers.items()}

    def forward(self, x, training=True):
        x = checks.as_input(self, x, self.inner.dtype)
        fx = self.inner.forward(x, training=training and self.training)   # eval() sticks
        shape = getattr(fx, "shape", None)
        if shape != x.shape:
            raise ValueError(f"{checks.describe(self)}: the inner layer maps input of shape "
                             f"{shape_str(x.shape)} to {shape_str(shape or ())}; a residual "
                             f"connection needs the same shape")
        self._shape = x.shape
        return x + fx                       # an array operator: runs on x's own backend

    def backward(self, grad_out):
        checks.check_forward_called(self, self._shape)
        g = checks.as_grad(self, grad_out, self._shape, None)
        dfx = self.inner.backward(g)        # the inner layer adds its params' grads
        if not self.needs_input_grad:
            return None
        if dfx is None:
            raise RuntimeError(f"{checks.describe(self)}: the inner layer returned no input "
                               f"gradient (needs_input_grad=False on it?); a residual "
                               f"connection needs it")
        return g + dfx                      # a new array: g is left as it came

    def zero_grad(self):
        self.inner.zero_grad()

    def sublayers(self):
        return [self.inner]

    @property
    def built(self):
        return self.inner.built

    def build(self, input_shape):
        self.inner.build(input_shape)
        return self

    def astype(self, dtype):
        self.inner.astype(dtype)
        return self

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        inner = tuple(self.inner.output_shape(shape))
        if len(inner) != len(shape) or any(a is not None and b is not None and a != b
                                           for a, b in zip(shape, inner)):
            raise ValueError(f"{checks.describe(self)}: the inner layer maps input of shape "
                             f"{shape_str(shape)} to {shape_str(inner)}; a residual "
                             f"connection needs the same shape")
        return shape

    def get_config(self):
        cfg = {"inner": {"class_name": type(self.inner).__name__,
                         "config": self.inner.get_config()}}
        if self.name:
            cfg["name"] = self.name
        return cfg

    @classmethod
    def from_config(cls, config):
        spec = config["inner"]
        klass = Layer.registry.get(spec["class_name"])
        if klass is None:
            raise ValueError(f"unknown layer class {spec['class_name']!r}; known layers: "
                             f"{known_layers()}. A custom layer must be defined (its module "
                             f"imported) before loading")
        try:
            inner = klass.from_config(spec.get("config", {}))
        except TypeError as e:              # say which layer: an argument it does not know
            raise TypeError(f"inner ({spec['class_name']}): {e}") from None
        return cls(inner, name=config.get("name"))

    def __repr__(self):
        inner = repr(self.inner).replace("\n", "\n  ")
        extra = f", name={self.name!r}" if self.name else ""
        return f"Residual({inner}{extra})"
