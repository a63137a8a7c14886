"""Issue 9 (hardening) for the kernels: each test failed before its fix.

* NNLITE_SIMD is stripped and lower-cased by the C++ side too (" AVX2", "Scalar").
* Results do not depend on the thread count (bit for bit), and set_num_threads is process-wide.
* attention allocates its workspace before the parallel region (MemoryError, not SIGABRT) and
  only what it needs (T = 1 with a big D used to grow RSS 33x the input).
* Optimizer kernels: a read-only grad, np.matrix arrays, and the step's type and range behave
  the same in the compiled ops and their numpy twins.
* Arrays not aligned to their itemsize never reach the SIMD code: the wrappers copy them.
"""
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import _child as child
import nnlite as nl
from _kernels import not_under_asan, same_error
from nnlite import ops
from nnlite.ops import reference as ref

NATIVE = ops.BACKEND == "native" and set(ops.compiled_kernels().values()) == {"compiled"}
needs_native = pytest.mark.skipif(not NATIVE, reason="needs the compiled kernels")
needs_openmp = pytest.mark.skipif(not (NATIVE and ops.has_openmp()), reason="needs OpenMP")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="RLIMIT_AS, /proc/self/status and ru_maxrss in KiB")

PKG = Path(nl.__file__).resolve().parent
ENV = child.env()


def run_python(code, cwd, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          env={**ENV, **env}, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------ 1. NNLITE_SIMD spelling

@needs_native
@pytest.mark.parametrize("raw", ["Scalar", " scalar ", "SCALAR\n", "AVX2", " avx2", "Avx512 "])
def test_simd_env_is_stripped_and_lowercased(tmp_path, raw):
    want = raw.strip().lower()
    if want not in ops.simd_paths():
        pytest.skip(f"this CPU cannot run {want}")
    r = run_python("import nnlite as nl; print(nl.ops.simd_path())", tmp_path, NNLITE_SIMD=raw)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == want, r.stderr
    assert "NNLITE_SIMD" not in r.stderr          # no warning: the name is fine


@needs_native
def test_set_simd_path_takes_any_spelling():
    old = ops.simd_path()
    try:
        ops.set_simd_path(" Scalar\t")
        assert ops.simd_path() == "scalar"
    finally:
        ops.set_simd_path(old)
    with pytest.raises(ValueError, match="unknown SIMD path"):
        ops.set_simd_path("sse 9")


# ------------------------------------------------------------------------ 2. threads

class threads:
    """``with threads(n):`` runs the kernels on n threads, then restores the count."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = ops.num_threads()
        ops.set_num_threads(self.n)

    def __exit__(self, *exc):
        ops.set_num_threads(self.old)
        return False


def _cases(rng):
    """op name -> a function running it on inputs big enough to go parallel; returns arrays."""
    f32 = np.float32

    def r(*shape, dtype=f32):
        return rng.standard_normal(shape).astype(dtype)

    x, g, gamma, beta = r(4096, 96), r(4096, 96), r(96), r(96)
    _, mean, rstd = ref.layernorm(x, gamma, beta)
    a, b = r(300, 200), r(200, 260)
    z, labels = r(4096, 64), rng.integers(0, 64, 4096)
    q, k, v, go = (r(2, 4, 128, 32) for _ in range(4))
    ids, ge = rng.integers(0, 50, (64, 64)), r(64, 64, 80)
    ps = [r(70000), r(300, 300), r(17)]
    gs = [r(*p.shape) for p in ps]
    xb = r(512, 512)

    def layernorm_backward():
        return ops.layernorm_backward(g, x, gamma, mean, rstd)

    def adam_update_many():
        p2, m2, v2 = [p.copy() for p in ps], [np.zeros_like(p) for p in ps], \
            [np.zeros_like(p) for p in ps]
        for step in (1, 2):
            ops.adam_update_many(p2, gs, m2, v2, lr=1e-2, weight_decays=0.1, step=step)
        return p2 + m2 + v2

    def sgd_rmsprop():
        p1, vel, p2, sq = ps[0].copy(), np.zeros_like(ps[0]), ps[0].copy(), np.ones_like(ps[0])
        ops.sgd_update(p1, gs[0], vel, lr=0.1, momentum=0.9)
        ops.rmsprop_update(p2, gs[0], sq)
        return p1, vel, p2, sq

    def embedding_backward():
        dt = np.zeros((50, 80), f32)
        ops.embedding_backward(ids, ge, dt)
        return (dt,)

    # 64 images of 4 x 16 x 16 make 3 chunks of im2col columns (conv.cpp): threads take
    # whole chunks, and the weight gradient is summed in per-chunk-run parts
    xc, wc = r(64, 4, 16, 16), r(8, 4, 3, 3)
    gc = r(64, 8, 16, 16)

    def conv():
        return (ops.conv2d(xc, wc, None, padding=1),
                *ops.conv2d_backward(gc, xc, wc, padding=1))

    qkv = r(2, 96, 3, 4, 32)

    def attention_strided():   # q, k, v and dq, dk, dv as heads of (B, T, 3, H, D) arrays
        dqkv = np.empty((2, 96, 3, 4, 32), f32)
        q5, d5 = qkv.transpose(2, 0, 3, 1, 4), dqkv.transpose(2, 0, 3, 1, 4)
        out = np.empty((2, 96, 4, 32), f32).transpose(0, 2, 1, 3)
        _, lse = ops.attention(*q5, return_lse=True, out=out)
        ops.attention_backward(*q5, out, go[:, :, :96], lse=lse, dq=d5[0], dk=d5[1], dv=d5[2])
        return out, lse, dqkv

    return {
        "conv": conv,
        "attention_strided": attention_strided,
        "layernorm": lambda: ops.layernorm(x, gamma, beta),
        "layernorm_backward": layernorm_backward,
        "gemm": lambda: (ops.gemm(a, b), ops.gemm_nt(a, a), ops.gemm_tn(b, b)),
        "softmax_cross_entropy": lambda: (np.array(ops.softmax_cross_entropy(z, labels)[0]),
                                          ops.softmax_cross_entropy(z, labels)[1]),
        "softmax": lambda: (ops.softmax(z), ops.softmax_backward(z, ops.softmax(z))),
        "bias_act": lambda: (ops.bias_act(xb, xb[0], "gelu"), ops.bias_grad(xb)),
        "attention": lambda: (ops.attention(q, k, v, return_lse=True)
                              + ops.attention_backward(q, k, v, q, go)),
        "embedding_backward": embedding_backward,
        "adam_update_many": adam_update_many,
        "sgd_rmsprop": sgd_rmsprop,
    }


THREAD_CASES = ("conv", "attention_strided", "layernorm", "layernorm_backward", "gemm", "softmax_cross_entropy", "softmax",
                "bias_act", "attention", "embedding_backward", "adam_update_many", "sgd_rmsprop")


@needs_openmp
@pytest.mark.parametrize("op", THREAD_CASES)
def test_results_do_not_depend_on_the_thread_count(op, rng):
    """Bit for bit the same on 1, 2 and 3 threads (layernorm_backward's dγ/dβ used to differ by
    ~3e-6 relative between 1 and 2 threads: each thread summed its share of the rows)."""
    run = _cases(rng)[op]
    with threads(1):
        want = run()
    for n in (2, 3):
        with threads(n):
            got = run()
        for w, gt in zip(want, got):
            np.testing.assert_array_equal(gt, w, err_msg=f"{op} on {n} threads")


@needs_openmp
def test_set_num_threads_is_process_wide():
    """OpenMP's setting is per calling thread: a new Python thread used to see the default."""
    from nnlite.ops import _optim_kernels

    seen = []

    def look():
        seen.append((ops.num_threads(), _optim_kernels._num_threads()))

    for n in (1, 3):
        with threads(n):
            t = threading.Thread(target=look)
            t.start()
            t.join()
            assert seen[-1] == (n, n)
    with pytest.raises(ValueError, match=">= 1"):
        ops.set_num_threads(0)


@needs_openmp
def test_a_kernel_in_another_thread_gives_the_same_bits(rng):
    x, g, gamma = rng.standard_normal((3000, 64)), rng.standard_normal((3000, 64)), np.ones(64)
    _, mean, rstd = ops.layernorm(x, gamma, gamma)
    got = []
    with threads(1):
        want = ops.layernorm_backward(g, x, gamma, mean, rstd)
        t = threading.Thread(target=lambda: got.append(
            ops.layernorm_backward(g, x, gamma, mean, rstd)))
        t.start()
        t.join()
    for w, gt in zip(want, got[0]):
        np.testing.assert_array_equal(gt, w)


# ------------------------------------------------------------------------ 3. attention memory

_MEMORY_PRELUDE = """
import resource
import numpy as np
import nnlite as nl

def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

def limit(extra):
    # address space: what is mapped now (inputs included) plus `extra` bytes
    resource.setrlimit(resource.RLIMIT_AS, (vm() + extra, HARD))

def unlimit():
    resource.setrlimit(resource.RLIMIT_AS, (HARD, HARD))

HARD = resource.getrlimit(resource.RLIMIT_AS)[1]
MiB = 1 << 20
rng = np.random.default_rng(0)
small = [rng.standard_normal((1, 2, 64, 64)).astype(np.float32) for _ in range(3)]
nl.ops.attention(*small)                          # warm up: OpenMP threads exist before limits
nl.ops.attention_backward(*small, small[0], small[1])
nl.ops.gemm(np.ones((256, 256)), np.ones((256, 256)))
"""


@needs_native
@linux_only
@not_under_asan
def test_attention_out_of_memory_raises_memory_error(tmp_path):
    """The workspace used to be allocated inside the OpenMP region: std::bad_alloc there calls
    std::terminate (SIGABRT). Each array here is 32 MiB; every call is left 16 MiB beyond its
    outputs, less than one thread's Kᵀ (32 MiB)."""
    code = _MEMORY_PRELUDE + """
T, D = 256, 32768
q, k, v = (np.ones((1, 1, T, D), np.float32) for _ in range(3))
lse = np.zeros((1, 1, T), np.float32)
calls = [
    ("attention", 32 * MiB, lambda: nl.ops.attention(q, k, v)),
    ("backward, lse recomputed", 0, lambda: nl.ops.attention_backward(q, k, v, q, k)),
    ("backward", 96 * MiB, lambda: nl.ops.attention_backward(q, k, v, q, k, lse=lse)),
]
for name, outputs, call in calls:
    limit(outputs + 16 * MiB)
    try:
        call()
        print(name, "ran")
    except MemoryError:
        print(name, "MemoryError")
    finally:
        unlimit()
out = nl.ops.attention(*small)                    # the process is still fine
print("ok", bool(np.isfinite(out).all()))
"""
    r = run_python(code, tmp_path)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"
    assert r.stdout.split("\n") == ["attention MemoryError", "backward, lse recomputed MemoryError",
                                    "backward MemoryError", "ok True", ""], r.stdout + r.stderr


@needs_native
@linux_only
def test_attention_t1_allocates_only_what_it_needs(tmp_path):
    """T = 1 with 16 MiB q, k, v: Kᵀ used to be padded to 16 keys, on every thread, idle ones
    too (RSS grew by 528 MiB = 33x q). Now: the output and one Kᵀ (2x q) forward; dq, dk, dv
    and one Kᵀ, Vᵀ (5x q) backward."""
    code = _MEMORY_PRELUDE + """
D = 1 << 22
q, k, v, g = (np.ones((1, 1, 1, D), np.float32) for _ in range(4))

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

p0 = peak()
out = nl.ops.attention(q, k, v)
p1 = peak()
grads = nl.ops.attention_backward(q, k, v, out, g)
p2 = peak()
print((p1 - p0) / q.nbytes, (p2 - p1) / q.nbytes)
"""
    r = run_python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    fwd, bwd = map(float, r.stdout.split())
    assert fwd <= 2.5, f"forward grew RSS by {fwd:.1f}x the size of q"
    assert bwd <= 5.5, f"backward grew RSS by {bwd:.1f}x the size of q"


@pytest.mark.parametrize("T", [2, 15, 16, 17])
@pytest.mark.parametrize("D", [24, 16400])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_short_sequences_match_twin(T, D, dtype, simd, rng):
    """T < 16 with a big D (a padded Kᵀ over 1 MiB) takes the unpadded Kᵀ and the scalar
    scores routine, on every SIMD path; a usual D keeps the padded one."""
    q, k, v, g = (rng.standard_normal((1, 2, T, D)).astype(dtype) for _ in range(4))
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for causal in (True, False):
        out, lse = ops.attention(q, k, v, causal=causal, return_lse=True)
        want, want_lse = ref.attention(q, k, v, causal=causal, return_lse=True)
        np.testing.assert_allclose(out, want, **tol)
        np.testing.assert_allclose(lse, want_lse, **tol)
        for got, w in zip(ops.attention_backward(q, k, v, out, g, causal=causal),
                          ref.attention_backward(q, k, v, want, g, causal=causal)):
            np.testing.assert_allclose(got, w, **tol)


# ------------------------------------------------------------------------ 4. optimizer kernels

OPT_CASES = {
    "sgd_update": (1, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "rmsprop_update": (1, dict(weight_decay=0.01)),
    "adam_update": (2, dict(weight_decay=0.01, step=3)),
}


def _opt_run(fn, name, p, g, state):
    n_state, kw = OPT_CASES[name]
    fn(p, g, *state, **kw)


@pytest.mark.parametrize("name", list(OPT_CASES))
def test_read_only_grad_is_accepted(name, rng):
    """grad is only read: a read-only one used to fail in the Cython kernels with a buffer
    error naming no op."""
    n_state = OPT_CASES[name][0]
    g = rng.standard_normal((30, 40)).astype(np.float32)
    g.flags.writeable = False
    p = rng.standard_normal((30, 40)).astype(np.float32)
    state = [np.abs(rng.standard_normal((30, 40))).astype(np.float32) for _ in range(n_state)]
    p2, state2 = p.copy(), [s.copy() for s in state]
    _opt_run(getattr(ops, name), name, p, g, state)
    _opt_run(getattr(ref, name), name, p2, g, state2)
    np.testing.assert_allclose(p, p2, rtol=1e-6, atol=1e-7)
    for s, s2 in zip(state, state2):
        np.testing.assert_allclose(s, s2, rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")     # np.matrix itself
@pytest.mark.parametrize("name", list(OPT_CASES))
def test_matrix_arrays_are_updated_like_arrays(name, rng):
    """np.matrix used to give Cython's 'No matching signature' (its reshape(-1) stays 2-D)."""
    n_state = OPT_CASES[name][0]
    base = [np.abs(rng.standard_normal((6, 5))) for _ in range(2 + n_state)]
    mats = [np.asmatrix(a.copy()) for a in base]
    arrs = [a.copy() for a in base]
    _opt_run(getattr(ops, name), name, mats[0], mats[1], mats[2:])
    _opt_run(getattr(ref, name), name, arrs[0], arrs[1], arrs[2:])
    for m, a in zip(mats, arrs):
        assert type(m) is np.matrix
        np.testing.assert_allclose(np.asarray(m), a, rtol=1e-13, atol=1e-15)


def test_adam_step_must_be_an_int_below_2_63(rng):
    """step=2.5 ran as step 2 in the compiled op only, and 2**70 overflowed there only."""
    p = rng.standard_normal(5)

    def args():
        return p.copy(), np.ones(5), np.zeros(5), np.zeros(5)

    for bad, err in ((2.5, TypeError), (2.0, TypeError), (True, TypeError), ("3", TypeError),
                     (0, ValueError), (-1, ValueError), (2 ** 63, ValueError),
                     (2 ** 70, ValueError), (2 ** 80 + 1, ValueError)):
        same_error(ops.adam_update, ref.adam_update, *args(), step=bad)
        same_error(ops.adam_update_many, ref.adam_update_many,
                   *[[a] for a in args()], step=bad)
        with pytest.raises(err, match="step"):
            ops.adam_update(*args(), step=bad)
    same_error(ops.adam_update_many, ref.adam_update_many, [], [], [], [], step=2.5)
    for good in (1, np.int64(7), 2 ** 63 - 1, np.uint64(2 ** 63 - 1)):
        a, b = args(), args()
        ops.adam_update(*a, step=good)
        ref.adam_update(*b, step=good)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13)


# ------------------------------------------------------------------------ 5. misaligned arrays

def unaligned(a):
    """A copy of ``a`` whose data starts one byte past an aligned address (a view into a byte
    buffer): misaligned for every dtype wider than a byte."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = buf[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned and u.flags.c_contiguous
    return u


def _arrays(args):
    for a in args:
        if isinstance(a, np.ndarray):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from _arrays(a)


class AlignedOnly:
    """Stands in for a compiled module: every array an entry point receives must be aligned."""

    def __init__(self, mod):
        self._mod = mod

    def __getattr__(self, name):
        fn = getattr(self._mod, name)
        if not callable(fn):
            return fn

        def run(*args, **kwargs):
            for a in _arrays(list(args) + list(kwargs.values())):
                assert a.flags.aligned, f"{name} received an array misaligned for {a.dtype}"
            return fn(*args, **kwargs)
        return run


@pytest.fixture
def aligned_only(monkeypatch):
    """Every compiled entry point behind a wrapper (gemm's binding copies such arrays itself)."""
    if not NATIVE:
        pytest.skip("needs the compiled kernels")
    from nnlite.ops import native_attention, native_nn, native_optim, native_pointwise
    monkeypatch.setattr(native_nn, "_nn", AlignedOnly(native_nn._nn))
    monkeypatch.setattr(native_attention, "_native", AlignedOnly(native_attention._native))
    monkeypatch.setattr(native_pointwise, "_pw", AlignedOnly(native_pointwise._pw))
    monkeypatch.setattr(native_optim, "_k", AlignedOnly(native_optim._k))


def _misaligned_cases(rng, dtype):
    """name -> (function of a list of arrays, arrays): in-place ops return what they update."""
    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, g, gamma, beta = r(33, 20), r(33, 20), r(20), r(20)
    _, mean, rstd = ref.layernorm(x, gamma, beta)
    q, k, v, go = r(2, 2, 19, 8), r(2, 2, 19, 8), r(2, 2, 19, 8), r(2, 2, 19, 8)
    ids = rng.integers(0, 9, (5, 7)).astype(np.int64)

    def sgd(p, gr, vel):
        ops.sgd_update(p, gr, vel, lr=0.1, momentum=0.9)
        return p, vel

    def rms(p, gr, sq):
        ops.rmsprop_update(p, gr, sq)
        return p, sq

    def adam(p, gr, m, vv):
        ops.adam_update(p, gr, m, vv, step=2)
        return p, m, vv

    def adam_many(p, gr, m, vv):
        ops.adam_update_many([p], [gr], [m], [vv], step=2)
        return p, m, vv

    def bias_act_inplace(xx, b):
        ops.bias_act(xx, b, "relu", out=xx)
        return (xx,)

    def gemm_out(a, b, c):
        ops.gemm(a, b, out=c, accumulate=True)
        return (c,)

    def bias_grad_out(gr, o):
        ops.bias_grad(gr, out=o, accumulate=True)
        return (o,)

    def act_bias_grad(gg, xx, yy, db, o):
        dx, _ = ops.act_backward_bias_grad(gg, xx, yy, "gelu", db=db, accumulate=True, out=o)
        return dx, db

    def emb_back(i, gr, dt):
        ops.embedding_backward(i, gr, dt)
        return (dt,)

    pos = np.abs(r(33, 20))
    return {
        "gemm": (lambda a, b: (ops.gemm(a, b), ops.gemm_nt(a, a), ops.gemm_tn(b, b)),
                 [r(10, 10), r(10, 12)]),
        "gemm_out": (gemm_out, [r(10, 10), r(10, 12), r(10, 12)]),
        "bias_act": (lambda xx, b: (ops.bias_act(xx, b, "gelu"),), [x, gamma]),
        "bias_act_inplace": (bias_act_inplace, [x, gamma]),
        "act": (lambda xx, yy, gg: (ops.act_forward(xx, "tanh"),
                                    ops.act_backward(gg, xx, yy, "sigmoid")), [x, x, g]),
        "softmax": (lambda xx, gg: (ops.softmax(xx), ops.softmax_backward(gg, xx)), [x, g]),
        "softmax_cross_entropy": (
            lambda z, t: (np.array(ops.softmax_cross_entropy(z, t)[0]),
                          ops.softmax_cross_entropy(z, t)[1]),
            [x, rng.integers(0, 20, 33).astype(np.int64)]),
        "act_bias_grad": (act_bias_grad, [g, x, x, gamma, r(33, 20)]),
        "bias_grad": (lambda gg: (ops.bias_grad(gg),), [g]),
        "bias_grad_out": (bias_grad_out, [g, gamma]),
        "sgd_update": (sgd, [x, g, pos]),
        "rmsprop_update": (rms, [x, g, pos]),
        "adam_update": (adam, [x, g, g * 0.1, pos]),
        "adam_update_many": (adam_many, [x, g, g * 0.1, pos]),
        "attention": (lambda a, b, c, d: ops.attention(a, b, c, return_lse=True)
                      + ops.attention_backward(a, b, c, a, d), [q, k, v, go]),
        "attention_backward_lse": (
            lambda a, b, c, d, lse: ops.attention_backward(a, b, c, a, d, lse=lse),
            [q, k, v, go, ops.attention(q, k, v, return_lse=True)[1]]),
        "layernorm": (lambda xx, ga, be: ops.layernorm(xx, ga, be), [x, gamma, beta]),
        "layernorm_backward": (lambda gg, xx, ga, mu, rs: ops.layernorm_backward(gg, xx, ga, mu,
                                                                                 rs),
                               [g, x, gamma, mean, rstd]),
        "embedding": (lambda i, t: (ops.embedding(i, t),), [ids, r(9, 6)]),
        "embedding_backward": (emb_back, [ids, r(5, 7, 6), r(9, 6)]),
    }


CASE_NAMES = ("gemm", "gemm_out", "bias_act", "bias_act_inplace", "act", "act_bias_grad",
              "softmax", "softmax_cross_entropy", "bias_grad", "bias_grad_out", "sgd_update",
              "rmsprop_update", "adam_update", "adam_update_many", "attention",
              "attention_backward_lse", "layernorm", "layernorm_backward", "embedding",
              "embedding_backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_misaligned_arrays_are_copied_not_passed(case, dtype, aligned_only, rng):
    """Each op family with every array misaligned (a view one byte into a byte buffer): the
    kernels only ever see aligned arrays, results are bit for bit those of aligned inputs (and
    the twin's to rounding), and arrays updated in place are updated."""
    fn, arrays = _misaligned_cases(rng, dtype)[case]
    want = fn(*[a.copy() for a in arrays])
    mis = [unaligned(a) for a in arrays]
    got = fn(*mis)
    for w, gt in zip(want, got):
        assert not isinstance(gt, np.ndarray) or gt.dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(gt, w, err_msg=case)


@pytest.mark.parametrize("case", ["gemm", "layernorm_backward", "adam_update", "attention",
                                  "softmax_cross_entropy", "embedding_backward"])
def test_misaligned_arrays_match_the_twin(case, rng, monkeypatch):
    fn, arrays = _misaligned_cases(rng, np.float64)[case]
    got = fn(*[unaligned(a) for a in arrays])
    for name in ops.OPS:                       # the same calls, on the twins
        monkeypatch.setattr(ops, name, getattr(ref, name))
    want = fn(*[a.copy() for a in arrays])
    for w, gt in zip(want, got):
        np.testing.assert_allclose(gt, w, rtol=1e-10, atol=1e-12, err_msg=case)


@needs_native
def test_kernels_refuse_misaligned_arrays_themselves():
    """The bindings' own check (an internal error, never undefined behaviour) for callers that
    skip the wrappers."""
    from nnlite.ops import _nn, _pointwise
    x = unaligned(np.ones((4, 8), np.float32))
    with pytest.raises(TypeError, match="aligned"):
        _pointwise.softmax(x, np.empty((4, 8), np.float32))
    with pytest.raises(TypeError, match="aligned"):
        _nn.layernorm(x, np.ones(8, np.float32), np.zeros(8, np.float32), 1e-5,
                      np.empty((4, 8), np.float32), np.empty(4, np.float32),
                      np.empty(4, np.float32))
