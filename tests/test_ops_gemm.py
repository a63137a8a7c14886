"""GEMM kernels (csrc/cpu/gemm.cpp) against the numpy twins, on every SIMD path this CPU has."""
import numpy as np
import pytest

from _kernels import needs_compiled, simd
import nnlite.ops as ops
from nnlite.ops import reference as ref

OPS = ("gemm", "gemm_nt", "gemm_tn")
PATHS = ops.simd_paths() or [None]
DTYPES = (np.float32, np.float64)
NATIVE = ops.compiled_kernels()["gemm"] == "compiled"

# (M, K, N): edges around the tile sizes (1, 7, 63/64/65), odd sizes, one big dimension each
SHAPES = [
    (1, 1, 1), (1, 7, 1), (7, 1, 7), (7, 63, 65), (64, 64, 64), (65, 65, 63), (63, 257, 7),
    (257, 64, 65), (64, 1000, 1), (1, 1000, 64), (1000, 7, 63), (65, 1000, 257),
    (64, 784, 256), (128, 64, 10), (64, 10, 128),
]


def operands(op, m, k, n, dtype, rng):
    """Inputs of op that give an (m, n) result with inner size k."""
    a_shape = (k, m) if op == "gemm_tn" else (m, k)
    b_shape = (n, k) if op == "gemm_nt" else (k, n)
    return (rng.standard_normal(a_shape).astype(dtype),
            rng.standard_normal(b_shape).astype(dtype))


def expected(op, a, b):
    return getattr(ref, op)(a.astype(np.float64), b.astype(np.float64))


def assert_close(got, want, k, dtype):
    """Error bound of a length-k dot product, with a safety factor: eps * sqrt(k) * scale."""
    assert got.shape == want.shape
    assert got.dtype == dtype
    eps = np.finfo(dtype).eps
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    tol = 8 * eps * np.sqrt(max(k, 1)) * scale
    err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    assert err <= tol, f"max error {err:.3g} > {tol:.3g}"


@needs_compiled
@pytest.mark.parametrize("op", OPS)
def test_compiled_version_is_used(op):
    assert ops.compiled_kernels()[op] == "compiled", ops.compiled_kernels()[op]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_matches_reference(op, dtype, path, rng):
    with simd(path):
        for m, k, n in SHAPES:
            a, b = operands(op, m, k, n, dtype, rng)
            assert_close(getattr(ops, op)(a, b), expected(op, a, b), k, dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_blocked(dtype, path, rng):
    """Big enough for several K, M and N blocks, packed A and threads."""
    m, k, n = (300, 1100, 600) if path != "scalar" else (130, 600, 90)
    with simd(path):
        for op in OPS:
            a, b = operands(op, m, k, n, dtype, rng)
            assert_close(getattr(ops, op)(a, b), expected(op, a, b), k, dtype)


def _layouts(x):
    """The same matrix as several non-contiguous views (values equal to x)."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    rev = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    return {
        "contiguous": x,
        "fortran": np.asfortranarray(x),
        "strided": big[::2, ::3],
        "transposed-view": np.ascontiguousarray(x.T).T,
        "negative": rev,
        "rows-reversed": np.ascontiguousarray(x[::-1])[::-1],
        "column-slice": np.concatenate([x, x], axis=1)[:, : x.shape[1]],
    }


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_inputs(op, dtype, path, rng):
    m, k, n = 37, 70, 45
    a, b = operands(op, m, k, n, dtype, rng)
    want = expected(op, a, b)
    with simd(path):
        for la, av in _layouts(a).items():
            for lb, bv in _layouts(b).items():
                np.testing.assert_array_equal(av, a)
                got = getattr(ops, op)(av, bv)
                try:
                    assert_close(got, want, k, dtype)
                except AssertionError as e:
                    raise AssertionError(f"a {la}, b {lb}: {e}") from None


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_out_and_accumulate(op, dtype, path, rng):
    with simd(path):
        for m, k, n in [(7, 63, 65), (64, 256, 128), (130, 700, 300), (64, 128, 10)]:
            a, b = operands(op, m, k, n, dtype, rng)
            want = expected(op, a, b)
            out = np.full((m, n), np.nan, dtype)
            r = getattr(ops, op)(a, b, out=out)
            assert r is out
            assert_close(out, want, k, dtype)
            base = rng.standard_normal((m, n)).astype(dtype)
            out = base.copy()
            r = getattr(ops, op)(a, b, out=out, accumulate=True)
            assert r is out
            assert_close(out, want + base, k, dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_narrow_and_ragged_widths(dtype, path, rng):
    """Every output width from 1 to 17 and the ragged last panels of the wide tile (33, 47, 65,
    80, 97): narrow products with A contiguous down its columns (X.T @ dY) are computed
    transposed by a short tile, the wide tile's last panel of one vector or less by its
    one-vector twin, and a last panel of a few columns with A contiguous along K (X @ W) by
    dot products (B row-major, transposed or strided). Into a fresh, a strided and a
    Fortran-ordered out, and the first n columns of a wider one, with accumulate."""
    widths = list(range(1, 18)) + [33, 47, 65, 80, 97]
    for n in widths:
        for m, k in [(64, 37), (257, 65), (1000, 7)]:
            x = rng.standard_normal((k, m)).astype(dtype)
            dy = rng.standard_normal((k, n)).astype(dtype)
            want = expected("gemm_tn", x, dy)
            with simd(path):
                xr = np.ascontiguousarray(x.T)  # A row-major: the dot-product tail
                strided = np.zeros((k, 2 * n), dtype)
                strided[:, ::2] = dy
                cases = {
                    "gemm_tn": lambda: ops.gemm_tn(x, dy),
                    "fortran": lambda: ops.gemm(np.asfortranarray(x.T), dy),
                    "row-major": lambda: ops.gemm(xr, dy),
                    "row-major nt": lambda: ops.gemm_nt(xr, np.ascontiguousarray(dy.T)),
                    "row-major strided": lambda: ops.gemm(xr, strided[:, ::2]),
                }
                for name, run in cases.items():
                    got = run()
                    try:
                        assert_close(got, want, k, dtype)
                    except AssertionError as e:
                        raise AssertionError(f"{name} m={m} k={k} n={n}: {e}") from None
                big = np.full((2 * m, 3 * n), 7.0, dtype)
                out = big[::2, ::3]
                base = rng.standard_normal((m, n)).astype(dtype)
                out[...] = base
                ops.gemm_tn(x, dy, out=out, accumulate=True)
                assert_close(out, want + base, k, dtype)
                assert np.all(big[1::2] == 7.0) and np.all(big[::2, 1::3] == 7.0)
                f = np.full((m, n), np.nan, dtype, order="F")
                ops.gemm_tn(x, dy, out=f)
                assert_close(f, want, k, dtype)
                # rows of a wider row-major array: the edge tiles' masked stores write
                # exactly n columns (none of the neighbours beyond, for any width)
                wide = np.full((m, n + 5), 7.0, dtype)
                wide[:, :n] = base
                ops.gemm(xr, dy, out=wide[:, :n], accumulate=True)
                assert_close(wide[:, :n], want + base, k, dtype)
                ops.gemm_tn(x, dy, out=wide[:, :n])
                assert_close(wide[:, :n], want, k, dtype)
                assert np.all(wide[:, n:] == 7.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_non_contiguous_and_aliased(dtype, rng):
    a, b = operands("gemm", 20, 30, 20, dtype, rng)
    want = expected("gemm", a, b)
    # out as a strided view and as a transposed (Fortran) view
    big = np.zeros((40, 60), dtype)
    r = ops.gemm(a, b, out=big[::2, ::3])
    assert_close(big[::2, ::3], want, 30, dtype)
    assert np.all(big[1::2] == 0)
    f = np.zeros((20, 20), dtype, order="F")
    ops.gemm(a, b, out=f, accumulate=True)
    assert_close(f, want, 30, dtype)
    # out aliasing an input: must behave as numpy's "compute, then assign"
    sq_a = a[:, :20].copy()
    sq_b = b.copy()[:20]
    want_sq = expected("gemm", sq_a, sq_b)
    r = ops.gemm(sq_a, sq_b, out=sq_a)
    assert r is sq_a
    assert_close(sq_a, want_sq, 20, dtype)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dimensions(op, dtype, rng):
    # K == 0: zeros, or out unchanged when accumulating
    a, b = operands(op, 5, 0, 4, dtype, rng)
    r = getattr(ops, op)(a, b)
    assert r.shape == (5, 4) and r.dtype == dtype and np.all(r == 0)
    out = np.ones((5, 4), dtype)
    getattr(ops, op)(a, b, out=out, accumulate=True)
    assert np.all(out == 1)
    getattr(ops, op)(a, b, out=out)
    assert np.all(out == 0)
    # M == 0 or N == 0: empty results
    for m, n in [(0, 4), (5, 0), (0, 0)]:
        a, b = operands(op, m, 3, n, dtype, rng)
        r = getattr(ops, op)(a, b)
        assert r.shape == (m, n) and r.dtype == dtype


def test_integer_and_list_inputs_convert_like_the_twin():
    a = np.arange(6).reshape(2, 3)
    b = np.arange(12).reshape(3, 4)
    for op, x, y in [("gemm", a, b), ("gemm_nt", a, b.T), ("gemm_tn", a.T, b)]:
        got = getattr(ops, op)(x, y)
        want = getattr(ref, op)(x, y)
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_allclose(got, want)
    got = ops.gemm([[1.0, 2.0]], [[3.0], [4.0]])
    np.testing.assert_allclose(got, [[11.0]])


def _error(fn, *args, **kw):
    with pytest.raises(Exception) as e:
        fn(*args, **kw)
    return type(e.value), str(e.value)


@pytest.mark.parametrize("op", OPS)
def test_errors_match_the_twin(op):
    f32 = np.ones((3, 4), np.float32)
    cases = [
        ((f32, f32.astype(np.float64)), {}),                                  # dtypes differ
        ((np.ones((3, 4), np.float32), np.ones((5, 6), np.float32)), {}),     # inner sizes
        ((np.ones(3, np.float32), np.ones((3, 3), np.float32)), {}),          # 1-D
        ((np.ones((3, 3), np.complex64), np.ones((3, 3), np.complex64)), {}),  # complex
        ((np.ones((3, 3), np.float32), np.ones((3, 3), np.float32)),
         {"out": np.ones((3, 4), np.float32)}),                               # out shape
        ((np.ones((3, 3), np.float32), np.ones((3, 3), np.float32)),
         {"out": np.ones((3, 3), np.float64)}),                               # out dtype
        ((np.ones((3, 3), np.float32), np.ones((3, 3), np.float32)), {"accumulate": True}),
    ]
    for args, kw in cases:
        got = _error(getattr(ops, op), *args, **kw)
        want = _error(getattr(ref, op), *args, **kw)
        assert got == want
        assert got[1].startswith(op + ":"), got
    # shape errors name the shapes
    t, msg = _error(getattr(ops, op), np.ones((3, 4)), np.ones((5, 6)))
    assert t is ValueError and "(3, 4)" in msg and "(5, 6)" in msg
    t, msg = _error(getattr(ops, op), np.ones((3, 3), np.float32), np.ones((3, 3)))
    assert t is TypeError and "float32" in msg and "float64" in msg


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormals_flush_to_zero(dtype, path, rng):
    """FTZ/DAZ: subnormal inputs act as zero and never produce garbage (NaN/inf)."""
    tiny = np.finfo(dtype).tiny
    m, k, n = 33, 80, 40
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    sub = (rng.random((m, k)) < 0.3)
    a[sub] = (tiny / 4) * np.sign(rng.standard_normal(sub.sum())).astype(dtype)
    b_sub = b.copy()
    b_sub[:, :5] = tiny / 8  # whole columns of subnormals
    with simd(path):
        got = ops.gemm(a, b_sub)
    assert np.all(np.isfinite(got))
    a_ftz = np.where(np.abs(a) < tiny, 0, a)
    b_ftz = np.where(np.abs(b_sub) < tiny, 0, b_sub)
    assert_close(got, expected("gemm", a_ftz, b_ftz), k, dtype)
    if not NATIVE:
        return  # the numpy twin computes subnormals exactly; the rest is about FTZ/DAZ
    assert np.all(got[:, :5] == 0)  # products of subnormals flush to exactly zero
    # products that would underflow into subnormals flush too
    x = np.full((4, 16), np.sqrt(tiny) / 4, dtype)
    with simd(path):
        y = ops.gemm_nt(x, x)
    assert np.all(y == 0)


@pytest.mark.skipif(not ops.has_openmp(), reason="built without OpenMP")
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_does_not_change_results(dtype, rng):
    old = ops.num_threads()
    try:
        # (64, 300, 400): A read in place, barrier-free driver; (150, 1100, 300): packed A;
        # (150, 1100, 100): A packed on one thread, read in place by 2 (cells of 2 B panels)
        for op in OPS:
            for m, k, n in [(64, 300, 400), (150, 1100, 300), (150, 1100, 100), (20, 100, 9)]:
                a, b = operands(op, m, k, n, dtype, rng)
                ops.set_num_threads(2)
                r2 = getattr(ops, op)(a, b)
                ops.set_num_threads(1)
                r1 = getattr(ops, op)(a, b)
                # same blocking, same summation order per element: bitwise equal
                np.testing.assert_array_equal(r1, r2)
                assert_close(r1, expected(op, a, b), k, dtype)
    finally:
        ops.set_num_threads(old)


def test_paths_agree_with_each_other(rng):
    if len(PATHS) < 2:
        pytest.skip("only one SIMD path on this CPU")
    a, b = operands("gemm", 50, 90, 70, np.float64, rng)
    results = []
    for p in PATHS:
        with ops.force_simd(p):
            results.append(ops.gemm(a, b))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-12, atol=1e-12)


def test_broadcast_and_readonly(rng):
    """Zero strides (np.broadcast_to) are valid inputs; a read-only out is refused."""
    row = rng.standard_normal((1, 50)).astype(np.float32)
    a = np.broadcast_to(row, (40, 50))          # every row the same, row stride 0
    b = np.broadcast_to(rng.standard_normal((50, 1)).astype(np.float32), (50, 70))
    for op, x, y in [("gemm", a, b), ("gemm_nt", a, b.T), ("gemm_tn", a.T, b)]:
        assert_close(getattr(ops, op)(x, y), expected(op, x, y), 50, np.float32)
    out = np.zeros((40, 70), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError):
        ops.gemm(a, b, out=out)


@needs_compiled
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_any_blocking_gives_the_same_product(dtype, path, rng):
    """The tuning hook (benchmarks/tune_gemm.py) may pick any blocks: tiny ones that split every
    dimension into many ragged blocks, A packed or read in place, one team sharing the blocks
    or a grid of cells; the product stays right."""
    from nnlite.ops import _gemm
    old_threads = ops.num_threads()
    ops.set_num_threads(2)             # the team and the grid need more than one thread
    try:
        with simd(path):
            for kc, mc, nc, pack_a, team in [(8, 8, 16, 1, -1), (24, 40, 48, 1, 1),
                                             (512, 1024, 8192, 1, -1), (16, 0, 0, 0, -1),
                                             (0, 0, 0, 1, 1), (40, 0, 0, 1, -1)]:
                _gemm._set_tuning(kc, mc, nc, pack_a, prefetch_c=team % 3, team=team)
                for op in OPS:
                    for m, k, n in [(65, 257, 63), (130, 70, 200), (7, 1000, 33)]:
                        a, b = operands(op, m, k, n, dtype, rng)
                        assert_close(getattr(ops, op)(a, b), expected(op, a, b), k, dtype)
    finally:
        _gemm._set_tuning()
        ops.set_num_threads(old_threads)


@needs_compiled
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("uarch", [0, 1])
def test_each_micro_architecture_plan_gives_the_same_product(uarch, dtype, path, rng):
    """The plan's per-core rules (gemm.cpp, plan_gemm: generic, or Intel's AVX-512 cores: B
    always packed, A packed when strided along K, KC <= 256) are picked by the CPU's vendor, so
    a machine only runs its own; forced here, each plan must give the twin's product, also with
    B forced packed or in place. The shapes cross each rule's thresholds: a small batch (B read
    in place by the generic plan), A strided along K (gemm_tn), K past one block."""
    from nnlite.ops import _gemm
    old_threads = ops.num_threads()
    ops.set_num_threads(2)
    try:
        with simd(path):
            for pack_b in (-1, 0, 1):
                _gemm._set_tuning(uarch=uarch, pack_b=pack_b)
                for op in OPS:
                    for m, k, n in [(64, 300, 130), (130, 600, 97), (7, 257, 65), (1, 65, 1)]:
                        a, b = operands(op, m, k, n, dtype, rng)
                        assert_close(getattr(ops, op)(a, b), expected(op, a, b), k, dtype)
    finally:
        _gemm._set_tuning()
        ops.set_num_threads(old_threads)


@needs_compiled
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefetching_the_next_block_keeps_the_product(dtype, path, rng):
    """Operands past 2 MiB get hints that fetch the block packed next while the current one
    computes (gemm.cpp, NextBlockPrefetch), and a weight gradient's K blocks shrink to 256 so
    that block fits beside the current one. The shapes: A one block and K many blocks (a
    weight gradient over many tokens, B packed), several blocks of A rows (the forward and
    input gradient over many tokens), ragged edges. Every hint setting (0 none, 1 into L1,
    2 into L2) and both thread counts give the twin's product; the shrunken K blocks depend
    on the shape only, so 1 and 2 threads still agree bit for bit."""
    from nnlite.ops import _gemm
    old_threads = ops.num_threads()
    try:
        with simd(path):
            for op, (m, k, n) in [("gemm_tn", (100, 4100, 200)), ("gemm", (1000, 700, 130)),
                                  ("gemm_nt", (1001, 650, 129)), ("gemm_tn", (300, 2100, 260)),
                                  ("gemm", (65, 3000, 257))]:
                a, b = operands(op, m, k, n, dtype, rng)
                want = expected(op, a, b)
                auto = {}
                for threads in (1, 2):
                    ops.set_num_threads(threads)
                    for hint in (-1, 0, 1, 2):
                        _gemm._set_tuning(prefetch_b=hint)
                        got = getattr(ops, op)(a, b)
                        assert_close(got, want, k, dtype)
                        if hint == -1:
                            auto[threads] = got
                np.testing.assert_array_equal(auto[1], auto[2])
    finally:
        _gemm._set_tuning()
        ops.set_num_threads(old_threads)


@needs_compiled
def test_tuning_sweep_script_compares_settings(tmp_path):
    """benchmarks/tune_gemm.py: one line per (size, setting), and the plan is automatic after."""
    import shutil

    import _child as child
    from _scripts import REPO
    # a copy outside any checkout: the scripts put their checkout first on sys.path, and the
    # nnlite under test (_child's) must be the one imported (CI: an unbuilt sdist + the install)
    bench = tmp_path / "benchmarks"
    shutil.copytree(REPO / "benchmarks", bench)
    r = child.python(bench / "tune_gemm.py", "--size", "40", "9x30x17",
                     "--rounds", "1", "--flop", "1e5", "--pause", "0", "--phases", "auto",
                     "kc=16 team=1", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["40x40x40", "auto"], ["40x40x40", "kc=16"],
                                         ["9x30x17", "auto"], ["9x30x17", "kc=16"]]
    assert all(float(row[row.index("pack_b") - 2]) > 0 for row in rows)
    assert all(row[-2:] and row[-2] == "wait" for row in rows)
    bad = child.python(bench / "tune_gemm.py", "pack=1", timeout=120)
    assert bad.returncode != 0 and "bad setting 'pack=1'" in bad.stderr


@needs_compiled
def test_phase_timers_split_a_call():
    """_set_tuning(phases=True): seconds in packing, micro-kernels and waiting, then zeroed."""
    from nnlite.ops import _gemm
    a = np.ones((300, 700), np.float32)
    b = np.ones((700, 200), np.float32)
    try:
        _gemm._set_tuning(pack_a=1, phases=True)
        _gemm._phases()
        for _ in range(3):
            ops.gemm(a, b)
        ph = _gemm._phases()
        assert set(ph) == {"pack_b", "pack_a", "compute", "wait"}
        assert ph["compute"] > 0 and ph["pack_a"] > 0 and ph["pack_b"] > 0 and ph["wait"] >= 0
        assert ph["compute"] > ph["pack_a"]          # 200 columns reuse each packed A panel
        assert sum(_gemm._phases().values()) == 0    # read and restarted
        _gemm._set_tuning()
        ops.gemm(a, b)
        assert sum(_gemm._phases().values()) == 0    # off: nothing counted
    finally:
        _gemm._set_tuning()


# ----------------------------------------------------------------------------- the epilogue
def epilogue_operands(m, n, dtype, rng):
    return (rng.standard_normal(n).astype(dtype), rng.standard_normal((m, n)).astype(dtype))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_and_residual_match_the_twin(dtype, path, rng):
    """gemm(a, b, bias=, residual=): C = A·B + bias + residual, added to each tile as it is
    finished (gemm.inc: epilogue_tile), by loops for the transposed narrow columns and an empty
    sum; with out= and accumulate=, on every tile path (wide, one-vector tail, dot tail,
    transposed narrow, 10 columns), 1 and 2 threads, and blocks that split K (the epilogue
    belongs to the last K block only)."""
    from nnlite.ops import _gemm
    old_threads = ops.num_threads()
    try:
        with simd(path):
            for threads, kc in [(1, 0), (2, 0), (2, 16)]:
                ops.set_num_threads(threads)
                _gemm._set_tuning(kc=kc)
                for m, k, n in SHAPES + [(768, 128, 65), (130, 0, 33), (257, 65, 12)]:
                    a, b = operands("gemm", m, k, n, dtype, rng)
                    bias, res = epilogue_operands(m, n, dtype, rng)
                    prod = expected("gemm", a, b)
                    for kw, add in [({"bias": bias}, bias), ({"residual": res}, res),
                                    ({"bias": bias, "residual": res}, bias + res)]:
                        want = prod + add.astype(np.float64)
                        assert_close(ops.gemm(a, b, **kw), want, k + 2, dtype)
                        out = rng.standard_normal((m, n)).astype(dtype)
                        want_acc = out.astype(np.float64) + want
                        assert ops.gemm(a, b, out=out, accumulate=True, **kw) is out
                        assert_close(out, want_acc, k + 3, dtype)
    finally:
        _gemm._set_tuning()
        ops.set_num_threads(old_threads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_epilogue_with_awkward_out_and_operands(dtype, rng):
    """out= as the residual itself (y = x + x·W in place), a strided out, non-contiguous bias
    and residual, float lists, and a residual that is a view of a: all as the twin."""
    m, k, n = 65, 33, 63
    a, b = operands("gemm", m, k, n, dtype, rng)
    bias, res = epilogue_operands(m, n, dtype, rng)
    want = expected("gemm", a, b) + bias + res
    r = res.copy()
    assert ops.gemm(a, b, out=r, bias=bias, residual=r) is r
    assert_close(r, want, k + 2, dtype)
    big = np.zeros((m, 2 * n), dtype)
    out = big[:, ::2]
    ops.gemm(a, b, out=out, bias=bias, residual=res)
    assert_close(out, want, k + 2, dtype)
    assert not big[:, 1::2].any()
    res_f = np.asfortranarray(res)
    bias_s = np.repeat(bias, 2)[::2]
    assert_close(ops.gemm(a, b, bias=bias_s, residual=res_f), want, k + 2, dtype)
    sq = rng.standard_normal((n, n)).astype(dtype)
    x = rng.standard_normal((m, n)).astype(dtype)
    assert_close(ops.gemm(x, sq, residual=x), expected("gemm", x, sq) + x, n + 1, dtype)
    if dtype == np.float64:         # a list of floats becomes float64, as in the twin
        assert_close(ops.gemm(a, b, bias=bias.tolist()), expected("gemm", a, b) + bias, k + 1,
                     dtype)


def test_epilogue_errors_match_the_twin():
    f32 = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    cases = [{"bias": np.ones(4, np.float32)}, {"bias": np.ones((1, 5), np.float32)},
             {"bias": np.ones(5, np.float64)}, {"residual": np.ones((5, 3), np.float32)},
             {"residual": np.ones((3, 5), np.float64)}, {"bias": np.ones(5, np.complex64)},
             {"residual": "x"}]
    for kw in cases:
        got = _error(ops.gemm, f32, b, **kw)
        want = _error(ref.gemm, f32, b, **kw)
        assert got == want, kw
        assert got[0] in (TypeError, ValueError) and got[1].startswith("gemm:"), got
    t, msg = _error(ops.gemm, f32, b, bias=np.ones(4, np.float32))
    assert "(5,)" in msg and "(4,)" in msg
