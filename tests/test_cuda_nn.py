"""The CUDA LayerNorm, embedding, optimizer and sum-of-squares kernels (csrc/cuda/nn_kernels.cuh)
against their numpy twins: through the shim on CPU threads always, on a GPU when there is one
(the ``cuda_dev`` fixture). Same shapes as the CPU kernels' tests (tests/test_ops_nn.py)."""
import numpy as np
import pytest

from _cuda_shim import to_dev, to_host
from nnlite.ops import cuda_nn
from nnlite.ops import reference as ref

DTYPES = (np.float32, np.float64)
SHAPES = [(1, 1), (1, 257), (7, 63), (63, 7), (65, 65), (257, 1), (40, 257)]


@pytest.fixture
def k(cuda_dev):
    return cuda_nn.kernels(cuda_dev), cuda_dev


def tol(dtype, n=1):
    eps = np.finfo(dtype).eps
    return dict(rtol=50 * eps * max(1, np.sqrt(n)), atol=50 * eps * max(1, np.sqrt(n)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 33)])
def test_layernorm_forward_and_backward(k, shape, dtype, rng):
    kern, dev = k
    C = shape[-1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    want = ref.layernorm(x, gamma, beta, 1e-5)
    got = to_host(kern["layernorm"](to_dev(dev, x), to_dev(dev, gamma), to_dev(dev, beta), 1e-5))
    for a, b in zip(got, want):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol(dtype, C))
    rows = x.size // C
    want_b = ref.layernorm_backward(g, x, gamma, want[1], want[2])
    got_b = to_host(kern["layernorm_backward"](*(to_dev(dev, a) for a in
                                                 (g, x, gamma, want[1], want[2]))))
    for a, b, n in zip(got_b, want_b, (C, rows, rows)):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol(dtype, n))
    r = rng.standard_normal(shape).astype(dtype)     # residual=: added to dx
    got_r = to_host(kern["layernorm_backward"](*(to_dev(dev, a) for a in
                                                 (g, x, gamma, want[1], want[2])),
                                               residual=to_dev(dev, r)))
    np.testing.assert_allclose(got_r[0], want_b[0] + r, **tol(dtype, C))


def test_layernorm_non_contiguous_input(k, rng):
    kern, dev = k
    big = rng.standard_normal((9, 70)).astype(np.float32)
    x = to_dev(dev, big)[::2, 3:68]             # strided rows, offset columns
    gamma, beta = np.ones(65, np.float32), np.zeros(65, np.float32)
    y, mean, rstd = to_host(kern["layernorm"](x, to_dev(dev, gamma), to_dev(dev, beta)))
    want = ref.layernorm(big[::2, 3:68], gamma, beta)
    np.testing.assert_allclose(y, want[0], **tol(np.float32, 65))


def test_layernorm_errors_match_the_twin(k):
    kern, dev = k
    x = to_dev(dev, np.ones((3, 4), np.float32))
    bad = to_dev(dev, np.ones(5, np.float32))
    for f in (kern["layernorm"], ref.layernorm):
        with pytest.raises(ValueError, match="gamma .* must have shape"):
            f(x if f is kern["layernorm"] else np.ones((3, 4), np.float32), bad if f is
              kern["layernorm"] else np.ones(5, np.float32), bad if f is kern["layernorm"]
              else np.ones(5, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,V,C", [(1, 1, 1), (7, 3, 63), (65, 65, 7), (257, 5, 33)])
def test_embedding_gather_and_scatter_add(k, n, V, C, dtype, rng):
    kern, dev = k
    table = rng.standard_normal((V, C)).astype(dtype)
    ids = rng.integers(0, V, size=(n,))           # repeats: the scatter-add must sum them
    got = to_host(kern["embedding"](to_dev(dev, ids), to_dev(dev, table)))
    np.testing.assert_array_equal(got, ref.embedding(ids, table))
    g = rng.standard_normal((n, C)).astype(dtype)
    want = rng.standard_normal((V, C)).astype(dtype)
    dtable = to_dev(dev, want)
    ref.embedding_backward(ids, g, want)
    kern["embedding_backward"](to_dev(dev, ids), to_dev(dev, g), dtable)
    # the kernel adds in the twin's order (np.add.at): the same bits
    np.testing.assert_array_equal(to_host(dtable), want)


def test_embedding_ids_of_any_shape_and_int32(k, rng):
    kern, dev = k
    table = rng.standard_normal((11, 5)).astype(np.float32)
    ids = rng.integers(0, 11, size=(3, 4)).astype(np.int32)
    got = to_host(kern["embedding"](to_dev(dev, ids), to_dev(dev, table)))
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, table[ids])


def test_embedding_backward_into_a_non_contiguous_table(k, rng):
    kern, dev = k
    base = np.zeros((6, 10), np.float64)
    want = base.copy()
    ids = np.array([0, 2, 2, 5])
    g = rng.standard_normal((4, 5))
    dbase = to_dev(dev, base)
    kern["embedding_backward"](to_dev(dev, ids), to_dev(dev, g), dbase[:, ::2])
    ref.embedding_backward(ids, g, want[:, ::2])
    np.testing.assert_array_equal(to_host(dbase), want)


@pytest.mark.parametrize("op", ["embedding", "embedding_backward"])
def test_embedding_bad_ids_raise_the_twins_error(k, op):
    kern, dev = k
    table = np.zeros((4, 3), np.float32)
    ids = np.array([0, 4])
    args = ((ids, table) if op == "embedding" else (ids, np.zeros((2, 3), np.float32), table))
    with pytest.raises(ValueError) as want:
        getattr(ref, op)(*args)
    with pytest.raises(ValueError) as got:
        kern[op](*(to_dev(dev, a) for a in args))
    assert str(got.value) == str(want.value)


def _state(rng, shape, dtype):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.01),
                                                  (0.9, True, 0.0)])
def test_sgd_update(k, momentum, nesterov, wd, dtype, rng):
    kern, dev = k
    p, g, v, _ = _state(rng, (65, 7), dtype)
    dp, dv = to_dev(dev, p), to_dev(dev, v)
    for _ in range(3):
        ref.sgd_update(p, g, v if momentum else None, 0.1, momentum, nesterov, wd)
        kern["sgd_update"](dp, to_dev(dev, g), dv if momentum else None, 0.1, momentum,
                           nesterov, wd)
    np.testing.assert_allclose(to_host(dp), p, **tol(dtype))
    np.testing.assert_allclose(to_host(dv), v, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_rmsprop_update(k, wd, dtype, rng):
    kern, dev = k
    p, g, s, _ = _state(rng, (257,), dtype)
    s = np.abs(s)
    dp, ds = to_dev(dev, p), to_dev(dev, s)
    for _ in range(3):
        ref.rmsprop_update(p, g, s, 0.01, 0.9, 1e-8, wd)
        kern["rmsprop_update"](dp, to_dev(dev, g), ds, 0.01, 0.9, 1e-8, wd)
    np.testing.assert_allclose(to_host(dp), p, **tol(dtype))
    np.testing.assert_allclose(to_host(ds), s, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,wd", [(True, 0.1), (False, 0.1), (True, 0.0)])
def test_adam_update_one_tensor(k, decoupled, wd, dtype, rng):
    kern, dev = k
    p, g, m, v = _state(rng, (63, 65), dtype)
    v = np.abs(v)
    dp, dm, dv = to_dev(dev, p), to_dev(dev, m), to_dev(dev, v)
    for step in (1, 2, 3):
        ref.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled)
        kern["adam_update"](dp, to_dev(dev, g), dm, dv, 1e-2, 0.9, 0.999, 1e-8, wd, step,
                            decoupled)
    for a, b in ((dp, p), (dm, m), (dv, v)):
        np.testing.assert_allclose(to_host(a), b, **tol(dtype))


def test_adam_update_many_tensors_sizes_dtypes_and_views(k, rng):
    """Sizes across the kernel's chunk boundary (one tensor spans several blocks), an empty
    tensor, both dtypes in one call, per-tensor weight decay, and a non-contiguous m."""
    kern, dev = k
    chunk = dev.ext.nn_chunk()
    shapes = [(1,), (chunk + 7,), (0, 3), (7, 63), (2 * chunk + 1,), (65,)]
    dtypes = [np.float32, np.float64, np.float32, np.float64, np.float32, np.float32]
    host = [_state(rng, s, d) for s, d in zip(shapes, dtypes)]
    for st in host:
        st[3] = np.abs(st[3])
    wds = [0.0, 0.1, 0.0, 0.2, 0.05, 0.0]
    dev_state = [[to_dev(dev, a) for a in st] for st in host]
    big_m = to_dev(dev, np.zeros((65, 2), np.float32))
    big_m[:, 0] = dev_state[5][2]
    dev_state[5][2] = big_m[:, 0]                   # m of the last tensor: a strided view
    for step in (1, 2):
        ref.adam_update_many(*zip(*host), lr=1e-2, weight_decays=wds, step=step)
        kern["adam_update_many"](*zip(*dev_state), lr=1e-2, weight_decays=wds, step=step)
    for st, dst in zip(host, dev_state):
        for a, b in zip(dst, st):
            np.testing.assert_allclose(to_host(a), b, **tol(b.dtype))


def test_adam_update_many_checks_everything_first(k):
    kern, dev = k
    p = [to_dev(dev, np.ones(3, np.float32)), to_dev(dev, np.ones(3, np.float32))]
    g = [to_dev(dev, np.ones(3, np.float32)), to_dev(dev, np.ones(4, np.float32))]
    m = [to_dev(dev, np.zeros(3, np.float32)) for _ in range(2)]
    v = [to_dev(dev, np.zeros(3, np.float32)) for _ in range(2)]
    with pytest.raises(ValueError):
        kern["adam_update_many"](p, g, m, v)
    np.testing.assert_array_equal(to_host(p[0]), 1)   # nothing updated
    with pytest.raises(ValueError, match="step"):
        kern["adam_update_many"](p[:1], g[:1], m[:1], v[:1], step=0)


@pytest.mark.parametrize("sizes", [[1], [7, 63, 65], [257, 0, 5000], [9000]])
def test_sum_squares_many(k, sizes, rng):
    kern, dev = k
    arrays = [rng.standard_normal(n).astype(np.float32 if i % 2 else np.float64)
              for i, n in enumerate(sizes)]
    want = ref.sum_squares_many(arrays)
    got = kern["sum_squares_many"]([to_dev(dev, a) for a in arrays])
    assert isinstance(got, float)
    assert got == pytest.approx(want, rel=1e-12)
    # fixed blocks, fixed reduction trees: the same bits again
    assert kern["sum_squares_many"]([to_dev(dev, a) for a in arrays]) == got


def test_sum_squares_many_sees_nan_and_empty_lists(k):
    kern, dev = k
    assert kern["sum_squares_many"]([]) == 0.0
    x = np.ones(10, np.float32)
    x[3] = np.nan
    assert np.isnan(kern["sum_squares_many"]([to_dev(dev, x)]))
