"""Flash-style attention (csrc/cpu/attention.cpp) against the numpy twins, on every SIMD path."""
import numpy as np
import pytest

from _kernels import needs_compiled, simd
import nnlite.ops as ops
from nnlite.ops import reference as ref

PATHS = ops.simd_paths() or [None]
DTYPES = (np.float32, np.float64)


def qkvg(shape, dtype, rng):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(4)]


def f64(*xs):
    return [x.astype(np.float64) for x in xs]


def assert_close(got, want, dtype, what=""):
    """float32 vs the twin in float64: ~1e-5 relative to the largest entry; float64: ~1e-12."""
    assert got.shape == want.shape, what
    assert got.dtype == dtype, what
    tol = (2e-5 if dtype == np.float32 else 1e-12) * max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g}"


@needs_compiled
@pytest.mark.parametrize("op", ["attention", "attention_backward"])
def test_compiled_version_is_used(op):
    assert ops.compiled_kernels()[op] == "compiled", ops.compiled_kernels()[op]


# T around the 64-row tiles (1, 7, 64, 65, 256 = 4 tiles); D the usual head sizes
CASES = [(1, 16), (7, 32), (64, 64), (65, 16), (65, 64), (256, 32), (7, 16), (64, 32)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
def test_forward_and_backward_match_twin(causal, dtype, path, rng):
    with simd(path):
        for T, D in CASES:
            B, H = (1, 2) if T >= 256 else (2, 2)
            q, k, v, g = qkvg((B, H, T, D), dtype, rng)
            want, want_lse = ref.attention(*f64(q, k, v), causal=causal, return_lse=True)
            out, lse = ops.attention(q, k, v, causal=causal, return_lse=True)
            tag = f"T={T} D={D}"
            assert_close(out, want, dtype, f"out {tag}")
            assert_close(lse, want_lse, dtype, f"lse {tag}")
            np.testing.assert_array_equal(ops.attention(q, k, v, causal=causal), out)
            wants = ref.attention_backward(*f64(q, k, v, want, g), causal=causal)
            with_lse = ops.attention_backward(q, k, v, out, g, lse=lse, causal=causal)
            without = ops.attention_backward(q, k, v, out, g, causal=causal)
            for name, a, b, w in zip(("dq", "dk", "dv"), with_lse, without, wants):
                assert_close(a, w, dtype, f"{name} {tag}")
                assert_close(b, w, dtype, f"{name} (no lse) {tag}")


@pytest.mark.parametrize("path", PATHS)
def test_scale_and_odd_head_size(path, rng):
    with simd(path):
        for D in (1, 3, 17, 40, 100):
            q, k, v, g = qkvg((1, 2, 70, D), np.float32, rng)
            for causal in (True, False):
                want = ref.attention(*f64(q, k, v), causal=causal, scale=0.3)
                out = ops.attention(q, k, v, causal=causal, scale=0.3)
                assert_close(out, want, np.float32, f"out D={D}")
                wants = ref.attention_backward(*f64(q, k, v, want, g), causal=causal, scale=0.3)
                for a, w in zip(ops.attention_backward(q, k, v, out, g, causal=causal, scale=0.3),
                                wants):
                    assert_close(a, w, np.float32, f"grad D={D}")


def test_large_scores_do_not_overflow(rng):
    """Scores of ±1000: the running max keeps every exp() argument <= 0."""
    q, k, v, g = qkvg((1, 1, 130, 16), np.float32, rng)
    q *= 40
    want = ref.attention(*f64(q, k, v))
    out = ops.attention(q, k, v)
    assert np.all(np.isfinite(out))
    assert_close(out, want, np.float32, "out")


@pytest.mark.parametrize("causal", [True, False])
def test_finite_differences(causal, rng):
    """d/dx Σ (out ⊙ G) by central differences, for every entry of q, k and v (float64)."""
    q, k, v, g = qkvg((1, 2, 5, 3), np.float64, rng)
    out = ops.attention(q, k, v, causal=causal)
    grads = ops.attention_backward(q, k, v, out, g, causal=causal)
    h = 1e-6
    for which, grad in enumerate(grads):
        args = [q.copy(), k.copy(), v.copy()]
        x = args[which]
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + h
            fp = float((ops.attention(*args, causal=causal) * g).sum())
            x[idx] = old - h
            fm = float((ops.attention(*args, causal=causal) * g).sum())
            x[idx] = old
            num[idx] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype, rng):
    """(B, T, H, D) arrays viewed as (B, H, T, D), as a transformer's reshape gives them."""
    B, T, H, D = 2, 70, 3, 16
    q, k, v, g = [x.transpose(0, 2, 1, 3) for x in qkvg((B, T, H, D), dtype, rng)]
    assert not q.flags.c_contiguous
    want = ref.attention(*f64(q, k, v))
    out, lse = ops.attention(q, k, v, return_lse=True)
    assert_close(out, want, dtype, "out")
    wants = ref.attention_backward(*f64(q, k, v, want, g))
    lse_view = np.ascontiguousarray(lse.transpose(0, 2, 1)).transpose(0, 2, 1)
    out_view = np.ascontiguousarray(out.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    assert not (lse_view.flags.c_contiguous or out_view.flags.c_contiguous)
    for a, w in zip(ops.attention_backward(q, k, v, out_view, g, lse=lse_view), wants):
        assert_close(a, w, dtype, "grad")


def test_integer_inputs_are_promoted_like_the_twin(rng):
    q = rng.integers(-3, 3, (1, 1, 9, 4))
    out = ops.attention(q, q, q)
    assert out.dtype == np.float64
    assert_close(out, ref.attention(q, q, q), np.float64, "out")


def _errors(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    return None


BAD_FORWARD = {
    "wrong ndim": lambda x: (x[0], x[0], x[0]),
    "q/k shape mismatch": lambda x: (x, x[:, :, :5], x),
    "v shape mismatch": lambda x: (x, x, x[:, :1]),
    "dtype mismatch": lambda x: (x, x.astype(np.float64), x),
    "T = 0": lambda x: (x[:, :, :0], x[:, :, :0], x[:, :, :0]),
    "strings": lambda x: (x.astype(str), x, x),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD))
def test_bad_input_errors_match_twin(case, rng):
    x = rng.standard_normal((2, 3, 7, 4)).astype(np.float32)
    args = BAD_FORWARD[case](x)
    want = _errors(ref.attention, *args)
    assert want is not None
    assert _errors(ops.attention, *args) == want
    o = np.zeros_like(args[0]) if isinstance(args[0], np.ndarray) else args[0]
    want_b = _errors(ref.attention_backward, *args, o, o)
    assert want_b is not None
    assert _errors(ops.attention_backward, *args, o, o) == want_b


def test_backward_out_and_grad_shapes(rng):
    q, k, v, g = qkvg((2, 3, 7, 4), np.float32, rng)
    for out, grad in ((q[:, :, :5], g), (q, g[:1]), (q, g.astype(np.float64))):
        want = _errors(ref.attention_backward, q, k, v, out, grad)
        assert want is not None
        assert _errors(ops.attention_backward, q, k, v, out, grad) == want
    if ops.compiled_kernels()["attention_backward"] == "compiled":
        with pytest.raises(ValueError, match="lse must have shape"):
            ops.attention_backward(q, k, v, q, g, lse=np.zeros((2, 3, 6), np.float32))
