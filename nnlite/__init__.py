"""nnlite: a small, fast, readable neural-network library.

>>> import nnlite as nl
>>> model = nl.Sequential([nl.Flatten(), nl.Linear(784, 128), nl.ReLU(), nl.Linear(128, 10)])
>>> model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
"""
__version__ = "0.1.0"

# kernels first: everything else builds on them (hence not isort's order, I001)
from . import ops, random  # noqa: F401, I001
from . import layers, losses, optim, training, callbacks, data, datasets, io, models  # noqa: F401
from . import devices, utils  # noqa: F401
from .layers import *
from .config import show_config  # noqa: F401
# -- top-level names added by each part (keep one line per part) --
from .models import Sequential, load_model  # noqa: F401
from .training import frozen, train_step  # noqa: F401
set_seed = random.seed   # Keras' set_random_seed, PyTorch's manual_seed: the same generator
