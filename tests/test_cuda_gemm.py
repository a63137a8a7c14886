"""The CUDA GEMM (csrc/cuda/gemm_kernels.cuh, nnlite/ops/cuda_gemm.py) against the numpy twins
(nnlite/ops/reference.py: gemm, gemm_nt, gemm_tn), through the shim on CPU threads and, marked
``cuda``, on a GPU (the ``cuda_dev`` fixture, tests/conftest.py).

Shapes are small, since through the shim a block is 256 threads and the blocks run one after
another, but chosen around the block tiles (float32 128×128, float64 64×64, K steps of 8 / 16)
and the 16-byte load groups (4 floats, 2 doubles): 1, 7, 63, 65, 130, 257.
"""
import numpy as np
import pytest

from _cuda_shim import to_dev, to_host
from nnlite.ops import cuda_gemm
from nnlite.ops import reference as ref

OPS = ("gemm", "gemm_nt", "gemm_tn")
DTYPES = (np.float32, np.float64)

# (M, K, N): single elements, edges of the tiles and of the K steps, grids of 2-3 blocks each
# way, one long K; (36, 36, 132): leading dimensions that allow 16-byte loads, with a partial
# K step and a partial column tile
SHAPES = [(1, 1, 1), (7, 5, 3), (63, 65, 7), (65, 7, 130), (130, 63, 65), (130, 9, 130),
          (1, 257, 1), (36, 36, 132)]


@pytest.fixture
def ops(cuda_dev):
    return cuda_gemm.kernels(cuda_dev)


def shapes_of(op, m, k, n):
    """The stored shapes of a and b for an (m, n) result with inner size k."""
    return ((k, m) if op == "gemm_tn" else (m, k)), ((n, k) if op == "gemm_nt" else (k, n))


def operands(op, m, k, n, dtype, rng):
    sa, sb = shapes_of(op, m, k, n)
    return rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)


def product(op, a, b):
    """op(a)·op(b) in float64 as the twins define it (reference.py: (a.T if trans_a else a) @
    (b.T if trans_b else b)), computed by np.einsum without BLAS: OpenBLAS's worker threads,
    which numpy's @ starts for all but tiny products, synchronise in ways ThreadSanitizer
    cannot see, so the TSan run of these tests (/work/tsan_run.sh, .ci) must not call it."""
    spec = {"gemm": "mk,kn->mn", "gemm_nt": "mk,nk->mn", "gemm_tn": "km,kn->mn"}[op]
    return np.einsum(spec, a.astype(np.float64), b.astype(np.float64), optimize=False)


def assert_close(got, a, b, op, c0=None):
    """got == c0 + op(a)·op(b) within the rounding bound of a length-K dot product,
    elementwise: |err| <= 2 (K + 2) eps (|op(a)|·|op(b)| + |c0|)."""
    a, b = to_host(a), to_host(b)
    got = to_host(got)
    assert got.dtype == a.dtype, (got.dtype, a.dtype)
    want = product(op, a, b)
    bound = product(op, np.abs(a), np.abs(b))
    if c0 is not None:
        c0 = to_host(c0).astype(np.float64)
        want, bound = want + c0, bound + np.abs(c0)
    assert got.shape == want.shape
    k = a.shape[0] if op == "gemm_tn" else a.shape[1]
    tol = 2 * (k + 2) * np.finfo(a.dtype).eps * bound + np.finfo(a.dtype).tiny
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= tol)                      # NaN counts as bad
    assert not bad.any(), (f"{op} {a.shape} {b.shape}: {bad.sum()} wrong, first at "
                           f"{np.argwhere(bad)[0]}: got {got[bad][0]}, want {want[bad][0]}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_matches_the_twin(op, dtype, ops, cuda_dev, rng):
    for m, k, n in SHAPES:
        a, b = operands(op, m, k, n, dtype, rng)
        a, b = to_dev(cuda_dev, a), to_dev(cuda_dev, b)
        got = ops[op](a, b)
        assert got.shape == (m, n)
        assert_close(got, a, b, op)
        if m * k * n < 1000:             # the twin itself, where BLAS stays on this thread
            twin = getattr(ref, op)(to_host(a), to_host(b))
            assert twin.dtype == got.dtype
            np.testing.assert_allclose(to_host(got), twin, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_shapes_on_a_gpu(dtype, ops, cuda_dev, rng):
    """Many full interior tiles and ragged edges both ways: too slow through the shim (a block
    of 256 threads at a time), instant on a GPU."""
    if cuda_dev.kind == "shim":
        pytest.skip("GPU only: hundreds of blocks")
    for op in OPS:
        for m, k, n in [(1000, 777, 515), (257, 2048, 1030), (4100, 96, 33)]:
            a, b = (to_dev(cuda_dev, x) for x in operands(op, m, k, n, dtype, rng))
            assert_close(ops[op](a, b), a, b, op)


def views(dev, x, rng):
    """Non-contiguous views holding x's values: each reaches the kernel another way. The
    memory around them holds NaN, so a kernel reading outside a matrix gives NaN."""
    xp = dev.xp
    r, c = x.shape
    out = {}
    # column-major (a transpose of a C array): passed as is, with the transpose flag flipped
    out["transposed"] = xp.ascontiguousarray(to_dev(dev, x).T).T
    # every other row: row-major with a leading dimension of 2c, read in place
    big = to_dev(dev, np.full((2 * r, c), np.nan, x.dtype))
    big[::2] = to_dev(dev, x)
    out["row step"] = big[::2]
    # a window one element in: leading dimension c + 1 and a pointer off 16-byte alignment,
    # so the scalar load path
    big = to_dev(dev, np.full((r + 1, c + 1), np.nan, x.dtype))
    big[1:, 1:] = to_dev(dev, x)
    out["offset window"] = big[1:, 1:]
    # every other column: no unit stride, copied first
    big = to_dev(dev, np.full((r, 2 * c), np.nan, x.dtype))
    big[:, ::2] = to_dev(dev, x)
    out["column step"] = big[:, ::2]
    if dev.kind == "shim":
        # data at an odd byte address (a view into a byte buffer): copied to aligned memory
        buf = np.zeros(x.nbytes + 1, np.uint8)
        odd = buf[1:].view(x.dtype).reshape(x.shape)
        odd[...] = x
        assert not odd.flags.aligned
        out["misaligned"] = odd
    for name, v in out.items():
        np.testing.assert_array_equal(to_host(v), x, err_msg=name)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_inputs(op, dtype, ops, cuda_dev, rng):
    m, k, n = 33, 19, 70
    a, b = operands(op, m, k, n, dtype, rng)
    want = to_host(ops[op](to_dev(cuda_dev, a), to_dev(cuda_dev, b)))
    assert_close(want, a, b, op)
    va, vb = views(cuda_dev, a, rng), views(cuda_dev, b, rng)
    for name in va:
        for x, y in [(va[name], to_dev(cuda_dev, b)), (to_dev(cuda_dev, a), vb[name])]:
            got = ops[op](x, y)
            # same products summed in the same order, whatever the path: bitwise equal
            np.testing.assert_array_equal(to_host(got), want, err_msg=name)
    # both operands transposed views at once
    got = ops[op](va["transposed"], vb["transposed"])
    np.testing.assert_array_equal(to_host(got), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_aligned_and_unaligned_paths_agree(op, dtype, ops, cuda_dev, rng):
    """Contiguous operands with leading dimensions that are multiples of 4 take the 16-byte
    loads and stores; the same values one element off alignment take the scalar ones; edges
    (K = 37, N = 134) mix both in one tile. The results must be bitwise equal. The padding
    beyond the matrices' rows holds NaN: a load past an edge shows."""
    m, k, n = 66, 37, 134
    sa, sb = shapes_of(op, m, k, n)
    # stored with rows of a multiple of 4 elements, 16-byte aligned, then cut down to (m, k, n)
    # in place: row-major views whose leading dimensions allow the 16-byte groups
    a, b = (np.full([d + (-d) % 4 for d in s], np.nan, dtype) for s in (sa, sb))
    a[:sa[0], :sa[1]] = rng.standard_normal(sa)
    b[:sb[0], :sb[1]] = rng.standard_normal(sb)
    a, b = to_dev(cuda_dev, a), to_dev(cuda_dev, b)
    assert cuda_dev.ptr(a) % 16 == 0 and cuda_dev.ptr(b) % 16 == 0
    a, b = a[:sa[0], :sa[1]], b[:sb[0], :sb[1]]
    fast = ops[op](a, b)
    assert_close(fast, a, b, op)
    shifted = []
    for x in (a, b):
        big = cuda_dev.xp.zeros(x.size + 1, x.dtype)
        y = big[1:].reshape(x.shape)          # contiguous, 4 or 8 bytes off 16-byte alignment
        y[...] = x
        shifted.append(y)
    slow = ops[op](*shifted)
    np.testing.assert_array_equal(to_host(slow), to_host(fast))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_out_and_accumulate(op, dtype, ops, cuda_dev, rng):
    xp = cuda_dev.xp
    m, k, n = 65, 23, 68
    a, b = operands(op, m, k, n, dtype, rng)
    a, b = to_dev(cuda_dev, a), to_dev(cuda_dev, b)
    c0 = to_dev(cuda_dev, rng.standard_normal((m, n)).astype(dtype))

    # out without accumulate is only written: NaN in it must not show
    out = xp.full((m, n), np.nan, dtype)
    assert ops[op](a, b, out=out) is out
    assert_close(out, a, b, op)
    # accumulate adds into out
    out = c0.copy()
    assert ops[op](a, b, out=out, accumulate=True) is out
    assert_close(out, a, b, op, c0)
    # out a strided window (leading dimension n + 3, off alignment): written in place, and
    # nothing around it touched
    big = xp.full((m + 1, n + 3), 7, dtype)
    big[1:, 1:n + 1] = c0
    window = big[1:, 1:n + 1]
    ops[op](a, b, out=window, accumulate=True)
    assert_close(window, a, b, op, c0)
    rest = to_host(big).copy()
    rest[1:, 1:n + 1] = 7
    assert (rest == 7).all()
    ops[op](a, b, out=window)
    assert_close(window, a, b, op)
    # out column-major (no unit column stride): through a temporary, with and without accumulate
    out = xp.asfortranarray(c0)
    ops[op](a, b, out=out, accumulate=True)
    assert_close(out, a, b, op, c0)
    ops[op](a, b, out=out)
    assert_close(out, a, b, op)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_aliasing_an_input(dtype, ops, cuda_dev, rng):
    """gemm(a, b, out=a): the product of the inputs as they were, as the twin gives."""
    for op in OPS:
        a, b = (to_dev(cuda_dev, rng.standard_normal((20, 20)).astype(dtype)) for _ in "ab")
        a0, b0 = a.copy(), b.copy()
        ops[op](a, b, out=a)
        assert_close(a, a0, b0, op)
        a = a0.copy()
        ops[op](a, b, out=b, accumulate=True)
        assert_close(b, a0, b0, op, b0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_and_residual(dtype, ops, cuda_dev, rng):
    """gemm(..., bias=, residual=): the product plus both, into a new array, out= (also the
    residual itself) and accumulate=, as the twin; its errors word for word."""
    xp = cuda_dev.xp
    m, k, n = 65, 23, 68
    a, b = operands("gemm", m, k, n, dtype, rng)
    bias = rng.standard_normal(n).astype(dtype)
    res = rng.standard_normal((m, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    da, db, dbias, dres = (to_dev(cuda_dev, x) for x in (a, b, bias, res))
    add = res + bias
    assert_close(ops["gemm"](da, db, bias=dbias, residual=dres), a, b, "gemm", add)
    assert_close(ops["gemm"](da, db, bias=bias), a, b, "gemm", np.broadcast_to(bias, (m, n)))
    out = to_dev(cuda_dev, c0)
    assert ops["gemm"](da, db, out=out, accumulate=True, bias=dbias, residual=dres) is out
    assert_close(out, a, b, "gemm", c0 + add)
    r = dres.copy()
    assert ops["gemm"](da, db, out=r, residual=r) is r
    assert_close(r, a, b, "gemm", res)
    for kw in ({"bias": xp.ones(4, dtype)}, {"residual": xp.ones((n, m), dtype)}):
        with pytest.raises(ValueError) as got:
            ops["gemm"](da, db, **kw)
        with pytest.raises(ValueError) as want:
            ref.gemm(a, b, **{key: to_host(v) for key, v in kw.items()})
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_sizes(dtype, ops, cuda_dev):
    xp = cuda_dev.xp
    for op in OPS:
        for m, k, n in [(0, 5, 3), (4, 5, 0), (0, 0, 0), (4, 0, 3)]:
            a, b = (to_dev(cuda_dev, np.ones(s, dtype)) for s in shapes_of(op, m, k, n))
            got = ops[op](a, b)
            assert got.shape == (m, n) and got.dtype == dtype
            np.testing.assert_array_equal(to_host(got), np.zeros((m, n)))
            # K = 0: out = 0 without accumulate (NaN overwritten), unchanged with it
            out = xp.full((m, n), np.nan, dtype)
            assert ops[op](a, b, out=out) is out
            np.testing.assert_array_equal(to_host(out), np.zeros((m, n)))
            out = xp.full((m, n), 3.0, dtype)
            ops[op](a, b, out=out, accumulate=True)
            np.testing.assert_array_equal(to_host(out), np.full((m, n), 3.0))


def test_integer_and_list_inputs_convert_like_the_twin(ops, cuda_dev):
    a = np.arange(6).reshape(2, 3)
    b = np.arange(12).reshape(3, 4)
    for op, x, y in [("gemm", a, b), ("gemm_nt", a, b.T), ("gemm_tn", a.T, b)]:
        got = ops[op](to_dev(cuda_dev, x), to_dev(cuda_dev, y))
        want = product(op, x, y)         # integers: exact
        assert got.dtype == getattr(ref, op)(x, y).dtype == np.float64
        np.testing.assert_array_equal(to_host(got), want)
    np.testing.assert_array_equal(to_host(ops["gemm"]([[1.0, 2.0]], [[3.0], [4.0]])), [[11.0]])


def _error(fn, *args, **kw):
    with pytest.raises(Exception) as e:
        fn(*args, **kw)
    return type(e.value), str(e.value)


@pytest.mark.parametrize("op", OPS)
def test_errors_match_the_twin(op, ops, cuda_dev):
    f32 = np.ones((3, 4), np.float32)
    sq = np.ones((3, 3), np.float32)
    cases = [
        ((f32, f32.astype(np.float64)), {}),                                  # dtypes differ
        ((f32, np.ones((5, 6), np.float32)), {}),                             # inner sizes
        ((np.ones(3, np.float32), sq), {}),                                   # 1-D
        ((np.ones((3, 3), np.complex64), np.ones((3, 3), np.complex64)), {}),  # complex
        ((sq, sq), {"out": np.ones((3, 4), np.float32)}),                     # out shape
        ((sq, sq), {"out": np.ones((3, 3), np.float64)}),                     # out dtype
        ((sq, sq), {"accumulate": True}),                                     # nothing to add to
    ]
    d = lambda x: to_dev(cuda_dev, x)
    for args, kw in cases:
        got = _error(ops[op], *map(d, args), **{k: d(v) for k, v in kw.items()})
        want = _error(getattr(ref, op), *args, **kw)
        assert got == want
        assert got[1].startswith(op + ":"), got
    t, msg = _error(ops[op], d(np.ones((3, 4))), d(np.ones((5, 6))))
    assert t is ValueError and "(3, 4)" in msg and "(5, 6)" in msg
    # an out that is not an array of the device
    t, msg = _error(ops[op], d(sq), d(sq), out=[[0.0] * 3] * 3)
    assert t is ValueError and msg.startswith(op + ": out must be an ndarray")


def test_read_only_out_is_refused(ops, cuda_dev):
    if cuda_dev.kind != "shim":
        pytest.skip("device arrays have no read-only flag")
    out = np.zeros((3, 3), np.float32)
    out.flags.writeable = False
    sq = np.ones((3, 3), np.float32)
    for op in OPS:
        with pytest.raises(ValueError, match=f"^{op}: out is read-only"):
            ops[op](sq, sq, out=out)
    np.testing.assert_array_equal(out, 0)


def test_launcher_checks_its_arguments(cuda_dev):
    """The C++ launchers (csrc/cuda/gemm.h, also called by other kernel families) refuse
    negative sizes and leading dimensions too small for the matrices, naming themselves."""
    ext = cuda_dev.ext
    a = to_dev(cuda_dev, np.ones((4, 4), np.float32))
    p, s = cuda_dev.ptr(a), cuda_dev.stream()
    with pytest.raises(ValueError, match="gemm_f32: negative size"):
        ext.gemm_f32(False, False, -1, 4, 4, p, 4, p, 4, p, 4, False, s)
    with pytest.raises(ValueError, match="gemm_f32: lda=3 is too small for a stored 4x4"):
        ext.gemm_f32(False, False, 4, 4, 4, p, 3, p, 4, p, 4, False, s)
    with pytest.raises(ValueError, match="gemm_f64: ldb=2 is too small for a stored 4x3"):
        ext.gemm_f64(False, True, 4, 4, 3, p, 3, p, 2, p, 4, False, s)
    with pytest.raises(ValueError, match="gemm_f32: ldc=1 is too small"):
        ext.gemm_f32(True, False, 4, 4, 4, p, 4, p, 4, p, 1, False, s)


def test_kernels_have_the_twins_signatures(cuda_dev):
    import inspect
    fns = cuda_gemm.kernels(cuda_dev)
    assert sorted(fns) == sorted(OPS)
    for op, f in fns.items():
        twin = getattr(ref, op)
        assert inspect.signature(f) == inspect.signature(twin)
        assert f.__doc__ == twin.__doc__
