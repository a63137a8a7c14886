"""Compiled activations (and the fused activation backward + bias gradient) / dropout /
softmax / cross-entropy vs their numpy twins, on every SIMD path."""
import numpy as np
import pytest

from _kernels import needs_compiled, same_error
from nnlite import ops
from nnlite.ops import _checks as checks
from nnlite.ops import reference as ref

ACTS = ("none", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")
DTYPES = (np.float32, np.float64)
# (rows, features): every size in {1, 7, 63, 65, 257, 1000} appears on both axes; 63/65 straddle
# the 16-lane tails, (257, 1000) is big enough for the OpenMP path
SHAPES = [(1, 1), (1, 1000), (7, 63), (63, 7), (65, 65), (1000, 7), (257, 1000)]
OPS = ("bias_act", "act_forward", "act_backward", "act_backward_bias_grad", "dropout", "softmax",
       "softmax_backward", "softmax_cross_entropy")


def twin(fn, *args, **kwargs):
    """The numpy twin's result. float32 inputs are run through the twin in float64 and the
    result rounded back: the float32 twin itself loses ~1e-6 absolute in places (gelu's
    1 + tanh(u) for x < 0), and the kernels are meant to be close to the true values."""
    def up(a):
        return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a
    dtypes = [a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    r = fn(*map(up, args), **{k: up(v) for k, v in kwargs.items()})
    def down(a):
        return a.astype(dtypes[0]) if dtypes and isinstance(a, np.ndarray) else a
    return tuple(map(down, r)) if isinstance(r, tuple) else down(r)


def tol(dtype):
    # float32: SIMD exp/tanh are ~1-4 ulp; the absolute term covers results near 0. Under
    # NNLITE_BACKEND=numpy the float32 twin itself is tested, and its gelu' loses ~1e-5.
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-5 if ops.BACKEND == "numpy" else 2e-6)
    return dict(rtol=1e-12, atol=1e-14)


@needs_compiled
@pytest.mark.parametrize("op", OPS)
def test_compiled(op):
    assert ops.compiled_kernels()[op] == "compiled"


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_bias_act(simd, rng, shape, dtype, act):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    y = ops.bias_act(x, b, act, alpha=0.1)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, twin(ref.bias_act, x, b, act, alpha=0.1), **tol(dtype))


@pytest.mark.parametrize("shape", SHAPES[::2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_forward_backward(simd, rng, shape, dtype, act):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    y = ops.act_forward(x, act, 0.2)
    np.testing.assert_allclose(y, twin(ref.act_forward, x, act, 0.2), **tol(dtype))
    yr = twin(ref.act_forward, x, act, 0.2)
    dx = ops.act_backward(g, x, yr, act, 0.2)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, twin(ref.act_backward, g, x, yr, act, 0.2), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_non_contiguous_and_nd(simd, rng, dtype, act):
    base = (rng.standard_normal((6, 40, 34)) * 2).astype(dtype)
    x = base[:, ::2, 1:-1]                                  # (6, 20, 32), strided
    b = rng.standard_normal(64).astype(dtype)[::2]          # (32,), strided
    np.testing.assert_allclose(ops.bias_act(x, b, act), twin(ref.bias_act, x, b, act),
                               **tol(dtype))
    xt = base[0].T                                          # transposed
    np.testing.assert_allclose(ops.act_forward(xt, act), twin(ref.act_forward, xt, act),
                               **tol(dtype))
    g = base[1].T
    y = twin(ref.act_forward, xt, act)
    np.testing.assert_allclose(ops.act_backward(g, xt, y, act),
                               twin(ref.act_backward, g, xt, y, act), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_extreme_values(simd, dtype, act):
    x = np.array([-1000, -80, -20, -1e-3, -1e-6, 0, 1e-6, 1e-3, 20, 80, 1000] * 3, dtype=dtype)
    y = ops.act_forward(x, act)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, twin(ref.act_forward, x, act), **tol(dtype))
    g = np.ones_like(x)
    yr = twin(ref.act_forward, x, act)
    dx = ops.act_backward(g, x, yr, act)
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx, twin(ref.act_backward, g, x, yr, act), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_nan_propagates(simd, dtype, act):
    x = np.zeros(37, dtype)
    x[[0, 17, 36]] = np.nan
    y = ops.act_forward(x, act)
    assert np.isnan(y[[0, 17, 36]]).all() and not np.isnan(np.delete(y, [0, 17, 36])).any()
    y = ops.bias_act(x.reshape(1, -1), np.zeros(37, dtype), act)
    assert np.isnan(y[0, [0, 17, 36]]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ("relu", "gelu"))
def test_bias_act_out(simd, rng, dtype, act):
    x = rng.standard_normal((65, 63)).astype(dtype)
    b = rng.standard_normal(63).astype(dtype)
    expect = twin(ref.bias_act, x, b, act)
    out = np.empty_like(x)
    assert ops.bias_act(x, b, act, out=out) is out
    np.testing.assert_allclose(out, expect, **tol(dtype))
    xi = x.copy()                                           # in place
    assert ops.bias_act(xi, b, act, out=xi) is xi
    np.testing.assert_allclose(xi, expect, **tol(dtype))
    big = np.zeros((65, 126), dtype)                        # non-contiguous out
    outs = big[:, ::2]
    assert ops.bias_act(x, b, act, out=outs) is outs
    np.testing.assert_allclose(outs, expect, **tol(dtype))
    buf = np.concatenate([x.ravel(), [0]]).astype(dtype)    # out overlaps x, shifted by one
    xs, os_ = buf[1:].reshape(x.shape), buf[:-1].reshape(x.shape)
    expect_s = twin(ref.bias_act, xs, b, act)
    ops.bias_act(xs, b, act, out=os_)
    np.testing.assert_allclose(os_, expect_s, **tol(dtype))


def test_act_errors_match_twin(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    same_error(ops.bias_act, ref.bias_act, x, b, "swish")
    same_error(ops.bias_act, ref.bias_act, x, np.zeros(4, np.float32))
    same_error(ops.bias_act, ref.bias_act, x, b.astype(np.float64))
    same_error(ops.bias_act, ref.bias_act, x, b, out=np.empty((4, 3)))
    same_error(ops.bias_act, ref.bias_act, x.astype(complex), b)
    same_error(ops.act_forward, ref.act_forward, x, "elu")
    same_error(ops.act_backward, ref.act_backward, x, x, x[:2], "relu")
    same_error(ops.act_backward, ref.act_backward, x, x.astype(np.float64), x, "tanh")


def test_act_int_and_empty_inputs():
    xi = np.arange(-3, 4).reshape(1, 7)
    y = ops.bias_act(xi, np.ones(7, np.int32), "relu")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, twin(ref.bias_act, xi, np.ones(7, np.int32), "relu"))
    e = np.zeros((0, 5), np.float32)
    assert ops.bias_act(e, np.zeros(5, np.float32), "gelu").shape == (0, 5)
    assert ops.act_forward(np.float32(2.0), "tanh") == ref.act_forward(np.float32(2.0), "tanh")


# ----------------------------------------------------------------------------- act backward + bias grad
# dx = g · act'(x) and db = Σ_rows dx in one pass (a Linear layer's fused backward)

AWKWARD = (1, 7, 63, 65, 257)


def fused_inputs(rng, shape, dtype, act):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return g, x, twin(ref.act_forward, x, act, 0.2)


def assert_db_close(got, want, dx, dtype):
    """db against the twin's: each of its terms may differ by dx's tolerance, and the kernel
    adds them in another order (row chunks) than numpy's sum."""
    t = tol(dtype)
    a = np.abs(dx.astype(np.float64)).reshape(-1, dx.shape[-1])
    rows = a.shape[0]
    bound = (t["rtol"] + 4 * rows * np.finfo(dtype).eps) * a.sum(axis=0) + rows * t["atol"]
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert np.all(err <= bound + t["rtol"] * np.abs(want)), (err - bound).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_backward_bias_grad(simd, rng, dtype, act):
    for rows in AWKWARD:
        for c in AWKWARD:
            g, x, y = fused_inputs(rng, (rows, c), dtype, act)
            want_dx, want_db = twin(ref.act_backward_bias_grad, g, x, y, act, 0.2)
            dx, db = ops.act_backward_bias_grad(g, x, y, act, 0.2)
            assert dx.dtype == dtype and db.dtype == dtype and db.shape == (c,)
            np.testing.assert_allclose(dx, want_dx, **tol(dtype))
            assert_db_close(db, want_db, want_dx, dtype)
            start = rng.standard_normal(c).astype(dtype)            # accumulate
            acc = start.copy()
            dx2, db2 = ops.act_backward_bias_grad(g, x, y, act, 0.2, db=acc, accumulate=True)
            assert db2 is acc
            np.testing.assert_array_equal(dx2, dx)
            assert_db_close(acc, want_db + start, want_dx, dtype)
            _, db3 = ops.act_backward_bias_grad(g, x, y, act, 0.2, db=acc)   # overwritten
            assert db3 is acc
            np.testing.assert_array_equal(acc, db)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ("relu", "tanh", "gelu"))
def test_act_backward_bias_grad_big_and_nd(simd, rng, dtype, act):
    """Many rows (16 row chunks, run by several threads) and columns (two column slabs), and
    leading axes summed together."""
    for shape in ((1030, 1100), (3, 5, 65), (2, 129, 7)):
        g, x, y = fused_inputs(rng, shape, dtype, act)
        want_dx, want_db = twin(ref.act_backward_bias_grad, g, x, y, act, 0.2)
        dx, db = ops.act_backward_bias_grad(g, x, y, act, 0.2)
        assert dx.shape == shape and db.shape == shape[-1:]
        np.testing.assert_allclose(dx, want_dx, **tol(dtype))
        assert_db_close(db, want_db, want_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_act_backward_bias_grad_same_bits_any_thread_count(rng, dtype):
    g, x, y = fused_inputs(rng, (2000, 300), dtype, "gelu")
    old = ops.num_threads()
    try:
        results = []
        for n in (1, 2, 3, 4):
            ops.set_num_threads(n)
            results.append(ops.act_backward_bias_grad(g, x, y, "gelu"))
    finally:
        ops.set_num_threads(old)
    for dx, db in results[1:]:
        np.testing.assert_array_equal(dx, results[0][0])
        np.testing.assert_array_equal(db, results[0][1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_act_backward_bias_grad_non_contiguous(simd, rng, dtype, act):
    base = (rng.standard_normal((3, 130, 68)) * 2).astype(dtype)
    for g, x in ((base[0, ::2, 1:-1], base[1, ::2, 2:]),           # (65, 66) strided
                 (base[0, :63].T, base[1, 1:64].T)):               # transposed (68, 63)
        y = twin(ref.act_forward, x, act)
        want_dx, want_db = twin(ref.act_backward_bias_grad, g, x, y, act)
        start = rng.standard_normal(2 * g.shape[1]).astype(dtype)
        db = start.copy()[::2]                                     # a strided db
        dx, got = ops.act_backward_bias_grad(g, x, y, act, db=db, accumulate=True)
        assert got is db
        np.testing.assert_allclose(dx, want_dx, **tol(dtype))
        assert_db_close(db, want_db + start[::2], want_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ("relu", "gelu"))
def test_act_backward_bias_grad_out(simd, rng, dtype, act):
    g, x, y = fused_inputs(rng, (65, 63), dtype, act)
    want_dx, want_db = twin(ref.act_backward_bias_grad, g, x, y, act)
    out = np.empty_like(g)
    dx, db = ops.act_backward_bias_grad(g, x, y, act, out=out)
    assert dx is out
    np.testing.assert_allclose(out, want_dx, **tol(dtype))
    assert_db_close(db, want_db, want_dx, dtype)
    gi = g.copy()                                                   # in place: out=grad_out
    dx, db2 = ops.act_backward_bias_grad(gi, x, y, act, out=gi)
    assert dx is gi
    np.testing.assert_array_equal(gi, out)
    np.testing.assert_array_equal(db2, db)
    big = np.zeros((65, 126), dtype)                                # a non-contiguous out
    outs = big[:, ::2]
    assert ops.act_backward_bias_grad(g, x, y, act, out=outs)[0] is outs
    np.testing.assert_array_equal(outs, out)


def test_act_backward_bias_grad_empty_and_int():
    for shape in ((0, 5), (4, 0), (2, 0, 3)):
        e = np.zeros(shape, np.float32)
        dx, db = ops.act_backward_bias_grad(e, e, e, "gelu")
        assert dx.shape == shape and db.shape == shape[-1:]
        np.testing.assert_array_equal(db, np.zeros(shape[-1:], np.float32))
        acc = np.ones(shape[-1:], np.float32)
        ops.act_backward_bias_grad(e, e, e, "relu", db=acc, accumulate=True)
        np.testing.assert_array_equal(acc, 1)
    gi = np.arange(-3, 4).reshape(1, 7)                             # ints: float64, as the twin
    dx, db = ops.act_backward_bias_grad(gi, gi, gi, "relu")
    assert dx.dtype == db.dtype == np.float64
    np.testing.assert_array_equal(db, ref.act_backward_bias_grad(gi, gi, gi, "relu")[1])


def test_act_backward_bias_grad_errors_match_twin(rng):
    op = ops.act_backward_bias_grad
    f = (op, ref.act_backward_bias_grad)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    db = np.zeros(3, np.float32)
    bad = [((x, x, x[:2], "relu"), {}),                             # shape mismatch
           ((x, x.T, x, "relu"), {}),
           ((x, x, x, "gelu"), {"db": np.zeros(4, np.float32)}),   # wrong db shape
           ((x, x, x, "gelu"), {"db": np.zeros((1, 3), np.float32)}),
           ((x, x, x, "gelu"), {"db": np.zeros(3)}),               # wrong db dtype
           ((x, x, x, "gelu"), {"db": [0.0, 0.0, 0.0]}),           # not an array
           ((x, x, x, "gelu"), {"accumulate": True}),              # nothing to add into
           ((x, x, x, "gelu"), {"db": db, "out": np.empty((3, 4), np.float32)}),
           ((x, x, x, "gelu"), {"out": np.empty((4, 3))}),         # wrong out dtype
           ((x[0, 0], x[0, 0], x[0, 0], "relu"), {})]               # 0-d
    for args, kwargs in bad:
        same_error(*f, *args, **kwargs)
        with pytest.raises(ValueError, match="^act_backward_bias_grad: "):
            op(*args, **kwargs)
    same_error(*f, x, x.astype(np.float64), x, "tanh")              # mixed dtypes: TypeError
    same_error(*f, x, x, x, "swish")                                # unknown activation
    same_error(*f, x.astype(complex), x, x, "relu")
    ro = db.copy()
    ro.flags.writeable = False
    same_error(*f, x, x, x, "relu", db=ro)
    with pytest.raises(ValueError, match="db is read-only"):
        op(x, x, x, "relu", db=ro)
    with pytest.raises(ValueError, match=r"db must be an ndarray of shape \(3,\) and dtype "
                                         r"float32 to match grad_out \(4, 3\), got \(\(4,\)"):
        op(x, x, x, "relu", db=np.zeros(4, np.float32))


# ----------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("shape", SHAPES + [(1000,), (3, 5, 65)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(simd, rng, shape, dtype):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    y = ops.softmax(x)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, twin(ref.softmax, x), **tol(dtype))
    g = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(ops.softmax_backward(g, y), twin(ref.softmax_backward, g, y),
                               **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_and_non_contiguous(simd, rng, dtype):
    x = rng.choice(np.array([-1000, -80, 0, 80, 1000], dtype), size=(63, 130))
    x[5] = -1000                                            # a constant row
    x[6, ::3] = 1000                                        # ties at the max
    for xi in (x, x[:, ::2], x.T):
        y = ops.softmax(xi)
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y, twin(ref.softmax, xi), **tol(dtype))
        np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-5)
        g = np.ones_like(xi)
        np.testing.assert_allclose(ops.softmax_backward(g[:, ::-1], y),
                                   twin(ref.softmax_backward, g[:, ::-1], y), **tol(dtype))


def test_softmax_nan_row(simd):
    x = np.zeros((3, 40), np.float32)
    x[1, 33] = np.nan
    y = ops.softmax(x)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


def test_softmax_errors_match_twin():
    same_error(ops.softmax, ref.softmax, np.float32(1))
    same_error(ops.softmax_backward, ref.softmax_backward, np.zeros((2, 3)), np.zeros((3, 2)))
    same_error(ops.softmax_backward, ref.softmax_backward, np.zeros(3, np.float32), np.zeros(3))


# ----------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy(simd, rng, shape, dtype):
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])
    loss, d = ops.softmax_cross_entropy(z, t)
    rloss, rd = twin(ref.softmax_cross_entropy, z, t)
    assert isinstance(loss, float) and d.dtype == dtype and d.shape == z.shape
    assert loss == pytest.approx(rloss, rel=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(d, rd, rtol=tol(dtype)["rtol"], atol=tol(dtype)["atol"] / shape[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_xent_extreme_and_non_contiguous(simd, rng, dtype):
    z = rng.choice(np.array([-1000, -80, 0, 80, 1000], dtype), size=(65, 14))
    t = rng.integers(0, 7, 65)
    for zi in (z[:, ::2], np.asfortranarray(z[:, :7])):
        loss, d = ops.softmax_cross_entropy(zi, t.astype(np.int32))
        rloss, rd = twin(ref.softmax_cross_entropy, zi, t)
        assert np.isfinite(loss) and np.all(np.isfinite(d))
        assert loss == pytest.approx(rloss, rel=1e-6)
        np.testing.assert_allclose(d, rd, **tol(dtype))
    # float labels holding integers are accepted, like the twin
    assert ops.softmax_cross_entropy(z, t.astype(np.float64))[0] == \
        pytest.approx(twin(ref.softmax_cross_entropy, z, t)[0], rel=1e-6)


def test_xent_errors_match_twin(rng):
    z = rng.standard_normal((5, 4)).astype(np.float32)
    f = (ops.softmax_cross_entropy, ref.softmax_cross_entropy)
    same_error(*f, z, np.array([0, 1, 2, 3, 4]))            # label >= C
    same_error(*f, z, np.array([0, -1, 2, 3, 0]))           # negative
    same_error(*f, z, np.array([0, 1, 2]))                  # wrong length
    same_error(*f, z, np.zeros((5, 1), np.int64))           # wrong shape
    same_error(*f, z, np.array([0, 1.5, 2, 3, 0]))          # non-integer floats
    same_error(*f, z, np.array([0, np.nan, 2, 3, 0]))
    same_error(*f, z[0], np.array([0]))                     # 1-D logits
    same_error(*f, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


# ----------------------------------------------------------------------------- FTZ hygiene


def test_caller_float_mode_restored(rng):
    """Kernels flush subnormals internally but must restore the caller's MXCSR."""
    x = rng.standard_normal((300, 300)).astype(np.float32)  # > 32k: the OpenMP path as well
    ops.softmax(x)
    ops.bias_act(x, x[0], "gelu")
    ops.softmax_cross_entropy(x, np.zeros(300, np.int64))
    tiny = np.array([1e-38], np.float32) / np.float32(8)
    assert tiny[0] > 0                                      # still a subnormal, not flushed


# ----------------------------------------------------------------------------- dropout
# The mask is a function of (seed, flat index) only, so the kernel must give the twin's result
# bit for bit: on every SIMD path, at sizes around the vector widths (4, 8, 16 lanes), for any
# thread count and any layout of x.
SEEDS = (0, 1, 12345, 2 ** 63, 2 ** 64 - 1)
RATES = (0.0, 0.1, 0.5, 0.999)


def splitmix64_bits(seed, i):
    """The top 32 bits of SplitMix64's output for counter i + 1, in plain Python integers
    (the published algorithm, written independently of the twin's array code)."""
    m = 2 ** 64 - 1
    z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return (z ^ (z >> 31)) >> 32


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_twin_is_splitmix64(seed):
    for rate in (0.1, 0.5):
        t = checks.dropout_threshold(rate)
        keep = ref.dropout_keep(300, rate, seed)
        assert keep.tolist() == [splitmix64_bits(seed, i) >= t for i in range(300)]
    assert checks.dropout_threshold(0.0) == 0
    assert checks.dropout_threshold(1 - 1e-12) == 2 ** 32 - 1


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 257, 1000, 100003])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_same_bits_as_twin(simd, rng, n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    for seed in SEEDS:
        for rate in RATES:
            y = ops.dropout(x, rate, seed)
            assert y.dtype == dtype and y.shape == x.shape
            np.testing.assert_array_equal(y, ref.dropout(x, rate, seed))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_nd_non_contiguous_and_any_thread_count(simd, rng, dtype):
    base = rng.standard_normal((64, 130)).astype(dtype)
    for x in (base[:, ::2], base.T, base[1:, 3:][::9, ::3], base.reshape(8, 8, 130)):
        np.testing.assert_array_equal(ops.dropout(x, 0.3, 7), ref.dropout(x, 0.3, 7))
    big = rng.standard_normal((300, 1000)).astype(dtype)   # big enough for the OpenMP path
    old = ops.num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            ops.set_num_threads(n)
            results.append(ops.dropout(big, 0.2, 99))
    finally:
        ops.set_num_threads(old)
    for y in results:
        np.testing.assert_array_equal(y, ref.dropout(big, 0.2, 99))


def test_dropout_statistics():
    n, rate = 1 << 20, 0.3
    x = np.ones(n, np.float32)
    y = ops.dropout(x, rate, 2024)
    kept = y != 0
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 5 * sigma
    np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - rate)))
    # neighbouring elements and neighbouring seeds are independent: P(both kept) = (1 - p)²
    both = (kept[1:] & kept[:-1]).mean()
    assert abs(both - (1 - rate) ** 2) < 5 * np.sqrt((1 - rate) ** 2 / n)
    other = ops.dropout(x, rate, 2025) != 0
    assert abs((kept & other).mean() - (1 - rate) ** 2) < 5 * np.sqrt((1 - rate) ** 2 / n)
    # E[y] = x: inverted dropout keeps the mean
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(rate / (1 - rate) / n)


def test_dropout_backward_is_the_same_mask(rng):
    """The layers' backward: the same op, same seed, on the gradient (a linear map: exact)."""
    x = rng.standard_normal((50, 40))
    g = rng.standard_normal((50, 40))
    y = ops.dropout(x, 0.4, 5)
    mask = ops.dropout(np.ones_like(x), 0.4, 5)
    np.testing.assert_array_equal(y, x * mask)
    np.testing.assert_array_equal(ops.dropout(g, 0.4, 5), g * mask)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_nan_inf_zero_rate_and_empty(simd, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1.0] * 16, dtype)
    y = ops.dropout(x, 0.5, 3)
    np.testing.assert_array_equal(y, ref.dropout(x, 0.5, 3))
    assert np.isnan(y[0::4]).all()                 # NaN · 0 and NaN · s: NaN stays NaN
    np.testing.assert_array_equal(ops.dropout(x[3::4], 0.0, 3), x[3::4])   # rate 0: identity
    e = np.zeros((0, 5), dtype)
    assert ops.dropout(e, 0.5, 1).shape == (0, 5)
    y = ops.dropout(np.arange(6).reshape(2, 3), 0.5, 1)     # ints: float64, as the twins
    assert y.dtype == np.float64


def test_dropout_errors_match_twin():
    x = np.ones((4, 3), np.float32)
    for rate, seed in [(1.0, 0), (-0.1, 0), (np.nan, 0), ("a", 0), (None, 0), (0.5, -1),
                       (0.5, 2 ** 64), (0.5, 1.5), (0.5, True), (0.5, None)]:
        same_error(ops.dropout, ref.dropout, x, rate, seed)
    same_error(ops.dropout, ref.dropout, x.astype(complex), 0.5, 1)
    msg = r"dropout: rate must be in \[0, 1\), got 1.0 \(x of shape \(4, 3\)\)"
    with pytest.raises(ValueError, match=msg):
        ops.dropout(x, 1.0, 0)
