"""The Layer base class: the contract every layer keeps.

A layer is a small object with

* ``forward(x, training=True)`` → y, caching exactly what ``backward`` needs;
* ``backward(grad_out)`` → the gradient of the loss w.r.t. ``x``. It *adds* parameter
  gradients into ``self.grads`` (so a layer used twice, or gradients accumulated over
  micro-batches, sum correctly; ``zero_grad()`` resets them) and never writes into
  ``grad_out`` (it may be shared, e.g. by a residual connection);
* ``params`` and ``grads``: dicts with the same keys, arrays of the same shapes, side by side;
  ``buffers``: state that is saved but not trained (BatchNorm's running statistics), {} for
  most layers;
* ``get_config()``: the constructor arguments as JSON-able values, so a model can be saved
  as architecture JSON + weights and rebuilt by ``Layer.from_config``.

The base class adds what Keras and PyTorch users reach for: ``train()``/``eval()`` (set
``training`` on the layer and its ``sublayers()``; ``layer(x)`` runs in that mode),
``weights``, ``get_weights``/``set_weights`` (lists of arrays), ``state_dict``/
``load_state_dict`` (dicts keyed as ``params``), ``count_params`` and ``build``.

Layers register themselves by class name (``Layer.registry``) for loading saved models.
"""
from typing import ClassVar

import numpy as np

from .. import devices
from .._configurable import Configurable


def shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


class Layer(Configurable):
    """Base class of all layers. Subclasses override ``forward``/``backward`` and, when they
    have constructor arguments, ``get_config``; layers that change the shape override
    ``output_shape``."""

    registry: ClassVar[dict] = {}
    # False for a layer whose parameters wait for the input size (``Dense(units)``): its
    # first call, or ``build(input_shape)``, makes them
    built = True
    # False: left out of the optimizer steps of nl.train_step / nl.training.trainable_pairs
    # (Keras' ``layer.trainable``; ``with nl.frozen(layer):`` sets it for a block). Set on a
    # Sequential, it covers every layer in it. (``fit`` still updates every parameter.)
    trainable = True

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

    def build(self, input_shape):
        """Make the parameters for inputs of ``input_shape`` (batch axis included, may be
        None). Nothing to do for most layers: their sizes are constructor arguments."""
        return self

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

    def count_params(self):
        """The number of parameters (Keras' name for :meth:`num_params`).

        Raises
        ------
        ValueError
            If the layer is not built yet (a ``Dense`` waiting for its input size).
        """
        if not self.built:
            raise ValueError(f"{type(self).__name__}.count_params(): not built yet, its input "
                             f"size is inferred at the first call; call build(input_shape), "
                             f"e.g. model.build((784,)), or run it on data first")
        return self.num_params()

    # -- weights: Keras' list of arrays, PyTorch's dict ------------------------------------
    @property
    def buffers(self):
        """Arrays saved with the parameters but never trained (BatchNorm's running statistics;
        PyTorch's buffers, Keras' non-trainable weights), keyed like ``params``: {} for most
        layers. :meth:`state_dict`, ``save`` and ``load_model`` include them."""
        return getattr(self, "_buffers", {})

    @property
    def weights(self):
        """The parameter arrays themselves (not copies), in ``params`` order (Keras'
        ``layer.weights``; PyTorch's ``list(module.parameters())``)."""
        return list(self.params.values())

    def get_weights(self):
        """Copies of the parameters as numpy arrays (host copies for a model on a GPU), a list
        in ``params`` order (as Keras): layer by layer, each layer's in definition order
        (``[W, b]`` for a ``Linear``). :meth:`state_dict` gives them keyed by name."""
        return [_host_copy(p) for p in self.params.values()]

    def set_weights(self, weights):
        """Copy ``weights`` into the parameters, in place (an optimizer holding them keeps
        working).

        Parameters
        ----------
        weights : list of ndarray, or dict
            A list in :meth:`get_weights` order (Keras'), or a dict keyed as ``params`` (as
            :meth:`state_dict` returns; handed to :meth:`load_state_dict`).
        """
        if isinstance(weights, dict):
            return self.load_state_dict(weights)
        params, weights = self.params, list(weights)
        if len(weights) != len(params):
            keys = ", ".join(list(params)[:6]) + (", ..." if len(params) > 6 else "")
            raise ValueError(f"{type(self).__name__}.set_weights: expected a list of "
                             f"{len(params)} arrays ({keys}), as get_weights() returns, got "
                             f"{len(weights)}")
        for i, ((k, p), w) in enumerate(zip(params.items(), weights)):
            _copy_into(p, w, f"{type(self).__name__}.set_weights: array {i} ({k!r})")

    def state_dict(self):
        """Copies of the parameters and buffers, keyed as ``params`` and ``buffers``
        (PyTorch's ``state_dict``; the keys of a saved file), on the layer's device (as
        PyTorch's; ``nl.devices.to_host`` brings one over)."""
        return {k: p.copy() for k, p in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state):
        """Copy a dict keyed as ``params`` (as :meth:`state_dict` returns) into the
        parameters (and buffers), in place; the keys must match exactly. The arrays may live
        on any device: they are copied to the parameters' own."""
        params = {**self.params, **self.buffers}
        missing, extra = set(params) - set(state), set(state) - set(params)
        if missing or extra:
            raise ValueError(f"load_state_dict: keys do not match the model: missing "
                             f"{sorted(missing) or 'none'}, unexpected {sorted(extra) or 'none'}")
        for k, p in params.items():
            _copy_into(p, state[k], f"load_state_dict: {k!r}")

    @property
    def dtype(self):
        for p in self.params.values():
            return p.dtype
        return None

    def astype(self, dtype):
        """Cast parameters (and zero their gradients) to ``dtype``, e.g. float64 for grad checks."""
        for k in list(self.params):
            xp = devices.resolve(devices.device_of(self.params[k])).xp
            self.params[k] = xp.ascontiguousarray(self.params[k], dtype=dtype)
            self.grads[k] = xp.zeros_like(self.params[k])
        return self

    # -- devices ---------------------------------------------------------------------------
    @property
    def device(self):
        """Where the layer's arrays live: ``"cpu"`` (numpy, the default) or ``"cuda"``
        (CuPy), as :meth:`to` put them."""
        return getattr(self, "_device", "cpu")

    def to(self, device):
        """Move the parameters, gradients and buffers of this layer and every sublayer to
        ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:0"``), in place; returns ``self``
        (PyTorch's ``module.to``). Arrays already there stay as they are; the others are
        replaced by copies on the device, so lists of the old arrays (an optimizer's
        ``(param, grad)`` pairs taken before) no longer reach them: a Sequential's ``to``
        moves its optimizer's state too, and ``fit`` takes fresh pairs.

        Raises
        ------
        RuntimeError
            ``"no GPU: <reason>"`` for ``"cuda"`` where there is none.
        """
        dev = devices.resolve(device)
        for layer in _walk(self):
            own = vars(layer)
            for store in ("params", "grads", "_buffers"):
                arrays = own.get(store)
                if isinstance(arrays, dict):
                    for k, a in arrays.items():
                        arrays[k] = devices.to_device(a, dev)
            layer._device = dev.name
        return self


def known_layers():
    """The names of the layer classes a saved model may name, for error messages (the
    registry less internal bases such as ``_Elementwise``)."""
    return ", ".join(sorted(n for n in Layer.registry if not n.startswith("_")))


def _walk(layer):
    """``layer`` and every layer under it (through ``sublayers``), each once."""
    seen, todo = set(), [layer]
    while todo:
        layer = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        todo.extend(layer.sublayers())


def _host_copy(a):
    """A numpy copy of ``a``, wherever it lives."""
    h = devices.to_host(a)
    return h.copy() if h is a else h


def _copy_into(p, w, what):
    """``p[...] = w`` (float64 into float32 allowed), after checking the shape; ``w`` is
    brought to ``p``'s device first (a file's host arrays into a model on a GPU)."""
    dev = devices.resolve(devices.device_of(p))
    if isinstance(w, (list, tuple)) or np.isscalar(w):
        w = np.asarray(w)
    w = devices.to_device(w, dev)
    if w.shape != p.shape:
        raise ValueError(f"{what} has shape {shape_str(w.shape)}, the model's has "
                         f"{shape_str(p.shape)}")
    dev.xp.copyto(p, w, casting="same_kind")
