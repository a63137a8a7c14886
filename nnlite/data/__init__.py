"""Datasets and mini-batch loading.

>>> from nnlite.data import DataLoader, TensorDataset
>>> for xb, yb in DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, seed=0): ...

Character-level text (``text.py``): ``CharTokenizer``, ``train_val_split``,
``RandomWindowSampler`` (random (x, y) next-token windows from one long id sequence).

Augmentation (``transforms.py``): ``Compose``, ``RandomShift``/``RandomCrop``,
``RandomHorizontalFlip``, ``RandomRotation``, ``Normalize``, applied per batch by
``DataLoader(..., transform=)`` or ``fit(..., transform=)``.
"""
from . import transforms  # noqa: F401
from .dataset import Dataset, TensorDataset
from .loader import DataLoader
from .text import CharTokenizer, RandomWindowSampler, train_val_split

__all__ = ["Dataset", "TensorDataset", "DataLoader", "CharTokenizer", "RandomWindowSampler",
           "train_val_split", "transforms"]
