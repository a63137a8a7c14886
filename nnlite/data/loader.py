"""``DataLoader``: mini-batches from a dataset, optionally reshuffled every epoch."""

import numpy as np

from .. import random as _random
from .._args import check_int, check_seed
from .dataset import Dataset, TensorDataset


def _as_dataset(data):
    if isinstance(data, TensorDataset):
        return data
    if isinstance(data, np.ndarray):
        return TensorDataset(data)
    if isinstance(data, tuple):
        return TensorDataset(*data)
    if isinstance(data, Dataset) or (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        return data
    raise TypeError("DataLoader: dataset must be a Dataset, a numpy array, or a tuple of arrays "
                    f"such as (x, y); got {type(data).__name__}")


def _collate(items):
    """Stack a list of samples into a tuple of arrays, one per field."""
    first = items[0]
    if isinstance(first, (tuple, list)):
        width = len(first)
        for item in items:
            if not isinstance(item, (tuple, list)) or len(item) != width:
                raise ValueError(f"DataLoader: samples have different structure ({first!r:.60} "
                                 f"vs {item!r:.60})")
        fields = [[item[k] for item in items] for k in range(width)]
    else:
        fields = [items]
    out = []
    for k, field in enumerate(fields):
        try:
            out.append(np.stack([np.asarray(v) for v in field]))
        except ValueError as e:
            shapes = sorted({np.shape(v) for v in field})
            raise ValueError(f"DataLoader: cannot stack field {k} of a batch, the samples have "
                             f"shapes {shapes}") from e
    return tuple(out)


class DataLoader:
    """Iterate over ``dataset`` in batches, each a tuple of numpy arrays.

    >>> loader = DataLoader((x, y), batch_size=64, shuffle=True, seed=0)
    >>> for xb, yb in loader: ...

    ``dataset`` is a ``Dataset`` (or anything with ``__len__``/``__getitem__``), a numpy array
    (batches are then 1-tuples), or a tuple of equally long arrays (wrapped in a
    ``TensorDataset``). ``TensorDataset`` batches are cut with one slice (no shuffle: views into
    the arrays, no copy) or one fancy index per array; other datasets are read item by item and
    stacked. ``shuffle=True`` draws a new permutation every epoch, from a generator seeded by
    ``seed`` (an int or ``numpy.random.Generator``; the same seed gives the same sequence of
    epochs) or, when ``seed`` is None, from ``nnlite.random``. ``drop_last`` skips a final
    partial batch. ``len(loader)`` is the number of batches per epoch.

    ``transform`` (see :mod:`nnlite.data.transforms`) is applied to the first field of every
    batch (the inputs, never the targets) as ``transform(xb, rng)``, with the generator the
    shuffle draws from: ``seed`` makes the augmented epochs repeatable too. Give it to the
    training loader only, not to the evaluation one.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, drop_last=False, seed=None,
                 transform=None):
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be a callable t(x, rng), e.g. "
                            f"nl.data.transforms.RandomShift(2), got {type(transform).__name__}")
        self.transform = transform
        self.batch_size = check_int("DataLoader", "batch_size", batch_size, low=1)
        check_seed("DataLoader", seed, generators=True)
        self.dataset = _as_dataset(dataset)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        # one generator for the loader's life: each epoch takes the next permutation from it
        self._rng = None if seed is None else _random.get_rng(seed)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self, n, rng):
        return rng.permutation(n) if self.shuffle else None

    def __iter__(self):
        ds, bs = self.dataset, self.batch_size
        n = len(ds)
        # read when the epoch starts (inside fit's epoch: that epoch's generator)
        rng = self._rng if self._rng is not None else _random.get_rng()
        order = self._order(n, rng)
        stop = (n // bs) * bs if self.drop_last else n
        fast = isinstance(ds, TensorDataset)
        for start in range(0, stop, bs):
            end = min(start + bs, n)
            if fast:
                index = slice(start, end) if order is None else order[start:end]
                batch = tuple(a[index] for a in ds.arrays)
            else:
                index = range(start, end) if order is None else order[start:end].tolist()
                batch = _collate([ds[i] for i in index])
            if self.transform is not None:
                batch = (self.transform(batch[0], rng), *batch[1:])
            yield batch

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed!r}"
                + ("" if self.transform is None else f", transform={self.transform!r}") + ")")
