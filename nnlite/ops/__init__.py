"""nnlite's kernels, behind one dispatch table: op → {backend: function}.

Every public op is a row of ``_TABLE``; each backend is a column:

=======  ==================================================  ===================================
column   what runs                                           runs for
=======  ==================================================  ===================================
numpy    the twin in nnlite/ops/reference.py: plain numpy,   numpy arrays when
         the definition of the op (tests compare against     ``NNLITE_BACKEND=numpy`` (read at
         it)                                                 import), or when the kernels were
                                                             never built (warned at import)
cpu      the compiled kernel, through its thin wrapper in    numpy arrays (the default)
         nnlite/ops/native_*.py
=======  ==================================================  ===================================

The column is chosen per call from the type of the op's array argument (for
``adam_update_many`` and ``sum_squares_many``, of the first array): ``_RUNS[op]`` maps an array type to its
function. Lists, scalars and other array-likes take numpy's column and are converted there.
A GPU backend is one more column: :func:`add_backend` ("cuda", ``cupy.ndarray``, cupy, its
kernels); layers then run on it unchanged, since they compute through these ops and take any
other array function from ``xp = ops.array_module(x)``. While numpy arrays are the only kind,
each op's name here is bound to its numpy-array function directly, so a call costs nothing
extra; :func:`add_backend` rebinds the names to per-call dispatchers.

A compiled kernel never hands odd input to its twin: it handles it (a contiguous copy, an
empty result) or raises the twin's own error saying why (nnlite/ops/_checks.py).

=====================  ============================  ============================
op                     compiled in (+ its .inc)      Python wrapper
=====================  ============================  ============================
gemm, gemm_nt, gemm_tn csrc/cpu/gemm.cpp             nnlite/ops/native_gemm.py
bias_act, act_forward, csrc/cpu/pointwise.cpp        nnlite/ops/native_pointwise.py
act_backward, act_back-
ward_bias_grad, dropout
softmax, softmax_back- csrc/cpu/softmax.cpp          nnlite/ops/native_pointwise.py
ward, softmax_cross_
entropy
sgd_update, rmsprop_   nnlite/ops/_optim_kernels     nnlite/ops/native_optim.py
update, bias_grad      .pyx (Cython)
attention, attention_  csrc/cpu/attention.cpp        nnlite/ops/native_attention.py
backward
layernorm(_backward),  csrc/cpu/layernorm.cpp,       nnlite/ops/native_nn.py
embedding(_backward),  embedding.cpp,
adam_update(_many),    adam_many.cpp,
sum_squares_many       sum_squares.cpp
conv2d(_input_grad,    csrc/cpu/conv.cpp, gemm.cpp   nnlite/ops/native_conv.py
_backward), max_/avg_
pool2d(_backward),
batchnorm(_backward,
_inference)
=====================  ============================  ============================
"""
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import warnings

import numpy as np

from . import _openmp_wait, reference

BACKEND = os.environ.get("NNLITE_BACKEND", "native").strip().lower() or "native"
if BACKEND not in ("native", "numpy"):
    warnings.warn(f"NNLITE_BACKEND={BACKEND!r} is not 'native' or 'numpy'; using 'native'")
    BACKEND = "native"

_import_errors = {}   # op name -> why its compiled version could not be loaded
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]     # .cpython-311-x86_64-linux-gnu.so


# wrapper module -> the compiled module it runs
_COMPILED = {"native_gemm": "_gemm", "native_pointwise": "_pointwise",
             "native_attention": "_attention", "native_nn": "_nn", "native_optim": "_optim_kernels",
             "native_conv": "_conv"}


def _cpu(module, op):
    """The compiled op from ``nnlite.ops.<module>``; None when NNLITE_BACKEND=numpy or when it
    was not built (the reason is kept for compiled_kernels() and the import warning)."""
    if BACKEND == "numpy":
        return None
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), op)
    except (ImportError, AttributeError) as e:
        compiled = _COMPILED[module]
        if importlib.util.find_spec(f"{__name__}.{compiled}") is None:
            # not the "partially initialized module (circular import)" that Python reports
            _import_errors[op] = (f"not built: no compiled module {compiled} "
                                  f"({compiled}{_SUFFIX}) in {os.path.dirname(__file__)}")
        else:
            _import_errors[op] = f"{type(e).__name__}: {e}"
        return None


# op -> the module of nnlite/ops whose wrapper runs its compiled kernel; its numpy twin is
# reference.<op>. The order is the ops' order (OPS).
_WRAPPERS = {
    "gemm": "native_gemm", "gemm_nt": "native_gemm", "gemm_tn": "native_gemm",
    "bias_act": "native_pointwise", "bias_grad": "native_optim",
    "act_forward": "native_pointwise", "act_backward": "native_pointwise",
    "act_backward_bias_grad": "native_pointwise", "dropout": "native_pointwise",
    "softmax": "native_pointwise", "softmax_backward": "native_pointwise",
    "softmax_cross_entropy": "native_pointwise",
    "sgd_update": "native_optim", "adam_update": "native_nn", "rmsprop_update": "native_optim",
    "attention": "native_attention", "attention_backward": "native_attention",
    "layernorm": "native_nn", "layernorm_backward": "native_nn",
    "embedding": "native_nn", "embedding_backward": "native_nn",
    "adam_update_many": "native_nn", "sum_squares_many": "native_nn",
    "conv2d": "native_conv", "conv2d_input_grad": "native_conv", "conv2d_backward": "native_conv",
    "max_pool2d": "native_conv", "max_pool2d_backward": "native_conv",
    "avg_pool2d": "native_conv", "avg_pool2d_backward": "native_conv",
    "batchnorm": "native_conv", "batchnorm_backward": "native_conv",
    "batchnorm_inference": "native_conv",
}
# op: {column: function}; the compiled modules load here, with a short OpenMP spin-wait
with _openmp_wait.short_spin():
    _TABLE = {op: {"numpy": getattr(reference, op), "cpu": _cpu(module, op)}
              for op, module in _WRAPPERS.items()}
OPS = tuple(_TABLE)

# array type -> (backend that runs it, its array module); np.ndarray is also the default
_BACKEND_OF = {np.ndarray: ("cpu" if BACKEND == "native" else "numpy", np)}
# op -> {array type: function}: the table's column for each array type, resolved
_RUNS = {op: {np.ndarray: row["cpu"] or row["numpy"]} for op, row in _TABLE.items()}
# ops whose first argument is a list of arrays: dispatch on its first element
_LIST_FIRST = ("adam_update_many", "sum_squares_many")


def compiled_kernels():
    """{op name: 'compiled' or why the numpy twin runs for numpy arrays}."""
    status = {}
    for op, row in _TABLE.items():
        if row["cpu"] is not None:
            status[op] = "compiled"
        elif BACKEND == "numpy":
            status[op] = "numpy twin"
        else:
            status[op] = f"numpy twin (compiled version unavailable: {_import_errors.get(op)})"
    return status


def array_module(x):
    """The array module for ``x``'s backend, for the array work a layer does around the ops
    (``xp = ops.array_module(x); xp.ascontiguousarray(...)``): numpy for numpy arrays and
    anything numpy can take; the registered module (cupy) for a GPU backend's arrays."""
    entry = _BACKEND_OF.get(type(x))
    return np if entry is None else entry[1]


def _dispatcher(op):
    """ops.<op> once several array types can arrive: pick the column per call by type."""
    runs = _RUNS[op]
    get = runs.get
    default = runs[np.ndarray]
    if op in _LIST_FIRST:
        def run(arrays, *args, **kwargs):
            arrays = list(arrays)
            return get(type(arrays[0]) if arrays else np.ndarray, default)(arrays, *args, **kwargs)
    else:
        def run(x, *args, **kwargs):
            return get(type(x), default)(x, *args, **kwargs)
    return functools.update_wrapper(run, default)


def _bind():
    """Point each public op name at what runs it (see the module docstring)."""
    direct = len(_BACKEND_OF) == 1
    for op in _TABLE:
        globals()[op] = _RUNS[op][np.ndarray] if direct else _dispatcher(op)


def _missing(backend, op, array_type):
    def run(*args, **kwargs):
        raise NotImplementedError(f"{op}: the {backend!r} backend has no kernel for it, so it "
                                  f"cannot run on {array_type.__name__} arrays; convert them "
                                  f"to numpy arrays, or add the kernel to that backend")
    run.__name__ = op
    return run


def add_backend(name, array_type, xp, kernels):
    """Add a column to the dispatch table: arrays of ``array_type`` run ``kernels[op]``.

    ``xp`` is the array module for those arrays (what :func:`array_module` returns for them).
    An op missing from ``kernels`` raises a NotImplementedError naming it and the backend
    (never a silent detour through numpy). The CUDA issue calls
    ``add_backend("cuda", cupy.ndarray, cupy, {...})``.
    """
    unknown = set(kernels) - set(_TABLE)
    if unknown:
        raise ValueError(f"add_backend: unknown ops {sorted(unknown)}; the ops are {list(OPS)}")
    if name in ("numpy", "cpu") or array_type is np.ndarray:
        raise ValueError(f"add_backend: {name!r} / {array_type.__name__} is built in")
    _BACKEND_OF[array_type] = (name, xp)
    for op, row in _TABLE.items():
        row[name] = kernels.get(op) or _missing(name, op, array_type)
        _RUNS[op][array_type] = row[name]
    _bind()


_bind()
if _import_errors:
    # Typically a source checkout imported without building (python run from the repo root,
    # which Python puts first on sys.path): everything still works, on the slow numpy twins, so
    # say so, and say which nnlite this is, instead of failing.
    from .. import _origin
    first = next(iter(_import_errors.values()))
    warnings.warn("\n  ".join(
        [f"nnlite: {len(_import_errors)} compiled kernels are unavailable and run on their "
         + f"numpy twins ({first})."]
        + _origin.advice()
        + ["NNLITE_BACKEND=numpy selects the twins on purpose (and silences this warning)"]),
        RuntimeWarning, stacklevel=2)


def profile(model=None):
    """``with ops.profile(model) as prof: ...; print(prof.table())``: per-op calls, time and
    FLOPs, and (given a model) per-layer forward/backward time, for the code in the block;
    nothing is timed outside it (nnlite/ops/_profile.py)."""
    from . import _profile
    return _profile.profile(globals(), _TABLE, model)


# ----------------------------------------------------------------------------- runtime switches
# compiled extension modules, for the SIMD path and thread switches
_EXTENSIONS = ("_gemm", "_pointwise", "_attention", "_nn", "_conv")


def _import_modules(names):
    """The compiled modules among ``names`` that import (none in an unbuilt checkout)."""
    mods = []
    for name in names:
        try:
            mods.append(importlib.import_module(f"{__name__}.{name}"))
        except ImportError:
            pass
    return mods


def _extensions():
    return _import_modules(_EXTENSIONS)


def simd_path():
    """The SIMD path the compiled kernels use now: 'avx512', 'avx2' or 'scalar'."""
    mods = _extensions()
    return mods[0]._simd_path() if mods else "none (no compiled kernels)"


def simd_paths():
    """Every SIMD path this CPU can run, best last (tests force each one)."""
    mods = _extensions()
    if not mods:
        return []
    return [p for p in ("scalar", "avx2", "avx512") if mods[0]._simd_supported(p)]


def set_simd_path(path):
    """Force a SIMD path in every compiled extension (ValueError if this CPU lacks it)."""
    for mod in _extensions():
        mod._set_simd_path(path)


@contextlib.contextmanager
def force_simd(path):
    """``with ops.force_simd('avx2'): ...`` runs the kernels on that path, then restores it."""
    old = simd_path()
    set_simd_path(path)
    try:
        yield
    finally:
        set_simd_path(old)


def _thread_modules():
    """Every compiled module with its own thread count: the C++ extensions and the Cython one."""
    return _import_modules(_EXTENSIONS + ("_optim_kernels",))


def num_threads():
    """OpenMP threads the kernels use (1 when built without OpenMP)."""
    mods = _extensions()
    return mods[0]._num_threads() if mods else 1


def set_num_threads(n):
    """Set the OpenMP thread count for every compiled kernel, for the whole process: a kernel
    called from any Python thread uses it (OpenMP's own setting is per calling thread).
    Results do not depend on it: every sum split among threads is split the same way."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: the number of threads must be >= 1, got {n}")
    for mod in _thread_modules():
        mod._set_num_threads(n)


def has_openmp():
    mods = _extensions()
    return bool(mods) and all(m._has_openmp() for m in mods)


_env_simd = os.environ.get("NNLITE_SIMD", "").strip().lower()
if _env_simd and _extensions():
    if _env_simd not in ("scalar", "portable", "avx2", "avx512"):
        warnings.warn(f"NNLITE_SIMD={_env_simd!r} is not scalar, avx2 or avx512; ignored")
    elif _env_simd not in simd_paths() and _env_simd != "portable":
        warnings.warn(f"NNLITE_SIMD={_env_simd!r}: this CPU cannot run that path; "
                      f"using {simd_path()!r}")

# last: it uses num_threads (the FMA peak behind the benchmarks' "% of peak")
from .peak import measure_peak
from .memory import array_pool, empty_cache, pool_info, set_pool_limit  # noqa: E402

__all__ = list(OPS) + ["reference", "compiled_kernels", "array_module", "add_backend",
                       "simd_path", "simd_paths", "set_simd_path", "force_simd", "num_threads",
                       "set_num_threads", "has_openmp", "profile", "measure_peak", "BACKEND",
                       "array_pool", "empty_cache", "pool_info", "set_pool_limit"]
