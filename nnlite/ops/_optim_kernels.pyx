# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""In-place updates of parameter-shaped arrays for float32/float64: the SGD and RMSprop steps,
and the bias gradient's row sum.

Each optimizer step is a single pass over the flat arrays: every element of param, grad and
the state is loaded once and stored once, instead of numpy's ~10 temporary arrays per step.
The math is written in the arrays' own dtype, in the same order as the numpy twins in
``nnlite.ops.reference`` (so float32 results agree to rounding). Adam/AdamW is not here: it
has one compiled version, ``adam_update_many`` in csrc/cpu/adam_many.cpp.

Arguments are C-contiguous typed memoryviews (``grad`` const, so a read-only one is fine): the
wrappers in ``nnlite.ops.native_optim`` validate them like the twins and flatten them (views, no
copies; an array not aligned to its itemsize is copied). The optimizer steps split large arrays
into chunks run in parallel with ``prange`` (``_threads`` of them, process-wide) and without the
GIL; every chunk sets
FTZ/DAZ on its own thread (csrc/common/ftz.h) so decaying state that reaches subnormals doesn't
slow the loop down.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport free, malloc

ctypedef fused floating:
    float
    double

cdef extern from "ftz.h" nogil:
    unsigned long long nnlite_ftz_enter()
    void nnlite_ftz_leave(unsigned long long saved)

# OpenMP's default team size, without requiring omp.h when the build has no OpenMP.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int nnlite_default_threads(void) { return omp_get_max_threads(); }
    #else
    static int nnlite_default_threads(void) { return 1; }
    #endif
    """
    int nnlite_default_threads() nogil

# The thread count of every prange: process-wide, like the C++ kernels' (common/cpu.cpp), not
# OpenMP's per-thread setting; nnlite.ops.set_num_threads sets it here too.
cdef int _threads = max(1, nnlite_default_threads())


def _num_threads():
    return _threads


def _set_num_threads(int n):
    global _threads
    if n < 1:
        raise ValueError("number of threads must be >= 1")
    _threads = n

# Arrays up to this many elements run on the calling thread: waking the OpenMP pool costs
# about what 32k fused updates do.
cdef Py_ssize_t PARALLEL_MIN = 32768
# Chunk of a parallel loop: 16k elements × 4 arrays × 4-8 bytes stays within L2.
cdef Py_ssize_t CHUNK = 16384


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# ------------------------------------------------------------------------- SGD and RMSprop

cdef enum Step:
    SGD
    RMSPROP


cdef struct Settings:       # one step's hyperparameters, as the wrappers pass them (double)
    double lr, momentum, alpha, eps, weight_decay
    bint nesterov


cdef inline void _sgd_chunk(floating* p, const floating* g, floating* vel, Py_ssize_t lo,
                            Py_ssize_t hi, floating lr, floating mu, floating wd, bint use_mom,
                            bint nesterov, bint use_wd) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi
    for i in range(lo, hi):
        gi = g[i]
        if use_wd:
            gi = gi + wd * p[i]
        if use_mom:
            vel[i] = vel[i] * mu + gi
            if nesterov:
                gi = gi + mu * vel[i]
            else:
                gi = vel[i]
        p[i] = p[i] - lr * gi


cdef inline void _rmsprop_chunk(floating* p, const floating* g, floating* sq, Py_ssize_t lo,
                                Py_ssize_t hi, floating lr, floating a, floating oma,
                                floating eps, floating wd, bint use_wd) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, si
    for i in range(lo, hi):
        gi = g[i]
        if use_wd:
            gi = gi + wd * p[i]
        si = sq[i] * a + oma * gi * gi
        sq[i] = si
        p[i] = p[i] - lr * gi / (_sqrt(si) + eps)


cdef inline void _chunk(Step step, floating* p, const floating* g, floating* s, Py_ssize_t lo,
                        Py_ssize_t hi, const Settings* h) noexcept nogil:
    """Elements [lo, hi) of one step, with FTZ/DAZ set on the thread that runs them; the
    settings are cast to the arrays' dtype here (the math then runs in that dtype)."""
    cdef unsigned long long csr = nnlite_ftz_enter()
    if step == SGD:
        _sgd_chunk(p, g, s, lo, hi, <floating>h.lr, <floating>h.momentum,
                   <floating>h.weight_decay, h.momentum != 0.0, h.nesterov,
                   h.weight_decay != 0.0)
    else:
        _rmsprop_chunk(p, g, s, lo, hi, <floating>h.lr, <floating>h.alpha,
                       <floating>(1.0 - h.alpha), <floating>h.eps, <floating>h.weight_decay,
                       h.weight_decay != 0.0)
    nnlite_ftz_leave(csr)


cdef void _run(Step step, floating* p, const floating* g, floating* s, Py_ssize_t n,
               const Settings* h) noexcept nogil:
    """One optimizer step over n elements (none read when n is 0): one code path for small
    and large arrays, in chunks that the OpenMP pool runs only when n pays for waking it."""
    cdef Py_ssize_t c, lo, hi, nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks, schedule="static", use_threads_if=n > PARALLEL_MIN,
                    num_threads=_threads):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        _chunk(step, p, g, s, lo, hi, h)


def sgd_update(floating[::1] param, const floating[::1] grad, floating[::1] velocity,
               double lr, double momentum, bint nesterov, double weight_decay):
    """SGD with momentum / Nesterov / L2 weight decay, in place (PyTorch's torch.optim.SGD):

        g ← g + λ·p
        v ← μ·v + g                       (only when μ ≠ 0; ``velocity`` is ignored otherwise)
        p ← p - lr·(nesterov ? g + μ·v : v)

    param, grad, velocity: 1-D C-contiguous, one dtype, one length.
    """
    cdef Settings h = Settings(lr=lr, momentum=momentum, alpha=0.0, eps=0.0,
                               weight_decay=weight_decay, nesterov=nesterov)
    with nogil:
        _run(SGD, &param[0], &grad[0], &velocity[0], param.shape[0], &h)


def rmsprop_update(floating[::1] param, const floating[::1] grad, floating[::1] sq,
                   double lr, double alpha, double eps, double weight_decay):
    """RMSprop, in place (PyTorch's torch.optim.RMSprop without momentum / centering):

        g ← g + λ·p
        s ← α·s + (1 - α)·g²
        p ← p - lr·g / (√s + ε)

    param, grad, sq: 1-D C-contiguous, one dtype, one length.
    """
    cdef Settings h = Settings(lr=lr, momentum=0.0, alpha=alpha, eps=eps,
                               weight_decay=weight_decay, nesterov=False)
    with nogil:
        _run(RMSPROP, &param[0], &grad[0], &sq[0], param.shape[0], &h)


# ----------------------------------------------------------------------------------- bias grad

cdef void _bias_grad(const floating* g, floating* out, floating* acc, Py_ssize_t rows,
                     Py_ssize_t cols, bint accumulate) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef const floating* row
    for j in range(cols):
        acc[j] = g[j]
    for i in range(1, rows):
        row = g + i * cols
        for j in range(cols):
            acc[j] = acc[j] + row[j]
    if accumulate:
        for j in range(cols):
            out[j] = out[j] + acc[j]


def bias_grad(const floating[:, ::1] grad_out, floating[::1] out, bint accumulate):
    """The bias gradient of y = x + b, in place:

        out[c] = Σ_n grad_out[n, c]       (``accumulate``: out[c] += Σ_n grad_out[n, c])

    grad_out: (rows, C) C-contiguous; out: (C,) C-contiguous, same dtype.

    The rows are streamed in order into one running sum per column, as numpy's
    ``grad_out.sum(axis=0)`` does: the same bits, and memory read front to back in one stream.
    Single-threaded on purpose: the sum is memory-bound, and splitting the columns among
    threads (each reading every row in pieces) measured 3x slower; summing 4 rows a pass is
    faster while the array is in cache but 2x slower once it streams from memory.
    With ``accumulate`` the sums go to a scratch row first, then into out: two roundings,
    as ``out += grad_out.sum(axis=0)``.
    """
    cdef Py_ssize_t rows = grad_out.shape[0], cols = grad_out.shape[1], j
    if cols == 0:
        return
    if rows == 0:                           # an empty sum is 0
        if not accumulate:
            for j in range(cols):
                out[j] = 0
        return
    cdef floating* acc = &out[0]
    if accumulate:
        acc = <floating*>malloc(cols * sizeof(floating))
        if acc == NULL:
            raise MemoryError()
    with nogil:
        _bias_grad(&grad_out[0, 0], &out[0], acc, rows, cols, accumulate)
    if accumulate:
        free(acc)
