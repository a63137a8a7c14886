"""Data adapters: what ``fit``/``evaluate`` take as data, turned into per-epoch batch iterators.

Keras' ``trainers/data_adapters`` and ``epoch_iterator.py``, in small. An adapter has
``steps`` (batches per epoch, the progress bar's target) and ``epoch()``, a generator of that
epoch's ``(xb, yb)`` batches, already typed for the model:

* :class:`ArrayAdapter`: arrays ``(x, y)``, converted once to the model's input dtype, cut
  into ``batch_size`` slices, reshuffled each epoch when asked;
* :class:`IterableAdapter`: any iterable of ``(xb, yb)`` batches (a ``DataLoader``, a
  ``RandomWindowSampler``, a generator), ``steps`` of them per epoch, each batch typed as it
  arrives.

:func:`fit_adapters` and :func:`evaluate_adapter` pick one from the arguments of ``fit`` and
``evaluate`` and check them; ``fit``'s validation data (``validation_data`` arrays or batches,
or the ``validation_split`` tail) comes back as one more adapter.

>>> train, val = fit_adapters(x, y, np.float32, batch_size=32, shuffle=True, seed=0,
...                           validation_split=0.1)
>>> for xb, yb in train.epoch(): ...             # (xb, yb, wb) with sample weights

Arrays stay where they are: numpy arrays (the usual case) give numpy batches, which ``fit``
moves to the model's device one batch at a time; arrays already on a GPU (CuPy) are batched
there. Sample and class weights are computed on the host.
"""
import math

import numpy as np

from .. import devices, ops
from .. import random as _random
from .._args import is_int

VALIDATION_BATCH_SIZE = 256     # evaluation holds no gradients: larger batches, fewer calls


# -- typing the data -------------------------------------------------------------------------
def _own(a):
    """``a``, or, for another library's CUDA array (a torch CUDA tensor), a CuPy view of it:
    arrays stay on the device they are on."""
    if hasattr(a, "__cuda_array_interface__") and ops.array_module(a) is np:
        return devices.to_device(a, "cuda")
    return a


def as_x(x, dtype, what="x"):
    """``x`` converted once to ``dtype`` (so no layer casts it per batch)."""
    x = _own(x)
    xp = ops.array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{what} must have a batch axis, got a scalar")
    return xp.ascontiguousarray(x, dtype=dtype)


def prepare(x, y, dtype, what="x", check=True):
    """Arrays ``(x, y)`` checked and typed: ``x`` in ``dtype``, float targets in ``x``'s float
    dtype, integer labels left as they are.

    Parameters
    ----------
    what : str
        The name of ``x`` in messages (``"x"``, ``"x_val"``); ``y`` is named after it.
    check : bool
        Refuse NaN/inf, naming the first bad sample (``fit``: training on them ruins the
        weights; ``evaluate`` skips the pass over the data).
    """
    x, y = as_x(x, dtype, what), _own(y)
    yp = ops.array_module(y)
    y = yp.asarray(y)
    ywhat = "y" if what == "x" else f"{what} targets"
    if y.ndim == 0:
        raise ValueError(f"{ywhat} must have a batch axis, got a scalar")
    if len(x) != len(y):
        raise ValueError(f"{what} and {ywhat} must have the same number of samples: "
                         f"{what} has {len(x)}, {ywhat} has {len(y)}")
    if y.dtype.kind in "fb":        # float targets in the model's dtype; labels stay ints
        y = yp.ascontiguousarray(y, dtype=x.dtype if x.dtype.kind == "f" else np.float32)
    if check:
        for name, a in ((what, x), (ywhat, y)):
            xp = ops.array_module(a)
            if a.dtype.kind == "f" and not xp.isfinite(a).all():
                bad = devices.to_host(~xp.isfinite(a.reshape(len(a), -1)).all(axis=1))
                i = int(np.flatnonzero(bad)[0])
                kind = "NaN" if xp.isnan(a[i]).any() else "inf"
                raise ValueError(f"{name} contains {kind} at sample {i} "
                                 f"({int(bad.sum())} sample(s) affected); clean or drop them "
                                 f"before training")
    return x, y


def cast_x(xb, dtype):
    """An input batch from an iterable in ``dtype`` (floats and integers alike for a float
    model; integers only for an Embedding first, so float "ids" reach it unchanged and it
    says so)."""
    xb = _own(xb)
    xp = ops.array_module(xb)
    xb, want = xp.asarray(xb), np.dtype(dtype)
    if xb.dtype != want and (want.kind == "f" or xb.dtype.kind in "iub"):
        xb = xp.ascontiguousarray(xb, dtype=want)
    return xb


def cast_batch(xb, yb, dtype):
    """A batch from an iterable, typed as :func:`prepare` types arrays: float inputs and
    targets in ``dtype``, integer ids and labels left as they are."""
    yb = _own(yb)
    yp = ops.array_module(yb)
    xb, yb = cast_x(xb, dtype), yp.asarray(yb)
    if yb.dtype.kind in "fb":
        yb = yp.ascontiguousarray(yb, dtype=xb.dtype if xb.dtype.kind == "f" else np.float32)
    return xb, yb


# -- checks ----------------------------------------------------------------------------------
def is_batch_iterable(x):
    """An iterable of batches (DataLoader, sampler, generator), not an array or a sequence of
    numbers that ``np.asarray`` would take as data."""
    if isinstance(x, (np.ndarray, list, tuple, str, bytes, dict)) or np.isscalar(x):
        return False
    if ops.array_module(x) is not np or hasattr(x, "__cuda_array_interface__"):
        return False                # a GPU array (CuPy's, a torch CUDA tensor)
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def check_count(value, what):
    """``value`` as an int >= 1, or None; ``what`` names the argument in the error."""
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def unpack(batch, what):
    """``batch`` if it is an ``(xb, yb)`` pair or an ``(xb, yb, sample_weight)`` triple (as
    Keras'); else a TypeError saying what came instead."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        got = f"a {type(batch).__name__} of length {len(batch)}" if isinstance(
            batch, (tuple, list)) else f"a {type(batch).__name__}"
        raise TypeError(f"{what} must yield (xb, yb) batches (or (xb, yb, sample_weight)), "
                        f"got {got}")
    return batch


# -- sample and class weights ----------------------------------------------------------------
def check_sample_weight(w, n, what="sample_weight"):
    """``w`` as a float64 numpy array of shape (n,): finite, >= 0."""
    w = devices.to_host(w)
    if w.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), one weight per sample, got shape "
                         f"{w.shape}")
    w = w.astype(np.float64)
    if not (np.isfinite(w).all() and (w >= 0).all()):
        i = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0)))[0])
        raise ValueError(f"{what} must be finite and >= 0, got {w[i]} at sample {i}")
    return w


def check_class_weight(class_weight):
    """``class_weight`` ``{class index: weight}`` as a lookup array (NaN: no weight given)."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"class_weight must be a dict {{class index: weight}}, e.g. {{0: 1.0, "
                        f"1: 5.0}}, got {class_weight!r}")
    for k, v in class_weight.items():
        if not is_int(k) or k < 0:
            raise ValueError(f"class_weight keys must be class indices (ints >= 0), got {k!r}")
        if not isinstance(v, (int, float, np.number)) or not (math.isfinite(v) and v >= 0):
            raise ValueError(f"class_weight[{k}] must be a finite number >= 0, got {v!r}")
    table = np.full(max(class_weight) + 1, np.nan)
    for k, v in class_weight.items():
        table[int(k)] = v
    return table


def class_weights(y, table):
    """One weight per sample, ``table[class]``, for the targets ``y``: integer labels (N,),
    binary 0/1 targets (N,) or (N, 1), or one-hot rows (N, C) (their argmax). A numpy
    array (targets on a GPU are copied over: small)."""
    y = devices.to_host(y)
    if y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)
    elif y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        labels = np.rint(y.reshape(-1)).astype(np.int64)
    else:
        raise ValueError(f"class_weight needs one class per sample: labels (N,), binary targets "
                         f"(N, 1) or one-hot (N, C); got targets of shape {y.shape} (weigh "
                         f"samples or positions with sample_weight instead)")
    ok = (labels >= 0) & (labels < len(table))
    w = np.full(len(labels), np.nan)
    w[ok] = table[labels[ok]]
    if np.isnan(w).any():
        missing = sorted(set(labels[np.isnan(w)].tolist()))
        known = ", ".join(str(k) for k in np.flatnonzero(~np.isnan(table)))
        raise ValueError(f"class_weight has no weight for class {missing[0]} (it has {known}); "
                         f"give one for every class, e.g. 1.0")
    return w


# -- adapters --------------------------------------------------------------------------------
class ArrayAdapter:
    """Batches of ``batch_size`` samples (the last one shorter) from typed arrays.

    Parameters
    ----------
    x, y : ndarray of shape (N, ...)
        As :func:`prepare` returns them; batches are views (in order) or fancy-indexed
        copies (shuffled), never cast again.
    batch_size : int >= 1
    shuffle : bool
        A new permutation from ``rng`` each epoch, drawn when the epoch starts.
    rng : numpy.random.Generator, optional
        Default: the library-wide generator (:func:`nnlite.random.get_rng`) as it is when
        each epoch starts (``fit`` installs the epoch's own there).
    w : ndarray of shape (N,), optional
        Sample weights (:func:`check_sample_weight`): the batches are then
        ``(xb, yb, wb)`` triples.
    """

    def __init__(self, x, y, batch_size, shuffle=False, rng=None, w=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y, self.w, self.batch_size = x, y, w, int(batch_size)
        self.shuffle, self.rng = shuffle, rng
        self.steps = -(-len(x) // self.batch_size)

    def epoch(self):
        """A generator of this epoch's (xb, yb) batches, or (xb, yb, wb) with weights."""
        arrays = (self.x, self.y) if self.w is None else (self.x, self.y, self.w)
        n, size = len(self.x), self.batch_size
        order = _random.get_rng(self.rng).permutation(n) if self.shuffle else None
        for lo in range(0, n, size):
            idx = slice(lo, lo + size) if order is None else order[lo:lo + size]
            yield tuple(_take(a, idx) for a in arrays)


def _take(a, idx):
    """``a[idx]``; a host index array goes to ``a``'s device first (a GPU array's batch)."""
    if isinstance(idx, np.ndarray) and not isinstance(a, np.ndarray):
        idx = ops.array_module(a).asarray(idx)
    return a[idx]


class IterableAdapter:
    """Batches from an iterable, ``steps`` per epoch, each typed by :func:`cast_batch`.

    With ``steps`` None the iterable needs ``len()`` and each epoch is one fresh pass. With
    ``steps`` set, one iterator is kept across epochs (``per_epoch_iterator=False``: training,
    so an endless sampler continues) or taken anew each epoch (validation: a DataLoader
    restarts, a generator continues); an iterator that runs out is restarted when the
    iterable can be iterated again.

    Parameters
    ----------
    data : iterable of (xb, yb)
    dtype : numpy dtype
        The model's input dtype.
    what : str
        The argument's name in messages (``"x"``, ``"validation_data"``).
    steps : int, optional
        Batches per epoch.
    per_epoch_iterator : bool
    arg : str
        The name of the ``steps`` argument in messages.
    """

    def __init__(self, data, dtype, what, steps, per_epoch_iterator, arg="steps_per_epoch"):
        self.data, self.dtype, self.what = data, dtype, what
        self.steps = check_count(steps, arg)
        self.full_pass = self.steps is None
        if self.full_pass:
            try:
                self.steps = len(data)
            except TypeError:
                raise ValueError(f"{what} is an iterable of type {type(data).__name__} without "
                                 f"len(): pass {arg}=N (batches per epoch)") from None
        self.per_epoch_iterator = per_epoch_iterator
        self.reiterable = not hasattr(data, "__next__")     # an iterator is its own iter()
        self._it = None

    def epoch(self):
        """A generator of this epoch's (xb, yb) batches; draws lazily (no batch is taken
        that training does not use). Fewer than ``steps`` when the data runs out."""
        if self.full_pass or self.per_epoch_iterator or self._it is None:
            self._it = iter(self.data)
        restarted = False
        n = 0
        while n < self.steps:
            try:
                batch = next(self._it)
            except StopIteration:
                if self.full_pass or restarted or not self.reiterable:
                    return          # exhausted (a generator cannot start again)
                self._it, restarted = iter(self.data), True
                continue
            restarted = False
            n += 1
            xb, yb, *wb = unpack(batch, self.what)
            yield (*cast_batch(xb, yb, self.dtype), *wb)


# -- choosing the adapter --------------------------------------------------------------------
class TransformAdapter:
    """``fit(..., transform=)``: the training batches of ``adapter`` with ``transform(xb,
    rng)`` applied to their inputs (data augmentation, :mod:`nnlite.data.transforms`), cast
    back to ``dtype``. ``rng`` is :mod:`nnlite.random`'s generator when each batch is made,
    which ``fit`` sets to the epoch's own: the augmentation follows the run's seed."""

    def __init__(self, adapter, transform, dtype):
        if not callable(transform):
            raise TypeError(f"fit: transform must be a callable t(x, rng), e.g. "
                            f"nl.data.transforms.RandomShift(2), got {type(transform).__name__}")
        self.adapter, self.transform, self.dtype = adapter, transform, dtype
        self.steps = adapter.steps

    def epoch(self):
        for xb, *rest in self.adapter.epoch():
            yield (cast_x(self.transform(xb, _random.get_rng()), self.dtype), *rest)


def split_validation(x, y, validation_split):
    """``(x, y, x_val, y_val)``: the *last* ``validation_split`` of the samples held out, taken
    before any shuffling (as Keras)."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
    split_at = math.ceil(len(x) * (1.0 - validation_split))
    if split_at in (0, len(x)):
        raise ValueError(f"validation_split={validation_split} of {len(x)} samples "
                         f"leaves an empty training or validation set")
    return x[:split_at], y[:split_at], x[split_at:], y[split_at:]


def validation_adapter(data, steps, dtype, batch_size):
    """The adapter of ``fit``'s ``validation_data`` (None without), batches of ``batch_size``
    for arrays, ``steps`` batches (default a full pass) for an iterable."""
    if data is None:
        if steps is not None:
            raise ValueError("validation_steps given without validation_data")
        return None
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val) or an iterable of "
                             "(xb, yb) batches")
        x, y = prepare(*data, dtype, what="x_val")
        if len(x) == 0:
            raise ValueError("validation_data holds 0 samples")
        return ArrayAdapter(x, y, batch_size)
    if not is_batch_iterable(data):
        raise ValueError(f"validation_data must be a tuple (x_val, y_val) or an iterable of "
                         f"(xb, yb) batches, got {type(data).__name__}")
    return IterableAdapter(data, dtype, "validation_data", steps, per_epoch_iterator=True,
                           arg="validation_steps")


def fit_adapters(x, y, dtype, batch_size=32, shuffle=True, seed=None, steps_per_epoch=None,
                 validation_data=None, validation_split=0.0, validation_steps=None,
                 sample_weight=None):
    """``(train, val)``: the adapters of ``fit``'s training and validation data (``val`` None
    without validation), the arguments checked as ``fit`` documents them.

    Arrays ``(x, y)`` are typed once (:func:`prepare`), split when ``validation_split`` and no
    ``validation_data``, and shuffled with ``np.random.default_rng(seed)`` (with ``seed``
    None, as ``fit`` calls it: ``nl.random``'s generator at the start of each epoch). An
    iterable ``x`` (``y`` None) brings its own batches: ``batch_size``, ``shuffle``, ``seed``
    do not apply and ``validation_split`` is refused.
    Validation arrays are evaluated in batches of at least :data:`VALIDATION_BATCH_SIZE`.
    ``sample_weight`` (arrays only) follows its samples through the split and the shuffling.
    """
    if y is None and is_batch_iterable(x):
        if sample_weight is not None:
            raise ValueError("sample_weight applies to arrays (x, y); an iterable x can yield "
                             "(xb, yb, sample_weight) batches instead")
        if validation_split:
            raise ValueError("validation_split needs arrays (x, y); with batches from an "
                             "iterable pass validation_data=<iterable> (and validation_steps)")
        train = IterableAdapter(x, dtype, "x", steps_per_epoch, per_epoch_iterator=False)
        return train, validation_adapter(validation_data, validation_steps, dtype,
                                         VALIDATION_BATCH_SIZE)
    if y is None:
        raise ValueError(f"fit() needs targets y for x of type {type(x).__name__}; or pass "
                         f"an iterable of (xb, yb) batches as x (with y=None)")
    if steps_per_epoch is not None:
        raise ValueError("steps_per_epoch applies to an iterable x (batches); with "
                         "arrays an epoch is one pass, set batch_size instead")
    x, y = prepare(x, y, dtype)
    w = None if sample_weight is None else check_sample_weight(sample_weight, len(x))
    batch_size = int(batch_size)
    eval_size = max(batch_size, VALIDATION_BATCH_SIZE)
    if validation_data is None and validation_split:
        x, y, xv, yv = split_validation(x, y, validation_split)
        w = None if w is None else w[:len(x)]      # validation: unweighted, as Keras
        val = ArrayAdapter(xv, yv, eval_size)       # typed and checked with x already
    else:
        val = validation_adapter(validation_data, validation_steps, dtype, eval_size)
    if len(x) == 0:
        raise ValueError("fit() got 0 training samples")
    rng = np.random.default_rng(seed) if seed is not None else None
    return ArrayAdapter(x, y, batch_size, shuffle, rng, w), val


def evaluate_adapter(x, y, dtype, batch_size=256, steps=None, sample_weight=None):
    """The adapter of ``evaluate``'s data: arrays in batches of ``batch_size`` (not checked for
    NaN), or ``steps`` batches of an iterable ``x`` (default one full pass). No samples is an
    error, as in ``fit``: a loss of 0.0 would look like a perfect model."""
    if y is None and is_batch_iterable(x):
        if sample_weight is not None:
            raise ValueError("sample_weight applies to arrays (x, y); an iterable x can yield "
                             "(xb, yb, sample_weight) batches instead")
        return IterableAdapter(x, dtype, "x", steps, per_epoch_iterator=True, arg="steps")
    if y is None:
        raise ValueError(f"evaluate() needs targets y for x of type {type(x).__name__}; or "
                         f"pass an iterable of (xb, yb) batches as x")
    x, y = prepare(x, y, dtype, check=False)
    if len(x) == 0:
        raise ValueError("evaluate() got 0 samples")
    w = None if sample_weight is None else check_sample_weight(sample_weight, len(x))
    return ArrayAdapter(x, y, int(batch_size), w=w)


def predict_batches(x, dtype, batch_size=256, steps=None):
    """``(steps, batches)`` for ``predict``: input batches only, typed for the model.

    Arrays are cut into ``batch_size`` slices. An iterable (``DataLoader``, generator) gives
    ``steps`` batches (default one full pass, which needs ``len()``), each an input array or
    a tuple whose first element is the input (``(xb,)``, ``(xb, yb)``: targets are ignored).
    """
    if not is_batch_iterable(x):
        x = as_x(x, dtype)
        size = int(batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return -(-len(x) // size), (x[lo:lo + size] for lo in range(0, len(x), size))
    n = check_count(steps, "steps")
    if n is None:
        try:
            n = len(x)
        except TypeError:
            raise ValueError(f"predict: x is an iterable of type {type(x).__name__} without "
                             f"len(): pass steps=N (batches to predict)") from None

    def batches():
        for _, batch in zip(range(n), x):
            if isinstance(batch, (tuple, list)):
                if not batch:
                    raise TypeError("predict: x yielded an empty tuple; expected xb, (xb,) or "
                                    "(xb, yb) batches")
                batch = batch[0]
            yield cast_x(batch, dtype)
    return n, batches()
