# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fused, in-place optimizer updates (SGD, Adam/AdamW, RMSprop) for float32/float64 arrays.

Each update is a single pass over the flat arrays: every element of param, grad and the state
is loaded once and stored once, instead of numpy's ~10 temporary arrays per step. The math is
written in the arrays' own dtype, in the same order as the numpy twins in
``nnlite.ops.reference`` (so float32 results agree to rounding).

Arguments are 1-D C-contiguous typed memoryviews: ``nnlite.ops.native_optim`` validates them
like the twins and flattens them (views, no copies). Large arrays are split into chunks run in
parallel with ``prange`` and without the GIL; every chunk sets FTZ/DAZ on its own thread
(csrc/common/ftz.h) so decaying state that reaches subnormals doesn't slow the loop down.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

ctypedef fused floating:
    float
    double

cdef extern from "ftz.h" nogil:
    unsigned long long nnlite_ftz_enter()
    void nnlite_ftz_leave(unsigned long long saved)

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


# ----------------------------------------------------------------------------------- SGD

cdef void _sgd_chunk(floating* p, floating* g, floating* vel, Py_ssize_t lo, Py_ssize_t hi,
                     floating lr, floating mu, floating wd, bint use_mom, bint nesterov,
                     bint use_wd) noexcept nogil:
    cdef unsigned long long csr = nnlite_ftz_enter()
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
    nnlite_ftz_leave(csr)


def sgd_update(floating[::1] param, floating[::1] grad, floating[::1] velocity,
               double lr, double momentum, bint nesterov, double weight_decay):
    """SGD with momentum / Nesterov / L2 weight decay, in place (PyTorch's torch.optim.SGD):

        g ← g + λ·p
        v ← μ·v + g                       (only when μ ≠ 0; ``velocity`` is ignored otherwise)
        p ← p - lr·(nesterov ? g + μ·v : v)

    param, grad, velocity: 1-D C-contiguous, one dtype, one length.
    """
    cdef Py_ssize_t n = param.shape[0], c, lo, hi, nchunks
    if n == 0:
        return
    cdef floating* p = &param[0]
    cdef floating* g = &grad[0]
    cdef floating* vel = &velocity[0]
    cdef floating flr = <floating>lr, fmu = <floating>momentum, fwd = <floating>weight_decay
    cdef bint use_mom = momentum != 0.0, use_wd = weight_decay != 0.0
    # One code path for small and large arrays (the pool is only woken when it pays);
    # each chunk sets FTZ/DAZ on whichever thread runs it.
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks, nogil=True, schedule="static",
                    use_threads_if=n > PARALLEL_MIN):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        _sgd_chunk(p, g, vel, lo, hi, flr, fmu, fwd, use_mom, nesterov, use_wd)


# ----------------------------------------------------------------------------------- Adam

cdef void _adam_chunk(floating* p, floating* g, floating* m, floating* v, Py_ssize_t lo,
                      Py_ssize_t hi, floating lr, floating b1, floating omb1, floating b2,
                      floating omb2, floating eps, floating wd, floating decay, floating bc1,
                      floating bc2, bint l2, bint decoupled) noexcept nogil:
    cdef unsigned long long csr = nnlite_ftz_enter()
    cdef Py_ssize_t i
    cdef floating gi, pi, mi, vi
    for i in range(lo, hi):
        pi = p[i]
        gi = g[i]
        if l2:
            gi = gi + wd * pi
        if decoupled:
            pi = pi * decay
        mi = m[i] * b1 + omb1 * gi
        vi = v[i] * b2 + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - lr * (mi / bc1) / (_sqrt(vi / bc2) + eps)
    nnlite_ftz_leave(csr)


def adam_update(floating[::1] param, floating[::1] grad, floating[::1] m, floating[::1] v,
                double lr, double beta1, double beta2, double eps, double weight_decay,
                long long step, bint decoupled):
    """Adam (L2 decay added to g) or AdamW (``decoupled``: p shrunk by lr·λ), in place:

        g ← g + λ·p                       (Adam with λ ≠ 0)
        p ← p·(1 - lr·λ)                  (AdamW with λ ≠ 0)
        m ← β₁·m + (1 - β₁)·g
        v ← β₂·v + (1 - β₂)·g²
        p ← p - lr · (m / (1 - β₁ᵗ)) / (√(v / (1 - β₂ᵗ)) + ε)      t = step ≥ 1

    param, grad, m, v: 1-D C-contiguous, one dtype, one length.
    """
    cdef Py_ssize_t n = param.shape[0], c, lo, hi, nchunks
    if n == 0:
        return
    cdef floating* pp = &param[0]
    cdef floating* gp = &grad[0]
    cdef floating* mp = &m[0]
    cdef floating* vp = &v[0]
    cdef floating flr = <floating>lr, fb1 = <floating>beta1, fb2 = <floating>beta2
    cdef floating omb1 = <floating>(1.0 - beta1), omb2 = <floating>(1.0 - beta2)
    cdef floating feps = <floating>eps, fwd = <floating>weight_decay
    cdef floating decay = <floating>(1.0 - lr * weight_decay)
    cdef floating bc1 = <floating>(1.0 - beta1 ** step), bc2 = <floating>(1.0 - beta2 ** step)
    cdef bint l2 = weight_decay != 0.0 and not decoupled
    cdef bint dec = weight_decay != 0.0 and decoupled
    # One code path for small and large arrays (the pool is only woken when it pays);
    # each chunk sets FTZ/DAZ on whichever thread runs it.
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks, nogil=True, schedule="static",
                    use_threads_if=n > PARALLEL_MIN):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        _adam_chunk(pp, gp, mp, vp, lo, hi, flr, fb1, omb1, fb2, omb2, feps, fwd, decay,
                    bc1, bc2, l2, dec)


# ----------------------------------------------------------------------------------- RMSprop

cdef void _rmsprop_chunk(floating* p, floating* g, floating* sq, Py_ssize_t lo, Py_ssize_t hi,
                         floating lr, floating a, floating oma, floating eps, floating wd,
                         bint use_wd) noexcept nogil:
    cdef unsigned long long csr = nnlite_ftz_enter()
    cdef Py_ssize_t i
    cdef floating gi, si
    for i in range(lo, hi):
        gi = g[i]
        if use_wd:
            gi = gi + wd * p[i]
        si = sq[i] * a + oma * gi * gi
        sq[i] = si
        p[i] = p[i] - lr * gi / (_sqrt(si) + eps)
    nnlite_ftz_leave(csr)


def rmsprop_update(floating[::1] param, floating[::1] grad, floating[::1] sq,
                   double lr, double alpha, double eps, double weight_decay):
    """RMSprop, in place (PyTorch's torch.optim.RMSprop without momentum / centering):

        g ← g + λ·p
        s ← α·s + (1 - α)·g²
        p ← p - lr·g / (√s + ε)

    param, grad, sq: 1-D C-contiguous, one dtype, one length.
    """
    cdef Py_ssize_t n = param.shape[0], c, lo, hi, nchunks
    if n == 0:
        return
    cdef floating* pp = &param[0]
    cdef floating* gp = &grad[0]
    cdef floating* sp = &sq[0]
    cdef floating flr = <floating>lr, fa = <floating>alpha, oma = <floating>(1.0 - alpha)
    cdef floating feps = <floating>eps, fwd = <floating>weight_decay
    cdef bint use_wd = weight_decay != 0.0
    # One code path for small and large arrays (the pool is only woken when it pays);
    # each chunk sets FTZ/DAZ on whichever thread runs it.
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks, nogil=True, schedule="static",
                    use_threads_if=n > PARALLEL_MIN):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        _rmsprop_chunk(pp, gp, sp, lo, hi, flr, fa, oma, feps, fwd, use_wd)
