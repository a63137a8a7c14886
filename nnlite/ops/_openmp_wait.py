"""How the compiled kernels' OpenMP threads wait between two kernels.

A thread that has finished its share of a kernel waits for the next one. GNU libgomp's
default is to spin for 300 000 rounds first (about 6 ms of CPU on the machines we measured)
and only then sleep. A training step is dozens of kernels, so on an idle machine the threads
never sleep, which saves a wake-up per kernel; but on a busy machine every kernel leaves its
threads burning cores that the other programs, and nnlite's own main thread, are waiting for:
beside three busy processes an MNIST epoch on 2 threads ran 7× slower instead of the fair
2.5× (benchmarks/bench_contention.py measures it).

So nnlite asks for a short spin: long enough to bridge the gap between two kernels of a
training step (a few µs of Python), short enough that a thread gives its core back soon after
the step ends or when the main thread is descheduled. The OpenMP runtimes read these settings
once, when they load: they are set while the compiled modules are imported and restored right
after, so child processes and other libraries' OpenMP (PyTorch ships its own) are unaffected.
A user's own ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` (GNU) or ``KMP_BLOCKTIME`` (LLVM) wins.
"""
import contextlib
import os

GOMP_SPINCOUNT = "10000"     # rounds of libgomp's spin-wait loop before sleeping
KMP_BLOCKTIME = "1"          # ms LLVM's libomp spins before sleeping (its default: 200)

_USER_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
chosen = {}                  # what was set for the import: name -> value (empty: the user's)


@contextlib.contextmanager
def short_spin():
    """Set the short-spin defaults around the first import of the compiled modules."""
    if chosen or any(v in os.environ for v in _USER_VARS):
        yield
        return
    chosen.update(GOMP_SPINCOUNT=GOMP_SPINCOUNT, KMP_BLOCKTIME=KMP_BLOCKTIME)
    os.environ.update(chosen)
    try:
        yield
    finally:
        for name in chosen:
            os.environ.pop(name, None)


def describe():
    """One line for ``python -m nnlite``: how the kernels' threads wait."""
    if chosen:
        return (f"spin {chosen['GOMP_SPINCOUNT']} rounds, then sleep (nnlite's default; "
                f"set GOMP_SPINCOUNT or OMP_WAIT_POLICY to change)")
    user = {v: os.environ[v] for v in _USER_VARS if v in os.environ}
    return "as set: " + ", ".join(f"{k}={v}" for k, v in user.items()) if user else \
        "the OpenMP runtime's default"
