"""The Layer base class: the contract every layer keeps.

A layer is a small object with

* ``forward(x, training=True)`` → y, caching exactly what ``backward`` needs;
* ``backward(grad_out)`` → the gradient of the loss w.r.t. ``x``. It *adds* parameter
  gradients into ``self.grads`` (so a layer used twice, or gradients accumulated over
  micro-batches, sum correctly; ``zero_grad()`` resets them) and never writes into
  ``grad_out`` (it may be shared, e.g. by a residual connection);
* ``params`` and ``grads``: dicts with the same keys, arrays of the same shapes, side by side;
* ``get_config()``: the constructor arguments as JSON-able values, so a model can be saved
  as architecture JSON + weights and rebuilt by ``Layer.from_config``.

Layers register themselves by class name (``Layer.registry``) for loading saved models.
"""
import numpy as np

from .._configurable import Configurable


def shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


class Layer(Configurable):
    """Base class of all layers. Subclasses override ``forward``/``backward`` and, when they
    have constructor arguments, ``get_config``; layers that change the shape override
    ``output_shape``."""

    registry = {}

    def __init__(self, name=None):
        self.params = {}
        self.grads = {}
        self.training = True
        self.name = name
        # False when nothing upstream needs d(loss)/d(input): Sequential sets it on its first
        # trainable layer so e.g. the 784-wide input gradient of an MNIST MLP is never computed.
        self.needs_input_grad = True

    # -- the contract -------------------------------------------------------------------
    def forward(self, x, training=True):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x, training=None):
        """``layer(x)``: ``forward`` in the layer's current mode (PyTorch's ``module(x)``):
        training after ``train()`` (the default), inference after ``eval()``. ``training=``
        given explicitly is passed on as it is."""
        return self.forward(x, training=self.training if training is None else training)

    def output_shape(self, input_shape):
        """Output shape for an input shape (batch dim included, may be None)."""
        return tuple(input_shape)

    def get_config(self):
        return {"name": self.name} if self.name else {}

    # -- conveniences ----------------------------------------------------------------------
    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def sublayers(self):
        """The layers this one is made of, in forward order (none for a plain layer);
        ``train``/``eval`` reach them through it."""
        return []

    def train(self, mode=True):
        """Set training mode (``mode=False``: inference) on this layer and every sublayer,
        as PyTorch's ``module.train(mode)``. Dropout then drops (or not) in ``layer(x)``."""
        self.training = bool(mode)
        for layer in self.sublayers():
            layer.train(mode)
        return self

    def eval(self):
        """Inference mode on this layer and every sublayer: ``train(False)``."""
        return self.train(False)

    def num_params(self):
        return int(sum(p.size for p in self.params.values()))

    @property
    def dtype(self):
        for p in self.params.values():
            return p.dtype
        return None

    def astype(self, dtype):
        """Cast parameters (and zero their gradients) to ``dtype``, e.g. float64 for grad checks."""
        for k in list(self.params):
            self.params[k] = np.ascontiguousarray(self.params[k], dtype=dtype)
            self.grads[k] = np.zeros_like(self.params[k])
        return self
