"""nnlite on an NVIDIA GPU: CuPy arrays as the container, nnlite's own kernels as the math.

>>> from nnlite.ops import cuda
>>> cuda.is_available()              # False, never raises: cuda.why_not() says why
>>> model.to("cuda")                 # enables it (once), or RuntimeError("no GPU: ...")

:func:`enable` adds the ``"cuda"`` column to the ops dispatch table
(``nnlite.ops.add_backend("cuda", cupy.ndarray, cupy, kernels)``): every op called on CuPy
arrays then runs the CUDA kernel of its family (``nnlite/ops/cuda_<family>.py``, each
exporting ``kernels(dev)``); an op whose family is missing raises NotImplementedError naming
it (:func:`missing` lists them, with the reason). It also registers the ``"cuda"`` device
(:mod:`nnlite.devices`), so ``model.to("cuda")`` and ``fit`` move arrays there.

Arrays: CuPy's, because nnlite is a numpy library and CuPy is numpy on the GPU. The kernels
take raw device pointers and launch on CuPy's current stream, so anything with
``__cuda_array_interface__`` or DLPack (a torch CUDA tensor) can be handed in:
:func:`to_device` wraps it without a copy.

CuPy is imported on first use, never by ``import nnlite`` (it is the optional ``[cuda]`` extra:
``pip install '.[cuda]' in nnlite's checkout``, i.e. cupy-cuda13x).
"""
import importlib

import numpy as np

from . import cuda_device

__all__ = [
    "FAMILIES",
    "enable",
    "enabled",
    "family_kernels",
    "is_available",
    "missing",
    "to_device",
    "to_host",
    "why_not",
]

# the kernel families, nnlite/ops/cuda_<family>.py; each exports kernels(dev) -> {op: fn}
FAMILIES = ("cuda_gemm", "cuda_pointwise", "cuda_nn", "cuda_attention", "cuda_conv")

_state = {"device": None, "missing": {}}


def why_not():
    """Why nnlite cannot run on a GPU here (None when it can): no CUDA build of nnlite, no
    driver or device, or no CuPy. Never raises."""
    try:
        cuda_device.gpu()
    except RuntimeError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001  (a broken install: a reason, not a crash)
        return f"no GPU: {type(e).__name__}: {e}"
    return None


def is_available():
    """True when :func:`enable` would succeed (a CUDA build, a GPU, CuPy). Never raises."""
    return why_not() is None


def family_kernels(dev, families=FAMILIES):
    """``(kernels, absent)``: the merged ``{op: function}`` of every family module that
    imports, for the Device ``dev``, and ``{family: why not}`` for those that do not."""
    kernels, absent = {}, {}
    for family in families:
        try:
            module = importlib.import_module(f"{__package__}.{family}")
        except ImportError as e:
            absent[family] = f"{type(e).__name__}: {e}"
            continue
        kernels.update(module.kernels(dev))
    return kernels, absent


def enable(device=None):
    """Add the ``"cuda"`` column to the dispatch table and the ``"cuda"`` device, once;
    returns the :class:`~nnlite.ops.cuda_device.Device`.

    Parameters
    ----------
    device : None, 0, "cuda" or "cuda:0"
        nnlite runs on CuPy's current GPU (select another with ``cupy.cuda.Device(i).use()``).

    Raises
    ------
    RuntimeError
        ``"no GPU: <reason>"`` when there is no CUDA build, GPU or CuPy (:func:`why_not`).
    """
    if device not in (None, 0, "cuda", "cuda:0"):
        raise ValueError(f"cuda.enable: nnlite runs on CuPy's current GPU: device must be None, "
                         f"0, 'cuda' or 'cuda:0', got {device!r}")
    if _state["device"] is not None:
        return _state["device"]
    dev = cuda_device.gpu()             # RuntimeError("no GPU: ...")
    import cupy

    from .. import devices, ops
    kernels, _state["missing"] = family_kernels(dev)
    ops.add_backend("cuda", cupy.ndarray, cupy, kernels)
    devices.register("cuda", cupy.ndarray, cupy, to_device, to_host)
    _state["device"] = dev
    return dev


def enabled():
    """True once :func:`enable` has added the column."""
    return _state["device"] is not None


def missing():
    """``{family: why its module did not import}`` for the families the column lacks (their
    ops raise NotImplementedError on CuPy arrays); {} before :func:`enable` or when complete."""
    return dict(_state["missing"])


def to_device(a, xp=None):
    """``a`` as a CuPy array: CuPy arrays as they are; anything with
    ``__cuda_array_interface__`` or a DLPack capsule on a CUDA device (a torch CUDA tensor)
    wrapped without a copy (it shares the memory); host arrays (numpy, lists, torch CPU
    tensors) copied over.

    ``xp`` is the array module (default cupy); the tests pass their fake GPU's.
    """
    if xp is None:
        import cupy as xp
    if isinstance(a, xp.ndarray):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return xp.asarray(a)                        # zero-copy view of the same memory
    if hasattr(a, "__dlpack__") and hasattr(a, "__dlpack_device__") \
            and not isinstance(a, np.ndarray):
        kind, _ = a.__dlpack_device__()
        if kind in (2, 13):                         # kDLCUDA, kDLCUDAManaged
            return xp.from_dlpack(a)
    return xp.asarray(np.asarray(a))                # host memory: one copy to the GPU


def to_host(a):
    """``a`` as a numpy array: a CuPy array copied back (``.get()``, which waits for its
    stream); a CUDA array of another library through CuPy; numpy arrays as they are."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get") and hasattr(a, "__cuda_array_interface__"):
        return a.get()
    if hasattr(a, "__cuda_array_interface__") or hasattr(a, "__dlpack_device__") and \
            a.__dlpack_device__()[0] in (2, 13):
        return to_device(a).get()
    return np.asarray(a)
