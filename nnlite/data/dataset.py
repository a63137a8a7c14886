"""Datasets: anything with ``len(ds)`` and ``ds[i]``; ``TensorDataset`` wraps aligned arrays."""
import numpy as np


class Dataset:
    """Abstract dataset: subclasses implement ``__len__`` and ``__getitem__(i)``.

    ``ds[i]`` returns one sample, usually a tuple such as ``(x_i, y_i)``; ``DataLoader`` stacks
    the samples of a batch field by field.
    """

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


class TensorDataset(Dataset):
    """Aligned arrays indexed together along their first axis.

    >>> ds = TensorDataset(x, y)        # x: (N, ...), y: (N, ...)
    >>> xb, yb = ds[np.array([3, 1])]   # an int, slice or index array gives a tuple of arrays

    The arrays are kept as given (``np.asarray``, no copy).
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        arrays = tuple(np.asarray(a) for a in arrays)
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is a scalar; every array needs a "
                                 "first (sample) axis")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(f"array {i}: {a.shape}" for i, a in enumerate(arrays))
            raise ValueError(f"TensorDataset: all arrays need the same first dimension, got "
                             f"lengths {lengths} ({shapes})")
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __repr__(self):
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"TensorDataset({shapes})"
