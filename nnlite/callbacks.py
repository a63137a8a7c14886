"""Callbacks: hooks ``fit`` calls at the start/end of training, of each epoch and of each batch.

The classes live in :mod:`nnlite.training.callbacks`; this module keeps ``nl.callbacks.X``
and ``from nnlite.callbacks import X`` working.

>>> model.fit(x, y, validation_split=0.1,
...           callbacks=[nl.callbacks.EarlyStopping(patience=2, restore_best_weights=True)])
"""
from .training.callbacks import (  # noqa: F401
    Callback,
    CallbackList,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    __all__,
)
