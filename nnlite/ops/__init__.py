"""nnlite's kernels: compiled C++/Cython versions, with numpy twins in :mod:`nnlite.ops.reference`.

Every public op here has a twin of the same name and signature in ``nnlite.ops.reference``.
The compiled version is used when it was built; ``NNLITE_BACKEND=numpy`` (read at import)
runs the whole library on the twins instead, so results can be compared.

=====================  ==========================  ============================
op                     compiled in                 Python wrapper
=====================  ==========================  ============================
gemm, gemm_nt, gemm_tn csrc/gemm.cpp               nnlite/ops/native_gemm.py
bias_act, act_forward, csrc/pointwise.cpp          nnlite/ops/native_pointwise.py
act_backward
softmax, softmax_back- csrc/softmax.cpp            nnlite/ops/native_pointwise.py
ward, softmax_cross_
entropy
sgd_update, adam_up-   nnlite/ops/_optim_kernels   nnlite/ops/native_optim.py
date, rmsprop_update   .pyx (Cython)
attention, attention_  csrc/attention.cpp          nnlite/ops/native_attention.py
backward
layernorm(_backward),  csrc/layernorm.cpp,         nnlite/ops/native_nn.py
embedding(_backward),  embedding.cpp,
adam_update_many       adam_many.cpp
=====================  ==========================  ============================
"""
import contextlib
import importlib
import os
import warnings

from . import reference

# public op -> module holding its compiled version
_NATIVE = {
    "gemm": "native_gemm", "gemm_nt": "native_gemm", "gemm_tn": "native_gemm",
    "bias_act": "native_pointwise", "act_forward": "native_pointwise",
    "act_backward": "native_pointwise", "softmax": "native_pointwise",
    "softmax_backward": "native_pointwise", "softmax_cross_entropy": "native_pointwise",
    "sgd_update": "native_optim", "adam_update": "native_optim", "rmsprop_update": "native_optim",
    "attention": "native_attention", "attention_backward": "native_attention",
    "layernorm": "native_nn", "layernorm_backward": "native_nn",
    "embedding": "native_nn", "embedding_backward": "native_nn",
    "adam_update_many": "native_nn",
}
# compiled extension modules, for the runtime switches (SIMD path, threads)
_EXTENSIONS = ("_gemm", "_pointwise", "_attention", "_nn")

OPS = tuple(_NATIVE)
BACKEND = os.environ.get("NNLITE_BACKEND", "native").strip().lower() or "native"
if BACKEND not in ("native", "numpy"):
    warnings.warn(f"NNLITE_BACKEND={BACKEND!r} is not 'native' or 'numpy'; using 'native'")
    BACKEND = "native"

_compiled = {}        # op name -> "compiled" | reason it is not
_import_errors = {}


def _load():
    loaded = {}
    for op, modname in _NATIVE.items():
        fn = None
        if BACKEND == "native":
            try:
                mod = importlib.import_module(f"{__name__}.{modname}")
                fn = getattr(mod, op)
            except (ImportError, AttributeError) as e:
                _import_errors[op] = f"{type(e).__name__}: {e}"
        if fn is None:
            _compiled[op] = "numpy twin" if BACKEND == "numpy" else \
                f"numpy twin (compiled version unavailable: {_import_errors.get(op)})"
            fn = getattr(reference, op)
        else:
            _compiled[op] = "compiled"
        loaded[op] = fn
    return loaded


globals().update(_load())
if _import_errors:
    # Typically a source checkout imported without building (python run from the repo root):
    # everything still works, on the slow numpy twins, so say so instead of failing.
    warnings.warn(f"nnlite: {len(_import_errors)} compiled kernels are unavailable and run on "
                  f"their numpy twins (first: {next(iter(_import_errors.values()))}). Build them "
                  f"with `pip install .`, or `python setup.py build_ext --inplace` in a checkout; "
                  f"NNLITE_BACKEND=numpy selects the twins on purpose.", RuntimeWarning,
                  stacklevel=2)


def _extensions():
    mods = []
    for name in _EXTENSIONS:
        try:
            mods.append(importlib.import_module(f"{__name__}.{name}"))
        except ImportError:
            pass
    return mods


def compiled_kernels():
    """{op name: 'compiled' or why the numpy twin is used}."""
    return dict(_compiled)


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


def num_threads():
    """OpenMP threads the kernels use (1 when built without OpenMP)."""
    mods = _extensions()
    return mods[0]._num_threads() if mods else 1


def set_num_threads(n):
    """Set the OpenMP thread count for every compiled kernel."""
    for mod in _extensions():
        mod._set_num_threads(int(n))


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

__all__ = list(OPS) + ["reference", "compiled_kernels", "simd_path", "simd_paths",
                       "set_simd_path", "force_simd", "num_threads", "set_num_threads",
                       "has_openmp", "BACKEND"]
