"""Compiled optimizer steps vs their numpy twins: SGD and RMSprop (Cython), Adam (adam_many.cpp)."""
import numpy as np
import pytest

from _kernels import needs_compiled, same_error
from nnlite import ops
from nnlite.ops import reference as ref

DTYPES = (np.float32, np.float64)
# 1 and 7: tiny; (63, 65): 2-D; 70000: above the parallel threshold (prange path)
SHAPES = [(1,), (7,), (63, 65), (70000,)]


def tol(dtype):
    return dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


def run_both(name, rng, shape, dtype, n_state, steps=4, **kw):
    """`steps` updates with fresh gradients through the kernel and the twin; compare all arrays."""
    p = rng.standard_normal(shape).astype(dtype)
    # non-negative state: valid for second moments (v, sq) as well as m / velocity
    state = [(np.abs(rng.standard_normal(shape)) * 0.1).astype(dtype) for _ in range(n_state)]
    p2, state2 = p.copy(), [s.copy() for s in state]
    native, twin = getattr(ops, name), getattr(ref, name)
    for t in range(1, steps + 1):
        g = rng.standard_normal(shape).astype(dtype)
        extra = dict(step=t) if name == "adam_update" else {}
        assert native(p, g, *state, **kw, **extra) is None
        twin(p2, g, *state2, **kw, **extra)
    np.testing.assert_allclose(p, p2, **tol(dtype))
    for s, s2 in zip(state, state2):
        np.testing.assert_allclose(s, s2, **tol(dtype))
    return p


@needs_compiled
@pytest.mark.parametrize("op", ["sgd_update", "adam_update", "rmsprop_update"])
def test_compiled(op):
    assert ops.compiled_kernels()[op] == "compiled"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1),
                                dict(momentum=0.9), dict(momentum=0.9, weight_decay=0.01),
                                dict(momentum=0.9, nesterov=True, weight_decay=0.01)],
                         ids=["plain", "wd", "momentum", "momentum-wd", "nesterov-wd"])
def test_sgd(rng, shape, dtype, kw):
    if kw.get("momentum"):
        run_both("sgd_update", rng, shape, dtype, 1, lr=0.05, **kw)
    else:
        run_both("sgd_update", rng, shape, dtype, 0, lr=0.05, **kw)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1),
                                dict(weight_decay=0.1, decoupled=True),
                                dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)],
                         ids=["plain", "l2", "adamw", "hyper"])
def test_adam(rng, shape, dtype, kw):
    run_both("adam_update", rng, shape, dtype, 2, **kw)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.05, alpha=0.9, eps=1e-6)],
                         ids=["plain", "wd"])
def test_rmsprop(rng, shape, dtype, kw):
    run_both("rmsprop_update", rng, shape, dtype, 1, **kw)


def test_sgd_velocity_ignored_without_momentum(rng):
    p = rng.standard_normal(10)
    v = np.full(10, 7.0)
    p0 = p.copy()
    ops.sgd_update(p, np.ones(10), v, lr=0.5)
    np.testing.assert_allclose(p, p0 - 0.5)
    assert np.all(v == 7.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous(rng, dtype):
    g = rng.standard_normal((20, 30)).astype(dtype)[:, ::2]     # grad: any layout is fine
    p = rng.standard_normal((20, 15)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    ops.adam_update(p, g, m, v)
    ref.adam_update(p2, g, m2, v2)
    np.testing.assert_allclose(p, p2, **tol(dtype))
    if ops.BACKEND == "numpy":
        return                                                  # the twins accept any layout
    pn = rng.standard_normal((20, 30)).astype(dtype)[:, ::2]    # param/state must be C-contiguous
    with pytest.raises(ValueError, match="param must be C-contiguous"):
        ops.sgd_update(pn, g)
    with pytest.raises(ValueError, match="m must be C-contiguous"):
        ops.adam_update(p, g, np.zeros((15, 20), dtype).T, v)
    with pytest.raises(ValueError, match="sq must be C-contiguous"):
        ops.rmsprop_update(p, g, np.zeros((15, 20), dtype).T)


def test_errors_match_twin(rng):
    p = rng.standard_normal(5).astype(np.float32)
    g = np.zeros(5, np.float32)
    same_error(ops.sgd_update, ref.sgd_update, p, g, momentum=0.9)
    same_error(ops.sgd_update, ref.sgd_update, p, g.astype(np.float64))
    same_error(ops.sgd_update, ref.sgd_update, p, np.zeros(4, np.float32))
    same_error(ops.sgd_update, ref.sgd_update, p, [0.0] * 5)
    same_error(ops.adam_update, ref.adam_update, p.copy(), g, g.copy(), g.copy(), step=0)
    same_error(ops.adam_update, ref.adam_update, p, g, g.copy(), np.zeros(5, np.int64))
    same_error(ops.rmsprop_update, ref.rmsprop_update, p, g, np.zeros(6, np.float32))


@pytest.mark.parametrize("n", [1000, 70000])
def test_subnormal_state(rng, n):
    """Adam's v decays into float32 subnormals; the kernels flush them (FTZ/DAZ) and must still
    give the twin's results to within the subnormal range, and restore the caller's mode."""
    p = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 1e-22).astype(np.float32)    # g² ≈ 1e-44: subnormal
    m = np.full(n, 1e-39, np.float32)                           # subnormal state
    v = np.full(n, 1e-40, np.float32)
    assert 0 < v[0] < np.finfo(np.float32).tiny
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    for t in range(1, 4):
        ops.adam_update(p, g, m, v, step=t, eps=1e-8)
        ref.adam_update(p2, g, m2, v2, step=t, eps=1e-8)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(m)) and np.all(np.isfinite(v))
    np.testing.assert_allclose(p, p2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m, m2, rtol=0, atol=2e-38)
    np.testing.assert_allclose(v, v2, rtol=0, atol=2e-38)
    sq = np.full(n, 1e-41, np.float32)
    ops.rmsprop_update(p, g, sq)
    assert np.all(np.isfinite(p))
    tiny = np.array([1e-38], np.float32) / np.float32(8)
    assert tiny[0] > 0                                          # caller's MXCSR restored


def test_empty_and_float64_scalars(rng):
    p = np.zeros(0, np.float32)
    ops.adam_update(p, p.copy(), p.copy(), p.copy())
    p = np.array(3.0)                                           # 0-d
    ops.sgd_update(p, np.array(1.0), lr=0.5)
    assert p == 2.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_update_is_adam_update_many(rng, dtype, decoupled):
    """One compiled Adam: a parameter stepped alone or in a list gets the same bits."""
    p = rng.standard_normal((70, 1001)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    for t in (1, 2, 3):
        g = rng.standard_normal(p.shape).astype(dtype)
        ops.adam_update(p, g, m, v, lr=0.01, weight_decay=0.1, step=t, decoupled=decoupled)
        ops.adam_update_many([p2], [g], [m2], [v2], lr=0.01, weight_decays=0.1, step=t,
                             decoupled=decoupled)
    for a, b in ((p, p2), (m, m2), (v, v2)):
        np.testing.assert_array_equal(a, b)
