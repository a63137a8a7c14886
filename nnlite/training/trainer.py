"""The Trainer: Keras' ``compile`` / ``fit`` / ``evaluate`` / ``predict`` as a mixin.

:class:`~nnlite.Sequential` inherits it (as ``keras.Model`` inherits
``keras/src/trainers/trainer.py``); the model supplies the layers and the arithmetic, the
trainer the loop:

>>> model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
>>> history = model.fit(x, y, epochs=5, validation_split=0.1)
>>> model.evaluate(x_test, y_test)                  # {'loss': ..., 'accuracy': ...}

One training step (:meth:`Trainer.train_step`, which ``fit`` calls): zero the grads, forward
(training=True), loss forward, a check that it is finite, loss backward, backward through the
layers in reverse, ``optimizer.step(pairs)`` (which checks that the gradients' global norm is
finite, then clips by it when the optimizer has ``clipnorm``). A NaN/inf loss or gradient
raises ``FloatingPointError`` before the update, naming the epoch and step.

Modes, as PyTorch's: ``model.train()``/``model.eval()`` set every layer, and ``model(x)`` runs
in the current mode. ``fit`` and ``train_step`` switch every layer to train mode (dropout on)
and put the modes back afterwards; ``evaluate``, ``predict`` and validation always run
inference (training=False).

Devices: ``model.to("cuda")`` moves the parameters, gradients and optimizer state to the GPU
(``model.to("cpu")`` back; ``model.device`` says where they are). ``fit``, ``evaluate`` and
``predict`` then move each batch there as it comes (the data itself stays where it is, usually
in host memory), ``predict`` returns numpy arrays, and a model file always holds host arrays.

``fit`` takes arrays ``(x, y)`` or an iterable of ``(xb, yb)`` batches (a ``DataLoader``, a
``RandomWindowSampler``, a generator) with ``steps_per_epoch``; :mod:`.data_adapter` turns
either into per-epoch batch iterators:

>>> model.fit(sampler, steps_per_epoch=250, epochs=8, validation_data=val_sampler,
...           validation_steps=200)

What the model must have (duck typing; nothing here imports :mod:`nnlite.models`):
``layers`` (to skip the input gradient below the first trainable layer and to find the input
dtype), ``params``/``grads`` (dicts with the same keys; the optimizer gets them as pairs),
``forward(x, training)``, ``backward(grad)``, ``zero_grad()``, ``dtype``, ``input_shape``,
and ``get_weights``/``set_weights``/``save`` for the callbacks that use them.
"""
import contextlib
import inspect
import math
import warnings

import numpy as np

from .. import devices, ops
from .. import losses as _losses
from .. import optim as _optim
from .. import random as _random
from .._args import is_int
from ..layers import Dense, Sigmoid, Softmax
from ..layers._checks import describe
from . import data_adapter
from . import metrics as _metrics
from .callbacks import CallbackList, History
from .progress import Progbar


class _NonFinite(FloatingPointError):
    """Raised by the step (a NaN/inf loss, or a gradient norm with a finite loss);
    ``fit``/``train_step`` turn it into a message that says where."""

    def __init__(self, loss, grad_norm=None):
        super().__init__(f"loss became {loss}" if grad_norm is None else
                         f"gradient norm became {grad_norm}")
        self.loss, self.grad_norm = loss, grad_norm


def _freeze_input_grads(layers):
    """Turn off d(loss)/d(input) up to and including the first layer with parameters (nothing
    upstream uses it); return the old flags for :func:`_restore_input_grads`."""
    saved = []
    for layer in layers:
        saved.append((layer, layer.needs_input_grad))
        layer.needs_input_grad = False
        if hasattr(layer, "layers"):        # a nested stack: its first layers too
            saved += _freeze_input_grads(layer.layers)
        if layer.num_params() > 0 or not getattr(layer, "built", True):   # Dense(units)
            break
    return saved


def _restore_input_grads(saved):
    for layer, flag in saved:
        layer.needs_input_grad = flag


def _modes(layer):
    """``[(layer, training), ...]`` for ``layer`` and every layer under it."""
    out = [(layer, layer.training)]
    for sub in getattr(layer, "sublayers", list)():
        out += _modes(sub)
    return out


@contextlib.contextmanager
def _training(model):
    """Training as ``fit`` does it: every layer in train mode (``model.train()``: dropout on,
    even after ``model.eval()``), no input gradient below the first trainable layer; both
    put back as they were afterwards."""
    modes, saved = _modes(model), _freeze_input_grads(model.layers)
    model.train()
    try:
        yield
    finally:
        _restore_input_grads(saved)
        for layer, mode in modes:
            layer.training = mode


class Trainer:
    """Mixin giving a model ``compile``, ``train_step``, ``fit``, ``evaluate``, ``predict``.

    A subclass calls ``Trainer.__init__(self)`` in its own ``__init__``.

    Attributes
    ----------
    optimizer, loss : set by :meth:`compile`
    metrics_names : list of str
        The compiled metrics, in the order of the logs.
    history : the :class:`~nnlite.callbacks.History` of the last ``fit``
    stop_training : bool
        Set by a callback to end ``fit`` after the current batch.
    epoch : int
        Epochs of the current run done (0 before ``fit``): ``fit``'s ``initial_epoch`` to
        continue it. Saved in the model file, restored by ``load_model``.
    fit_seed : int or None
        The seed of the current run's randomness (see ``fit``'s ``seed``); saved and
        restored with ``epoch``.
    """

    def __init__(self):
        self.optimizer = self.loss = None
        self.metrics_names, self._metrics, self._compile_args = [], [], {}
        self.history = None
        self.stop_training = False
        self._warned_logits = False         # _check_logits warns once per compile
        self.epoch, self.fit_seed = 0, None

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
        self._metrics = [_metrics.get(m, self.loss) for m in (metrics or [])]
        self.metrics_names = [name for name, _ in self._metrics]
        self._warned_logits = False
        self._check_logits()
        return self

    def _check_logits(self):
        """Warn (once per compile) when the model ends in a Softmax (Sigmoid) while the loss
        takes logits and applies it itself: the pair trains badly, and nothing fails."""
        if self._warned_logits or not self.layers:
            return
        last = self.layers[-1]
        while getattr(last, "layers", None):                # a nested Sequential: its last
            last = last.layers[-1]
        act = getattr(last, "activation", None) if isinstance(last, Dense) else None
        for loss, layer, name, fix in (
                (_losses.CrossEntropy, Softmax, "softmax", "nl.ops.softmax(model.predict(x))"),
                (_losses.BinaryCrossEntropy, Sigmoid, "sigmoid",
                 "1 / (1 + np.exp(-model.predict(x)))")):
            if isinstance(self.loss, loss) and (isinstance(last, layer) or act == name):
                self._warned_logits = True
                warnings.warn(
                    f"the model ends in {describe(last)}, but the loss {type(self.loss).__name__} "
                    f"takes logits and applies the {name} itself: applied twice it flattens the "
                    f"gradients and the model trains badly. Remove the final {name} (for "
                    f"probabilities afterwards: {fix})", UserWarning, stacklevel=3)

    def to(self, device):
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:0"``): parameters,
        gradients, buffers (each layer's, :meth:`Layer.to <nnlite.layers.Layer.to>`) and the
        compiled optimizer's state (Adam's moments, momentum). Returns the model, as
        PyTorch's ``model.to``; ``model.device`` reads it back.

        Raises
        ------
        RuntimeError
            ``"no GPU: <reason>"`` for ``"cuda"`` where nnlite cannot use a GPU (``from
            nnlite.ops import cuda; cuda.why_not()`` says the same without raising).
        """
        dev = devices.resolve(device)
        super().to(dev)                     # the layers: Layer.to
        if self.optimizer is not None and hasattr(self.optimizer, "to"):
            self.optimizer.to(dev)
        return self

    def _on_device(self, *arrays):
        """The batch's arrays on the model's device (as they are when already there)."""
        dev = self.device
        return tuple(devices.to_device(a, dev) for a in arrays)

    def _check_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"{what}() needs a compiled model: call model.compile("
                               f"optimizer='adam', loss='cross_entropy', metrics=['accuracy']) "
                               f"first")

    def _input_dtype(self):
        """What the data is converted to: the first layer's ``input_dtype`` (an Embedding
        takes int64 ids), else the parameters' dtype, else float32."""
        dtype = getattr(self.layers[0], "input_dtype", None) if self.layers else None
        if dtype is None:       # (np.dtype is falsy: it has len 0, so no `or` chains here)
            dtype = self.dtype
        return np.float32 if dtype is None else dtype

    def _pairs(self, xb):
        """``[(param, grad), ...]`` for the optimizer, from ``params``/``grads`` (the model's
        own keys, whatever they are); a model that is not built yet (``Dense(units)``) is
        built first, for the batch ``xb``."""
        if not getattr(self, "built", True):
            self.build(xb.shape[1:])
        params, grads = self.params, self.grads
        return [(params[k], grads[k]) for k in params]

    # -- training ------------------------------------------------------------------------
    def _loss(self, out, yb, wb):
        """The loss of a batch, weighted by ``wb`` (one weight per sample) when given."""
        if wb is None:
            return self.loss.forward(out, yb)
        return self.loss.forward(out, yb, sample_weight=wb)

    def _check_weighted_loss(self):
        """A TypeError before training if the loss cannot weigh samples (a user's Loss whose
        ``forward`` takes no ``sample_weight``)."""
        try:
            params = inspect.signature(self.loss.forward).parameters
        except (TypeError, ValueError):     # no signature to read: let it try
            return
        if "sample_weight" not in params and not any(
                p.kind is p.VAR_KEYWORD for p in params.values()):
            raise TypeError(f"sample_weight/class_weight: the loss {type(self.loss).__name__} "
                            f"takes no sample_weight; give its forward a sample_weight=None "
                            f"argument that weighs each sample's terms (as nnlite.losses "
                            f"do), or train unweighted")

    def _train_batch(self, xb, yb, pairs, wb=None):
        """The step itself; returns ``(loss, output)``. Raises before the update if the loss or
        the gradient is not finite, so the weights stay usable. Its arrays come from the
        buffer cache (ops.array_pool): the same sizes every step, without page faults."""
        with ops.array_pool():
            self.zero_grad()
            out = self.forward(xb, training=True)
            loss = self._loss(out, yb, wb)
            if not math.isfinite(loss):
                raise _NonFinite(loss)
            self.backward(self.loss.backward())
            try:
                self.optimizer.step(pairs)  # checks the grad norm, clips when clipnorm is set
            except _optim.NonFiniteGradient as e:
                raise _NonFinite(loss, e.norm) from None
            return loss, out

    def _nonfinite_message(self, e, where):
        if e.grad_norm is None:
            return (f"loss became {e.loss}{where}; try a lower learning rate (optimizer: "
                    f"{self.optimizer!r}) or gradient clipping (clipnorm=...)")
        return (f"gradient norm became {e.grad_norm}{where}, with a finite loss {e.loss:.6g} "
                f"(e.g. an overflow in the backward pass); the weights are left as they were "
                f"before this step. Try inputs scaled to a moderate range, a lower learning "
                f"rate (optimizer: {self.optimizer!r}) or float64 (model.astype(np.float64))")

    def train_step(self, xb, yb, sample_weight=None):
        """One optimisation step on the batch ``(xb, yb)``: zero the grads, forward
        (training=True), loss (weighted by ``sample_weight``, one weight per sample, when
        given), a finiteness check, backward, ``optimizer.step``.

        ``fit`` calls it for every batch; call it yourself for a hand-written loop.

        Returns
        -------
        float
            The batch's loss (before the update).

        Raises
        ------
        FloatingPointError
            If the loss or the gradient's global norm is NaN or inf; the weights are left as
            they were.
        """
        self._check_compiled("train_step")
        self._check_logits()
        if sample_weight is not None:
            self._check_weighted_loss()
        with _training(self):
            xb, yb = data_adapter.cast_batch(xb, yb, self._input_dtype())
            xb, yb, sample_weight = self._on_device(xb, yb, sample_weight)
            try:
                return self._train_batch(xb, yb, self._pairs(xb), sample_weight)[0]
            except _NonFinite as e:
                raise FloatingPointError(self._nonfinite_message(e, "")) from None

    def fit(self, x, y=None, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1, seed=None, steps_per_epoch=None,
            validation_steps=None, class_weight=None, sample_weight=None, initial_epoch=0,
            transform=None):
        """Train for ``epochs`` passes over ``(x, y)``, or over batches drawn from ``x``.

        Parameters
        ----------
        x : ndarray of shape (N, ...), or an iterable of (xb, yb) batches
            Arrays are converted once to the parameters' dtype (float32 unless the model was
            cast). An iterable (``DataLoader``, ``RandomWindowSampler``, generator) gives the
            batches itself, ``(xb, yb)`` or ``(xb, yb, sample_weight)``; then leave ``y``
            None, and ``batch_size``, ``shuffle``, ``seed`` and ``validation_split`` do not
            apply.
        y : ndarray of shape (N, ...), optional
            Integer labels or float targets, as the loss expects (arrays only).
        batch_size : int
        epochs : int
            The index of the last epoch, as Keras: epochs ``initial_epoch .. epochs - 1`` run
            (numbered from 1 in the progress lines and checkpoint names).
        initial_epoch : int
            The epoch to start at, to continue an interrupted run from its checkpoint
            (``ModelCheckpoint`` records it): ``model = nl.load_model(path)``, then
            ``model.fit(x, y, epochs=20, initial_epoch=model.epoch)``. The epochs run then are
            the ones an uninterrupted run would have run, to the bit: the weights and the
            optimizer state (moments, step count, schedule position) come from the file, and
            each epoch's randomness from ``(seed, epoch)`` (see ``seed``).
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
        seed : int >= 0, optional
            The run's seed. Epoch ``e`` draws its shuffle, and its Dropout masks and
            ``DataLoader`` shuffles (those without their own ``rng``/``seed``), from
            ``nl.random.epoch_rng(seed, e)``, installed as ``nl.random``'s generator during
            the epoch: nothing depends on earlier epochs' draws. Default: one drawn from
            ``nl.random`` (``nl.random.seed`` makes it repeatable); with ``initial_epoch > 0``,
            the seed this model's run used (``model.fit_seed``, kept in its files), so a
            resumed run draws what the interrupted one would have.
        class_weight : dict, optional
            ``{class index: weight}``: each sample's loss terms are multiplied by the weight of
            its class (integer labels, binary 0/1 targets or one-hot rows), as Keras'; every
            class that occurs needs a weight. Metrics and validation stay unweighted.
        sample_weight : ndarray of shape (N,), optional
            Arrays only: a weight per sample, multiplying its loss terms (times its class
            weight); an iterable ``x`` may yield ``(xb, yb, sample_weight)`` batches instead.
            The loss stays a mean over all terms (Keras' ``sum_over_batch_size``), so weights
            of 2 double the gradient.
        transform : callable ``t(xb, rng)``, optional
            Data augmentation (:mod:`nnlite.data.transforms`, e.g.
            ``Compose([RandomShift(2), RandomRotation(10)])``) applied to the inputs of every
            training batch, drawing from the epoch's generator (repeatable from ``seed``);
            never to the validation data. A ``DataLoader(..., transform=)`` given as ``x`` does
            the same.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, metrics, ``val_loss``, ... to per-epoch lists.

        Raises
        ------
        FloatingPointError
            If the loss, or the gradients' global norm, becomes NaN or inf; the message names
            the epoch and step. The weights are left as they were before that step.
        """
        self._check_compiled("fit")
        for name, value in (("seed", 0 if seed is None else seed),
                            ("initial_epoch", initial_epoch)):
            if not is_int(value) or value < 0:
                raise ValueError(f"fit: {name} must be an int >= 0, got {value!r}")
        self._check_logits()
        train, val = data_adapter.fit_adapters(     # no seed: each epoch installs its own rng
            x, y, self._input_dtype(), batch_size=batch_size, shuffle=shuffle,
            steps_per_epoch=steps_per_epoch, validation_data=validation_data,
            validation_split=validation_split, validation_steps=validation_steps,
            sample_weight=sample_weight)
        if transform is not None:
            train = data_adapter.TransformAdapter(train, transform, self._input_dtype())
        classes = None if class_weight is None else data_adapter.check_class_weight(class_weight)
        if sample_weight is not None or classes is not None:
            self._check_weighted_loss()
        if seed is None:
            seed = self.fit_seed if initial_epoch and self.fit_seed is not None else \
                int(_random.get_rng().integers(2**63))
        self.fit_seed, self.epoch = int(seed), int(initial_epoch)
        history = History()
        # History last (as Keras): it records what the user's callbacks add to the logs
        cbs = CallbackList([*(callbacks or []), history], model=self)
        self.history, self.stop_training = history, False
        logs = {}
        with _training(self):
            cbs.on_train_begin(logs)
            for epoch in range(self.epoch, epochs):
                cbs.on_epoch_begin(epoch, logs)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}")
                bar = Progbar(train.steps, verbose=verbose)
                with _random.using(_random.epoch_rng(self.fit_seed, epoch)):
                    logs, done = self._fit_epoch(train, epoch, bar, cbs, logs, classes)
                if done == 0:           # an iterable that ran dry: nothing more to train on
                    warnings.warn(f"fit: the input ran out of batches at epoch {epoch + 1}; "
                                  f"training stops (give an endless or re-iterable x, or fewer "
                                  f"steps_per_epoch * epochs)", stacklevel=2)
                    break
                self.epoch = epoch + 1  # before on_epoch_end: what ModelCheckpoint saves
                if val is not None:
                    val_logs = self._evaluate_batches(val.epoch(), "fit() validation")
                    logs.update({"val_" + k: v for k, v in val_logs.items()})
                bar.update(done, logs, finalize=True)
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        return history

    def _fit_epoch(self, train, epoch, bar, cbs, logs, classes=None):
        """One epoch of ``fit`` over ``train.epoch()``; returns ``(logs, steps done)``.

        ``logs`` comes in as the previous batch's (the callbacks' ``on_batch_begin`` sees it)
        and goes out as the running means of this epoch. ``classes``: the class weights'
        lookup table (:func:`~.data_adapter.check_class_weight`), or None.
        """
        names = ["loss", *self.metrics_names]
        metrics = [fn for _, fn in self._metrics]
        pairs = None
        sums, seen, done = np.zeros(len(names)), 0, 0
        for step, (xb, yb, *wb) in enumerate(train.epoch()):
            wb = wb[0] if wb else None      # (xb, yb, wb) with sample weights
            if classes is not None:
                cw = data_adapter.class_weights(yb, classes)
                wb = cw if wb is None else cw * devices.to_host(wb)
            xb, yb, wb = self._on_device(xb, yb, wb)
            if self.input_shape is None:    # recorded from the data for summary()
                self.input_shape = tuple(xb.shape[1:])
            if pairs is None:
                pairs = self._pairs(xb)
            cbs.on_batch_begin(step, logs)
            try:
                loss, out = self._train_batch(xb, yb, pairs, wb)
            except _NonFinite as e:
                raise FloatingPointError(self._nonfinite_message(
                    e, f" at epoch {epoch + 1}, step {step + 1}/{train.steps}")) from None
            m = len(xb)
            sums[0] += loss * m
            for j, fn in enumerate(metrics, 1):
                sums[j] += fn(out, yb) * m
            seen += m
            done = step + 1
            logs = {k: float(s / seen) for k, s in zip(names, sums)}
            bar.update(done, logs)
            cbs.on_batch_end(step, logs)
            if self.stop_training:
                break
        return logs, done

    # -- inference -------------------------------------------------------------------------
    def _evaluate_batches(self, batches, what="evaluate()", bar=None):
        """Loss and metrics (training=False) averaged over the samples of ``batches``; ``bar``
        (a Progbar) is told each batch and finalized. A ValueError naming ``what`` when there
        are no samples (0.0 would look like a perfect model)."""
        names = ["loss", *self.metrics_names]
        sums, n, done = np.zeros(len(names)), 0, 0

        def logs():
            return {k: float(s / max(n, 1)) for k, s in zip(names, sums)}

        for xb, yb, *wb in batches:
            xb, yb, wb = self._on_device(xb, yb, wb[0] if wb else None)
            with ops.array_pool():
                out = self.forward(xb, training=False)
                sums[0] += self._loss(out, yb, wb) * len(xb)
                for j, (_, fn) in enumerate(self._metrics, 1):
                    sums[j] += fn(out, yb) * len(xb)
            n, done = n + len(xb), done + 1
            if bar is not None:
                bar.update(done, logs())
        if n == 0:
            raise ValueError(f"{what}: the data gave no samples to evaluate")
        if bar is not None:
            bar.update(done, logs(), finalize=True)
        return logs()

    def evaluate(self, x, y=None, batch_size=256, verbose=0, steps=None, return_dict=True,
                 sample_weight=None):
        """Loss and metrics on ``(x, y)`` (training=False), averaged over samples.

        ``x`` may instead be an iterable of ``(xb, yb)`` batches (``y`` None): ``steps`` of
        them, or one full pass when it has ``len()``.

        ``verbose``: 0 silent; 1 a progress bar (its final line only off a terminal); 2 the
        final line only, e.g. ``157/157 - 1s 8ms/step - loss: 0.0712 - accuracy: 0.9781``.

        Parameters
        ----------
        sample_weight : ndarray of shape (N,), optional
            Arrays only: weighs each sample's loss terms (as in ``fit``); metrics stay
            unweighted.
        return_dict : bool, default True
            True: a dict (nnlite's default). False: as Keras' default, the loss alone when no
            metrics were compiled, else the list ``[loss, *metrics]``.

        Returns
        -------
        dict, float or list of float
            ``{'loss': ..., '<metric>': ...}`` (see ``return_dict``).

        Raises
        ------
        ValueError
            If the data holds no samples (as ``fit``).
        """
        self._check_compiled("evaluate")
        if sample_weight is not None:
            self._check_weighted_loss()
        data = data_adapter.evaluate_adapter(x, y, self._input_dtype(), batch_size, steps,
                                             sample_weight)
        # the bar starts before the first batch: its clock times the whole evaluation
        bar = Progbar(data.steps, verbose=verbose) if verbose else None
        logs = self._evaluate_batches(data.epoch(), bar=bar)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=256, verbose=0, steps=None):
        """Outputs for ``x``, always inference (training=False, whatever the mode), in
        batches.

        Parameters
        ----------
        x : ndarray of shape (N, ...), or an iterable of batches
            An iterable (``DataLoader``, generator) gives input arrays or tuples ``(xb, ...)``
            whose first element is the input (targets are ignored).
        batch_size : int
            Arrays only.
        verbose : {0, 1, 2}
            0 silent; 1 progress bar; 2 one line at the end.
        steps : int, optional
            Iterable input only: batches to predict (default one full pass, which needs
            ``len()``).

        Returns
        -------
        numpy.ndarray of shape (N, ...)
            In the parameters' dtype (float32 unless the model was cast); a numpy array even
            for a model on a GPU (as Keras' ``predict``): each batch runs there, the outputs
            come back once, at the end.
        """
        n, batches = data_adapter.predict_batches(x, self._input_dtype(), batch_size, steps)
        bar, outs = Progbar(n, verbose=verbose), []
        for step, xb in enumerate(batches):
            with ops.array_pool():
                outs.append(self.forward(*self._on_device(xb), training=False))
            bar.update(step + 1)
        if not outs:
            if data_adapter.is_batch_iterable(x):
                raise ValueError("predict: x gave no batches")
            xb, = self._on_device(data_adapter.as_x(x, self._input_dtype()))
            return devices.to_host(self.forward(xb, training=False))
        bar.update(len(outs), finalize=True)
        # a copy even of one batch: never a layer's cache
        out = ops.array_module(outs[0]).concatenate(outs)
        return out if isinstance(out, np.ndarray) else devices.to_host(out)
