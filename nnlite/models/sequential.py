"""Sequential: a stack of layers with Keras' ``compile`` / ``fit`` / ``evaluate`` / ``predict``.

>>> model = nl.Sequential([nl.Flatten(), nl.Linear(784, 128), nl.ReLU(), nl.Linear(128, 10)])
>>> model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
>>> history = model.fit(x, y, epochs=5, validation_split=0.1)
>>> model.evaluate(x_test, y_test)                  # {'loss': ..., 'accuracy': ...}

One training step (:meth:`Sequential.train_step`, which ``fit`` calls): zero the grads,
forward (training=True), loss forward, a check that it is finite, loss backward, backward
through the layers in reverse, ``optimizer.step(pairs)`` (which clips by global norm first when
the optimizer has ``clipnorm``).

``fit`` takes arrays ``(x, y)`` or an iterable of ``(xb, yb)`` batches (a ``DataLoader``, a
``RandomWindowSampler``, a generator) with ``steps_per_epoch``:

>>> model.fit(sampler, steps_per_epoch=250, epochs=8, validation_data=val_sampler,
...           validation_steps=200)
A Sequential is itself a Layer: it nests, and its ``params`` are keyed ``"<index>.<name>"``
(``"0.W"``, ``"2.b"``, ``"1.0.W"`` when nested), the keys of a saved model file.
"""
import math
import re
import warnings

import numpy as np

from .. import callbacks as _callbacks
from .. import losses as _losses
from .. import optim as _optim
from .. import random as _random
from ..layers.base import Layer, shape_str
from .progbar import Progbar


# -- metrics ---------------------------------------------------------------------------------
def _accuracy(loss):
    # one output column = binary: BCE takes logits (threshold 0), otherwise probabilities (0.5)
    threshold = 0.0 if isinstance(loss, _losses.BinaryCrossEntropy) else 0.5

    def accuracy(y_pred, y_true):
        if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:      # multi-class logits: argmax
            pred = y_pred.argmax(axis=-1)
            true = y_true.argmax(axis=-1) if y_true.shape == y_pred.shape else y_true
            return float(np.mean(pred == true.reshape(pred.shape)))
        pred = y_pred.reshape(-1) > threshold
        return float(np.mean(pred == (np.asarray(y_true).reshape(-1) > 0.5)))
    return accuracy


def _mae(y_pred, y_true):
    return float(np.mean(np.abs(y_pred - y_true.reshape(y_pred.shape)), dtype=np.float64))


def _mse(y_pred, y_true):
    return float(np.mean(np.square(y_pred - y_true.reshape(y_pred.shape)), dtype=np.float64))


def _get_metric(m, loss):
    """``(name, fn(y_pred, y_true) -> float)`` from a name or a function."""
    if callable(m):
        return getattr(m, "__name__", "metric"), m
    key = str(m).lower()
    if key in ("accuracy", "acc"):
        return m, _accuracy(loss)
    if key in ("mae", "mean_absolute_error"):
        return m, _mae
    if key in ("mse", "mean_squared_error"):
        return m, _mse
    raise ValueError(f"unknown metric {m!r}; expected 'accuracy' (or 'acc'), 'mae', 'mse' "
                     f"or a function f(y_pred, y_true) -> float")


def _freeze_input_grads(layers):
    """Turn off d(loss)/d(input) up to and including the first layer with parameters (nothing
    upstream uses it); return the old flags for restoring."""
    saved = []
    for layer in layers:
        saved.append((layer, layer.needs_input_grad))
        layer.needs_input_grad = False
        if isinstance(layer, Sequential):
            saved += _freeze_input_grads(layer.layers)
        if layer.num_params() > 0:
            break
    return saved


def _auto_names(layers):
    """Display names: the layer's own, else snake_case of its class, numbered like Keras."""
    names, counts = [], {}
    for layer in layers:
        if layer.name:
            names.append(layer.name)
            continue
        # LeakyReLU -> leaky_relu, MultiHeadAttention -> multi_head_attention
        base = re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", type(layer).__name__).lower()
        n = counts.get(base, 0)
        counts[base] = n + 1
        names.append(base if n == 0 else f"{base}_{n}")
    return names


def _fmt_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024


# -- batches from iterables ------------------------------------------------------------------
class _NonFiniteLoss(FloatingPointError):
    """Raised by the step; ``fit``/``train_step`` turn it into a message that says where."""

    def __init__(self, loss):
        super().__init__(f"loss became {loss}")
        self.loss = loss


def _is_batch_iterable(x):
    """An iterable of batches (DataLoader, sampler, generator), not an array or a sequence of
    numbers that ``np.asarray`` would take as data."""
    if isinstance(x, (np.ndarray, list, tuple, str, bytes, dict)) or np.isscalar(x):
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def _check_count(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _unpack(batch, what):
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        got = f"a {type(batch).__name__} of length {len(batch)}" if isinstance(
            batch, (tuple, list)) else f"a {type(batch).__name__}"
        raise TypeError(f"{what} must yield (xb, yb) batches, got {got}")
    return batch


class _Stream:
    """Batches from an iterable, ``steps`` per epoch.

    With ``steps`` None the iterable needs ``len()`` and each epoch is one fresh pass. With
    ``steps`` set, one iterator is kept across epochs (``per_epoch_iterator=False``: training,
    so an endless sampler continues) or taken anew each epoch (validation: a DataLoader
    restarts, a generator continues); an iterator that runs out is restarted when the
    iterable can be iterated again.
    """

    def __init__(self, data, what, steps, per_epoch_iterator, arg="steps_per_epoch"):
        self.data, self.what = data, what
        self.steps = _check_count(steps, arg)
        self.full_pass = self.steps is None
        if self.full_pass:
            try:
                self.steps = len(data)
            except TypeError:
                raise ValueError(f"{what} is an iterable of type {type(data).__name__} without "
                                 f"len(): pass {arg}=N (batches per epoch)") from None
        self.per_epoch_iterator = per_epoch_iterator
        self.reiterable = not hasattr(data, "__next__")     # an iterator is its own iter()
        self._it = None

    def _fresh(self):
        return iter(self.data)

    def epoch(self):
        """A generator of this epoch's (xb, yb) batches; draws lazily (no batch is taken
        that training does not use)."""
        if self.full_pass or self.per_epoch_iterator or self._it is None:
            self._it = self._fresh()
        restarted = False
        n = 0
        while n < self.steps:
            try:
                batch = next(self._it)
            except StopIteration:
                if self.full_pass or restarted or not self.reiterable:
                    return          # exhausted (a generator cannot start again)
                self._it, restarted = self._fresh(), True
                continue
            restarted = False
            n += 1
            yield _unpack(batch, self.what)


def _validation_source(model, data, steps):
    """A function returning the validation logs, or None."""
    if data is None:
        if steps is not None:
            raise ValueError("validation_steps given without validation_data")
        return None
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val) or an iterable of "
                             "(xb, yb) batches")
        xv, yv = model._prepare(*data, what="x_val")
        return lambda: model._evaluate(xv, yv, batch_size=256)
    if not _is_batch_iterable(data):
        raise ValueError(f"validation_data must be a tuple (x_val, y_val) or an iterable of "
                         f"(xb, yb) batches, got {type(data).__name__}")
    stream = _Stream(data, "validation_data", steps, per_epoch_iterator=True,
                     arg="validation_steps")
    return lambda: model._evaluate_batches(model._batch(*b) for b in stream.epoch())


class Sequential(Layer):
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
    optimizer, loss : set by :meth:`compile`
    history : the :class:`~nnlite.callbacks.History` of the last ``fit``
    stop_training : bool
        Set by a callback to end ``fit`` after the current batch.
    """

    def __init__(self, layers=None, name=None, input_shape=None):
        # Layer.__init__ would assign self.params; here params/grads are views of the layers'
        self.layers = []
        self.name = name
        self.training = True
        self.needs_input_grad = True
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.optimizer = self.loss = None
        self.metrics_names, self._metrics, self._compile_args = [], [], {}
        self.history = None
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

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
        """Record the shape of one sample (no batch axis) and check the layers accept it."""
        self.input_shape = tuple(input_shape)
        self.output_shape((None, *self.input_shape))
        return self

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    # -- the Layer contract ----------------------------------------------------------------
    @property
    def params(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.grads.items()}

    def forward(self, x, training=True):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad):
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
        for spec in config.get("layers", []):
            klass = Layer.registry.get(spec["class_name"])
            if klass is None:
                raise ValueError(f"unknown layer class {spec['class_name']!r}; known layers: "
                                 f"{', '.join(sorted(Layer.registry))}. A custom layer must be "
                                 f"defined (its module imported) before loading")
            layers.append(klass.from_config(spec.get("config", {})))
        return cls(layers, name=config.get("name"), input_shape=config.get("input_shape"))

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)" if inner else "Sequential()"

    # -- weights -------------------------------------------------------------------------
    def get_weights(self):
        """A dict of copies of the parameters (``"<index>.<name>"`` keys)."""
        return {k: v.copy() for k, v in self.params.items()}

    def set_weights(self, weights):
        """Copy ``weights`` (dict as from :meth:`get_weights`) into the parameters, in place
        (so an optimizer holding them keeps working)."""
        params = self.params
        missing, extra = set(params) - set(weights), set(weights) - set(params)
        if missing or extra:
            raise ValueError(f"set_weights: keys do not match the model: missing "
                             f"{sorted(missing) or 'none'}, unexpected {sorted(extra) or 'none'}")
        for k, p in params.items():
            w = np.asarray(weights[k])
            if w.shape != p.shape:
                raise ValueError(f"set_weights: {k!r} has shape {shape_str(w.shape)}, the "
                                 f"model's has {shape_str(p.shape)}")
            np.copyto(p, w, casting="same_kind")

    def save(self, path, include_optimizer=True):
        """Save architecture, weights, compile settings and optimizer state to one ``.nnl``
        file (safetensors; see :mod:`nnlite.io.model_file`). ``nl.load_model`` reads it."""
        from ..io.model_file import save_model
        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Save only the parameters, as a plain safetensors file."""
        from ..io.safetensors import save_file
        save_file(self.params, path)

    def load_weights(self, path):
        from ..io.safetensors import load_file
        self.set_weights(load_file(path))

    # -- training ------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None):
        """Choose the optimizer, loss and metrics.

        Parameters
        ----------
        optimizer : str or Optimizer
            ``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"`` or an instance.
        loss : str or Loss
            ``"cross_entropy"`` (logits + integer labels), ``"mse"``, ``"bce"``, ... or an instance.
        metrics : list of str or callables, optional
            ``"accuracy"``/``"acc"``, ``"mae"``, ``"mse"`` or ``f(y_pred, y_true) -> float``.
        """
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='cross_entropy' for "
                             "classification (logits, integer labels) or loss='mse'")
        self._compile_args = {"optimizer": optimizer, "loss": loss}
        self.optimizer = _optim.get(optimizer)
        self.loss = _losses.get(loss)
        if isinstance(metrics, (str, bytes)) or callable(metrics):
            metrics = [metrics]
        self._metrics = [_get_metric(m, self.loss) for m in (metrics or [])]
        self.metrics_names = [name for name, _ in self._metrics]
        return self

    def _check_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"{what}() needs a compiled model: call model.compile("
                               f"optimizer='adam', loss='cross_entropy', metrics=['accuracy']) "
                               f"first")

    def _input_dtype(self):
        dtype = getattr(self.layers[0], "input_dtype", None) if self.layers else None
        if dtype is None:       # (np.dtype is falsy: it has len 0, so no `or` chains here)
            dtype = self.dtype
        return np.float32 if dtype is None else dtype

    def _as_x(self, x, what="x"):
        """``x`` converted once to the parameter dtype (so no layer casts it per batch)."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be a numeric array, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{what} must have a batch axis, got a scalar")
        return np.ascontiguousarray(x, dtype=self._input_dtype())

    def _prepare(self, x, y, what="x", check=True):
        x = self._as_x(x, what)
        y = np.asarray(y)
        ywhat = "y" if what == "x" else f"{what} targets"
        if y.ndim == 0:
            raise ValueError(f"{ywhat} must have a batch axis, got a scalar")
        if len(x) != len(y):
            raise ValueError(f"{what} and {ywhat} must have the same number of samples: "
                             f"{what} has {len(x)}, {ywhat} has {len(y)}")
        if y.dtype.kind in "fb":        # float targets in the model's dtype; labels stay ints
            y = np.ascontiguousarray(y, dtype=x.dtype if x.dtype.kind == "f" else np.float32)
        if check:
            for name, a in ((what, x), (ywhat, y)):
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
                    i = int(np.flatnonzero(bad)[0])
                    kind = "NaN" if np.isnan(a[i]).any() else "inf"
                    raise ValueError(f"{name} contains {kind} at sample {i} "
                                     f"({int(bad.sum())} sample(s) affected); clean or drop them "
                                     f"before training")
        return x, y

    def _pairs(self):
        params, grads = self.params, self.grads
        return [(params[k], grads[k]) for k in params]

    def _batch(self, xb, yb):
        """A batch from an iterable, typed as ``fit`` types arrays: float inputs and targets in
        the parameters' dtype, integer ids and labels left as they are."""
        xb, yb = np.asarray(xb), np.asarray(yb)
        want = np.dtype(self._input_dtype())
        # float models take any numbers; an Embedding first (int64) takes integers only, so
        # float "ids" reach it unchanged and it says so
        if xb.dtype != want and (want.kind == "f" or xb.dtype.kind in "iub"):
            xb = np.ascontiguousarray(xb, dtype=want)
        if yb.dtype.kind in "fb":
            yb = np.ascontiguousarray(yb, dtype=xb.dtype if xb.dtype.kind == "f" else np.float32)
        return xb, yb

    def _train_batch(self, xb, yb, pairs):
        """The step itself; returns ``(loss, output)``. Raises before the update if the loss is
        not finite, so the weights stay usable."""
        self.zero_grad()
        out = self.forward(xb, training=True)
        loss = self.loss.forward(out, yb)
        if not math.isfinite(loss):
            raise _NonFiniteLoss(loss)
        self.backward(self.loss.backward())
        self.optimizer.step(pairs)          # clips first when the optimizer has clipnorm
        return loss, out

    def _nonfinite_message(self, loss, where):
        return (f"loss became {loss}{where}; try a lower learning rate (optimizer: "
                f"{self.optimizer!r}) or gradient clipping (clipnorm=...)")

    def train_step(self, xb, yb):
        """One optimisation step on the batch ``(xb, yb)``: zero the grads, forward
        (training=True), loss, a finiteness check, backward, ``optimizer.step``.

        ``fit`` calls it for every batch; call it yourself for a hand-written loop.

        Returns
        -------
        float
            The batch's loss (before the update).

        Raises
        ------
        FloatingPointError
            If the loss is NaN or inf; the weights are left as they were.
        """
        self._check_compiled("train_step")
        saved = _freeze_input_grads(self.layers)
        try:
            return self._train_batch(*self._batch(xb, yb), self._pairs())[0]
        except _NonFiniteLoss as e:
            raise FloatingPointError(self._nonfinite_message(e.loss, "")) from None
        finally:
            for layer, flag in saved:
                layer.needs_input_grad = flag

    def fit(self, x, y=None, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1, seed=None, steps_per_epoch=None,
            validation_steps=None):
        """Train for ``epochs`` passes over ``(x, y)``, or over batches drawn from ``x``.

        Parameters
        ----------
        x : ndarray of shape (N, ...), or an iterable of (xb, yb) batches
            Arrays are converted once to the parameters' dtype (float32 unless the model was
            cast). An iterable (``DataLoader``, ``RandomWindowSampler``, generator) gives the
            batches itself; then leave ``y`` None, and ``batch_size``, ``shuffle``, ``seed``
            and ``validation_split`` do not apply.
        y : ndarray of shape (N, ...), optional
            Integer labels or float targets, as the loss expects (arrays only).
        batch_size, epochs : int
        steps_per_epoch : int, optional
            Iterable input only: batches per epoch. Required when the iterable has no
            ``len()`` (e.g. an endless sampler); one iterator is then kept across epochs, so
            epoch 2 continues where epoch 1 stopped (restarted if it runs out). Default: one
            full pass, ``len(x)`` batches.
        validation_data : (x_val, y_val) or an iterable of batches, optional
            Evaluated after each epoch (``val_loss``, ``val_<metric>``).
        validation_steps : int, optional
            For an iterable ``validation_data``: average over this many batches (required
            when it has no ``len()``); default a full pass.
        validation_split : float
            Fraction of the data held out for validation: the *last* samples, taken before
            shuffling (as Keras). Ignored when ``validation_data`` is given.
        shuffle : bool
            Reshuffle the training samples each epoch.
        callbacks : list of Callback, optional
        verbose : {0, 1, 2}
            0 silent; 1 progress bar (one line per epoch off a terminal); 2 one line per epoch.
        seed : int, optional
            Seed of the shuffling generator; default: ``nl.random``'s generator.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, metrics, ``val_loss``, ... to per-epoch lists.

        Raises
        ------
        FloatingPointError
            If the loss becomes NaN or inf; the message names the epoch and step. The weights
            are left as they were before that step.
        """
        self._check_compiled("fit")
        if y is None and _is_batch_iterable(x):
            if validation_split:
                raise ValueError("validation_split needs arrays (x, y); with batches from an "
                                 "iterable pass validation_data=<iterable> (and validation_steps)")
            train = _Stream(x, "x", steps_per_epoch, per_epoch_iterator=False)
            steps, epoch_batches = train.steps, train.epoch
            val = _validation_source(self, validation_data, validation_steps)
        else:
            if y is None:
                raise ValueError(f"fit() needs targets y for x of type {type(x).__name__}; or pass "
                                 f"an iterable of (xb, yb) batches as x (with y=None)")
            if steps_per_epoch is not None:
                raise ValueError("steps_per_epoch applies to an iterable x (batches); with "
                                 "arrays an epoch is one pass, set batch_size instead")
            x, y = self._prepare(x, y)
            val = None
            if validation_data is not None and not (
                    isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                val = _validation_source(self, validation_data, validation_steps)
            elif validation_data is not None:
                xv, yv = self._prepare(*validation_data, what="x_val")
                val = lambda: self._evaluate(xv, yv, batch_size=max(batch_size, 256))  # noqa: E731
            elif validation_split:
                if not 0.0 < validation_split < 1.0:
                    raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
                split_at = int(math.ceil(len(x) * (1.0 - validation_split)))
                if split_at in (0, len(x)):
                    raise ValueError(f"validation_split={validation_split} of {len(x)} samples "
                                     f"leaves an empty training or validation set")
                x, y, xv, yv = x[:split_at], y[:split_at], x[split_at:], y[split_at:]
                val = lambda: self._evaluate(xv, yv, batch_size=max(batch_size, 256))  # noqa: E731
            n, batch_size = len(x), int(batch_size)
            if n == 0:
                raise ValueError("fit() got 0 training samples")
            if batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {batch_size}")
            if self.input_shape is None:
                self.input_shape = tuple(x.shape[1:])
            steps = -(-n // batch_size)
            rng = np.random.default_rng(seed) if seed is not None else _random.get_rng()

            def epoch_batches():
                order = rng.permutation(n) if shuffle else None
                for lo in range(0, n, batch_size):
                    if order is None:
                        yield x[lo:lo + batch_size], y[lo:lo + batch_size]
                    else:
                        idx = order[lo:lo + batch_size]
                        yield x[idx], y[idx]

        history = _callbacks.History()
        # History last (as Keras): it records what the user's callbacks add to the logs
        cbs = _callbacks.CallbackList([*(callbacks or []), history], model=self)
        self.history, self.stop_training = history, False
        names = ["loss", *self.metrics_names]
        pairs = self._pairs()
        saved = _freeze_input_grads(self.layers)
        logs = {}
        try:
            cbs.on_train_begin(logs)
            for epoch in range(epochs):
                cbs.on_epoch_begin(epoch, logs)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}")
                bar = Progbar(steps, verbose=verbose)
                sums, seen, done = np.zeros(len(names)), 0, 0
                for step, (xb, yb) in enumerate(epoch_batches()):
                    if y is None:
                        xb, yb = self._batch(xb, yb)
                        if self.input_shape is None:
                            self.input_shape = tuple(xb.shape[1:])
                    cbs.on_batch_begin(step, logs)
                    try:
                        loss, out = self._train_batch(xb, yb, pairs)
                    except _NonFiniteLoss as e:
                        raise FloatingPointError(self._nonfinite_message(
                            e.loss, f" at epoch {epoch + 1}, step {step + 1}/{steps}")) from None
                    m = len(xb)
                    sums[0] += loss * m
                    for j, (_, fn) in enumerate(self._metrics, 1):
                        sums[j] += fn(out, yb) * m
                    seen += m
                    done = step + 1
                    logs = {k: float(s / seen) for k, s in zip(names, sums)}
                    bar.update(done, logs)
                    cbs.on_batch_end(step, logs)
                    if self.stop_training:
                        break
                if done == 0:           # an iterable that ran dry: nothing more to train on
                    warnings.warn(f"fit: the input ran out of batches at epoch {epoch + 1}; "
                                  f"training stops (give an endless or re-iterable x, or fewer "
                                  f"steps_per_epoch * epochs)", stacklevel=2)
                    break
                if val is not None:
                    logs.update({"val_" + k: v for k, v in val().items()})
                bar.update(done, logs, finalize=True)
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            for layer, flag in saved:
                layer.needs_input_grad = flag
        return history

    # -- inference -------------------------------------------------------------------------
    def _evaluate(self, x, y, batch_size):
        return self._evaluate_batches((x[lo:lo + batch_size], y[lo:lo + batch_size])
                                      for lo in range(0, len(x), batch_size))

    def _evaluate_batches(self, batches):
        """Loss and metrics (training=False) averaged over the samples of ``batches``."""
        names = ["loss", *self.metrics_names]
        sums, n = np.zeros(len(names)), 0
        for xb, yb in batches:
            out = self.forward(xb, training=False)
            sums[0] += self.loss.forward(out, yb) * len(xb)
            for j, (_, fn) in enumerate(self._metrics, 1):
                sums[j] += fn(out, yb) * len(xb)
            n += len(xb)
        return {k: float(s / max(n, 1)) for k, s in zip(names, sums)}

    def evaluate(self, x, y=None, batch_size=256, verbose=0, steps=None):
        """Loss and metrics on ``(x, y)`` (training=False), averaged over samples.

        ``x`` may instead be an iterable of ``(xb, yb)`` batches (``y`` None): ``steps`` of
        them, or one full pass when it has ``len()``.

        Returns
        -------
        dict
            ``{'loss': ..., '<metric>': ...}``
        """
        self._check_compiled("evaluate")
        if y is None and _is_batch_iterable(x):
            stream = _Stream(x, "x", steps, per_epoch_iterator=True, arg="steps")
            logs = self._evaluate_batches(self._batch(*b) for b in stream.epoch())
            if verbose:
                Progbar(stream.steps, verbose=2).update(stream.steps, logs, finalize=True)
            return logs
        if y is None:
            raise ValueError(f"evaluate() needs targets y for x of type {type(x).__name__}; or "
                             f"pass an iterable of (xb, yb) batches as x")
        x, y = self._prepare(x, y, check=False)
        logs = self._evaluate(x, y, int(batch_size))
        if verbose:
            Progbar(-(-len(x) // int(batch_size)), verbose=2).update(
                -(-len(x) // int(batch_size)), logs, finalize=True)
        return logs

    def predict(self, x, batch_size=256):
        """Outputs for ``x`` (training=False), in batches.

        Returns
        -------
        ndarray of shape (N, ...)
            In the parameters' dtype (float32 unless the model was cast).
        """
        x = self._as_x(x)
        if len(x) == 0:
            return self.forward(x, training=False)
        out = None
        for lo in range(0, len(x), int(batch_size)):
            yb = self.forward(x[lo:lo + int(batch_size)], training=False)
            if out is None:
                out = np.empty((len(x), *yb.shape[1:]), dtype=yb.dtype)
            out[lo:lo + len(yb)] = yb
        return out

    # -- summary ---------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts.

        Output shapes need the input shape: from ``Sequential(..., input_shape=...)``,
        :meth:`build`, a previous ``fit``, or the first layer's ``in_features``; a layer
        whose output shape cannot be known shows ``?``.
        """
        shape = None if self.input_shape is None else (None, *self.input_shape)
        rows = []
        for name, layer in zip(_auto_names(self.layers), self.layers):
            if shape is None and getattr(layer, "in_features", None):
                shape = (None, layer.in_features)
            if shape is not None:
                try:
                    shape = tuple(layer.output_shape(shape))
                except Exception:   # noqa: BLE001  (unknowable here: show '?')
                    shape = None
            rows.append((f"{name} ({type(layer).__name__})",
                         shape_str(shape) if shape is not None else "?",
                         f"{layer.num_params():,}"))
        head = ("Layer (type)", "Output Shape", "Param #")
        w = [max(max(len(r[i]) for r in [head, *rows]) + 3, least)
             for i, least in enumerate((29, 26, 10))]   # Keras' 65 columns, wider if needed
        total = sum(w)
        line = lambda r: f" {r[0]:<{w[0]}}{r[1]:<{w[1]}}{r[2]:>{w[2] - 3}}"  # noqa: E731
        nbytes = sum(p.nbytes for p in self.params.values())
        count = self.num_params()
        print_fn(f'Model: "{self.name or "sequential"}"')
        print_fn("_" * total)
        print_fn(line(head))
        print_fn("=" * total)
        for i, r in enumerate(rows):
            print_fn(line(r))
            if i < len(rows) - 1:
                print_fn(" " + "-" * (total - 1))
        print_fn("=" * total)
        print_fn(f"Total params: {count:,} ({_fmt_bytes(nbytes)})")
        print_fn(f"Trainable params: {count:,} ({_fmt_bytes(nbytes)})")
        print_fn("Non-trainable params: 0 (0.00 B)")
        print_fn("_" * total)
