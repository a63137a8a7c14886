"""Shared by the kernel tests: a compiled kernel must fail exactly as its numpy twin does, and
the helpers every kernel test file uses."""
import contextlib
import os

import pytest

from nnlite import ops


def _asan_loaded():
    """True when AddressSanitizer's runtime is in this process (a NNLITE_SANITIZE build run
    with it preloaded: .ci/sanitize)."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


UNDER_ASAN = _asan_loaded()
# ASan's operator new reports out-of-memory and stops the process instead of throwing
# std::bad_alloc: a test of the kernels' answer to a failed allocation cannot run under it
not_under_asan = pytest.mark.skipif(
    UNDER_ASAN, reason="under AddressSanitizer, out-of-memory stops the process")

# NNLITE_BACKEND=numpy runs the twins: then no op may claim to be compiled
needs_compiled = pytest.mark.skipif(
    os.environ.get("NNLITE_BACKEND", "").strip().lower() == "numpy",
    reason="NNLITE_BACKEND=numpy runs the twins")


def simd(path):
    """``with simd(path):`` runs the kernels on that SIMD path (None: as they are)."""
    return ops.force_simd(path) if path else contextlib.nullcontext()


def same_error(native, twin, *args, **kwargs):
    """``native`` and ``twin`` raise the same exception type with the same message."""
    with pytest.raises(Exception) as e_native:
        native(*args, **kwargs)
    with pytest.raises(Exception) as e_twin:
        twin(*args, **kwargs)
    assert type(e_native.value) is type(e_twin.value)
    assert str(e_native.value) == str(e_twin.value)
