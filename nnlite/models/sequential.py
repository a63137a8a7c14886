"""Sequential: a linear stack of layers, trained with Keras' ``compile`` / ``fit`` / ``evaluate``
/ ``predict``.

>>> model = nl.Sequential([nl.Flatten(), nl.Linear(784, 128), nl.ReLU(), nl.Linear(128, 10)])
>>> model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
>>> history = model.fit(x, y, epochs=5, validation_split=0.1)
>>> model.evaluate(x_test, y_test)                  # {'loss': ..., 'accuracy': ...}

This module is the stack only (as ``keras/src/models/sequential.py``): adding layers, the Layer
contract over them (forward, backward, ``params``), config, weights and files. The training
methods come from :class:`nnlite.training.Trainer` (``compile``, ``train_step``, ``fit``,
``evaluate``, ``predict``), the table from :func:`nnlite.training.print_summary`, the files
from :mod:`nnlite.io`.

A Sequential is itself a Layer: it nests, and its ``params`` are keyed ``"<index>.<name>"``
(``"0.W"``, ``"2.b"``, ``"1.0.W"`` when nested), the keys of a saved model file. A subclass
may key them its own way by overriding ``params`` and ``grads``: training, weights, files and
the summary all go through those two properties.
"""

from .. import devices
from ..layers.base import Layer, known_layers
from ..training import Trainer, print_summary


class Sequential(Trainer, Layer):
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional
    input_shape : tuple of int, optional
        Shape of one sample (no batch axis), e.g. ``(28, 28)``; lets ``summary`` show
        output shapes before training. ``fit`` records it otherwise.

    Attributes
    ----------
    layers : list of Layer
    optimizer, loss, metrics_names, history, stop_training
        Training state, see :class:`~nnlite.training.Trainer`.
    """

    def __init__(self, layers=None, name=None, input_shape=None):
        # Layer.__init__ would assign self.params; here params/grads are views of the layers'
        self.layers = []
        self.name = name
        self.training = True
        self.needs_input_grad = True
        self.input_shape = None if input_shape is None else tuple(input_shape)
        Trainer.__init__(self)
        for layer in layers or []:
            self.add(layer)
        if self.input_shape is not None and not self.built:    # Dense(units): sizes known now
            self.build(self.input_shape)

    # -- building ------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer."""
        if not isinstance(layer, Layer):
            what = "a class: call it, e.g. nl.ReLU()" if isinstance(layer, type) else \
                f"{type(layer).__name__}"
            raise TypeError(f"Sequential.add expects a Layer instance, got {what}")
        self.layers.append(layer)
        return self

    def build(self, input_shape):
        """Make the parameters of the layers that wait for their input size (``Dense(units)``),
        record the shape of one sample and check the layers accept it.

        Parameters
        ----------
        input_shape : tuple of int
            One sample, no batch axis: ``(784,)``; Keras' ``(None, 784)`` is taken too.
        """
        shape = tuple(input_shape)
        self.input_shape = shape[1:] if shape and shape[0] is None else shape
        shape = (None, *self.input_shape)
        for layer in self.layers:
            layer.build(shape)
            shape = tuple(layer.output_shape(shape))
        return self

    @property
    def built(self):
        """False while a layer waits for its input size (``Dense(units)``): the first call,
        ``fit`` or :meth:`build` makes its parameters."""
        return all(layer.built for layer in self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def sublayers(self):
        return list(self.layers)

    # -- the Layer contract ----------------------------------------------------------------
    @property
    def params(self):
        return self._arrays("params")

    @property
    def grads(self):
        return self._arrays("grads")

    @property
    def buffers(self):
        return self._arrays("buffers")

    def _arrays(self, which):
        """``{"<index>.<key>": array}`` over the layers' ``params`` or ``grads`` (the layers'
        own arrays); a model that names its layers (GPT) keys them by name instead."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in getattr(layer, which).items()}

    def forward(self, x, training=True):
        device = getattr(self, "_device", "cpu")
        if device != "cpu" and devices.device_of(x) != device:
            raise TypeError(f"{type(self).__name__} on {device!r} got {type(x).__name__} input "
                            f"(on {devices.device_of(x)!r}): move it first, "
                            f"nl.devices.to_device(x, {device!r}), or call predict(x), which "
                            f"moves each batch and returns numpy arrays")
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad_out):
        grad = grad_out
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
            if grad is None:        # a layer that needs no input gradient: nothing above does
                break
        return grad if self.needs_input_grad else None

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
        return shape

    def get_config(self):
        cfg = {"name": self.name,
               "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                          for layer in self.layers]}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        layers = []
        for i, spec in enumerate(config.get("layers", [])):
            klass = Layer.registry.get(spec["class_name"])
            if klass is None:
                raise ValueError(f"unknown layer class {spec['class_name']!r}; known layers: "
                                 f"{known_layers()}. A custom layer must be defined (its "
                                 f"module imported) before loading")
            try:
                layers.append(klass.from_config(spec.get("config", {})))
            except TypeError as e:          # say which layer: an argument it does not know
                raise TypeError(f"layers[{i}] ({spec['class_name']}): {e}") from None
        return cls(layers, name=config.get("name"), input_shape=config.get("input_shape"))

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)" if inner else "Sequential()"

    # -- weights: get_weights/set_weights (lists), state_dict/load_state_dict (dicts) and
    # weights come from Layer, over ``params``
    def save(self, path, include_optimizer=True):
        """Save architecture, weights, compile settings and optimizer state to one ``.nnl``
        file (safetensors; see :mod:`nnlite.io.model_file`). ``nl.load_model`` reads it, on
        the CPU (``.to("cuda")`` after). A model on a GPU saves host copies: the same file."""
        from ..io.model_file import save_model
        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Save only the parameters, as a plain safetensors file (host arrays, wherever the
        model runs)."""
        from ..devices import to_host
        from ..io.model_file import check_built
        from ..io.safetensors import save_file
        check_built(self, "save_weights")
        save_file({k: to_host(v) for k, v in {**self.params, **self.buffers}.items()}, path)

    def load_weights(self, path):
        from ..io.safetensors import load_file
        self.load_state_dict(load_file(path))

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts.

        Output shapes need the input shape: from ``Sequential(..., input_shape=...)``,
        :meth:`build`, a previous ``fit``, or the first layer's ``in_features``; a layer
        whose output shape cannot be known shows ``?``. A ``Dense(units)`` not built yet
        counts 0 parameters; it is built here when the input shape is known.
        """
        if not self.built and self.input_shape is not None:
            self.build(self.input_shape)
        print_summary(self, print_fn)
