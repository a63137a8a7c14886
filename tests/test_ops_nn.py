"""Compiled LayerNorm / embedding / many-tensor Adam / sum of squares vs their numpy twins, on
every SIMD path."""
import numpy as np
import pytest

from _kernels import needs_compiled, same_error
from nnlite import ops
from nnlite.ops import reference as ref

DTYPES = (np.float32, np.float64)
# (rows, features): {1, 7, 63, 65, 257} on both axes; 63/65 straddle the 16-lane tails, 7 is
# below one AVX2 vector, (257, 257) is big enough for the OpenMP paths
SHAPES = [(1, 1), (1, 257), (7, 63), (63, 7), (65, 65), (257, 1), (257, 257)]
OPS = ("layernorm", "layernorm_backward", "embedding", "embedding_backward", "adam_update_many",
       "sum_squares_many")


def up(a):
    return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a


def twin(fn, *args):
    """The twin run in float64 (float32 inputs upcast), results cast back to the input dtype."""
    dtype = next(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    r = fn(*map(up, args))
    return tuple(a.astype(dtype) for a in r) if isinstance(r, tuple) else r.astype(dtype)


def tol(dtype, n_sum=1):
    """n_sum: how many terms a result sums (dγ, dβ sum over rows)."""
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-6 * max(1, n_sum) ** 0.5 + 1e-6)
    return dict(rtol=1e-11, atol=1e-13 * max(1, n_sum))


@needs_compiled
@pytest.mark.parametrize("op", OPS)
def test_compiled(op):
    assert ops.compiled_kernels()[op] == "compiled"


# ----------------------------------------------------------------------------- layernorm


def _ln_inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma = (1 + 0.3 * rng.standard_normal(shape[-1])).astype(dtype)
    beta = (0.3 * rng.standard_normal(shape[-1])).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm(simd, rng, shape, dtype):
    x, gamma, beta = _ln_inputs(rng, shape, dtype)
    y, mean, rstd = ops.layernorm(x, gamma, beta)
    assert y.dtype == mean.dtype == rstd.dtype == dtype
    assert y.shape == shape and mean.shape == rstd.shape == shape[:-1]
    y2, mean2, rstd2 = twin(ref.layernorm, x, gamma, beta)
    if shape[-1] == 1:   # var = 0: rstd = 1/√ε, y = β up to rounding of x - μ
        np.testing.assert_allclose(mean, mean2, **tol(dtype))
        np.testing.assert_allclose(y, beta * np.ones_like(x), atol=1e-3)
        return
    for a, b in ((y, y2), (mean, mean2), (rstd, rstd2)):
        np.testing.assert_allclose(a, b, **tol(dtype, shape[-1]))


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[1] > 1])  # C = 1: dx is rounding noise × 1/√ε
@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_backward(simd, rng, shape, dtype):
    x, gamma, _ = _ln_inputs(rng, shape, dtype)
    _, mean, rstd = twin(ref.layernorm, x, gamma, gamma)
    g = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = ops.layernorm_backward(g, x, gamma, mean, rstd)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    dx2, dgamma2, dbeta2 = twin(ref.layernorm_backward, g, x, gamma, mean, rstd)
    np.testing.assert_allclose(dx, dx2, **tol(dtype, shape[-1]))
    np.testing.assert_allclose(dgamma, dgamma2, **tol(dtype, shape[0]))
    np.testing.assert_allclose(dbeta, dbeta2, **tol(dtype, shape[0]))
    # residual=: the skip path's gradient, added to dx as it is written; dγ, dβ unchanged
    r = rng.standard_normal(shape).astype(dtype)
    dxr, dgr, dbr = ops.layernorm_backward(g, x, gamma, mean, rstd, residual=r)
    np.testing.assert_allclose(dxr, dx2 + r, **tol(dtype, shape[-1]))
    np.testing.assert_array_equal(dgr, dgamma)
    np.testing.assert_array_equal(dbr, dbeta)
    r_view = np.repeat(r, 2, axis=-1)[..., ::2]                 # not contiguous: copied once
    np.testing.assert_array_equal(ops.layernorm_backward(g, x, gamma, mean, rstd,
                                                         residual=r_view)[0], dxr)


def test_layernorm_backward_residual_errors_match_the_twin(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    gamma = np.ones(6, np.float32)
    _, mean, rstd = ref.layernorm(x, gamma, gamma)
    for r in (np.ones((4, 5), np.float32), np.ones((4, 6), np.float64), "x"):
        errors = []
        for f in (ops.layernorm_backward, ref.layernorm_backward):
            with pytest.raises((TypeError, ValueError)) as e:
                f(x, x, gamma, mean, rstd, residual=r)
            errors.append((type(e.value), str(e.value)))
        assert errors[0] == errors[1] and errors[0][1].startswith("layernorm_backward:"), errors


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_3d_noncontiguous(simd, rng, dtype):
    """(B, T, C) input taken as a strided view (every other time step, channels reversed)."""
    big = (rng.standard_normal((3, 14, 65)) * 2).astype(dtype)
    x = big[:, ::2, ::-1]                         # (3, 7, 65), not contiguous
    gamma = (1 + 0.3 * rng.standard_normal(130)).astype(dtype)[::2]
    beta = (0.3 * rng.standard_normal(65)).astype(dtype)
    assert not x.flags.c_contiguous and not gamma.flags.c_contiguous
    y, mean, rstd = ops.layernorm(x, gamma, beta)
    for a, b in zip((y, mean, rstd), twin(ref.layernorm, x, gamma, beta)):
        np.testing.assert_allclose(a, b, **tol(dtype, 65))
    g = rng.standard_normal((3, 7, 130)).astype(dtype)[..., ::2]
    got = ops.layernorm_backward(g, x, gamma, mean, rstd)
    want = twin(ref.layernorm_backward, g, x, gamma, mean, rstd)
    for a, b, n in zip(got, want, (65, 21, 21)):
        np.testing.assert_allclose(a, b, **tol(dtype, n))


def test_layernorm_backward_vs_finite_differences(rng):
    x, gamma, beta = _ln_inputs(rng, (3, 5), np.float64)
    w = rng.standard_normal((3, 5))                       # loss = Σ w ⊙ y
    _, mean, rstd = ops.layernorm(x, gamma, beta)
    dx, dgamma, dbeta = ops.layernorm_backward(w, x, gamma, mean, rstd)
    h = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = ((ops.layernorm(xp, gamma, beta)[0] - ops.layernorm(xm, gamma, beta)[0]) * w).sum() / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbeta, w.sum(0), rtol=1e-12)


def test_layernorm_deterministic(rng):
    x, gamma, beta = _ln_inputs(rng, (300, 128), np.float32)
    _, mean, rstd = ops.layernorm(x, gamma, beta)
    g = rng.standard_normal(x.shape).astype(np.float32)
    a = ops.layernorm_backward(g, x, gamma, mean, rstd)
    b = ops.layernorm_backward(g, x, gamma, mean, rstd)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


def test_layernorm_errors():
    x = np.zeros((2, 3), np.float32)
    g3 = np.ones(3, np.float32)
    same_error(ops.layernorm, ref.layernorm, x, np.ones(4, np.float32), g3)
    same_error(ops.layernorm, ref.layernorm, x, g3, np.ones(3, np.float64))
    same_error(ops.layernorm, ref.layernorm, np.float32(1.0), g3, g3)
    same_error(ops.layernorm, ref.layernorm, x.astype(np.complex64), g3, g3)
    m = np.zeros(2, np.float32)
    same_error(ops.layernorm_backward, ref.layernorm_backward, np.zeros((2, 4), np.float32), x, g3, m, m)
    same_error(ops.layernorm_backward, ref.layernorm_backward, x, x, np.ones(2, np.float32), m, m)
    same_error(ops.layernorm_backward, ref.layernorm_backward, x.astype(np.float64), x, g3, m, m)


# ----------------------------------------------------------------------------- embedding


@pytest.mark.parametrize("vocab,C", [(1, 1), (7, 63), (65, 65), (65, 257), (257, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(simd, rng, vocab, C, dtype):
    table = rng.standard_normal((vocab, C)).astype(dtype)
    ids = rng.integers(0, vocab, size=(4, 17))
    out = ops.embedding(ids, table)
    assert out.shape == (4, 17, C) and out.dtype == dtype
    np.testing.assert_array_equal(out, ref.embedding(ids, table))
    # 1-D, 0-d and int32 ids; a non-contiguous table
    np.testing.assert_array_equal(ops.embedding(ids[0].astype(np.int32), table), table[ids[0]])
    np.testing.assert_array_equal(ops.embedding(np.int64(vocab - 1), table), table[vocab - 1])
    tnc = np.asfortranarray(table)
    np.testing.assert_array_equal(ops.embedding(ids, tnc), ref.embedding(ids, tnc))


@pytest.mark.parametrize("vocab,C", [(1, 1), (7, 63), (65, 65), (65, 257), (257, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_backward(simd, rng, vocab, C, dtype):
    ids = rng.integers(0, vocab, size=(8, 33))            # many repeated ids
    ids[0, :5] = 0                                        # and certainly some
    grad = rng.standard_normal((8, 33, C)).astype(dtype)
    d0 = rng.standard_normal((vocab, C)).astype(dtype)
    got, want = d0.copy(), d0.copy()
    assert ops.embedding_backward(ids, grad, got) is None
    ref.embedding_backward(ids, grad, want)
    # each element summed in token order, like np.add.at: bit-identical
    np.testing.assert_array_equal(got, want)


def test_embedding_backward_noncontiguous(simd, rng):
    ids = rng.integers(0, 7, size=(3, 20))[:, ::2]
    grad = rng.standard_normal((3, 10, 130)).astype(np.float32)[..., ::2]
    dt = np.zeros((7, 130), np.float32)
    got, want = dt[:, ::2], dt.copy()[:, ::2]
    ops.embedding_backward(ids, grad, got)
    ref.embedding_backward(ids, grad, want)
    np.testing.assert_array_equal(got, want)
    assert np.all(dt[:, 1::2] == 0)                      # wrote through the view only


def test_embedding_errors():
    table = np.zeros((5, 3), np.float32)
    same_error(ops.embedding, ref.embedding, np.array([0, 5, 2]), table)
    same_error(ops.embedding, ref.embedding, np.array([[-1, 2]]), table)
    same_error(ops.embedding, ref.embedding, np.array([0.0, 1.0]), table)
    same_error(ops.embedding, ref.embedding, np.array([0, 1]), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 5\), got values in \[0, 5\]"):
        ops.embedding(np.array([0, 5, 2]), table)
    g = np.zeros((2, 3), np.float32)
    same_error(ops.embedding_backward, ref.embedding_backward, np.array([0, 9]), g, table)
    same_error(ops.embedding_backward, ref.embedding_backward, np.array([0, 1]), g, table.astype(np.float64))
    same_error(ops.embedding_backward, ref.embedding_backward, np.array([0, 1, 2]), g, table)
    same_error(ops.embedding_backward, ref.embedding_backward, np.array([0, 1]), g, table.tolist())
    same_error(ops.embedding_backward, ref.embedding_backward, np.array(["a", "b"]), g, table)


# ----------------------------------------------------------------------------- adam_update_many


def _adam_problem(rng, dtype):
    shapes = [(65, 63), (257,), (7,), (1,), (63, 7), (3, 5, 7), (0,)]
    ps = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ps, [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]


@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_many(simd, rng, dtype, decoupled):
    ps, ms, vs = _adam_problem(rng, dtype)
    ps2, ms2, vs2 = [p.copy() for p in ps], [m.copy() for m in ms], [v.copy() for v in vs]
    wds = [0.1, 0.0, 0.05, 0.0, 0.1, 0.01, 0.1]
    for step in range(1, 5):
        gs = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
        gs[1] = gs[1] * 1e-20                                 # tiny moments, near subnormal
        ops.adam_update_many(ps, gs, ms, vs, lr=0.01, beta1=0.8, beta2=0.95, eps=1e-7,
                             weight_decays=wds, step=step, decoupled=decoupled)
        for p, g, m, v, wd in zip(ps2, gs, ms2, vs2, wds):
            ref.adam_update(p, g, m, v, 0.01, 0.8, 0.95, 1e-7, wd, step, decoupled)
    t = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for a, b in zip(ps + ms, ps2 + ms2):
        np.testing.assert_allclose(a, b, **t)
    for a, b in zip(vs, vs2):
        np.testing.assert_allclose(a, b, rtol=t["rtol"], atol=1e-30)


def test_adam_update_many_big_parallel(simd, rng):
    """~0.3M elements: the OpenMP path, ranges cut across tensor boundaries. The kernel does
    the twin's arithmetic op by op (no FMA), so float32 results are bit-identical."""
    ps = [rng.standard_normal(s).astype(np.float32) for s in [(256, 512), (512,), (301, 77), (9,)]]
    ps2 = [p.copy() for p in ps]
    ms, vs = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    ms2, vs2 = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    for step in (1, 2):
        gs = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
        ops.adam_update_many(ps, gs, ms, vs, lr=1e-3, weight_decays=0.1, step=step)
        ref.adam_update_many(ps2, gs, ms2, vs2, lr=1e-3, weight_decays=0.1, step=step)
    for a, b in zip(ps + ms + vs, ps2 + ms2 + vs2):
        np.testing.assert_array_equal(a, b)


def test_adam_update_many_mixed_layouts(rng):
    """float32 and float64 params in one call, a non-contiguous param, a strided grad."""
    p32 = rng.standard_normal((5, 6)).astype(np.float32)
    p64 = rng.standard_normal(9)
    pnc = rng.standard_normal((4, 8))[:, ::2]
    ps = [p32, p64, pnc]
    st = [(np.zeros_like(p), np.zeros_like(p)) for p in ps]
    ps2 = [p.copy() for p in ps]
    st2 = [(np.zeros_like(p), np.zeros_like(p)) for p in ps]
    gs = [rng.standard_normal((5, 12)).astype(np.float32)[:, ::2], rng.standard_normal(9),
          rng.standard_normal((4, 4))]
    ops.adam_update_many(ps, gs, [m for m, _ in st], [v for _, v in st], weight_decays=0.1,
                         step=1, decoupled=False)
    for p, g, (m, v) in zip(ps2, gs, st2):
        ref.adam_update(p, g, m, v, weight_decay=0.1, step=1, decoupled=False)
    for a, b in zip(ps, ps2):
        np.testing.assert_allclose(a, b, rtol=2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_many_direct_and_general_paths_agree(rng, dtype):
    """Plain contiguous lists go straight to the kernel; one strided grad sends the same call
    through the general path (per-array checks, copies). Same bits either way, and the
    direct path still refuses what the general one refuses."""
    ps = [rng.standard_normal(s).astype(dtype) for s in [(7, 65), (65,), (1,), (63, 2)]]
    gs = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
    runs = []
    for strided in (False, True):
        p2, m2, v2 = [p.copy() for p in ps], [np.zeros_like(p) for p in ps], \
            [np.zeros_like(p) for p in ps]
        g2 = list(gs)
        if strided:
            g2[0] = np.repeat(gs[0], 2, axis=1)[:, ::2]      # same values, not contiguous
        for step in (1, 2):
            ops.adam_update_many(p2, g2, m2, v2, lr=1e-2, weight_decays=[0.1, 0, 0, 0.1],
                                 step=step)
        runs.append(p2 + m2 + v2)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    ro = ps[0].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.adam_update_many([ro], [gs[0]], [np.zeros_like(ro)], [np.zeros_like(ro)], step=1)
    with pytest.raises(ValueError, match="one shape"):
        ops.adam_update_many([ps[0]], [gs[1]], [np.zeros_like(ps[0])], [np.zeros_like(ps[0])],
                             step=1)


def test_adam_update_many_errors():
    p = np.zeros(3, np.float32)
    z = lambda: np.zeros(3, np.float32)  # noqa: E731
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [z(), z()], [z()], [z()])
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [z()], [z()], [z()],
               weight_decays=[0.1, 0.2])
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [np.zeros(4, np.float32)],
               [z()], [z()])
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [np.zeros(3)], [z()], [z()])
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [z()], [z()], [z()], step=0)
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [[0, 0, 0]], [z()], [z()])


# ----------------------------------------------------------------------------- sum_squares_many
# awkward sizes (tails of every vector width, 128-element chunks, 32768-element pieces cut
# across tensors) in awkward layouts: transposed, negative strides, a misaligned buffer
def _squares_problem(rng, dtype):
    xs = [rng.standard_normal(s).astype(dtype) for s in
          [(1,), (7,), (63, 65), (257,), (0, 3), (129,), (300, 257), (65, 7)]]
    xs[2] = xs[2].T                                              # F-ordered
    xs[3] = xs[3][::-1]                                          # negative stride
    raw = np.zeros(xs[5].nbytes + 1, np.uint8)[1:].view(dtype)   # misaligned
    raw[...] = xs[5]
    xs[5] = raw
    return xs


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_many(simd, rng, dtype):
    xs = _squares_problem(rng, dtype)
    got = ops.sum_squares_many(xs)
    want = ref.sum_squares_many(xs)
    assert isinstance(got, float)
    # float32 squares are summed in float32 within 128-element chunks: a few ulps of float32
    assert got == pytest.approx(want, rel=1e-6 if dtype == np.float32 else 1e-13)


def test_sum_squares_many_mixed_dtypes_and_empty(rng):
    a, b = rng.standard_normal(65).astype(np.float32), rng.standard_normal(7)
    assert ops.sum_squares_many([a, b]) == pytest.approx(ref.sum_squares_many([a, b]), rel=1e-6)
    assert ops.sum_squares_many([]) == ref.sum_squares_many([]) == 0.0
    assert ops.sum_squares_many([np.zeros((0, 4), np.float32)]) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_many_non_finite(simd, dtype):
    """NaN or inf anywhere (also in a chunk's tail and in a later piece) gives NaN or inf;
    a finite float32 entry whose square overflows float32 (1e20² = 1e40) stays finite."""
    for bad, check in ((np.nan, np.isnan), (np.inf, np.isposinf), (-np.inf, np.isposinf)):
        for where in (0, 130, 40000, 69999):
            x = np.ones(70000, dtype)
            x[where] = bad
            assert check(ops.sum_squares_many([np.ones(3, dtype), x])), (bad, where)
    x = np.ones(300, dtype)
    x[5] = 1e20
    got = ops.sum_squares_many([x])
    assert np.isfinite(got) and got == pytest.approx(1e40, rel=1e-6)


def test_sum_squares_many_thread_count_independent(rng):
    """The same bits for 1 and 2 threads: pieces are fixed by the sizes, added in order."""
    xs = [rng.standard_normal(s).astype(np.float32) for s in [(300, 257), (70001,), (5,)]]
    n0 = ops.num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            ops.set_num_threads(n)
            results.append(ops.sum_squares_many(xs))
    finally:
        ops.set_num_threads(n0)
    assert results[0] == results[1] == results[2]


def test_sum_squares_many_bad_input():
    same_error(ops.sum_squares_many, ref.sum_squares_many, [np.array(["a"])])
    same_error(ops.sum_squares_many, ref.sum_squares_many, [np.ones(3, np.complex64)])
