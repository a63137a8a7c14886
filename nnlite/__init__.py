"""nnlite: a small, fast, readable neural-network library.

>>> import nnlite as nl
>>> model = nl.Sequential([nl.Flatten(), nl.Linear(784, 128), nl.ReLU(), nl.Linear(128, 10)])
>>> model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
"""
__version__ = "0.1.0"

from . import ops, random  # noqa: E402  (kernels first: everything else builds on them)
from . import layers, losses, optim, training, callbacks, data, datasets, io, models  # noqa: E402
from .layers import *  # noqa: E402,F401,F403
from .config import show_config  # noqa: E402
# -- top-level names added by each part (keep one line per part) --
from .models import Sequential, load_model  # noqa: E402
from .random import seed as set_seed  # noqa: E402  (Keras' set_random_seed, torch.manual_seed)
