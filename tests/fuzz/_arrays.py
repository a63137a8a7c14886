"""Hypothesis strategies for the kernel fuzz tests (tests/fuzz/test_fuzz_kernels.py): arrays of
any shape, layout and values, and the comparison of a compiled kernel's result with its twin's.

An array is drawn as a *recipe* (:class:`Spec`): shape, dtype, layout and how its values are
made (a numpy seed, a scale, which special values and how many). Hypothesis explores and
shrinks the recipe; :meth:`Spec.make` builds the same array from it every time, so a failure's
printed example is its reproduction (a 4000-element array drawn value by value would make
hypothesis slow, and its printout unreadable).

Layouts: ``c`` (C-contiguous), ``perm`` (the axes permuted: a transposed / Fortran-order
view), ``neg`` (one axis reversed: negative strides), ``step`` (every other row along one axis:
strided), ``unaligned`` (contiguous but one byte past an aligned address: a view into a byte
buffer), ``unaligned_step`` (both), ``bcast`` (a stride-0 axis: np.broadcast_to, read-only),
``readonly`` (contiguous, not writeable), ``list`` (nested Python lists). Arrays a kernel updates in place only take the
writable layouts.

Values: standard normal times a scale, then a random fraction replaced by special values:
``zero`` (±0), ``big`` (±1e30), ``subnormal``, ``inf`` (±inf), ``nan``.
"""
import dataclasses

import numpy as np
from hypothesis import strategies as st

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = (F32, F64)

# Sizes around the kernels' edges: 0 and 1, SIMD widths (8/16 lanes) and their tails, the GEMM
# tiles (63/64/65). Small sizes come first: hypothesis shrinks toward them.
SIZES = (1, 2, 0, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65)
SPECIALS = ("zero", "big", "subnormal", "inf", "nan")
FINITE_SPECIALS = ("zero", "big", "subnormal")
WRITABLE = ("c", "perm", "neg", "step", "unaligned", "unaligned_step")
LAYOUTS = WRITABLE + ("bcast", "readonly", "list")
INPLACE = ("c", "unaligned")          # what an optimizer step can update in place


def sizes(max_size=65):
    return st.sampled_from([s for s in SIZES if s <= max_size])


def special_values(kind, dtype):
    fi = np.finfo(dtype)
    return {
        "zero": [0.0, -0.0],
        "big": [1e30, -1e30],
        "subnormal": [float(fi.smallest_subnormal), -float(fi.smallest_subnormal) * 3,
                      float(fi.tiny) / 2, -float(fi.tiny) / 7],
        "inf": [np.inf, -np.inf],
        "nan": [np.nan],
    }[kind]


@dataclasses.dataclass(frozen=True)
class Values:
    """How an array's values are made: ``scale`` · N(0, 1) from ``seed``, then a fraction
    ``density`` of them replaced by ``specials``; ``positive``: absolute values (second
    moments)."""
    seed: int = 0
    scale: float = 1.0
    specials: tuple = ()
    density: float = 0.0
    positive: bool = False
    ints: tuple = None        # (low, high): integers drawn from [low, high) instead

    def fill(self, n, dtype):
        rng = np.random.default_rng(self.seed)
        if self.ints is not None:
            return rng.integers(*self.ints, size=n).astype(dtype)
        if dtype.kind in "iub":
            return rng.integers(-5, 5, size=n).astype(dtype)
        x = rng.standard_normal(n) * self.scale
        if self.specials and n:
            pool = np.array([v for k in self.specials for v in special_values(k, dtype)])
            mask = rng.random(n) < self.density
            x[mask] = pool[rng.integers(0, len(pool), n)][mask]
        if self.positive:
            x = np.abs(x)
        with np.errstate(all="ignore"):
            return x.astype(dtype)


def values(specials=SPECIALS, positive=False):
    """A :class:`Values` strategy: a clean draw (no special values) about half of the time."""
    return st.builds(
        Values, seed=st.integers(0, 2 ** 16), scale=st.sampled_from([1.0, 3.0, 1e-3, 100.0]),
        specials=st.one_of(st.just(()), st.lists(st.sampled_from(specials), min_size=1,
                                                 max_size=3, unique=True).map(tuple)),
        density=st.sampled_from([0.05, 0.3, 1.0]), positive=st.just(positive))


@dataclasses.dataclass(frozen=True)
class Spec:
    """One array: ``shape``, ``dtype``, ``layout`` (see the module docstring), ``axis`` (the
    axis ``neg``/``step``/``bcast`` act on, modulo ndim), ``values``."""
    shape: tuple
    dtype: np.dtype
    layout: str = "c"
    axis: int = 0
    values: Values = Values()

    def make(self):
        shape, dt, nd = tuple(self.shape), np.dtype(self.dtype), len(self.shape)
        data = self.values.fill(int(np.prod(shape, dtype=np.int64)), dt).reshape(shape)
        lay = self.layout if nd else {"perm": "c", "neg": "c", "step": "c", "bcast": "c",
                                      "unaligned_step": "unaligned"}.get(self.layout,
                                                                         self.layout)
        ax = self.axis % nd if nd else 0
        if lay == "c":
            a = np.empty(shape, dt)
        elif lay == "list":
            return data.tolist()
        elif lay == "readonly":
            a = data.copy()
            a.flags.writeable = False
            return a
        elif lay == "perm":               # reversed axes: for 2-D, a transposed view
            a = np.empty(shape[::-1], dt).T
        elif lay == "neg":
            a = np.empty(shape, dt)[tuple(slice(None, None, -1) if d == ax else slice(None)
                                          for d in range(nd))]
        elif lay in ("step", "unaligned_step"):
            big = tuple(2 * s if d == ax else s for d, s in enumerate(shape))
            a = _buffer(big, dt, lay == "unaligned_step")[
                tuple(slice(None, None, 2) if d == ax else slice(None) for d in range(nd))]
        elif lay == "unaligned":
            a = _buffer(shape, dt, True)
        elif lay == "bcast":              # one row (along ax) repeated: stride 0, read-only
            return np.broadcast_to(np.take(data, [0], axis=ax) if shape[ax] else data, shape)
        else:
            raise AssertionError(lay)
        a[...] = data
        return a


def _buffer(shape, dtype, unaligned):
    """A C-contiguous array of ``shape``; ``unaligned``: one byte past an aligned address."""
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not unaligned:
        return np.empty(shape, dtype)
    return np.zeros(n + 1, np.uint8)[1:].view(dtype).reshape(shape)


def specs(shape, dtype, layouts=LAYOUTS, vals=None):
    """A :class:`Spec` strategy for a given shape and dtype."""
    return st.builds(Spec, shape=st.just(tuple(shape)), dtype=st.just(np.dtype(dtype)),
                     layout=st.sampled_from(layouts), axis=st.integers(0, 3),
                     values=vals if vals is not None else values())


# ----------------------------------------------------------------------------- comparisons

def daz(a):
    """``a`` with subnormal values flushed to (signed) zero: what a kernel running with
    denormals-are-zero reads (every compiled kernel sets FTZ/DAZ, csrc/common/ftz.h)."""
    if isinstance(a, list):                       # nested lists of floats: as the op sees them
        arr = np.asarray(a)
        a = arr if arr.dtype in DTYPES else a
    if not isinstance(a, np.ndarray) or a.dtype not in DTYPES:
        return a
    sub = (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)
    if not sub.any():
        return a
    out = np.array(a)                             # a writable C copy, even of a broadcast view
    out[sub] = np.copysign(0, a[sub])
    return out


def finite(a):
    """``a`` as float64 with its non-finite values set to 0 (for overflow bounds)."""
    a = np.asarray(a, F64)
    return np.where(np.isfinite(a), a, 0.0)


def overflows(bound, dtype):
    """Where a bound computed from the finite inputs exceeds ``dtype``'s range: there an
    intermediate overflowed, and the op's result is whatever the rounding order made it."""
    return np.asarray(bound) > np.finfo(dtype).max


def to64(a):
    return a.astype(F64) if isinstance(a, np.ndarray) and a.dtype == F32 else a


def matches(got, want, rtol, atol):
    """Element-wise: NaN where ``want`` is NaN, equal (infinities), or both finite and within
    ``atol + rtol·|want|``. ``atol`` may be an array (a per-element error bound); +inf there
    means any value is right (an intermediate overflowed: the result is rounding noise, e.g.
    an FMA that adds a product before rounding it to inf)."""
    g = np.asarray(got, F64)
    w = np.asarray(want, F64)
    atol = np.asarray(atol, F64)
    with np.errstate(invalid="ignore", over="ignore"):
        near = np.isfinite(g) & np.isfinite(w) & (np.abs(g - w) <= atol + rtol * np.abs(w))
    return (np.isnan(g) & np.isnan(w)) | (g == w) | near | (atol == np.inf)


def assert_matches(got, wants, rtol, atol, what, loose_nonfinite=False):
    """``got`` (an array, or a float) has the dtype and shape of the first of ``wants`` and
    each element matches (:func:`matches`) the same element of at least one of them: the
    twin on the inputs as they are, on their flushed (DAZ) copies, in float64, ... each a
    legitimate answer."""
    w0 = wants[0]
    if isinstance(w0, np.ndarray):
        assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}, want an ndarray"
        assert got.shape == w0.shape, f"{what}: shape {got.shape}, want {w0.shape}"
        assert got.dtype == w0.dtype, f"{what}: dtype {got.dtype}, want {w0.dtype}"
    ok = np.zeros(np.shape(w0), bool)
    for w in wants:
        ok |= matches(got, w, rtol, atol)
        if loose_nonfinite:          # NaN, inf and -inf all stand for "not a number" here
            ok |= ~np.isfinite(np.asarray(got, F64)) & ~np.isfinite(np.asarray(w, F64))
    if not ok.all():
        bad = np.argwhere(~ok) if np.ndim(ok) else [()]
        idx = tuple(bad[0])
        g = np.asarray(got)[idx]
        alts = ", ".join(repr(np.asarray(w)[idx].item()) for w in wants)
        tol = atol if np.ndim(atol) == 0 else np.asarray(atol)[idx]
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} elements differ; first "
                             f"at {idx}: got {g!r}, twin {alts} (rtol {rtol:g}, atol "
                             f"{float(tol):.3g})")
