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


# T around the 64-row tiles (1, 7, 64, 65, 256 = 4 tiles) and the diagonal tile's 16-row
# strips (33: a 1-row strip; 100: a last tile of 36 rows, its last strip 4); D the usual sizes.
# The forward takes a query tile's scores against all its keys at once up to 1024 keys in
# float32 and 512 in float64 (attention.cpp: rows_mode), key tile by key tile (online softmax)
# beyond: 600 is one of each, 1100 (17 tiles, the last 12 rows) the key tiles in both.
CASES = [(1, 16), (7, 32), (64, 64), (65, 16), (65, 64), (256, 32), (7, 16), (64, 32),
         (33, 16), (100, 32), (600, 16), (1100, 8)]


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


# ----------------------------------------------------------------------------- strided operands
# The kernel reads and writes (B, H, T, D) operands through their strides along B, H and T
# (unit stride along D): the layer passes q, k, v as views of its (B, T, 3, H, D) projection
# and out, dq, dk, dv as views of (B, T, H, D) and (B, T, 3, H, D) buffers.

def qkv_views(x, step=1):
    """q, k, v (B, H, T, D) as views of one (B, T·step, 3, H, D) buffer (a step along T when
    step > 1), holding the values of the three arrays in x; NaN everywhere else."""
    B, H, T, D = x[0].shape
    buf = np.full((B, T * step, 3, H, D), np.nan, x[0].dtype)
    views = buf.transpose(2, 0, 3, 1, 4)[:, :, :, ::step]
    views[...] = np.stack(x)
    return tuple(views)


def bthd(shape, dtype):
    """An uninitialised (B, H, T, D) destination: a transposed view of (B, T, H, D)."""
    B, H, T, D = shape
    return np.full((B, T, H, D), np.nan, dtype).transpose(0, 2, 1, 3)


STRIDED_T = (1, 7, 63, 65)
STRIDED_D = (1, 7, 16, 64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
def test_strided_views_match_twin_and_contiguous(causal, dtype, rng):
    """Views in, views out: the twin's results to rounding, and (compiled) bit for bit the
    results of C-contiguous copies (only the addressing differs, not the arithmetic; numpy's
    matmul, under the twins, may sum in another order for another layout)."""
    same = (np.testing.assert_array_equal if ops.compiled_kernels()["attention"] == "compiled"
            else lambda a, b, err_msg: assert_close(a, b.astype(np.float64), dtype, err_msg))
    for path in PATHS:
        with simd(path):
            for T in STRIDED_T:
                for D in STRIDED_D:
                    tag = f"path={path} T={T} D={D}"
                    q, k, v, g = qkvg((2, 3, T, D), dtype, rng)
                    qs, ks, vs = qkv_views((q, k, v), step=2 if T % 2 else 1)
                    gs = qkv_views((g, g, g))[1]
                    assert not qs.flags.c_contiguous or T == 1
                    o = bthd(q.shape, dtype)
                    out, lse = ops.attention(qs, ks, vs, causal=causal, return_lse=True, out=o)
                    assert out is o
                    want, want_lse = ref.attention(*f64(q, k, v), causal=causal, return_lse=True)
                    assert_close(out, want, dtype, f"out {tag}")
                    assert_close(lse, want_lse, dtype, f"lse {tag}")
                    c_out, c_lse = ops.attention(q, k, v, causal=causal, return_lse=True)
                    same(out, c_out, err_msg=tag)
                    same(lse, c_lse, err_msg=tag)
                    dqkv = np.full((2, T, 3, 3, D), np.nan, dtype)
                    dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
                    grads = ops.attention_backward(qs, ks, vs, out, gs, lse=lse, causal=causal,
                                                   dq=dq, dk=dk, dv=dv)
                    assert all(a is b for a, b in zip(grads, (dq, dk, dv)))
                    assert not np.isnan(dqkv).any(), tag
                    wants = ref.attention_backward(*f64(q, k, v, want, g), causal=causal)
                    contiguous = ops.attention_backward(q, k, v, c_out, g, lse=c_lse,
                                                        causal=causal)
                    for name, a, w, c in zip(("dq", "dk", "dv"), grads, wants, contiguous):
                        assert_close(a, w, dtype, f"{name} {tag}")
                        same(a, c, err_msg=f"{name} {tag}")


@needs_compiled
def test_views_reach_the_kernel_uncopied(rng, monkeypatch):
    """Inputs and destinations with unit stride along D are passed to the kernel as they are."""
    from nnlite.ops import native_attention
    real, seen = native_attention._native, []

    class Spy:
        def __getattr__(self, name):
            fn = getattr(real, name)

            def run(*args):
                seen.append((name, args))
                return fn(*args)
            return run

    monkeypatch.setattr(native_attention, "_native", Spy())
    q, k, v, g = qkvg((2, 3, 9, 8), np.float32, rng)
    qs, ks, vs = qkv_views((q, k, v))
    o = bthd(q.shape, np.float32)
    _, lse = ops.attention(qs, ks, vs, return_lse=True, out=o)
    gs = g.transpose(0, 2, 1, 3).copy().transpose(0, 2, 1, 3)
    dq, dk, dv = np.empty((2, 9, 3, 3, 8), np.float32).transpose(2, 0, 3, 1, 4)
    ops.attention_backward(qs, ks, vs, o, gs, lse=lse, dq=dq, dk=dk, dv=dv)
    (fname, fargs), (bname, bargs) = seen
    assert fname == "forward" and bname == "backward"
    for got, given in zip(fargs[:3] + fargs[-1:], (qs, ks, vs, o)):
        assert got is given
    for got, given in zip(bargs[:5] + bargs[-3:], (qs, ks, vs, o, gs, dq, dk, dv)):
        assert got is given


@pytest.mark.parametrize("fn", [ops.attention, ref.attention], ids=["ops", "twin"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_is_written_in_place(fn, dtype, rng):
    q, k, v, _ = qkvg((2, 3, 10, 8), dtype, rng)
    a = np.full((2, 10, 3, 8), np.nan, dtype)
    o = a.transpose(0, 2, 1, 3)
    got = fn(q, k, v, out=o)
    assert got is o and np.shares_memory(got, a)
    np.testing.assert_array_equal(o, fn(q, k, v))
    got, lse = fn(q, k, v, return_lse=True, out=o)
    assert got is o and lse.shape == (2, 3, 10)


@pytest.mark.parametrize("causal", [True, False])
def test_out_of_the_key_tile_path_is_overwritten(causal, rng):
    """Beyond rows mode (float64, T > 512) the first key tile's P V overwrites out's rows: a
    NaN left in out before the call must not reach the result."""
    q, k, v, _ = qkvg((1, 2, 600, 8), np.float64, rng)
    o = np.full(q.shape, np.nan)
    got = ops.attention(q, k, v, causal=causal, out=o)
    assert got is o and not np.isnan(o).any()
    np.testing.assert_array_equal(o, ops.attention(q, k, v, causal=causal))


@pytest.mark.parametrize("fn", [ops.attention_backward, ref.attention_backward],
                         ids=["ops", "twin"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_grads_are_written_in_place(fn, dtype, rng):
    q, k, v, g = qkvg((2, 3, 10, 8), dtype, rng)
    out = ops.attention(q, k, v)
    want = ops.attention_backward(q, k, v, out, g)
    dqkv = np.full((2, 10, 3, 3, 8), np.nan, dtype)
    dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
    got = fn(q, k, v, out, g, dq=dq, dk=dk, dv=dv)
    assert all(a is b and np.shares_memory(a, dqkv) for a, b in zip(got, (dq, dk, dv)))
    for a, w in zip(got, want):
        assert_close(a, w.astype(np.float64), dtype)
    only_dk = np.full(q.shape, np.nan, dtype)           # one destination given, two new
    got = fn(q, k, v, out, g, dk=only_dk)
    assert got[1] is only_dk and not np.shares_memory(got[0], only_dk)
    for a, w in zip(got, want):
        assert_close(a, w.astype(np.float64), dtype)


def test_overlapping_destinations_give_the_twins_result(rng):
    """A destination that is also an input (or whose rows overlap) cannot be written while the
    kernel reads: the result goes through a new array, as the twin's does."""
    q, k, v, g = qkvg((1, 2, 20, 8), np.float64, rng)
    want = ref.attention(q, k, v)
    qq = q.copy()
    assert ops.attention(qq, k, v, out=qq) is qq
    assert_close(qq, want, np.float64, "out=q")
    wants = ref.attention_backward(q, k, v, want, g)
    kk, vv = k.copy(), v.copy()
    got = ops.attention_backward(q, kk, vv, want, g, dq=vv, dk=kk)
    assert got[0] is vv and got[1] is kk
    for a, w in zip(got, wants):
        assert_close(a, w, np.float64, "dq=v, dk=k")
    same = np.zeros(q.shape)                            # dq and dk the same array: dk last
    got = ops.attention_backward(q, k, v, want, g, dq=same, dk=same)
    assert_close(same, wants[1], np.float64, "dq=dk")
    misaligned = np.frombuffer(bytearray(q.nbytes + 1), np.uint8)[1:].view(np.float64)
    misaligned = misaligned.reshape(q.shape)
    assert not misaligned.flags.aligned
    assert ops.attention(q, k, v, out=misaligned) is misaligned
    assert_close(misaligned, want, np.float64, "misaligned out")


BAD_TARGETS = {
    "wrong shape": lambda q: np.zeros(q.shape[:3] + (q.shape[3] + 1,), q.dtype),
    "wrong dtype": lambda q: np.zeros(q.shape, np.float64),
    "stride along D": lambda q: np.zeros(q.shape[:3] + (2 * q.shape[3],), q.dtype)[..., ::2],
    "reversed along D": lambda q: np.zeros(q.shape, q.dtype)[..., ::-1],
    "read-only": lambda q: np.broadcast_to(np.zeros(q.shape[1:], q.dtype), q.shape),
    "not an array": lambda q: [[0.0]],
}


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_bad_destinations_raise_like_the_twin(case, rng):
    q, k, v, g = qkvg((2, 3, 7, 4), np.float32, rng)
    bad = BAD_TARGETS[case](q)
    calls = [("attention", ops.attention, ref.attention, (q, k, v), {"out": bad})]
    for name in ("dq", "dk", "dv"):
        calls.append(("attention_backward", ops.attention_backward, ref.attention_backward,
                      (q, k, v, q, g), {name: bad}))
    for op, fn, twin, args, kw in calls:
        err = _errors(fn, *args, **kw)
        assert err is not None and err[0] is ValueError, (case, kw.keys(), err)
        assert err[1].startswith(f"{op}: {next(iter(kw))} "), err[1]
        assert err == _errors(twin, *args, **kw)
    if case == "stride along D":
        assert "unit stride along D" in _errors(ops.attention, q, k, v, out=bad)[1]
