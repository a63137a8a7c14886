"""nnlite.data: Dataset, TensorDataset, DataLoader."""
import numpy as np
import pytest

import nnlite as nl
from nnlite.data import DataLoader, Dataset, TensorDataset


def xy(n=10):
    y = np.arange(n)
    x = np.stack([y * 10, y * 10 + 1], axis=1).astype(np.float32)  # row i = [10 i, 10 i + 1]
    return x, y


class ListDataset(Dataset):
    """A generic (non-Tensor) dataset: samples come one at a time."""

    def __init__(self, x, y=None):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] if self.y is None else (self.x[i], int(self.y[i]))


# ---- TensorDataset ----------------------------------------------------------------------

def test_tensor_dataset_indexing():
    x, y = xy()
    ds = TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    assert yi == 3 and np.array_equal(xi, [30, 31])
    xb, yb = ds[np.array([4, 1])]
    assert np.array_equal(yb, [4, 1]) and xb.shape == (2, 2)
    assert np.array_equal(ds[2:5][1], [2, 3, 4])
    assert ds.arrays[0] is x  # no copy


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match=r"same first dimension.*\[10, 9\]"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


def test_abstract_dataset():
    with pytest.raises(NotImplementedError):
        len(Dataset())
    with pytest.raises(NotImplementedError):
        Dataset()[0]


# ---- DataLoader: order, sizes, len --------------------------------------------------------

def test_sequential_batches_and_len():
    x, y = xy(10)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    assert np.array_equal(np.concatenate([b[1] for b in batches]), y)
    assert np.array_equal(np.concatenate([b[0] for b in batches]), x)
    assert np.shares_memory(batches[0][0], x)  # unshuffled batches are views (no copy)


def test_drop_last():
    x, y = xy(10)
    loader = DataLoader((x, y), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [len(b[1]) for b in loader] == [4, 4]
    assert len(DataLoader((x, y), batch_size=20, drop_last=True)) == 0
    assert list(DataLoader((x, y), batch_size=20, drop_last=True)) == []
    assert len(DataLoader((x, y), batch_size=5, drop_last=True)) == 2
    assert len(DataLoader((x, y), batch_size=5)) == 2
    loader = DataLoader((x, y), batch_size=4, shuffle=True, drop_last=True, seed=0)
    assert sorted(len(b[1]) for b in loader) == [4, 4]


def test_empty_dataset():
    loader = DataLoader((np.zeros((0, 3)), np.zeros(0)), batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 0 and list(loader) == []


def test_array_and_tuple_convenience():
    x, y = xy(7)
    batches = list(DataLoader(x, batch_size=3))
    assert all(len(b) == 1 for b in batches)  # a plain array gives 1-tuples
    assert np.array_equal(np.concatenate([b[0] for b in batches]), x)
    (xb, yb), = list(DataLoader((x, y), batch_size=7))
    assert np.array_equal(xb, x) and np.array_equal(yb, y)


# ---- shuffling and seeds ------------------------------------------------------------------

def epochs(loader, k=3):
    return [np.concatenate([b[-1] for b in loader]) for _ in range(k)]


def test_shuffle_is_a_new_permutation_each_epoch_and_keeps_pairs():
    x, y = xy(50)
    loader = DataLoader((x, y), batch_size=8, shuffle=True, seed=1)
    for xb, yb in loader:
        assert np.array_equal(xb[:, 0], yb * 10)  # x and y stay aligned
    orders = epochs(loader)
    for o in orders:
        assert np.array_equal(np.sort(o), y)
        assert not np.array_equal(o, y)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])


def test_seed_is_repeatable():
    x, y = xy(50)
    a = epochs(DataLoader((x, y), batch_size=8, shuffle=True, seed=7))
    b = epochs(DataLoader((x, y), batch_size=8, shuffle=True, seed=7))
    c = epochs(DataLoader((x, y), batch_size=8, shuffle=True, seed=8))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    g = epochs(DataLoader((x, y), batch_size=8, shuffle=True, seed=np.random.default_rng(7)))
    assert all(np.array_equal(p, q) for p, q in zip(a, g))


def test_no_seed_uses_nnlite_random():
    x, y = xy(50)
    loader = DataLoader((x, y), batch_size=8, shuffle=True)
    nl.random.seed(3)
    a = epochs(loader, 2)
    nl.random.seed(3)
    b = epochs(loader, 2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


# ---- generic datasets ----------------------------------------------------------------------

def test_generic_dataset_matches_fast_path():
    x, y = xy(23)
    fast = list(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, seed=4))
    slow = list(DataLoader(ListDataset(x, y), batch_size=5, shuffle=True, seed=4))
    assert len(fast) == len(slow) == 5
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert np.array_equal(xf, xs) and np.array_equal(yf, ys)
        assert xs.dtype == np.float32 and ys.shape == yf.shape
    single = list(DataLoader(ListDataset(x), batch_size=10))
    assert [len(b) for b in single] == [1, 1, 1] and single[0][0].shape == (10, 2)


def test_tensor_dataset_fast_path_does_not_go_item_by_item():
    class NoItems(TensorDataset):
        def __getitem__(self, index):
            raise AssertionError("item-by-item access")

    x, y = xy(20)
    loader = DataLoader(NoItems(x, y), batch_size=6, shuffle=True, seed=0)
    assert sum(len(b[1]) for b in loader) == 20


def test_unstackable_samples():
    class Ragged(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.zeros(i + 1), 0

    with pytest.raises(ValueError, match="cannot stack field 0"):
        list(DataLoader(Ragged(), batch_size=3))


# ---- argument errors -------------------------------------------------------------------------

@pytest.mark.parametrize("bs", [0, -1])
def test_batch_size_too_small(bs):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(xy(), batch_size=bs)


@pytest.mark.parametrize("bs", [2.5, True, "3", None])
def test_batch_size_not_int(bs):
    with pytest.raises(TypeError, match="batch_size must be an int"):
        DataLoader(xy(), batch_size=bs)


def test_other_argument_errors():
    with pytest.raises(TypeError, match="seed"):
        DataLoader(xy(), seed="abc")
    with pytest.raises(TypeError, match="dataset must be"):
        DataLoader(5)
    with pytest.raises(ValueError, match="same first dimension"):
        DataLoader((np.zeros(3), np.zeros(4)))
    assert DataLoader(xy(), batch_size=np.int64(4)).batch_size == 4
