"""Callbacks: hooks ``fit`` calls at the start/end of training, of each epoch and of each batch.

The classes live in :mod:`nnlite.training.callbacks`; this module keeps ``nl.callbacks.X``
and ``from nnlite.callbacks import X`` working.

>>> model.fit(x, y, validation_split=0.1,
...           callbacks=[nl.callbacks.EarlyStopping(patience=2, restore_best_weights=True)])
"""
from .training.callbacks import (Callback, CallbackList, EarlyStopping, History,  # noqa: F401
                                 LambdaCallback, LearningRateScheduler, ModelCheckpoint,
                                 ReduceLROnPlateau)
from .training.callbacks import __all__  # noqa: F401
