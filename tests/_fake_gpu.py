"""A fake GPU for the tests of nnlite's device code (``model.to``, ``fit`` on a GPU, the layers'
``xp``) on a machine without one: the ``"fakegpu"`` device and dispatch column.

Its arrays, :class:`FakeArray`, behave like CuPy's where it matters for the Python above the
kernels:

- a distinct type, registered with ``nnlite.ops.add_backend("fakegpu", FakeArray, xp, ...)``
  and ``nnlite.devices.register("fakegpu", ...)``, so the dispatch table and ``model.to`` treat
  it as they treat ``cupy.ndarray``;
- host conversion is refused with a TypeError, as CuPy refuses it: ``np.asarray(fake)``, any
  ``np.*`` function or ufunc on it, and mixing it with a numpy array in arithmetic or
  assignment. A layer, loss, optimizer or training loop that calls numpy on device arrays (or
  feeds a host array to device math) therefore fails here as it would on a GPU. (Stricter than
  CuPy in one way: CuPy's ``__array_function__`` quietly runs some ``np.*`` functions on the
  GPU; here every one fails, so code must say ``xp = ops.array_module(x)``.)
- ``.get()`` is the explicit transfer; ``float()``, ``int()``, ``bool()`` and ``.item()`` of a
  one-element array work, as in CuPy (each is a small device-to-host copy);
- :data:`xp` is the array module (like ``cupy``): its functions take fake arrays (and, for
  ``asarray``/``array``, host data: the explicit host-to-device copy) and return fake arrays.

The column's kernels are nnlite's CUDA kernel families (``nnlite/ops/cuda_<family>.py``)
compiled through the shim (tests/_cuda_shim.py: the CUDA sources as C++ on CPU threads), each
wrapped to unwrap fake arrays into numpy at the boundary (the shim's device memory is numpy's).
STAND-IN: for the ops of families not present yet, the numpy twins
(``nnlite/ops/reference.py``) run instead, wrapped the same way, so the device code above the
kernels can be tested before the kernels land; :func:`stand_ins` lists those ops, and once
every family is present it is empty and every op runs through the shim.
"""
import contextlib
import functools
import importlib.util
import numbers
import operator
import types

import numpy as np

from nnlite import devices, ops
from nnlite.ops import cuda as _cuda
from nnlite.ops.cuda_device import Device
from nnlite.ops import reference

NAME = "fakegpu"


def _refuse(what):
    raise TypeError(f"{what}: a fake GPU array is device memory; numpy cannot read it "
                    f"implicitly (as CuPy refuses too). Use xp = nnlite.ops.array_module(x) "
                    f"for array functions, or .get() / nnlite.devices.to_host(x) for an "
                    f"explicit copy to the host")


class FakeArray:
    """A numpy array behind a wall: see the module docstring."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a):
        assert isinstance(a, np.ndarray), type(a)
        object.__setattr__(self, "_a", a)

    # -- what CuPy refuses --------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        _refuse("np.asarray(fake GPU array) (implicit device-to-host conversion)")

    def __array_function__(self, func, types, args, kwargs):
        _refuse(f"numpy.{func.__name__} on a fake GPU array")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy scalar (op) fake array reaches here: computed on the "device", as CuPy does;
        # any other ufunc (np.tanh(x), np.exp(x)) and any host array operand is refused
        if method == "__call__" and not kwargs and ufunc in _OPERATOR_UFUNCS and all(
                isinstance(v, (FakeArray, numbers.Number, np.generic)) for v in inputs):
            return _wrap(ufunc(*_unwrap(inputs)))
        _refuse(f"numpy.{ufunc.__name__} on a fake GPU array")

    # -- explicit transfers and scalars (as CuPy: small synchronous copies) ----------------------
    def get(self):
        """A numpy copy, as ``cupy.ndarray.get()``."""
        return self._a.copy()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __bool__(self):
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield self[i]

    def __repr__(self):
        return f"fakegpu.{self._a!r}"

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    # -- attributes and methods: numpy's, behind the wall -----------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    # CuPy's flags: the layout only (no ``aligned`` or ``writeable``: device memory is both)
    flags = property(lambda self: _Flags(self._a.flags))

    @property
    def __cuda_array_interface__(self):
        """What CuPy arrays expose (the kernels' wrappers take pointers from it); the
        "device" pointer is the host address of the numpy array behind the wall, which the
        shim-compiled kernels read and write as a GPU's would read its memory."""
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "version": 3,
                "data": (a.__array_interface__["data"][0], False),
                "strides": None if a.flags.c_contiguous else a.strides}
    T = property(lambda self: FakeArray(self._a.T))

    _METHODS = frozenset((
        "reshape", "transpose", "astype", "copy", "fill", "sum", "mean", "max", "min", "argmax",
        "argmin", "any", "all", "ravel", "flatten", "squeeze", "swapaxes", "view", "clip",
        "round", "cumsum", "prod", "std", "var", "nonzero", "take", "repeat", "sort",
        "argsort"))

    def __getattr__(self, name):
        if name not in FakeArray._METHODS:
            raise AttributeError(f"fake GPU array has no attribute {name!r} (CuPy-like "
                                 f"arrays expose no host memory)")
        method = getattr(self._a, name)

        @functools.wraps(method)
        def call(*args, **kwargs):
            return _wrap(method(*_unwrap(args), **_unwrap(kwargs)))
        return call

    def __setattr__(self, name, value):
        raise AttributeError(f"fake GPU array: cannot set {name!r}")

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap_index(key)] = _operand(value, "x[...] = <numpy array>")


class _Flags:
    """``cupy.ndarray.flags``: c_contiguous, f_contiguous and owndata, nothing else."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, f):
        self.c_contiguous, self.f_contiguous, self.owndata = \
            f.c_contiguous, f.f_contiguous, f.owndata


_OPERATOR_UFUNCS = {np.add, np.subtract, np.multiply, np.true_divide, np.floor_divide,
                    np.remainder, np.power, np.less, np.less_equal, np.greater,
                    np.greater_equal, np.equal, np.not_equal, np.bitwise_and, np.bitwise_or,
                    np.bitwise_xor, np.left_shift, np.right_shift}


def _operand(x, what):
    """The numpy value behind an operand of device arithmetic: a FakeArray's array, a
    scalar as it is; a host ndarray is refused (CuPy raises TypeError for it too)."""
    if isinstance(x, FakeArray):
        return x._a
    if isinstance(x, np.ndarray):
        _refuse(f"{what} (a host numpy array of shape {x.shape} mixed into device math)")
    if isinstance(x, (numbers.Number, np.generic)):
        return x
    _refuse(f"{what} with a {type(x).__name__}")


def _unwrap_index(key):
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    if isinstance(key, FakeArray):
        return key._a
    if isinstance(key, np.ndarray):
        _refuse("indexing a fake GPU array with a host numpy array")
    return key


def _unwrap(x):
    """Fake arrays → numpy, through tuples, lists and dicts (for calls behind the wall)."""
    if isinstance(x, FakeArray):
        return x._a
    if isinstance(x, tuple):
        return tuple(_unwrap(v) for v in x)
    if isinstance(x, list):
        return [_unwrap(v) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    """numpy arrays → fake arrays (0-d too: CuPy's reductions return 0-d arrays), through
    tuples and lists; numpy scalars become 0-d fake arrays, as CuPy's results are."""
    if isinstance(x, np.ndarray):
        return FakeArray(x)
    if isinstance(x, np.generic):
        return FakeArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _inplace_op(op, name):
    def inplace(self, other):
        op(self._a, _operand(other, f"fake {name}= numpy"))
        return self
    return inplace


def _unary_op(op):
    return lambda self: _wrap(op(self._a))


def _binary(op, name):
    def forward(self, other):
        return _wrap(op(self._a, _operand(other, f"fake {name} numpy")))

    def reverse(self, other):
        return _wrap(op(_operand(other, f"numpy {name} fake"), self._a))
    return forward, reverse


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv),
                   ("mod", operator.mod), ("pow", operator.pow), ("matmul", operator.matmul),
                   ("and", operator.and_), ("or", operator.or_), ("xor", operator.xor),
                   ("lshift", operator.lshift), ("rshift", operator.rshift)]:
    _f, _r = _binary(_op, _name)
    setattr(FakeArray, f"__{_name}__", _f)
    setattr(FakeArray, f"__r{_name}__", _r)

    setattr(FakeArray, f"__i{_name}__", _inplace_op(getattr(operator, f"i{_name}"), _name))

for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(FakeArray, f"__{_name}__", _binary(getattr(operator, _name), _name)[0])
for _name in ("neg", "pos", "abs", "invert"):
    setattr(FakeArray, f"__{_name}__", _unary_op(getattr(operator, _name)))
FakeArray.__hash__ = None


# -- the array module ------------------------------------------------------------------------
def _host_data(a):
    """What ``xp.asarray`` takes from the host: numpy arrays, lists, scalars, torch CPU
    tensors (anything numpy takes), copied to the "device"."""
    return np.array(a)


class _FakeXP(types.ModuleType):
    """``cupy`` for fake arrays: every numpy function, taking and returning fake arrays;
    dtypes and constants as numpy's; ``asarray``/``array`` also take host data (the explicit
    copy to the device, as ``cupy.asarray(numpy_array)``)."""

    ndarray = FakeArray

    def __init__(self):
        super().__init__("fakegpu_xp")

    def asarray(self, a, dtype=None, order=None):
        if isinstance(a, FakeArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        return FakeArray(np.asarray(_host_data(a), dtype=dtype, order=order))

    def array(self, a, dtype=None, copy=True, order="K", ndmin=0):
        src = a._a if isinstance(a, FakeArray) else _host_data(a)
        return FakeArray(np.array(src, dtype=dtype, copy=True, order=order, ndmin=ndmin))

    def from_dlpack(self, a):
        return FakeArray(np.from_dlpack(a).copy())

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, (type, np.dtype)) or not callable(attr):
            return attr         # dtypes (xp.float32), constants (xp.pi, xp.newaxis)

        @functools.wraps(attr)
        def call(*args, **kwargs):
            for v in list(args) + list(kwargs.values()):
                if isinstance(v, np.ndarray) and v.ndim:
                    _refuse(f"fakegpu xp.{name} given a host numpy array (use xp.asarray)")
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return call


xp = _FakeXP()


# -- the column: shim-compiled kernel families, and stand-ins for the missing ones -----------
def _on_host(fn, op, where):
    """``fn`` (numpy in, numpy out) as a kernel of the fake column: fake arrays in and out."""
    def run(*args, **kwargs):
        for v in list(args) + list(kwargs.values()):
            for a in (v if isinstance(v, (list, tuple)) else (v,)):
                if isinstance(a, np.ndarray):
                    raise TypeError(f"{op} on the fake GPU got a host numpy array of shape "
                                    f"{a.shape}: every array argument must be on the device")
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))
    run.__name__ = op
    run.runs_on = where
    return run


def _device_ptr(a):
    if not isinstance(a, FakeArray):
        raise TypeError(f"a CUDA kernel was handed a {type(a).__name__}, not a device array")
    return a.__cuda_array_interface__["data"][0]


def _on_device(fn, op):
    """A family's kernel for the fake column: fake arrays straight in (host numpy arrays
    refused, as a GPU refuses them), its results as they come."""
    def run(*args, **kwargs):
        for v in list(args) + list(kwargs.values()):
            for a in (v if isinstance(v, (list, tuple)) else (v,)):
                if isinstance(a, np.ndarray):
                    raise TypeError(f"{op} on the fake GPU got a host numpy array of shape "
                                    f"{a.shape}: every array argument must be on the device")
        return fn(*args, **kwargs)
    run.__name__ = op
    run.runs_on = "shim"
    return run


_column = {"kernels": None, "stand_ins": None, "absent": None}


def _shim_device():
    import _cuda_shim
    if _cuda_shim.missing():
        return None
    return _cuda_shim.test_device("shim")


def install(rebuild=False):
    """Register the "fakegpu" column and device (built once, or again with ``rebuild``);
    returns the device name."""
    if _column["kernels"] is None or rebuild:
        present = [f for f in _cuda.FAMILIES
                   if importlib.util.find_spec(f"nnlite.ops.{f}") is not None]
        kernels, absent = {}, {f: "not in this checkout" for f in _cuda.FAMILIES
                              if f not in present}
        if present:
            dev = _shim_device()
            if dev is None:
                absent.update({f: "no g++ for the shim" for f in present})
            else:
                # the families' own wrappers, given fake arrays as a GPU gives them CuPy's:
                # the pointers of __cuda_array_interface__, their xp for every allocation
                # and copy. So the wrappers' Python runs exactly as on a GPU, and any numpy
                # call on a device array in them fails here as it would there.
                fake = Device(dev.ext, xp, NAME, ptr=_device_ptr)
                found, why = _cuda.family_kernels(fake, present)
                absent.update(why)
                kernels = {op: _on_device(fn, op) for op, fn in found.items()}
        # STAND-IN (until every family is merged): the numpy twin for each op no family has
        stand_ins = [op for op in ops.OPS if op not in kernels]
        for op in stand_ins:
            kernels[op] = _on_host(getattr(reference, op), op, "numpy twin (stand-in)")
        _column.update(kernels=kernels, stand_ins=stand_ins, absent=absent)
    ops.add_backend(NAME, FakeArray, xp, _column["kernels"])
    devices.register(NAME, FakeArray, xp, to_device, to_host)
    return NAME


@contextlib.contextmanager
def installed():
    """``with installed(): ...``: the "fakegpu" column and device inside the block only; the
    dispatch table and the device registry are as they were afterwards (other test modules
    see nnlite untouched)."""
    table = {op: dict(row) for op, row in ops._TABLE.items()}
    runs = {op: dict(row) for op, row in ops._RUNS.items()}
    backend_of = dict(ops._BACKEND_OF)
    registry = (dict(devices._DEVICES), dict(devices._BY_TYPE))
    try:
        yield install()
    finally:
        for saved, live in ((table, ops._TABLE), (runs, ops._RUNS)):
            for op, row in saved.items():        # in place: dispatchers hold these dicts
                live[op].clear()
                live[op].update(row)
        for saved, live in ((backend_of, ops._BACKEND_OF), *zip(registry, (devices._DEVICES,
                                                                          devices._BY_TYPE))):
            live.clear()
            live.update(saved)
        ops._bind()


def stand_ins():
    """The ops that run on the numpy twins (stand-ins), not the shim kernels: those of the
    families not present (:func:`absent_families` says why)."""
    install()
    return list(_column["stand_ins"])


def absent_families():
    install()
    return dict(_column["absent"])


def to_device(a):
    """Onto the fake GPU: the same code path as ``nnlite.ops.cuda.to_device`` with this
    array module."""
    return _cuda.to_device(a, xp)


def to_host(a):
    if isinstance(a, FakeArray):
        return a.get()
    return np.asarray(a)
