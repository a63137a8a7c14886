"""Training: everything ``compile``/``fit``/``evaluate``/``predict`` need, apart from the model.

Keras' split (``keras/src/trainers``): the model (:class:`nnlite.Sequential`) is the stack of
layers; it inherits its training methods from :class:`Trainer`.

* ``trainer.py``: :class:`Trainer`, the ``compile``/``train_step``/``fit``/``evaluate``/``predict``
  mixin;
* ``data_adapter.py``: arrays, ``DataLoader``\\ s and iterables of ``(xb, yb)`` as per-epoch
  batch iterators (batching, shuffling, ``validation_split``, ``steps_per_epoch``);
* ``metrics.py``: accuracy, mae, mse and the lookup by name;
* ``callbacks.py``: ``History``, ``EarlyStopping``, ``ModelCheckpoint``, ... (also
  :mod:`nnlite.callbacks`);
* ``progress.py``: the Keras-style :class:`Progbar`;
* ``summary.py``: the ``model.summary()`` table;
* ``step.py``: :func:`train_step` ``(model, optimizer, x, loss_grad)``, :func:`frozen`,
  :func:`trainable_pairs`: the low-level step, for loops over several models (GAN, VAE).

Nothing here imports :mod:`nnlite.models`: the trainer works on any object with ``layers``,
``params``/``grads``, ``forward``/``backward``/``zero_grad`` (duck typing).
"""
from . import callbacks, data_adapter, metrics  # noqa: F401
from .progress import Progbar  # noqa: F401
from .summary import print_summary  # noqa: F401
from .trainer import Trainer  # noqa: F401
from .step import frozen, train_step, trainable_pairs  # noqa: F401, I001

__all__ = ["Trainer", "Progbar", "print_summary", "callbacks", "data_adapter", "metrics",
           "frozen", "train_step", "trainable_pairs"]
