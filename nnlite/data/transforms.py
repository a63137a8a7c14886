"""Data augmentation: random perturbations of a batch of images, applied per batch.

>>> aug = Compose([RandomShift(2), RandomRotation(10), Normalize(0.1307, 0.3081)])
>>> loader = DataLoader((x, y), batch_size=64, shuffle=True, seed=0, transform=aug)
>>> model.fit(x, y, transform=aug)                 # the same, inside fit

A transform is a callable ``t(x, rng=None) -> x'`` on a whole batch: ``x`` of shape
``(N, H, W)`` or ``(N, C, H, W)`` (the last two axes are the image; channels first, as
PyTorch), ``x'`` a new array (the input, often a view of the data set, is never written).
Each image of the batch gets its own random draw, all of them in vectorised numpy: no Python
loop over the images. ``rng`` (a ``numpy.random.Generator``) gives the randomness; None takes
:mod:`nnlite.random`'s generator, which ``fit`` replaces by the epoch's own
(``nl.random.epoch_rng(seed, epoch)``), so an augmented run is reproducible from its seed. A
``DataLoader`` with a ``seed`` passes its own generator.

Augmentation is for training data only: ``fit(..., transform=)`` applies it to the training
batches, never to ``validation_data``/``validation_split``, ``evaluate`` or ``predict``.
"""
import numpy as np

from .. import random as _random


def _images(x, what):
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{what}: expected a batch of images (N, H, W) or (N, C, H, W), got "
                         f"shape {x.shape}; reshape flat rows first, e.g. x.reshape(-1, 28, 28)")
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{what}: images must be numeric, got dtype {x.dtype}")
    return x


def _float(x):
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def _sample(x, rows, cols, fill):
    """``out[n, ..., i, j] = x[n, ..., rows[n, i, j], cols[n, i, j]]``, ``fill`` where the
    (integer) source lies outside the image: one gather for the whole batch."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    r, c = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    b = np.arange(n).reshape(n, 1, 1)
    if x.ndim == 3:
        out = x[b, r, c]
    else:                                   # (N, C, H, W): the same move for every channel
        out = np.moveaxis(x, 1, -1)[b, r, c]            # (N, H, W, C)
        out = np.moveaxis(out, -1, 1)
        inside = inside[:, None]
    return np.where(inside, out, np.asarray(fill, dtype=out.dtype))


class Transform:
    """Base class: subclasses implement ``__call__(x, rng=None)`` on a batch and
    ``__repr__``."""

    def __call__(self, x, rng=None):
        raise NotImplementedError(f"{type(self).__name__}.__call__")


class Compose(Transform):
    """Apply ``transforms`` one after the other (each draws from the same generator).

    Parameters
    ----------
    transforms : list of callables ``t(x, rng)``
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: transforms[{i}] is a {type(t).__name__}, not a "
                                f"callable t(x, rng)")
        self.transforms = transforms

    def __call__(self, x, rng=None):
        rng = _random.get_rng(rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomShift(Transform):
    r"""Move each image by a random whole number of pixels, up to ``max_shift`` in each
    direction, the uncovered border filled with ``fill``.

    .. math:: x'_{n,i,j} = x_{n,\,i - d^y_n,\,j - d^x_n}, \qquad
              d^y_n, d^x_n \sim \mathcal U\{-s, \dots, s\}

    This is ``RandomCrop(size=(H, W), padding=s)``: pad by ``s`` on every side, cut an
    ``H x W`` window at a random place.

    Parameters
    ----------
    max_shift : int >= 0
    fill : float
        The value of the pixels shifted in (0: black background, as MNIST's).
    """

    def __init__(self, max_shift, fill=0.0):
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or \
                max_shift < 0:
            raise ValueError(f"{type(self).__name__}: the shift must be an int >= 0, got "
                             f"{max_shift!r}")
        self.max_shift, self.fill = int(max_shift), float(fill)

    def __call__(self, x, rng=None):
        x = _images(x, type(self).__name__)
        if self.max_shift == 0:
            return x.copy()
        rng = _random.get_rng(rng)
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        s = self.max_shift
        dy = rng.integers(-s, s + 1, size=(n, 1, 1))
        dx = rng.integers(-s, s + 1, size=(n, 1, 1))
        rows = np.arange(h).reshape(1, h, 1) - dy
        cols = np.arange(w).reshape(1, 1, w) - dx
        return _sample(x, np.broadcast_to(rows, (n, h, w)), np.broadcast_to(cols, (n, h, w)),
                       self.fill)

    def __repr__(self):
        return f"{type(self).__name__}({self.max_shift})"


class RandomCrop(RandomShift):
    """PyTorch's ``RandomCrop(size, padding)`` for a crop the size of the image: pad every side
    by ``padding`` pixels of ``fill``, cut a window of the original size at a random place.
    The same as ``RandomShift(padding)``."""

    def __init__(self, padding, fill=0.0):
        super().__init__(padding, fill)

    def __repr__(self):
        return f"RandomCrop(padding={self.max_shift})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``.

    Not for digits (a mirrored 2 is no digit); for photographs and clothes (Fashion-MNIST).
    """

    def __init__(self, p=0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        x = _images(x, "RandomHorizontalFlip")
        flip = _random.get_rng(rng).random(len(x)) < self.p
        flip = flip.reshape((-1,) + (1,) * (x.ndim - 1))
        return np.where(flip, x[..., ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation(Transform):
    r"""Rotate each image about its centre by a random angle in ``[-degrees, degrees]``.

    Each output pixel takes the input pixel nearest to where the rotation brings it from
    (inverse mapping, nearest neighbour), ``fill`` where that lies outside the image:

    .. math:: \begin{pmatrix} i' \\ j' \end{pmatrix} = R(-\theta_n)
              \begin{pmatrix} i - c_i \\ j - c_j \end{pmatrix} + c, \qquad
              \theta_n \sim \mathcal U[-d, d]

    One gather for the whole batch. An angle of 0 gives the image back exactly.

    Parameters
    ----------
    degrees : float >= 0
    fill : float
    """

    def __init__(self, degrees, fill=0.0):
        if not np.isfinite(degrees) or degrees < 0:
            raise ValueError(f"RandomRotation: degrees must be a finite number >= 0, got "
                             f"{degrees!r}")
        self.degrees, self.fill = float(degrees), float(fill)

    def rotate(self, x, angles):
        """``x`` (N, [C,] H, W) rotated by ``angles`` (N,) degrees, counter-clockwise."""
        x = _images(x, "RandomRotation")
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        t = np.deg2rad(np.asarray(angles, np.float64)).reshape(n, 1, 1)
        ci, cj = (h - 1) / 2, (w - 1) / 2
        i = np.arange(h).reshape(1, h, 1) - ci
        j = np.arange(w).reshape(1, 1, w) - cj
        cos, sin = np.cos(t), np.sin(t)
        # where output pixel (i, j) comes from: the inverse rotation (rows grow downwards)
        src_i = cos * i + sin * j + ci
        src_j = -sin * i + cos * j + cj
        return _sample(x, np.rint(src_i).astype(np.intp), np.rint(src_j).astype(np.intp),
                       self.fill)

    def __call__(self, x, rng=None):
        x = _images(x, "RandomRotation")
        angles = _random.get_rng(rng).uniform(-self.degrees, self.degrees, size=len(x))
        return self.rotate(x, angles)

    def __repr__(self):
        return f"RandomRotation({self.degrees:g})"


class Normalize(Transform):
    r"""Standardise: :math:`x' = (x - \mu) / \sigma`, per channel for ``(N, C, H, W)``.

    Not random. Apply the same ``Normalize`` to the evaluation data yourself (``fit`` applies
    ``transform`` to training batches only), or better, normalise the arrays once beforehand
    and augment with the random transforms alone.

    Parameters
    ----------
    mean, std : float or sequence of float (one per channel)
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError("Normalize: mean and std must be numbers or one per channel")
        if not np.all(np.isfinite(self.std)) or np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be finite and > 0, got {std!r}")

    def __call__(self, x, rng=None):
        x = _float(_images(x, "Normalize"))
        mean, std = self.mean, self.std
        if mean.ndim or std.ndim:
            c = max(mean.size, std.size)
            if x.ndim != 4 or x.shape[1] != c:
                raise ValueError(f"Normalize: {c} per-channel values need images (N, {c}, H, "
                                 f"W), got shape {x.shape}")
            mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        return ((x - mean) / std).astype(x.dtype, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


__all__ = ["Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomRotation",
           "RandomShift", "Transform"]
