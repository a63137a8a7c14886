"""The array buffer cache: numpy arrays made inside :func:`array_pool` reuse freed buffers.

A training step allocates the same arrays step after step (activations, gradients,
temporaries). A fresh buffer of a megabyte or more comes from the operating system and pays a
page fault per 4 KiB on its first touch; glibc gives it back when it is freed, so the next
step pays again: 577 page faults per baby-GPT step, about a tenth of its time on a virtual
machine. Inside ``with array_pool():`` numpy allocates through nnlite's cache
(csrc/common/array_pool.cpp, installed with numpy's ``PyDataMem_SetHandler``): a freed buffer
of 64 KiB or more is kept, and the next array of its size class takes it. Outside the scope
numpy's own allocator is back; arrays made inside still return their buffers to the cache
when they die, wherever that happens.

The Trainer runs every training step, evaluation and prediction inside the scope.
``NNLITE_ARRAY_POOL=0`` switches it off (read at import); ``NNLITE_POOL_BYTES`` caps the cache
(default 1 GiB of free buffers); :func:`empty_cache` hands the free buffers back.
"""
import contextlib
import os

try:
    from . import _memory
except ImportError:          # kernels not built: numpy's allocator, no cache
    _memory = None

_ENABLED = _memory is not None and os.environ.get("NNLITE_ARRAY_POOL", "1").strip() != "0"


@contextlib.contextmanager
def array_pool():
    """Allocate numpy arrays through nnlite's buffer cache until the block ends.

    Nested scopes are fine; each puts back what it found. Without the compiled module, or with
    ``NNLITE_ARRAY_POOL=0``, it does nothing.
    """
    if not _ENABLED:
        yield
        return
    previous = _memory.use()
    try:
        yield
    finally:
        _memory.restore(previous)


def empty_cache():
    """Hand every cached free buffer back to the system (arrays in use are untouched)."""
    if _memory is not None:
        _memory.clear()


def pool_info():
    """The cache's counters: ``enabled``, ``hits``, ``misses`` (allocations of 64 KiB or more
    served from the cache / from the system), ``cached_bytes``, ``cached_blocks`` (free
    buffers held now) and ``limit_bytes``."""
    if _memory is None:
        return {"enabled": False, "hits": 0, "misses": 0, "cached_bytes": 0,
                "cached_blocks": 0, "limit_bytes": 0}
    return {"enabled": _ENABLED, **_memory.stats()}


def set_pool_limit(nbytes):
    """Cache at most ``nbytes`` bytes of free buffers (0: cache nothing)."""
    nbytes = int(nbytes)
    if nbytes < 0:
        raise ValueError(f"set_pool_limit: nbytes must be >= 0, got {nbytes}")
    if _memory is not None:
        _memory.set_limit(nbytes)


__all__ = ["array_pool", "empty_cache", "pool_info", "set_pool_limit"]
