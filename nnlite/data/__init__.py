"""Datasets and mini-batch loading.

>>> from nnlite.data import DataLoader, TensorDataset
>>> for xb, yb in DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, seed=0): ...
"""
from .dataset import Dataset, TensorDataset
from .loader import DataLoader

__all__ = ["Dataset", "TensorDataset", "DataLoader"]
