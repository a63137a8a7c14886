"""Flash attention's CUDA kernels (csrc/cuda/attention_kernels.cuh, nnlite/ops/cuda_attention.py)
against the numpy twins (nnlite/ops/reference.py: attention, attention_backward): through the
shim on CPU threads always, and on a GPU (marked ``cuda``) where there is one — the cuda_dev
fixture (tests/conftest.py).

Shapes are small (the shim runs a block's 64 or 128 threads as OS threads, blocks one after
another) but awkward: T and D off the 32- and 16-row tiles, T = 1, D = 1, head sizes up to 256.
"""
import numpy as np
import pytest

from _cuda_shim import to_dev, to_host
from nnlite.ops import cuda_attention
from nnlite.ops import reference as ref

DTYPES = (np.float32, np.float64)


@pytest.fixture
def attn(cuda_dev):
    """(dev, {"attention": f, "attention_backward": f}) on the fixture's device."""
    return cuda_dev, cuda_attention.kernels(cuda_dev)


def qkvg(shape, dtype, rng):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(4)]


def f64(*xs):
    return [np.asarray(x).astype(np.float64) for x in xs]


def assert_close(got, want, dtype, what=""):
    """float32 against the twin in float64: ~2e-5 relative to the largest entry; float64: 1e-12."""
    got = to_host(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}"
    tol = (2e-5 if dtype == np.float32 else 1e-12) * max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g}"


# (T, D): every T of 1, 7, 63, 65, 130 (around the 16- and 32-row tiles) and every D of 1, 7,
# 16, 33, 64 (each register slice size up to 64); not the whole product, to keep the shim quick
CASES = [(1, 16), (7, 1), (7, 33), (63, 64), (65, 7), (65, 33), (130, 16)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
def test_forward_and_backward_match_twin(attn, causal, dtype, rng):
    dev, k = attn
    for T, D in CASES:
        B, H = (1, 1) if T >= 63 else (2, 2)   # (heads of several tiles: the non-contiguous test)
        host = qkvg((B, H, T, D), dtype, rng)
        q, kk, v, g = (to_dev(dev, x) for x in host)
        want, want_lse = ref.attention(*f64(*host[:3]), causal=causal, return_lse=True)
        out, lse = k["attention"](q, kk, v, causal=causal, return_lse=True)
        tag = f"T={T} D={D} causal={causal}"
        assert_close(out, want, dtype, f"out {tag}")
        assert_close(lse, want_lse, dtype, f"lse {tag}")
        np.testing.assert_array_equal(to_host(k["attention"](q, kk, v, causal=causal)),
                                      to_host(out))
        wants = ref.attention_backward(*f64(*host[:3], want, host[3]), causal=causal)
        with_lse = k["attention_backward"](q, kk, v, out, g, lse=lse, causal=causal)
        without = k["attention_backward"](q, kk, v, out, g, causal=causal)
        for name, a, b, w in zip(("dq", "dk", "dv"), with_lse, without, wants):
            assert_close(a, w, dtype, f"{name} {tag}")
            assert_close(b, w, dtype, f"{name} (no lse) {tag}")


@pytest.mark.parametrize("scale", [0.3, 2.0])
def test_scale_given(attn, scale, rng):
    dev, k = attn
    host = qkvg((1, 2, 40, 24), np.float32, rng)
    q, kk, v, g = (to_dev(dev, x) for x in host)
    for causal in (True, False):
        want, want_lse = ref.attention(*f64(*host[:3]), causal=causal, scale=scale,
                                       return_lse=True)
        out, lse = k["attention"](q, kk, v, causal=causal, scale=scale, return_lse=True)
        assert_close(out, want, np.float32, f"out causal={causal}")
        assert_close(lse, want_lse, np.float32, f"lse causal={causal}")
        wants = ref.attention_backward(*f64(*host[:3], want, host[3]), causal=causal,
                                       scale=scale)
        for name, a, w in zip(("dq", "dk", "dv"),
                              k["attention_backward"](q, kk, v, out, g, causal=causal,
                                                      scale=scale), wants):
            assert_close(a, w, np.float32, f"{name} causal={causal}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [128, 256])
def test_large_head_sizes(attn, D, dtype, rng):
    """The two largest register slices (D up to 128 and 256), whose tiles need more than the
    default 48 KB of shared memory on a GPU (the launchers opt in)."""
    dev, k = attn
    host = qkvg((1, 1, 33, D), dtype, rng)
    q, kk, v, g = (to_dev(dev, x) for x in host)
    want = ref.attention(*f64(*host[:3]))
    out = k["attention"](q, kk, v)
    assert_close(out, want, dtype, f"out D={D}")
    wants = ref.attention_backward(*f64(*host[:3], want, host[3]))
    for name, a, w in zip(("dq", "dk", "dv"), k["attention_backward"](q, kk, v, out, g), wants):
        assert_close(a, w, dtype, f"{name} D={D}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(attn, dtype, rng):
    """q, k, v as views of one (B, T, 3, H, D) tensor (a transformer's fused QKV projection),
    out, grad_out and lse as transposed views too."""
    dev, k = attn
    B, T, H, D = 2, 37, 2, 16
    qkv_host = rng.standard_normal((B, T, 3, H, D)).astype(dtype)
    g_host = rng.standard_normal((B, T, H, D)).astype(dtype)
    qkv = to_dev(dev, qkv_host)
    q, kk, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    g = to_dev(dev, g_host).transpose(0, 2, 1, 3)
    assert not (q.flags.c_contiguous or g.flags.c_contiguous)
    host = [qkv_host[:, :, i].transpose(0, 2, 1, 3) for i in range(3)]
    want = ref.attention(*f64(*host))
    out, lse = k["attention"](q, kk, v, return_lse=True)
    assert_close(out, want, dtype, "out")
    xp = dev.xp
    lse_view = xp.ascontiguousarray(lse.transpose(0, 2, 1)).transpose(0, 2, 1)
    out_view = xp.ascontiguousarray(out.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    assert not (lse_view.flags.c_contiguous or out_view.flags.c_contiguous)
    wants = ref.attention_backward(*f64(*host, want, g_host.transpose(0, 2, 1, 3)))
    for name, a, w in zip(("dq", "dk", "dv"),
                          k["attention_backward"](q, kk, v, out_view, g, lse=lse_view), wants):
        assert_close(a, w, dtype, name)



@pytest.mark.parametrize("dtype", DTYPES)
def test_destinations_are_written(attn, dtype, rng):
    """out=, dq=, dk=, dv= as transposed views (the layer's merged (B, T, H, D) output and
    (B, T, 3, H, D) gradient) hold the results and are returned; bad ones are the twin's
    errors."""
    dev, k = attn
    xp = dev.xp
    B, T, H, D = 2, 19, 3, 8
    host = qkvg((B, H, T, D), dtype, rng)
    q, kk, v, g = (to_dev(dev, x) for x in host)
    a = xp.zeros((B, T, H, D), dtype)
    o = a.transpose(0, 2, 1, 3)
    got, lse = k["attention"](q, kk, v, return_lse=True, out=o)
    assert got is o
    want = ref.attention(*f64(*host[:3]))
    assert_close(o, want, dtype, "out")
    dqkv = xp.zeros((B, T, 3, H, D), dtype)
    dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
    got = k["attention_backward"](q, kk, v, o, g, lse=lse, dq=dq, dk=dk, dv=dv)
    assert all(x is y for x, y in zip(got, (dq, dk, dv)))
    for name, x, w in zip(("dq", "dk", "dv"), got,
                          ref.attention_backward(*f64(*host[:3], want, host[3]))):
        assert_close(x, w, dtype, name)
    for shape, step in (((B, H, T, D + 1), 1), ((B, H, T, 2 * D), 2)):   # shape, stride along D
        bad = np.zeros(shape, dtype)[..., ::step]
        bad_dev = to_dev(dev, np.zeros(shape, dtype))[..., ::step]
        want_err = _errors(ref.attention, *host[:3], out=bad)
        assert want_err is not None and want_err[0] is ValueError
        assert _errors(k["attention"], q, kk, v, out=bad_dev) == want_err
        want_err = _errors(ref.attention_backward, *host[:3], host[0], host[3], dk=bad)
        assert _errors(k["attention_backward"], q, kk, v, q, g, dk=bad_dev) == want_err

def test_large_scores_do_not_overflow(attn, rng):
    """Scores of ±1000: the running max keeps every exp() argument <= 0."""
    dev, k = attn
    host = qkvg((1, 1, 70, 16), np.float32, rng)
    host[0] *= 40
    q, kk, v, g = (to_dev(dev, x) for x in host)
    for causal in (True, False):
        want = ref.attention(*f64(*host[:3]), causal=causal)
        out = k["attention"](q, kk, v, causal=causal)
        assert np.all(np.isfinite(to_host(out)))
        assert_close(out, want, np.float32, f"out causal={causal}")
        grads = k["attention_backward"](q, kk, v, out, g, causal=causal)
        assert all(np.all(np.isfinite(to_host(a))) for a in grads)


def test_backward_is_reproducible(attn, rng):
    """No float atomics: the same inputs give bitwise the same gradients."""
    dev, k = attn
    q, kk, v, g = (to_dev(dev, x) for x in qkvg((1, 2, 70, 16), np.float32, rng))
    out = k["attention"](q, kk, v, causal=False)
    first = to_host(k["attention_backward"](q, kk, v, out, g, causal=False))
    second = to_host(k["attention_backward"](q, kk, v, out, g, causal=False))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_lse_of_the_other_float_dtype_is_accepted(attn, rng):
    """As in the CPU kernel's wrapper: a float64 lse for float32 inputs is cast, not refused."""
    dev, k = attn
    host = qkvg((1, 2, 20, 8), np.float32, rng)
    q, kk, v, g = (to_dev(dev, x) for x in host)
    out, lse = k["attention"](q, kk, v, return_lse=True)
    want = to_host(k["attention_backward"](q, kk, v, out, g, lse=lse))
    got = to_host(k["attention_backward"](q, kk, v, out, g, lse=lse.astype(np.float64)))
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_integer_inputs_are_promoted_like_the_twin(attn, rng):
    dev, k = attn
    q = rng.integers(-3, 3, (1, 1, 9, 4))
    out = k["attention"](to_dev(dev, q), to_dev(dev, q), to_dev(dev, q))
    assert out.dtype == np.float64
    assert_close(out, ref.attention(q, q, q), np.float64, "out")


def test_empty_batch(attn):
    """B = 0: empty results of the right shapes, as the twin gives (nothing is launched)."""
    dev, k = attn
    x = to_dev(dev, np.zeros((0, 2, 5, 8), np.float32))
    out, lse = k["attention"](x, x, x, return_lse=True)
    assert out.shape == (0, 2, 5, 8) and lse.shape == (0, 2, 5)
    grads = k["attention_backward"](x, x, x, out, x)
    assert [a.shape for a in grads] == [(0, 2, 5, 8)] * 3


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
    "D = 0": lambda x: (x[..., :0], x[..., :0], x[..., :0]),
    "strings": lambda x: (x.astype(str), x, x),
    "complex": lambda x: (x.astype(np.complex64), x, x),
}


def _on(dev, args):
    """Float arrays onto the device; anything else (strings, complex) as it is, as a caller
    could pass it."""
    return [to_dev(dev, a) if a.dtype.kind == "f" else a for a in args]


@pytest.mark.parametrize("case", list(BAD_FORWARD))
def test_bad_input_errors_match_twin(attn, case, rng):
    dev, k = attn
    x = rng.standard_normal((2, 3, 7, 4)).astype(np.float32)
    args = BAD_FORWARD[case](x)
    want = _errors(ref.attention, *args)
    assert want is not None
    assert _errors(k["attention"], *_on(dev, args)) == want
    o = np.zeros_like(args[0]) if args[0].dtype.kind == "f" else args[0]
    want_b = _errors(ref.attention_backward, *args, o, o)
    assert want_b is not None
    assert _errors(k["attention_backward"], *_on(dev, [*args, o, o])) == want_b


def test_backward_out_grad_and_lse_errors(attn, rng):
    dev, k = attn
    q, kk, v, g = qkvg((2, 3, 7, 4), np.float32, rng)
    for out, grad in ((q[:, :, :5], g), (q, g[:1]), (q, g.astype(np.float64))):
        want = _errors(ref.attention_backward, q, kk, v, out, grad)
        assert want is not None
        assert _errors(k["attention_backward"], *_on(dev, [q, kk, v, out, grad])) == want
    # the twin ignores lse; a wrong one is the CPU kernel's error (nnlite/ops/native_attention.py)
    d = _on(dev, [q, kk, v, q, g])
    with pytest.raises(ValueError, match=r"attention_backward: lse must have shape \(B, H, T\) "
                                         r"= \(2, 3, 7\) for q \(2, 3, 7, 4\), got \(2, 3, 6\)"):
        k["attention_backward"](*d, lse=to_dev(dev, np.zeros((2, 3, 6), np.float32)))
    with pytest.raises(TypeError, match="attention_backward: lse must be float32 or float64"):
        k["attention_backward"](*d, lse=np.zeros((2, 3, 7), np.complex64))


def test_head_size_over_the_kernels_limit_is_a_clear_error(attn):
    dev, k = attn
    x = to_dev(dev, np.zeros((1, 1, 2, 257), np.float32))
    for fn, args in ((k["attention"], (x, x, x)), (k["attention_backward"], (x, x, x, x, x))):
        with pytest.raises(ValueError, match=r"attention(_backward)?: the CUDA kernels take "
                                             r"head sizes D <= 256, got shape \(1, 1, 2, 257\)"):
            fn(*args)


def test_launcher_rejects_what_the_wrapper_would(attn):
    """The launchers check D themselves (a caller of the bindings without the wrapper)."""
    dev, _ = attn
    x = to_dev(dev, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="attention: the CUDA kernels take 1 <= D <= 256"):
        dev.ext.attention_forward_f32(dev.ptr(x), dev.ptr(x), dev.ptr(x), dev.ptr(x), dev.ptr(x),
                                      1, 1, 300, True, 1.0, dev.stream())
