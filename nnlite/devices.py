"""Where arrays live: ``"cpu"`` (numpy arrays) or a GPU (``"cuda"``: CuPy arrays).

A device is a name with an array type, its array module and two transfers:

========  ===================  ==========  ============================================
device    arrays               module      registered by
========  ===================  ==========  ============================================
cpu       numpy.ndarray        numpy       built in
cuda      cupy.ndarray         cupy        :func:`nnlite.ops.cuda.enable` (on first use)
========  ===================  ==========  ============================================

``model.to("cuda")`` moves a model's arrays with :func:`to_device`; ``fit``, ``evaluate`` and
``predict`` move each batch the same way, and :func:`to_host` brings results back (``predict``
returns numpy arrays, ``save`` writes them). The kernels a device's arrays run on are a column
of the ops dispatch table (:func:`nnlite.ops.add_backend`); this module only moves arrays.

Nothing here imports cupy: asking for ``"cuda"`` imports :mod:`nnlite.ops.cuda`, which does,
and raises ``RuntimeError("no GPU: <reason>")`` where there is none.
"""
import dataclasses

import numpy as np

__all__ = ["Device", "device_of", "names", "register", "resolve", "to_device", "to_host"]


@dataclasses.dataclass(frozen=True)
class Device:
    """A registered device: ``name`` ("cpu", "cuda"), its ``array_type`` and array module
    ``xp``, and ``put(a)`` / ``get(a)``: any array onto the device / a device array into a
    new numpy array."""

    name: str
    array_type: type
    xp: object
    put: object
    get: object

    def __repr__(self):
        return f"<nnlite device {self.name!r}: {self.array_type.__module__}." \
               f"{self.array_type.__name__}>"


def _host(a):
    """Anything array-like as a numpy array: a registered device array through its own
    transfer, a CuPy-like array through ``.get()``, the rest through ``np.asarray``."""
    if isinstance(a, np.ndarray):
        return a
    dev = _BY_TYPE.get(type(a))
    if dev is not None:
        return dev.get(a)
    if hasattr(a, "__cuda_array_interface__") and hasattr(a, "get"):   # cupy, not enabled
        return a.get()
    if hasattr(a, "__cuda_array_interface__"):          # e.g. a torch CUDA tensor
        return resolve("cuda").get(resolve("cuda").put(a))
    return np.asarray(a)


_CPU = Device("cpu", np.ndarray, np, _host, _host)
_DEVICES = {"cpu": _CPU}          # name -> Device
_BY_TYPE = {np.ndarray: _CPU}     # array type -> Device
# names that load their device on first use: name -> (module, function that registers it)
_LAZY = {"cuda": ("nnlite.ops.cuda", "enable")}


def register(name, array_type, xp, put, get):
    """Make ``name`` a device (``model.to(name)``): arrays of ``array_type`` live there,
    ``put(a)`` brings any array there, ``get(a)`` returns a device array as numpy.
    Re-registering a name replaces it. Returns the :class:`Device`."""
    if name == "cpu" or array_type is np.ndarray:
        raise ValueError(f"devices.register: {name!r} / {array_type.__name__} is built in")
    dev = Device(name, array_type, xp, put, get)
    old = _DEVICES.get(name)
    if old is not None:
        _BY_TYPE.pop(old.array_type, None)
    _DEVICES[name] = dev
    _BY_TYPE[array_type] = dev
    return dev


def names():
    """The devices registered so far, "cpu" first."""
    return list(_DEVICES)


def resolve(device):
    """The :class:`Device` for ``device``: a Device, ``"cpu"``, ``"cuda"`` or ``"cuda:0"``
    (the GPU CuPy uses now; other indices: select it with ``cupy.cuda.Device(i).use()``
    first), or any registered name.

    Raises
    ------
    RuntimeError
        ``"no GPU: <reason>"`` for ``"cuda"`` on a machine without one (or without CuPy).
    ValueError
        For a name that is no device.
    """
    if isinstance(device, Device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"a device is a name such as 'cpu' or 'cuda', got "
                        f"{type(device).__name__}")
    name = device.strip().lower()
    base, _, index = name.partition(":")
    if index:
        if base != "cuda" or not index.isdigit():
            raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:0'")
        if int(index) != 0:
            raise ValueError(f"device {device!r}: nnlite runs on CuPy's current GPU, 'cuda' "
                             f"(also spelled 'cuda:0'); to use GPU {index}, make it current first: "
                             f"cupy.cuda.Device({index}).use()")
        name = base
    if name not in _DEVICES and name in _LAZY:
        import importlib
        module, function = _LAZY[name]
        getattr(importlib.import_module(module), function)()   # registers it, or raises
    if name not in _DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of "
                         f"{sorted(set(_DEVICES) | set(_LAZY))}")
    return _DEVICES[name]


def device_of(a):
    """The name of the device ``a`` lives on: "cpu" for numpy arrays and anything that is no
    registered device's array."""
    dev = _BY_TYPE.get(type(a))
    return "cpu" if dev is None else dev.name


def to_device(a, device):
    """``a`` on ``device`` (a name or a :class:`Device`): the array itself when it is already
    there, else a copy made by the device's transfer. ``None`` stays ``None``; tuples and
    lists are moved element by element."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(to_device(x, device) for x in a)
    dev = resolve(device)
    if type(a) is dev.array_type:
        return a
    if dev is _CPU:
        return _host(a)
    return dev.put(a)


def to_host(a):
    """``a`` as a numpy array (a device array copied over; a numpy array as it is; ``None``
    stays ``None``; tuples and lists element by element)."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(to_host(x) for x in a)
    return _host(a)


def add_argument(parser):
    """The examples' ``--device {cpu,cuda}`` (default cpu) on an argparse parser."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to train: cpu, or cuda (an NVIDIA GPU, through CuPy: "
                             "pip install '.[cuda]' in nnlite's checkout) (default: %(default)s)")


def for_script(device, prog):
    """``device`` checked for a script's ``--device``: its name, or, where it cannot be used,
    one line on stderr (``<prog>: --device cuda: no GPU: <reason>``) and exit status 2, as
    for any bad argument (before the script loads data or builds anything)."""
    import sys
    try:
        return resolve(device).name
    except (RuntimeError, ValueError) as e:
        print(f"{prog}: --device {device}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
