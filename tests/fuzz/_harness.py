"""Run one drawn case through a compiled kernel, on every SIMD path this CPU has, and through its
numpy twin, and compare (tests/fuzz/test_fuzz_kernels.py).

The rules, for every case:

* the twin raises  -> the kernel raises the same exception type, with the twin's message or a
  message of its own naming the op (never a crash, never a result);
* the kernel raises what the op documents (``documented``, e.g. an optimizer step refusing a
  non-contiguous param it cannot update in place) -> accepted whatever the twin does;
* otherwise both return: every output (results, and the arrays updated in place) has the
  twin's shape and dtype, and each element matches the twin's (``_arrays.assert_matches``)
  on one of its legitimate readings: the inputs as they are, their subnormals flushed to zero
  (the kernels run with FTZ/DAZ), and, for float32, the same in float64 rounded back;
* no input the op only reads is modified.
"""
import dataclasses

import numpy as np

import _arrays as A
from _kernels import simd
from nnlite import ops

PATHS = ops.simd_paths() or [None]


@dataclasses.dataclass(frozen=True)
class Same:
    """An argument that is the very object of positional argument ``index`` (``out=x``)."""
    index: int


@dataclasses.dataclass(frozen=True)
class Derived:
    """An argument computed from the positional ones once they are made (the forward's
    statistics a backward takes): ``fn(*[args[i] for i in deps])``."""
    fn: object
    deps: tuple

    def __repr__(self):
        return f"Derived({getattr(self.fn, '__name__', self.fn)}, {self.deps})"


@dataclasses.dataclass(frozen=True)
class Case:
    """One call: ``args`` and ``kwargs`` (pairs) hold :class:`_arrays.Spec` (made fresh for every
    run), lists of them, :class:`Same`, or plain values; ``inplace`` names the arguments the op
    updates (positions or keyword names)."""
    args: tuple
    kwargs: tuple = ()
    inplace: tuple = ()

    def build(self):
        def make(v):
            if isinstance(v, A.Spec):
                return v.make()
            if isinstance(v, list):
                return [make(e) for e in v]
            return v
        args = [make(a) for a in self.args]

        def resolve(v):
            if isinstance(v, Same):
                return args[v.index]
            if isinstance(v, Derived):     # None when the inputs are bad (the op refuses them)
                try:
                    with np.errstate(all="ignore"):
                        return v.fn(*[args[i] for i in v.deps])
                except (TypeError, ValueError):
                    return None
            return make(v)
        args = [resolve(a) if isinstance(a, Derived) else a for a in args]
        kwargs = {k: resolve(v) for k, v in self.kwargs}
        return args, kwargs


def _get(args, kwargs, key):
    return args[key] if isinstance(key, int) else kwargs[key]


def _flat(x):
    if x is None:
        return []
    if isinstance(x, (tuple, list)):
        return [e for item in x for e in _flat(item)]
    return [x]


def _outputs(result, args, kwargs, inplace):
    return _flat(result) + [a for key in inplace for a in _flat(_get(args, kwargs, key))]


def _map(fn, x):
    """``fn`` on every array of ``x``: an array, or a list of them (adam_update_many); a list of
    numbers (the ``list`` layout) is one array-like, given to ``fn`` whole."""
    if isinstance(x, list) and any(isinstance(e, np.ndarray) for e in x):
        return [_map(fn, e) for e in x]
    return fn(x)


def _transform(args, kwargs, fn):
    """``fn`` applied to every array argument, keeping ``out=x`` aliases aliases."""
    done = {}

    def f(a):
        if isinstance(a, list):               # numbers in nested lists: as the op reads them
            arr = np.asarray(a) if a else None
            return fn(arr) if arr is not None and arr.dtype.kind == "f" else a
        if isinstance(a, np.ndarray):
            if id(a) not in done:
                done[id(a)] = fn(a)
            return done[id(a)]
        return a
    return [_map(f, a) for a in args], {k: _map(f, v) for k, v in kwargs.items()}


def _has_nonfinite(x):
    """Any inf or NaN in the arrays (or nested lists of numbers) of ``x``."""
    if isinstance(x, (list, tuple)) and any(isinstance(e, (np.ndarray, list, tuple)) for e in x):
        return any(_has_nonfinite(e) for e in x)
    if isinstance(x, (np.ndarray, list)):
        a = np.asarray(x)
        return a.dtype.kind == "f" and not np.isfinite(a).all()
    return False


def _copy_in_dtype(a):
    return np.array(a) if isinstance(a, np.ndarray) else a


def _arrays_in(x):
    return [a for a in _flat(x) if isinstance(a, np.ndarray)]


def _call(fn, args, kwargs):
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs), None
    except Exception as e:          # noqa: BLE001  (compared below)
        return None, e


def _variants(case):
    """(name, transform) of the inputs for the twin's legitimate readings."""
    args, kwargs = case.build()
    f32 = any(a.dtype == A.F32 for a in _arrays_in(args) + _arrays_in(list(kwargs.values())))
    out = [("as is", lambda a: a), ("daz", A.daz)]
    if f32:
        out += [("float64", A.to64), ("float64 daz", lambda a: A.to64(A.daz(a)))]
    return out


def check(op, case, tolerance, documented=None, extra=None, readings=(), loose_nonfinite=False):
    """Compare ``ops._TABLE[op]['cpu']`` with the twin on ``case`` (see the module docstring).

    ``tolerance(args, kwargs, wants) -> (rtol, [atol per output])`` from the inputs as they
    are and the twin's outputs; ``documented(exc, args, kwargs)``: True for an error the
    kernel may raise where the twin does not; ``extra(result, args, kwargs)``: more checks on
    the kernel's result (e.g. ``out`` is returned); ``readings``: more legitimate answers,
    each ``fn(args, kwargs) -> outputs`` (or None where it does not apply), given the inputs
    flushed (DAZ) and in float64; ``loose_nonfinite``: when an input holds inf or NaN, any
    non-finite result matches a non-finite twin result (inf · x̂ where x̂ is 0 in one rounding
    and 1e-9 in the other: NaN or inf are both right), finite ones are still compared."""
    native = ops._TABLE[op]["cpu"]
    twin = ops._TABLE[op]["numpy"]
    assert native is not None, f"{op}: no compiled kernel"

    # the twin's readings; the first ("as is") decides whether the call is an error
    wants, twin_error, dtypes = [], None, None
    for name, fn in _variants(case):
        args, kwargs = case.build() if name == "as is" else _transform(*case.build(), fn)
        result, err = _call(twin, args, kwargs)
        if name == "as is":
            if err is not None:
                twin_error = err
                break
            outs = _outputs(result, args, kwargs, case.inplace)
            dtypes = [o.dtype if isinstance(o, np.ndarray) else None for o in outs]
            base_args, base_kwargs = case.build()
        elif err is not None:
            continue
        else:
            outs = _outputs(result, args, kwargs, case.inplace)
            with np.errstate(all="ignore"):
                outs = [o.astype(dt) if dt is not None and isinstance(o, np.ndarray) else o
                        for o, dt in zip(outs, dtypes)]
        wants.append(outs)
    if twin_error is None:
        for fn in readings:
            args, kwargs = _transform(*case.build(), lambda a: A.to64(A.daz(a)))
            with np.errstate(all="ignore"):
                outs = fn(args, kwargs)
                if outs is not None:
                    wants.append([o.astype(dt) if dt is not None else o
                                  for o, dt in zip(outs, dtypes)])

    for path in PATHS:
        args, kwargs = case.build()
        updated = {id(a) for key in case.inplace for a in _arrays_in(_get(args, kwargs, key))}
        readonly = [(a, a.copy()) for a in _arrays_in(args) + _arrays_in(list(kwargs.values()))
                    if id(a) not in updated]
        with simd(path):
            result, err = _call(native, args, kwargs)
        where = f"{op} on SIMD path {path}"
        for a, before in readonly:
            assert np.array_equal(a, before, equal_nan=True), f"{where}: modified an input"
        if err is not None:
            if documented is not None and documented(err, args, kwargs):
                continue
            if twin_error is None:
                raise AssertionError(f"{where} raised {type(err).__name__}: {err}; the twin "
                                     f"returned") from err
            if type(err) is not type(twin_error) or (
                    str(err) != str(twin_error) and not str(err).startswith(f"{op}:")):
                raise AssertionError(f"{where} raised {type(err).__name__}: {err}; the twin "
                                     f"{type(twin_error).__name__}: {twin_error}") from err
            continue
        if twin_error is not None:
            raise AssertionError(f"{where} returned; the twin raised "
                                 f"{type(twin_error).__name__}: {twin_error}")
        if extra is not None:
            extra(result, args, kwargs)
        got = _outputs(result, args, kwargs, case.inplace)
        assert len(got) == len(wants[0]), f"{where}: {len(got)} outputs, twin {len(wants[0])}"
        rtol, atols = tolerance(base_args, base_kwargs, wants[0])
        loose = loose_nonfinite and _has_nonfinite(list(base_args) + list(base_kwargs.values()))
        for i, g in enumerate(got):
            A.assert_matches(g, [w[i] for w in wants], rtol, atols[i], f"{where}, output {i}",
                             loose_nonfinite=loose)
