"""The CUDA pointwise family (csrc/cuda/pointwise_kernels.cuh, nnlite/ops/cuda_pointwise.py)
against the numpy twins (nnlite/ops/reference.py): bias + activation forward and backward (every
activation), the bias gradient (alone and after the activation backward), softmax forward and
backward, softmax cross-entropy; float32 and float64, awkward shapes, non-contiguous inputs, out=
and accumulate=, and the twins' errors.

Each test runs through the shim on CPU threads (and under ThreadSanitizer in CI) and, marked
``cuda``, on a GPU (the ``cuda_dev`` fixture). Shapes stay small: under the shim every CUDA thread
is an OS thread and the blocks of a grid run one after another. The softmax family runs on both
of its paths for every row length (``row_threads``: 32 forces a warp per row, a larger multiple
of 32 a block per row, so short rows leave whole warps without a value)."""
import inspect

import numpy as np
import pytest

from _cuda_shim import to_dev, to_host
from nnlite.ops import cuda_pointwise as cp
from nnlite.ops import reference as ref

ACTS = ("none", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")
DTYPES = (np.float32, np.float64)
# (rows, C): every size in {1, 7, 63, 65, 257} on both axes, and rows of ~1000 values, which
# take a block of several warps per row in the softmax family
SHAPES = [(1, 1), (1, 1000), (7, 63), (63, 7), (65, 65), (257, 7), (7, 257), (7, 1000)]


def twin(fn, *args, **kwargs):
    """The numpy twin's result, float32 inputs run in float64 and the result rounded back (the
    float32 twin itself loses ~1e-6 in places; the kernels are meant to be near the true
    values)."""
    def up(a):
        return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a
    dtypes = [a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    r = fn(*map(up, args), **{k: up(v) for k, v in kwargs.items()})

    def down(a):
        return a.astype(dtypes[0]) if dtypes and isinstance(a, np.ndarray) else a
    return tuple(map(down, r)) if isinstance(r, tuple) else down(r)


def tol(dtype):
    # float32: the device's expf/tanhf are within a few ulp; the absolute term covers results
    # near 0. float64: libm-accurate.
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-6)
    return dict(rtol=1e-12, atol=1e-14)


def close(got, want, dtype, **kw):
    got = to_host(got)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **(tol(dtype) | kw))


def same_error(dev, op, *args, **kwargs):
    """The CUDA op (arrays on the device) raises exactly the twin's error (arrays on the host)."""
    with pytest.raises(Exception) as e_twin:
        getattr(ref, op)(*args, **kwargs)
    def on_dev(a):      # numbers to the device (a read-only one as it is: the shim's "device")
        numeric = isinstance(a, np.ndarray) and a.dtype.kind in "biufc" and a.flags.writeable
        return to_dev(dev, a) if numeric else a
    dargs = [on_dev(a) for a in args]
    dkw = {k: on_dev(v) for k, v in kwargs.items()}
    with pytest.raises(Exception) as e_cuda:
        cp.kernels(dev)[op](*dargs, **dkw)
    assert type(e_cuda.value) is type(e_twin.value)
    assert str(e_cuda.value) == str(e_twin.value)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_kernels_have_the_twins_signatures(cuda_dev):
    k = cp.kernels(cuda_dev)
    assert set(k) == set(cp.OPS)
    for name, f in k.items():
        assert inspect.signature(f) == inspect.signature(getattr(ref, name)), name
        assert f.__name__ == name


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act(cuda_dev, rng, shape, dtype):
    k = cp.kernels(cuda_dev)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    dx, db = to_dev(cuda_dev, x), to_dev(cuda_dev, b)
    for act in ACTS:
        close(k["bias_act"](dx, db, act, alpha=0.1), twin(ref.bias_act, x, b, act, alpha=0.1),
              dtype)


@pytest.mark.parametrize("shape", [(1, 1), (7, 63), (65, 65), (257, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_forward_backward(cuda_dev, rng, shape, dtype, act):
    k = cp.kernels(cuda_dev)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    close(k["act_forward"](to_dev(cuda_dev, x), act, 0.2), twin(ref.act_forward, x, act, 0.2),
          dtype)
    y = twin(ref.act_forward, x, act, 0.2)
    dx = k["act_backward"](to_dev(cuda_dev, g), to_dev(cuda_dev, x), to_dev(cuda_dev, y), act, 0.2)
    close(dx, twin(ref.act_backward, g, x, y, act, 0.2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_non_contiguous_nd_and_0d(cuda_dev, rng, dtype, act):
    k = cp.kernels(cuda_dev)
    base = (rng.standard_normal((3, 20, 34)) * 2).astype(dtype)
    bbase = rng.standard_normal(64).astype(dtype)
    x, b = base[:, ::2, 1:-1], bbase[::2]                  # (3, 10, 32) strided, (32,) strided
    dbase, dbb = to_dev(cuda_dev, base), to_dev(cuda_dev, bbase)
    close(k["bias_act"](dbase[:, ::2, 1:-1], dbb[::2], act), twin(ref.bias_act, x, b, act), dtype)
    xt = base[0].T                                         # transposed (34, 20)
    y = twin(ref.act_forward, xt, act)
    close(k["act_forward"](dbase[0].T, act), y, dtype)
    g = base[1].T
    close(k["act_backward"](dbase[1].T, dbase[0].T, to_dev(cuda_dev, y), act),
          twin(ref.act_backward, g, xt, y, act), dtype)
    x0 = np.array(1.5, dtype)                              # 0-d: a 0-d result, as the twin's
    y0 = k["act_forward"](to_dev(cuda_dev, x0), act)
    assert y0.shape == () and y0.dtype == dtype
    close(y0, twin(ref.act_forward, x0, act), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_act_extreme_values_and_nan(cuda_dev, dtype):
    k = cp.kernels(cuda_dev)
    x = np.array([-1000, -80, -20, -1e-3, -1e-6, 0, 1e-6, 1e-3, 20, 80, 1000] * 3, dtype=dtype)
    for act in ACTS:
        y = k["act_forward"](to_dev(cuda_dev, x), act)
        assert np.all(np.isfinite(to_host(y)))
        close(y, twin(ref.act_forward, x, act), dtype)
        yr = twin(ref.act_forward, x, act)
        dx = k["act_backward"](to_dev(cuda_dev, np.ones_like(x)), to_dev(cuda_dev, x),
                               to_dev(cuda_dev, yr), act)
        assert np.all(np.isfinite(to_host(dx)))
        close(dx, twin(ref.act_backward, np.ones_like(x), x, yr, act), dtype)
        xn = np.zeros(37, dtype)
        xn[[0, 17, 36]] = np.nan
        yn = to_host(k["bias_act"](to_dev(cuda_dev, xn.reshape(1, -1)),
                                   to_dev(cuda_dev, np.zeros(37, dtype)), act))[0]
        assert np.isnan(yn[[0, 17, 36]]).all() and not np.isnan(np.delete(yn, [0, 17, 36])).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ("relu", "leaky_relu", "gelu"))
def test_bias_act_out(cuda_dev, rng, dtype, act):
    k = cp.kernels(cuda_dev)
    x = rng.standard_normal((65, 63)).astype(dtype)
    b = rng.standard_normal(63).astype(dtype)
    db = to_dev(cuda_dev, b)
    expect = twin(ref.bias_act, x, b, act)
    out = cuda_dev.xp.empty(x.shape, dtype)
    assert k["bias_act"](to_dev(cuda_dev, x), db, act, out=out) is out
    close(out, expect, dtype)
    xi = to_dev(cuda_dev, x)                               # in place: a Linear layer's y += b
    assert k["bias_act"](xi, db, act, out=xi) is xi
    close(xi, expect, dtype)
    big = cuda_dev.xp.zeros((65, 126), dtype)              # non-contiguous out
    outs = big[:, ::2]
    assert k["bias_act"](to_dev(cuda_dev, x), db, act, out=outs) is outs
    close(outs, expect, dtype)
    assert not to_host(big[:, 1::2]).any()                 # and nothing beside it
    buf = to_dev(cuda_dev, np.concatenate([x.ravel(), [0]]).astype(dtype))
    xs, os_ = buf[1:].reshape(x.shape), buf[:-1].reshape(x.shape)   # out overlaps x, shifted
    expect_s = twin(ref.bias_act, to_host(xs).copy(), b, act)
    k["bias_act"](xs, db, act, out=os_)
    close(os_, expect_s, dtype)


def test_act_int_and_empty_inputs(cuda_dev):
    k = cp.kernels(cuda_dev)
    xi = np.arange(-3, 4).reshape(1, 7)
    y = k["bias_act"](to_dev(cuda_dev, xi), to_dev(cuda_dev, np.ones(7, np.int32)), "relu")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(to_host(y), ref.bias_act(xi, np.ones(7, np.int32), "relu"))
    e = cuda_dev.xp.zeros((0, 5), np.float32)
    assert k["bias_act"](e, cuda_dev.xp.zeros(5, np.float32), "gelu").shape == (0, 5)
    assert k["act_forward"](e, "tanh").shape == (0, 5)
    assert k["act_backward"](e, e, e, "tanh").shape == (0, 5)


def test_act_errors_match_twin(cuda_dev, rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    same_error(cuda_dev, "bias_act", x, b, "swish")
    same_error(cuda_dev, "bias_act", x, np.zeros(4, np.float32))
    same_error(cuda_dev, "bias_act", x, np.zeros((1, 3), np.float32))
    same_error(cuda_dev, "bias_act", x, b.astype(np.float64))
    same_error(cuda_dev, "bias_act", x, b, out=np.empty((4, 3)))
    same_error(cuda_dev, "bias_act", x, b, out=np.empty((3, 4), np.float32))
    same_error(cuda_dev, "bias_act", x.astype(complex), b)
    same_error(cuda_dev, "act_forward", x, "elu")
    same_error(cuda_dev, "act_backward", x, x, x[:2], "relu")
    same_error(cuda_dev, "act_backward", x, x.astype(np.float64), x, "tanh")
    same_error(cuda_dev, "act_backward", x, x, x, "swish")
    if cuda_dev.kind == "shim":                            # CuPy arrays have no read-only flag
        ro = np.empty_like(x)
        ro.flags.writeable = False
        same_error(cuda_dev, "bias_act", x, b, out=ro)


# ----------------------------------------------------------------------------- bias gradient


# (300, 33): over pointwise.h's kBiasGradTall rows, so 32 threads per column (blocks of 1024)
@pytest.mark.parametrize("shape", SHAPES + [(3, 5, 33), (0, 7), (7,), (300, 33)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_grad(cuda_dev, rng, shape, dtype):
    k = cp.kernels(cuda_dev)
    g = rng.standard_normal(shape).astype(dtype)
    dg = to_dev(cuda_dev, g)
    rows = max(1, g.size // shape[-1])
    # the kernel's summation order differs from numpy's row by row order
    kw = dict(rtol=1e-5, atol=1e-6 * np.sqrt(rows)) if dtype == np.float32 else {}
    want = twin(ref.bias_grad, g)
    got = k["bias_grad"](dg)
    close(got, want, dtype, **kw)
    assert np.array_equal(to_host(got), to_host(k["bias_grad"](dg)))   # deterministic bits
    start = rng.standard_normal(shape[-1]).astype(dtype)
    out = to_dev(cuda_dev, start)
    assert k["bias_grad"](dg, out=out, accumulate=True) is out
    close(out, twin(ref.bias_grad, g, start.copy(), accumulate=True), dtype, **kw)
    assert k["bias_grad"](dg, out=out) is out
    close(out, want, dtype, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_grad_non_contiguous(cuda_dev, rng, dtype):
    k = cp.kernels(cuda_dev)
    base = rng.standard_normal((66, 140)).astype(dtype)
    g = base[::2, 3::2]                                    # (33, 69) strided
    kw = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}
    close(k["bias_grad"](to_dev(cuda_dev, base)[::2, 3::2]), twin(ref.bias_grad, g), dtype, **kw)
    close(k["bias_grad"](to_dev(cuda_dev, base).T), twin(ref.bias_grad, base.T), dtype, **kw)
    big = rng.standard_normal(138).astype(dtype)           # non-contiguous out, accumulate
    dbig = to_dev(cuda_dev, big)
    outs = dbig[::2]
    assert k["bias_grad"](to_dev(cuda_dev, base)[::2, 3::2], out=outs, accumulate=True) is outs
    close(outs, twin(ref.bias_grad, g, big[::2].copy(), accumulate=True), dtype, **kw)
    np.testing.assert_array_equal(to_host(dbig[1::2]), big[1::2])   # untouched between


def test_bias_grad_errors_match_twin(cuda_dev):
    g = np.zeros((4, 3), np.float32)
    same_error(cuda_dev, "bias_grad", g, accumulate=True)
    same_error(cuda_dev, "bias_grad", np.array(1.0, np.float32))
    same_error(cuda_dev, "bias_grad", g, out=np.zeros(4, np.float32))
    same_error(cuda_dev, "bias_grad", g, out=np.zeros(3, np.float64))
    same_error(cuda_dev, "bias_grad", g.astype(complex))


# ----------------------------------------------------------------------------- act backward + bias grad
# on the GPU the composition of the two kernels above: act_backward, then bias_grad of its result


@pytest.mark.parametrize("shape", [(1, 1), (7, 63), (65, 65), (257, 7), (3, 5, 33), (0, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_backward_bias_grad(cuda_dev, rng, shape, dtype, act):
    k = cp.kernels(cuda_dev)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    y = twin(ref.act_forward, x, act, 0.2)
    dg, dxx, dy = (to_dev(cuda_dev, a) for a in (g, x, y))
    rows = max(1, g.size // shape[-1])
    kw = {"rtol": 1e-5, "atol": 1e-5 * np.sqrt(rows)} if dtype == np.float32 else {}
    want_dx, want_db = twin(ref.act_backward_bias_grad, g, x, y, act, 0.2)
    dx, db = k["act_backward_bias_grad"](dg, dxx, dy, act, 0.2)
    close(dx, want_dx, dtype)
    close(db, want_db, dtype, **kw)
    start = rng.standard_normal(shape[-1]).astype(dtype)
    acc = to_dev(cuda_dev, start)
    out = cuda_dev.xp.empty(shape, dtype)
    dx2, db2 = k["act_backward_bias_grad"](dg, dxx, dy, act, 0.2, db=acc, accumulate=True,
                                           out=out)
    assert dx2 is out and db2 is acc
    close(out, want_dx, dtype)
    close(acc, want_db + start, dtype, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_act_backward_bias_grad_non_contiguous(cuda_dev, rng, dtype):
    k = cp.kernels(cuda_dev)
    base = rng.standard_normal((2, 66, 140)).astype(dtype)
    g, x = base[0, ::2, 3::2], base[1, ::2, 3::2]              # (33, 69) strided
    y = twin(ref.act_forward, x, "gelu")
    dbase = to_dev(cuda_dev, base)
    big = rng.standard_normal(138).astype(dtype)
    dbig = to_dev(cuda_dev, big)
    dx, db = k["act_backward_bias_grad"](dbase[0, ::2, 3::2], dbase[1, ::2, 3::2],
                                         to_dev(cuda_dev, y), "gelu", db=dbig[::2],
                                         accumulate=True)
    want_dx, want_db = twin(ref.act_backward_bias_grad, g, x, y, "gelu")
    kw = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {}
    close(dx, want_dx, dtype)
    close(db, want_db + big[::2], dtype, **kw)
    np.testing.assert_array_equal(to_host(dbig[1::2]), big[1::2])   # untouched between


def test_act_backward_bias_grad_errors_match_twin(cuda_dev, rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    op = "act_backward_bias_grad"
    same_error(cuda_dev, op, x, x, x[:2], "relu")
    same_error(cuda_dev, op, x, x.astype(np.float64), x, "tanh")
    same_error(cuda_dev, op, x, x, x, "swish")
    same_error(cuda_dev, op, x, x, x, "gelu", db=np.zeros(4, np.float32))
    same_error(cuda_dev, op, x, x, x, "gelu", db=np.zeros(3))
    same_error(cuda_dev, op, x, x, x, "gelu", db=[0.0, 0.0, 0.0])
    same_error(cuda_dev, op, x, x, x, "gelu", accumulate=True)
    same_error(cuda_dev, op, x, x, x, "gelu", out=np.empty((3, 4), np.float32))
    same_error(cuda_dev, op, x[0, 0], x[0, 0], x[0, 0], "relu")
    if cuda_dev.kind == "shim":                            # CuPy arrays have no read-only flag
        ro = np.zeros(3, np.float32)
        ro.flags.writeable = False
        same_error(cuda_dev, op, x, x, x, "relu", db=ro)


# ----------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("shape", SHAPES + [(1000,), (3, 5, 65)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_forward_backward(cuda_dev, rng, shape, dtype):
    k = cp.kernels(cuda_dev)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    y = k["softmax"](to_dev(cuda_dev, x))
    close(y, twin(ref.softmax, x), dtype)
    g = rng.standard_normal(shape).astype(dtype)
    yh = to_host(y)
    close(k["softmax_backward"](to_dev(cuda_dev, g), y), twin(ref.softmax_backward, g, yh), dtype)


@pytest.mark.parametrize("C", [1, 7, 33, 63, 65, 257, 1000])
@pytest.mark.parametrize("row_threads", [32, 96, 160])
def test_softmax_both_paths_every_row_length(cuda_dev, rng, C, row_threads):
    """A warp per row and a block per row (several warps, some with no value of a short row:
    their empty (max, sum) must merge as nothing) on every row length, float64."""
    rows = 5
    x = rng.standard_normal((rows, C)) * 4
    x[1, ::3] = -np.inf                                    # -inf values: exp(-inf - m) = 0
    x[2] = 7.25                                            # a constant row: ties at the max
    y = cp.softmax(cuda_dev, to_dev(cuda_dev, x), row_threads=row_threads)
    with np.errstate(invalid="ignore"):                    # C = 1: a row of only -inf, NaN
        yr = ref.softmax(x)
    close(y, yr, np.float64)
    g = rng.standard_normal(x.shape)
    close(cp.softmax_backward(cuda_dev, to_dev(cuda_dev, g), to_dev(cuda_dev, yr),
                              row_threads=row_threads), ref.softmax_backward(g, yr), np.float64)
    t = rng.integers(0, C, rows)
    t[1] = 1 if C > 1 else 0                               # not on a -inf logit
    if C == 1:
        x = x[[0, 2, 3, 4]]
        t = t[[0, 2, 3, 4]]
    loss, d = cp.softmax_cross_entropy(cuda_dev, to_dev(cuda_dev, x), to_dev(cuda_dev, t),
                                       row_threads=row_threads)
    rloss, rd = ref.softmax_cross_entropy(x, t)
    assert loss == pytest.approx(rloss, rel=1e-12, abs=1e-14)
    close(d, rd, np.float64)


def test_softmax_picks_a_path_by_row_length(cuda_dev, rng):
    """row_threads=0 (what the ops use) agrees with a warp per row on either side of the
    warp-per-row limit (bit for bit up to it: the same path), and row_threads is checked."""
    limit = cuda_dev.ext.pointwise_warp_row_max()
    for C in (limit, limit + 1):
        x = to_dev(cuda_dev, rng.standard_normal((3, C)))
        auto = to_host(cp.softmax(cuda_dev, x))
        warp = to_host(cp.softmax(cuda_dev, x, row_threads=32))
        if C == limit:
            np.testing.assert_array_equal(auto, warp)
        np.testing.assert_allclose(auto, warp, rtol=1e-14, atol=1e-17)
    with pytest.raises(ValueError, match="row_threads"):
        cp.softmax(cuda_dev, to_dev(cuda_dev, np.ones((2, 3))), row_threads=48)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_and_non_contiguous(cuda_dev, rng, dtype):
    k = cp.kernels(cuda_dev)
    x = rng.choice(np.array([-1000, -80, 0, 80, 1000], dtype), size=(63, 130))
    x[5] = -1000                                           # a constant row
    x[6, ::3] = 1000                                       # ties at the max
    dx = to_dev(cuda_dev, x)
    for xi, dxi in ((x, dx), (x[:, ::2], dx[:, ::2]), (x.T, dx.T)):
        y = k["softmax"](dxi)
        yh = to_host(y)
        assert np.all(np.isfinite(yh))
        close(y, twin(ref.softmax, xi), dtype)
        np.testing.assert_allclose(yh.sum(-1), 1, rtol=1e-5)
        g = np.ones_like(xi)[:, ::-1]
        close(k["softmax_backward"](to_dev(cuda_dev, np.ones_like(xi))[:, ::-1], y),
              twin(ref.softmax_backward, g, yh), dtype)


def test_softmax_nan_row_and_empty(cuda_dev):
    k = cp.kernels(cuda_dev)
    x = np.zeros((3, 40), np.float32)
    x[1, 33] = np.nan
    y = to_host(k["softmax"](to_dev(cuda_dev, x)))
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()
    for shape in ((3, 0), (0, 4)):
        e = cuda_dev.xp.zeros(shape)
        assert k["softmax"](e).shape == shape
        assert k["softmax_backward"](e, e).shape == shape


def test_softmax_errors_match_twin(cuda_dev):
    same_error(cuda_dev, "softmax", np.float32(1))
    same_error(cuda_dev, "softmax", np.zeros(3, complex))
    same_error(cuda_dev, "softmax_backward", np.zeros((2, 3)), np.zeros((3, 2)))
    same_error(cuda_dev, "softmax_backward", np.zeros(3, np.float32), np.zeros(3))
    same_error(cuda_dev, "softmax_backward", np.zeros(()), np.zeros(()))


# ----------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy(cuda_dev, rng, shape, dtype):
    k = cp.kernels(cuda_dev)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])
    dz, dt = to_dev(cuda_dev, z), to_dev(cuda_dev, t)
    loss, d = k["softmax_cross_entropy"](dz, dt)
    rloss, rd = twin(ref.softmax_cross_entropy, z, t)
    assert isinstance(loss, float)
    assert loss == pytest.approx(rloss, rel=1e-5 if dtype == np.float32 else 1e-12)
    close(d, rd, dtype, atol=tol(dtype)["atol"] / shape[0])
    again, _ = k["softmax_cross_entropy"](dz, dt)
    assert again == loss                                   # the batch mean: deterministic


@pytest.mark.parametrize("dtype", DTYPES)
def test_xent_extreme_non_contiguous_and_label_types(cuda_dev, rng, dtype):
    k = cp.kernels(cuda_dev)
    z = rng.choice(np.array([-1000, -80, 0, 80, 1000], dtype), size=(65, 14))
    t = rng.integers(0, 7, 65)
    dz = to_dev(cuda_dev, z)
    layouts = [(z[:, ::2], dz[:, ::2], t.astype(np.int32)),
               (np.asfortranarray(z[:, :7]), dz[:, :7].T.copy().T, t.astype(np.uint8)),
               (z[:, ::2], dz[:, ::2], t.astype(np.float64))]
    for zi, dzi, labels in layouts:
        loss, d = k["softmax_cross_entropy"](dzi, to_dev(cuda_dev, labels))
        rloss, rd = twin(ref.softmax_cross_entropy, zi, t)
        assert np.isfinite(loss) and np.all(np.isfinite(to_host(d)))
        assert loss == pytest.approx(rloss, rel=1e-6)
        close(d, rd, dtype)
    # labels as a host list, like the twin's np.asarray
    loss, _ = k["softmax_cross_entropy"](dz[:3], [0, 1, 2])
    assert loss == pytest.approx(twin(ref.softmax_cross_entropy, z[:3], [0, 1, 2])[0], rel=1e-6)


def test_xent_errors_match_twin(cuda_dev, rng):
    z = rng.standard_normal((5, 4)).astype(np.float32)
    op = "softmax_cross_entropy"
    same_error(cuda_dev, op, z, np.array([0, 1, 2, 3, 4]))          # label >= C
    same_error(cuda_dev, op, z, np.array([0, -1, 2, 3, 0]))         # negative
    same_error(cuda_dev, op, z, np.array([0, 1, 2], np.uint8))      # wrong length
    same_error(cuda_dev, op, z, np.zeros((5, 1), np.int64))         # wrong shape
    same_error(cuda_dev, op, z, np.array([0, 1.5, 2, 3, 0]))        # non-integer floats
    same_error(cuda_dev, op, z, np.array([0, np.nan, 2, 3, 0]))
    same_error(cuda_dev, op, z, np.array(["a"] * 5))                # not numbers
    same_error(cuda_dev, op, z[0], np.array([0]))                   # 1-D logits
    same_error(cuda_dev, op, z[None], np.array([0]))                # 3-D logits
    same_error(cuda_dev, op, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    same_error(cuda_dev, op, z.astype(complex), np.zeros(5, np.int64))


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_same_mask_as_the_twin(cuda_dev, rng, dtype):
    """The device makes the twin's counter-based mask itself: same bits, any layout."""
    k = cp.kernels(cuda_dev)
    base = rng.standard_normal((33, 70)).astype(dtype)
    for x in (base, base[:, ::3], base.T):
        for seed, rate in [(0, 0.5), (2 ** 64 - 1, 0.1), (77, 0.0)]:
            y = to_host(k["dropout"](to_dev(cuda_dev, x), rate, seed))
            np.testing.assert_array_equal(y, ref.dropout(x, rate, seed))
    with pytest.raises(ValueError, match=r"dropout: rate must be in \[0, 1\)"):
        k["dropout"](to_dev(cuda_dev, base), 1.0, 0)
