"""Data augmentation (nnlite.data.transforms): shapes kept, reproducible from a seed, the
identities (flip twice, rotate by 0, shift by 0), and applied to training batches only, by
DataLoader(transform=) and fit(transform=)."""
import numpy as np
import pytest

import nnlite as nl
from nnlite.data import DataLoader
from nnlite.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomShift,
)


@pytest.fixture
def images():
    return np.random.default_rng(0).random((16, 9, 11)).astype(np.float32)


ALL = [RandomShift(2), RandomCrop(padding=3), RandomHorizontalFlip(), RandomRotation(15),
       Normalize(0.5, 0.25), Compose([RandomShift(1), RandomRotation(5)])]


@pytest.mark.parametrize("t", ALL, ids=repr)
@pytest.mark.parametrize("shape", [(16, 9, 11), (4, 3, 8, 8)])
def test_shape_and_dtype_kept_input_untouched(t, shape):
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    before = x.copy()
    y = t(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("t", ALL[:4] + ALL[5:], ids=repr)
def test_reproducible_with_the_seed_and_random_without(t, images):
    a = t(images, np.random.default_rng(7))
    np.testing.assert_array_equal(a, t(images, np.random.default_rng(7)))
    assert not np.array_equal(a, t(images, np.random.default_rng(8)))


def test_default_generator_is_nnlites():
    x = np.random.default_rng(0).random((8, 6, 6))
    nl.random.seed(3)
    a = RandomShift(2)(x)
    nl.random.seed(3)
    np.testing.assert_array_equal(a, RandomShift(2)(x))


def test_identities(images):
    flip = RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(flip(flip(images)), images)
    np.testing.assert_array_equal(flip(images), images[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(images), images)
    np.testing.assert_array_equal(RandomRotation(0)(images), images)
    np.testing.assert_array_equal(RandomRotation(30).rotate(images, np.zeros(16)), images)
    np.testing.assert_array_equal(RandomShift(0)(images), images)


def test_shift_moves_each_image_by_at_most_the_shift():
    x = np.zeros((200, 9, 9), np.float32)
    x[:, 4, 4] = 1                                   # one dot in the middle
    y = RandomShift(2)(x, np.random.default_rng(0))
    rows, cols = np.nonzero(y.sum(axis=2))[1], np.nonzero(y.sum(axis=1))[1]
    assert (y.reshape(200, -1).sum(axis=1) == 1).all()      # the dot moved, not lost
    assert set(rows.tolist()) == set(range(2, 7)) and set(cols.tolist()) == set(range(2, 7))


def test_rotation_by_90_degrees_is_exact_on_a_square():
    x = np.random.default_rng(0).random((3, 7, 7))
    got = RandomRotation(90).rotate(x, np.full(3, 90.0))
    np.testing.assert_array_equal(got, np.rot90(x, k=1, axes=(1, 2)))
    back = RandomRotation(90).rotate(got, np.full(3, -90.0))
    np.testing.assert_array_equal(back, x)


def test_rotation_keeps_the_mass_of_a_centred_digit_roughly():
    (x, _), _ = nl.datasets.load_mnist_sample()
    x = x[:50].astype(np.float32) / 255
    y = RandomRotation(15)(x, np.random.default_rng(0))
    ratio = y.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    assert not np.array_equal(x, y)


def test_normalize_per_channel():
    x = np.ones((2, 3, 4, 4), np.float32) * np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1)
    y = Normalize([1, 2, 3], [1, 2, 4])(x)
    np.testing.assert_allclose(y, 0)
    np.testing.assert_allclose(Normalize(1, 2)(np.full((1, 2, 2), 5.0)), 2)
    with pytest.raises(ValueError, match=r"3 per-channel values need images \(N, 3, H, W\)"):
        Normalize([1, 2, 3], [1, 1, 1])(np.zeros((2, 4, 4)))


@pytest.mark.parametrize("make, match", [
    (lambda: RandomShift(-1), "int >= 0"), (lambda: RandomShift(1.5), "int >= 0"),
    (lambda: RandomRotation(-3), "degrees"), (lambda: RandomHorizontalFlip(2), "p must"),
    (lambda: Normalize(0, 0), "std"), (lambda: Compose([1]), "transforms\\[0\\]")])
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_flat_rows_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"RandomShift: .*got shape \(4, 784\).*reshape"):
        RandomShift(1)(np.zeros((4, 784)))


# -- in the DataLoader and in fit ---------------------------------------------------------
def test_dataloader_applies_to_inputs_only_and_is_seeded(images):
    y = np.arange(16)
    aug = Compose([RandomShift(2), RandomHorizontalFlip()])

    def epochs(seed):
        loader = DataLoader((images, y), batch_size=5, shuffle=True, seed=seed, transform=aug)
        return [b for _ in range(2) for b in loader]

    a, b = epochs(0), epochs(0)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert sorted(np.concatenate([yb for _, yb in a[:4]]).tolist()) == list(range(16))
    plain = DataLoader((images, y), batch_size=5, shuffle=True, seed=0)
    assert any(not np.array_equal(xa, xp) for (xa, _), (xp, _) in zip(a, plain))
    assert "transform=Compose" in repr(DataLoader(images, transform=aug))
    with pytest.raises(TypeError, match="transform must be a callable"):
        DataLoader(images, transform="flip")


class Recorder:
    """A transform that records the batches it sees and zeroes them."""

    def __init__(self):
        self.seen = []

    def __call__(self, x, rng=None):
        self.seen.append(len(x))
        return np.zeros_like(x)


def model():
    nl.random.seed(0)
    m = nl.Sequential([nl.Flatten(), nl.Linear(16, 3)])
    return m.compile(optimizer=nl.optim.SGD(lr=0.1), loss="cross_entropy")


def test_fit_transform_applies_to_training_batches_only():
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 4, 4)).astype(np.float32), rng.integers(0, 3, 50)
    rec = Recorder()
    m = model()
    w0 = m.get_weights()
    hist = m.fit(x, y, batch_size=10, epochs=2, validation_split=0.2, transform=rec, verbose=0,
                 seed=0)
    assert rec.seen == [10] * 8                     # 40 training samples, twice; no validation
    # trained on zeros only: W never moved, only the bias did
    np.testing.assert_array_equal(m.get_weights()[0], w0[0])
    assert hist.history["val_loss"][-1] == pytest.approx(m.evaluate(x[40:], y[40:])["loss"])


def test_fit_transform_is_reproducible_from_the_seed():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6, 6)).astype(np.float32), rng.integers(0, 3, 40)
    runs = []
    for _ in range(2):
        nl.random.seed(0)
        m = nl.Sequential([nl.Flatten(), nl.Linear(36, 3)])
        m.compile(optimizer="adam", loss="cross_entropy")
        m.fit(x, y, batch_size=8, epochs=2, transform=RandomRotation(20), verbose=0, seed=5)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_fit_with_a_transforming_dataloader():
    rng = np.random.default_rng(0)
    x, y = rng.random((30, 4, 4)).astype(np.float32), rng.integers(0, 3, 30)
    rec = Recorder()
    m = model()
    m.fit(DataLoader((x, y), batch_size=10, transform=rec), epochs=1, verbose=0,
          validation_data=DataLoader((x, y), batch_size=10))
    assert rec.seen == [10, 10, 10]
