"""The GPU as nnlite's kernels see it: a compiled module, an array module, pointers, a stream.

A :class:`Device` is what every CUDA wrapper (``nnlite/ops/cuda_*.py``) takes:

- ``dev.ext``: the compiled kernels, ``nnlite.ops._cuda`` (built by nvcc) or, in the tests,
  ``_cuda_shim`` (the same sources run on CPU threads; tests/_cuda_shim.py);
- ``dev.xp``: the array module, cupy on a GPU and numpy under the shim;
- ``dev.ptr(a)``: the address of ``a``'s data (``__cuda_array_interface__``, or
  ``__array_interface__`` under the shim);
- ``dev.stream()``: the stream to launch on, CuPy's current stream (0 under the shim), so that
  nnlite's kernels queue in order with CuPy's own work.

Nothing here imports cupy or the compiled module until asked: ``import nnlite`` stays as fast
and as dependency-free on a machine without a GPU.
"""
import importlib

import numpy as np

__all__ = ["Device", "gpu", "info", "selftest"]


class Device:
    """See the module docstring."""

    def __init__(self, ext, xp, kind, ptr=None, stream=None):
        self.ext, self.xp, self.kind = ext, xp, kind
        if ptr is not None:             # another container (the tests' fake GPU arrays)
            self.ptr, self.stream = ptr, stream or _no_stream
        elif kind == "shim":
            self.ptr = _host_ptr
            self.stream = _no_stream
        else:
            import cupy
            self.ptr = _device_ptr
            self.stream = lambda: cupy.cuda.get_current_stream().ptr

    @classmethod
    def shim(cls, ext):
        return cls(ext, np, "shim")

    def __repr__(self):
        return f"<nnlite CUDA device: {self.kind}, {self.ext.__name__}>"


def _host_ptr(a):
    return a.__array_interface__["data"][0]


def _device_ptr(a):
    return a.__cuda_array_interface__["data"][0]


def _no_stream():
    return 0


_GPU = None


def compiled():
    """The compiled CUDA module, or raise ImportError saying why there is none."""
    try:
        return importlib.import_module("nnlite.ops._cuda")
    except ImportError as e:
        raise ImportError(
            "nnlite was built without CUDA kernels (no nnlite.ops._cuda: no CUDA toolkit was "
            "found at build time, or NNLITE_NO_CUDA=1 was set; `pip install -v .` says which)"
        ) from e


def gpu():
    """The GPU device (cached), or raise RuntimeError("no GPU: <reason>")."""
    global _GPU
    if _GPU is None:
        try:
            ext = compiled()
        except ImportError as e:
            raise RuntimeError(f"no GPU: {e}") from None
        ext.device_count()          # RuntimeError("no GPU: <CUDA's reason>")
        try:
            import cupy
        except ImportError:
            raise RuntimeError("no GPU support in Python: CuPy is not installed (`pip install "
                               "'.[cuda]'` in nnlite's checkout, or `pip install "
                               "'cupy-cuda13x[ctk]'`)") from None
        _GPU = Device(ext, cupy, "gpu")
    return _GPU


def info():
    """What `python -m nnlite` reports about CUDA: {'build': ..., 'driver': ..., 'devices': [...]}
    with the reason in place of whatever is missing."""
    out = {"build": None, "archs": None, "runtime": None, "driver": None, "devices": [],
           "cupy": None, "why": None}
    try:
        ext = compiled()
    except ImportError as e:
        out["why"] = str(e)
        return out
    out["build"] = ext.build_kind()
    out["archs"] = ext.compiled_archs()
    out["runtime"] = _version(ext.runtime_version())
    try:
        out["driver"] = _version(ext.driver_version())
        out["devices"] = [ext.device_info(i) for i in range(ext.device_count())]
    except RuntimeError as e:
        out["why"] = str(e)
    try:
        import cupy
        out["cupy"] = cupy.__version__
    except ImportError:
        out["cupy"] = ("not installed (pip install 'cupy-cuda13x[ctk]', or pip install '.[cuda]' "
                       "in nnlite's checkout)")
    return out


def _version(v):
    return f"{v // 1000}.{(v % 1000) // 10}" if v else None


def selftest(dev, n=10_000, threads=256, fault=0):
    """Run the self-test kernel (csrc/cuda/selftest_kernels.cuh) on ``dev``: returns
    (sum of x, count of x > 0) from the kernel beside numpy's, for a random x of n floats."""
    xp = dev.xp
    x_host = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    x = xp.asarray(x_host)
    out = xp.zeros(2, np.float32)
    dev.ext.selftest_block_sum(dev.ptr(x), n, dev.ptr(out), threads, fault, dev.stream())
    got = out.get() if hasattr(out, "get") else out
    # the kernel reads each block's values rotated by one: the same sum
    return (float(got[0]), float(got[1])), (float(x_host.sum(dtype=np.float64)),
                                           float((x_host > 0).sum()))
