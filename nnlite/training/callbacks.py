"""Callbacks: hooks ``fit`` calls at the start/end of training, of each epoch and of each batch.

``logs`` holds running means during an epoch (``loss``, metrics) and, at epoch end, the
epoch's ``loss``, metrics, ``val_loss`` and ``val_<metric>``. A callback stops training by
setting ``self.model.stop_training = True``.

>>> model.fit(x, y, validation_split=0.1,
...           callbacks=[EarlyStopping(patience=2, restore_best_weights=True),
...                      ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.4f}.nnl")])
"""
import os
import warnings

import numpy as np


class Callback:
    """Base class: override the hooks you need; ``self.model`` is the model being trained."""

    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks=(), model=None):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be nnlite.callbacks.Callback instances, "
                                f"got {type(c).__name__}")
        if model is not None:
            self.set_model(model)

    def set_model(self, model):
        self.model = model
        for c in self.callbacks:
            c.set_model(model)

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_batch_begin(self, batch, logs=None): self._call("on_batch_begin", batch, logs)
    def on_batch_end(self, batch, logs=None): self._call("on_batch_end", batch, logs)


class History(Callback):
    """Records each epoch's logs: ``history.history['val_loss'][i]``, ``history.epoch``.

    ``fit`` returns one (also kept as ``model.history``).
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _monitor_op(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":   # accuracy-like quantities grow, everything else (losses, errors) shrinks
        mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


def _get_monitor(cb, logs):
    value = (logs or {}).get(cb.monitor)
    if value is None:
        warnings.warn(f"{type(cb).__name__}: monitor {cb.monitor!r} is not available; "
                      f"available metrics are: {', '.join(logs or {}) or '(none)'}",
                      stacklevel=3)
    return value


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. ``'val_loss'``, ``'val_accuracy'``, ``'loss'``.
    patience : int
        Epochs without improvement to wait before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    mode : {'auto', 'min', 'max'}
        ``'auto'`` maximises names containing ``acc``, minimises the rest.
    restore_best_weights : bool
        When it stops training, put back the weights of the best epoch (as Keras: a run that
        ends by running out of epochs keeps its last weights).
    verbose : int
        1 prints when it stops and restores.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, verbose=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.min_delta = abs(float(min_delta))
        self.mode = _monitor_op(monitor, mode)
        self.restore_best_weights = restore_best_weights

    def _improved(self, value, best):
        if self.mode == "max":
            return value - self.min_delta > best
        return value + self.min_delta < best

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = -np.inf if self.mode == "max" else np.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = _get_monitor(self, logs)
        if value is None:
            return
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"EarlyStopping: stopped at epoch {self.stopped_epoch + 1} ({self.monitor} did "
                  f"not improve for {self.wait} epoch{'s' * (self.wait != 1)}; best "
                  f"{self.best:.4f} at epoch {self.best_epoch + 1})")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) at the end of each epoch.

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold format fields from ``epoch`` (1-based) and the logs:
        ``"ckpt-{epoch:02d}-{val_loss:.4f}.nnl"``.
    monitor : str
        Quantity compared when ``save_best_only``.
    save_best_only : bool
        Save only when ``monitor`` improved (the file is overwritten unless it has fields).
    save_weights_only : bool
        Save only the weights (``model.save_weights``, a plain safetensors file).
    mode : {'auto', 'min', 'max'}
    verbose : int
        1 prints a line per save.
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False,
                 save_weights_only=False, mode="auto", verbose=0):
        super().__init__()
        self.filepath, self.monitor = os.fspath(filepath), monitor
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode, self.verbose = _monitor_op(monitor, mode), verbose
        self.best = -np.inf if self.mode == "max" else np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = _get_monitor(self, logs)
            if value is None:
                return
            better = value > self.best if self.mode == "max" else value < self.best
            if not better:
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {self.filepath}")
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint filepath {self.filepath!r} uses {e}, which is not "
                           f"in the logs: {', '.join(['epoch', *logs])}") from None
        if self.verbose and not self.save_best_only:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None,
                 on_batch_end=None, on_train_begin=None, on_train_end=None):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_batch_begin": on_batch_begin, "on_batch_end": on_batch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Set ``model.optimizer.lr = schedule(epoch, lr)`` at the start of each epoch (0-based)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        current = opt.get_lr() if hasattr(opt, "get_lr") else opt.lr
        lr = float(self.schedule(epoch, current))
        opt.lr = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            opt = self.model.optimizer
            logs["lr"] = float(opt.get_lr() if hasattr(opt, "get_lr") else opt.lr)


class ReduceLROnPlateau(Callback):
    """Multiply the optimizer's learning rate by ``factor`` when ``monitor`` has stopped
    improving for ``patience`` epochs (Keras' semantics and defaults).

    After a reduction it waits ``cooldown`` epochs before counting again, and never goes
    below ``min_lr``. Each epoch's logs get the learning rate in use as ``lr``.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. ``'val_loss'``.
    factor : float in (0, 1)
        ``new_lr = lr * factor``.
    patience : int
        Epochs without improvement before a reduction.
    verbose : int
        1 prints each reduction.
    mode : {'auto', 'min', 'max'}
        ``'auto'`` maximises names containing ``acc``, minimises the rest.
    min_delta : float
        Smallest change that counts as an improvement.
    cooldown : int
        Epochs to wait after a reduction before counting again.
    min_lr : float
        The lower bound.

    Raises
    ------
    TypeError
        At the start of ``fit``, if the optimizer's ``lr`` is a schedule: both would set the
        learning rate (as in Keras). Use a constant ``lr``, or the schedule alone.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.verbose, self.min_delta = verbose, abs(float(min_delta))
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.mode = _monitor_op(monitor, mode)

    def _improved(self, value):
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_train_begin(self, logs=None):
        lr = self.model.optimizer.lr
        if callable(lr):
            raise TypeError(f"ReduceLROnPlateau: the optimizer's lr is a schedule "
                            f"({type(lr).__name__}), which sets the learning rate itself; use "
                            f"a constant lr with ReduceLROnPlateau, or the schedule alone")
        self.wait, self.cooldown_counter = 0, 0
        self.best = -np.inf if self.mode == "max" else np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["lr"] = float(opt.lr)
        value = _get_monitor(self, logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and float(opt.lr) > self.min_lr:
                opt.lr = max(float(opt.lr) * self.factor, self.min_lr)
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{opt.lr:.4g}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


__all__ = ["Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau"]
