"""Property-based tests (hypothesis): every compiled kernel against its numpy twin, on every SIMD
path this CPU has, for drawn shapes (dims 0, 1, SIMD and tile edges), dtypes (float32, float64,
now and then an odd one), layouts (transposed, negative strides, strided, unaligned, broadcast,
read-only, lists) and values (±1e30, subnormals, ±0, ±inf, NaN); see _arrays.py for the
drawing and _harness.py for what must hold.

Each op has two tests: ``test_<family>`` (a bounded run in the normal suite: few examples,
derandomized, so CI is reproducible) and ``test_<family>_long`` (marked ``fuzz``, many
examples, random: ``pytest -m fuzz tests/fuzz``). NNLITE_FUZZ_EXAMPLES sets the long run's
examples per op, NNLITE_FUZZ_BOUNDED the bounded run's. A failure prints the drawn case
(``Draw 1: Case(...)``), which rebuilds the same arrays, and a ``@reproduce_failure`` line.

Tolerances are error bounds of the computation (a dot product of length K: ~K·eps·Σ|terms|,
scaled by how ill-conditioned the inputs are), never a blanket allclose, so a wrong result is
caught also where values are huge or cancel.
"""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _arrays as A
from _harness import Case, Derived, Same, check
from nnlite import ops
from nnlite.ops import _checks
from nnlite.ops import reference as ref

pytestmark = pytest.mark.skipif(
    ops.BACKEND != "native" or any(ops._TABLE[op]["cpu"] is None for op in ops.OPS),
    reason="needs the compiled kernels")

_COMMON = dict(deadline=None, print_blob=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
BOUNDED_EXAMPLES = int(os.environ.get("NNLITE_FUZZ_BOUNDED", "30"))
LONG_EXAMPLES = int(os.environ.get("NNLITE_FUZZ_EXAMPLES", "2000"))
settings.register_profile("nnlite-bounded", max_examples=BOUNDED_EXAMPLES, derandomize=True,
                          **_COMMON)
settings.register_profile("nnlite-fuzz", max_examples=LONG_EXAMPLES, derandomize=False,
                          **_COMMON)
BOUNDED = settings.get_profile("nnlite-bounded")
LONG = settings.get_profile("nnlite-fuzz")


def fuzz_tests(cases, run, op_names):
    """The bounded test and the long one (marked ``fuzz``) of ``run(op, case)`` for the cases
    ``cases(op)`` draws, one test per op in ``op_names``."""
    @pytest.mark.parametrize("op", op_names)
    @BOUNDED
    @given(data=st.data())
    def bounded(op, data):
        run(op, data.draw(cases(op), label="case"))

    @pytest.mark.fuzz
    @pytest.mark.parametrize("op", op_names)
    @LONG
    @given(data=st.data())
    def long(op, data):
        run(op, data.draw(cases(op), label="case"))

    return bounded, long


# ----------------------------------------------------------------------------- drawing helpers

def dtypes():
    return st.sampled_from(A.DTYPES)


def arg_dtype(dt):
    """Mostly ``dt``; now and then another float, an int (converted to float64 by the ops) or
    float16 (refused): the kernel must fail, or not, as the twin does."""
    other = A.F64 if dt == A.F32 else A.F32
    return st.sampled_from([dt] * 16 + [other, np.dtype(np.int32), np.dtype(np.float16)])


@st.composite
def shapes(draw, min_dims, max_dims, max_elems=3000):
    nd = draw(st.integers(min_dims, max_dims))
    dims, prod = [], 1
    for _ in range(nd):
        d = draw(A.sizes(max(2, min(65, max_elems // prod))))
        dims.append(d)
        prod *= max(d, 1)
    return tuple(dims)


def spec(shape, dt, layouts=A.LAYOUTS, **values):
    return A.specs(shape, dt, layouts, A.values(**values) if values else None)


def eps(dt):
    return float(np.finfo(dt).eps)


def tiny(dt):
    return float(np.finfo(dt).tiny)


def f64(a):
    """``a`` as float64, subnormals flushed (what the kernel reads) and non-finite values set to
    0, for error bounds: a result an inf or NaN input reaches is inf or NaN, and compared as
    such; the others are bounded by the finite inputs."""
    return A.finite(np.asarray(A.daz(a), dtype=np.float64))


def out_modes(draw, shape, dt, x_index=None):
    """kwargs and in-place names for an op with ``out=`` (and ``accumulate``, if it has one)."""
    modes = ["new", "out", "accumulate", "accumulate without out"]
    if x_index is not None:
        modes.append("out is x")
    mode = draw(st.sampled_from(modes))
    if mode == "new":
        return (), ()
    if mode == "accumulate without out":
        return (("accumulate", True),), ()
    if mode == "out is x":
        return (("out", Same(x_index)),) + ((("accumulate", draw(st.booleans())),)
                                            if x_index == 0 else ()), ("out",)
    out = draw(spec(shape, draw(arg_dtype(dt)), A.WRITABLE + ("readonly",)))
    return (("out", out), ("accumulate", mode == "accumulate")), ("out",)


def _drop_accumulate(kwargs):
    return tuple(kv for kv in kwargs if kv[0] != "accumulate")


# ----------------------------------------------------------------------------- GEMM

GEMM = ("gemm", "gemm_nt", "gemm_tn")


@st.composite
def gemm_cases(draw, op):
    dt = draw(dtypes())
    m, k, n = draw(A.sizes()), draw(A.sizes()), draw(A.sizes())
    a_shape = (k, m) if op == "gemm_tn" else (m, k)
    b_shape = (n, k) if op == "gemm_nt" else (k, n)
    a = draw(spec(a_shape, draw(arg_dtype(dt))))
    b = draw(spec(b_shape, draw(arg_dtype(dt))))
    kwargs, inplace = out_modes(draw, (m, n), dt, 0 if a_shape == (m, n) else None)
    if op == "gemm":        # the epilogue: a Linear layer's bias, a transformer's residual
        if draw(st.booleans()):
            kwargs += (("bias", draw(spec((n,), draw(arg_dtype(dt))))),)
        if draw(st.booleans()):
            kwargs += (("residual", draw(spec((m, n), draw(arg_dtype(dt))))),)
    return Case((a, b), kwargs, inplace)


def gemm_run(op, case):
    def tol(args, kwargs, wants):
        a, b = f64(args[0]), f64(args[1])
        a = a.T if op == "gemm_tn" else a
        b = b.T if op == "gemm_nt" else b
        dt = wants[0].dtype
        with np.errstate(all="ignore"):
            bound = np.abs(a) @ np.abs(b)
            if kwargs.get("accumulate"):
                bound = bound + np.abs(f64(kwargs["out"]))
            for name in ("bias", "residual"):
                if kwargs.get(name) is not None:
                    bound = bound + np.abs(f64(kwargs[name]))
            k = a.shape[1]
            atol = 4 * (k + 2) * eps(dt) * bound + 8 * (k + 1) * tiny(dt)
            # a product of finite values beyond the dtype's range: inf, -inf or NaN by
            # summation order (FMA adds the exact product before rounding), all legitimate
            over = A.overflows(np.abs(A.finite(a)) @ np.abs(A.finite(b)), dt)
            atol = np.where(over, np.inf, atol)
        return 2 * eps(dt), [atol] * len(wants)

    def returns_out(result, args, kwargs):
        if kwargs.get("out") is not None:
            assert result is kwargs["out"], f"{op} did not return out"

    check(op, case, tol, extra=returns_out)


test_gemm, test_gemm_long = fuzz_tests(gemm_cases, gemm_run, GEMM)


# ----------------------------------------------------------------------------- activations

ACTS = _checks.ACTIVATIONS
ALPHAS = (0.01, 0.2, 0.0, -0.5, 3.0)


def act_names():
    """The activations, now and then an unknown one (refused by both)."""
    return st.sampled_from(list(ACTS) * 4 + ["swish"])


def act_tol(op):
    """A few ulp relative (the kernels' exp/tanh); absolute: what the twin itself loses where
    its formulas cancel (gelu's 1 + tanh u for v < 0, 1 - y² for tanh'), ~eps times the
    magnitude of their terms, and a floor (f32: the float32 twin's gelu' error)."""
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        e = eps(dt)
        rtol, floor = (3e-5, 4e-6) if dt == A.F32 else (1e-12, 1e-14)
        with np.errstate(all="ignore"):
            if op == "act_backward":
                g, x, y = (np.abs(f64(a)) for a in args[:3])
                terms = g * (1 + y * y + x * (1 + 0.14 * x * x))
            else:
                v = f64(args[0])
                if op == "bias_act":
                    v = v + f64(args[1])
                terms = np.abs(v)
        return rtol, [floor + 16 * e * terms] * len(wants)        # (bias_act: result, out)
    return tol


@st.composite
def bias_act_cases(draw, op):
    dt = draw(dtypes())
    x_shape = draw(shapes(1, 3))
    c = x_shape[-1]
    b_shape = draw(st.sampled_from([(c,)] * 8 + [(c + 1,), (1, c)]))
    x = draw(spec(x_shape, draw(arg_dtype(dt))))
    b = draw(spec(b_shape, draw(arg_dtype(dt))))
    act, alpha = draw(act_names()), draw(st.sampled_from(ALPHAS))
    kwargs, inplace = out_modes(draw, x_shape, dt, 0)
    return Case((x, b, act, alpha), _drop_accumulate(kwargs), inplace)


def bias_act_run(op, case):
    def returns_out(result, args, kwargs):
        if kwargs.get("out") is not None:
            assert result is kwargs["out"], "bias_act did not return out"
    check(op, case, act_tol(op), extra=returns_out)


test_bias_act, test_bias_act_long = fuzz_tests(bias_act_cases, bias_act_run, ("bias_act",))


@st.composite
def act_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    act, alpha = draw(act_names()), draw(st.sampled_from(ALPHAS))
    if op == "act_forward":
        return Case((draw(spec(shape, draw(arg_dtype(dt)))), act, alpha))
    g, x, y = (draw(spec(shape, draw(arg_dtype(dt)))) for _ in range(3))
    if draw(st.integers(0, 9)) == 0:          # a shape mismatch
        y = draw(spec(shape + (2,), dt))
    return Case((g, x, y, act, alpha))


test_act, test_act_long = fuzz_tests(
    act_cases, lambda op, case: check(op, case, act_tol(op),
                                      loose_nonfinite=op == "act_backward"),  # inf · (1e-40 | 0)
    ("act_forward", "act_backward"))


# dropout: y = x · [bits(seed, i) >= t] / (1 - rate). The mask is integer arithmetic on (seed,
# index), so the kernel must match the twin exactly (up to subnormals, which it reads as 0).
@st.composite
def dropout_cases(draw, op):
    dt = draw(dtypes())
    x = draw(spec(draw(shapes(0, 3)), draw(arg_dtype(dt))))
    rate = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.999] * 4 + [1.0, -0.5, float("nan")]))
    seed = draw(st.one_of(st.sampled_from([0, 1, 2 ** 63, 2 ** 64 - 1]),
                          st.integers(0, 2 ** 64 - 1), st.sampled_from([-1, 2 ** 64, 1.5])))
    return Case((x, rate, seed))


def dropout_tol(args, kwargs, wants):
    return 0.0, [2 * tiny(w.dtype) for w in wants]


test_dropout, test_dropout_long = fuzz_tests(
    dropout_cases, lambda op, case: check(op, case, dropout_tol), ("dropout",))


# dx = g · act'(x) and db (+)= Σ_rows dx in one op (a Linear layer's fused backward): dx as
# act_backward's, db summed in row chunks (not numpy's order), so bounded as a sum of |dx|.

@st.composite
def act_bias_grad_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    act, alpha = draw(act_names()), draw(st.sampled_from(ALPHAS))
    g, x, y = (draw(spec(shape, draw(arg_dtype(dt)))) for _ in range(3))
    if draw(st.integers(0, 9)) == 0:          # a shape mismatch
        y = draw(spec(shape + (2,), dt))
    kwargs, inplace = [], []
    mode = draw(st.sampled_from(["new", "db", "accumulate", "accumulate without db"]))
    if mode == "accumulate without db":
        kwargs.append(("accumulate", True))
    elif mode != "new":
        c_shape = shape[-1:] if draw(st.integers(0, 9)) else (shape[-1:] or (1,)) + (1,)
        db = draw(spec(c_shape, draw(arg_dtype(dt)), A.WRITABLE + ("readonly",)))
        kwargs += [("db", db), ("accumulate", mode == "accumulate")]
        inplace.append("db")
    out_mode = draw(st.sampled_from(["none", "out", "out is grad_out"]))
    if out_mode == "out":
        kwargs.append(("out", draw(spec(shape, draw(arg_dtype(dt)), A.WRITABLE + ("readonly",)))))
        inplace.append("out")
    elif out_mode == "out is grad_out":
        kwargs.append(("out", Same(0)))
        inplace.append("out")
    return Case((g, x, y, act, alpha), tuple(kwargs), tuple(inplace))


def act_bias_grad_run(op, case):
    dx_tol = act_tol("act_backward")

    def tol(args, kwargs, wants):
        rtol, (dx_atol, _) = dx_tol(args, kwargs, wants[:2])
        dt = wants[0].dtype
        c = wants[0].shape[-1]
        rows = math.prod(wants[0].shape[:-1])
        with np.errstate(all="ignore"):
            dx = np.abs(f64(wants[0])).reshape(rows, c)
            bound = (dx * rtol + np.broadcast_to(dx_atol, wants[0].shape).reshape(rows, c))
            bound = bound.sum(axis=0) + 2 * (rows + 2) * eps(dt) * dx.sum(axis=0)
            if kwargs.get("accumulate"):
                bound = bound + 2 * eps(dt) * np.abs(f64(kwargs["db"]))
            db_atol = np.where(A.overflows(dx.sum(axis=0), dt), np.inf, bound + 4 * rows * tiny(dt))
        return rtol, [dx_atol, db_atol] + [db_atol if k == "db" else dx_atol
                                           for k in case.inplace]

    def returns_targets(result, args, kwargs):
        assert isinstance(result, tuple) and len(result) == 2
        for i, k in enumerate(("out", "db")):
            if kwargs.get(k) is not None:
                assert result[i] is kwargs[k], f"{op} did not return {k}"

    check(op, case, tol, extra=returns_targets, loose_nonfinite=True)


test_act_bias_grad, test_act_bias_grad_long = fuzz_tests(
    act_bias_grad_cases, act_bias_grad_run, ("act_backward_bias_grad",))


# ----------------------------------------------------------------------------- bias gradient

@st.composite
def bias_grad_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    g = draw(spec(shape, draw(arg_dtype(dt))))
    kwargs, inplace = out_modes(draw, shape[-1:], dt)
    return Case((g,), kwargs, inplace)


def bias_grad_run(op, case):
    def tol(args, kwargs, wants):
        g = f64(args[0])
        dt = wants[0].dtype
        rows = math.prod(g.shape[:-1])
        with np.errstate(all="ignore"):
            bound = np.abs(g).reshape(rows, g.shape[-1]).sum(axis=0)
            if kwargs.get("accumulate"):
                bound = bound + np.abs(f64(kwargs["out"]))
            atol = 2 * (rows + 2) * eps(dt) * bound + 4 * rows * tiny(dt)
        return 2 * eps(dt), [atol] * len(wants)

    def returns_out(result, args, kwargs):
        if kwargs.get("out") is not None:
            assert result is kwargs["out"], "bias_grad did not return out"

    check(op, case, tol, extra=returns_out)


test_bias_grad, test_bias_grad_long = fuzz_tests(bias_grad_cases, bias_grad_run, ("bias_grad",))


# ----------------------------------------------------------------------------- softmax

@st.composite
def softmax_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    if op == "softmax":
        return Case((draw(spec(shape, draw(arg_dtype(dt)))),))
    g = draw(spec(shape, draw(arg_dtype(dt))))
    y = draw(spec(shape, draw(arg_dtype(dt))))
    return Case((g, y))


def softmax_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        x = f64(args[-1])
        c = x.shape[-1] if x.ndim else 1
        e = eps(dt)
        if op == "softmax":         # outputs in [0, 1]; exp is a few ulp
            return 2e-5 if dt == A.F32 else 1e-12, [4 * (c + 4) * e]
        g, y = f64(args[0]), x
        with np.errstate(all="ignore"):
            s = np.abs(g * y).sum(axis=-1, keepdims=True)
            # (+ |y|·tiny: g - Σ g·y may be flushed to zero before y multiplies it)
            atol = 4 * (c + 4) * e * np.abs(y) * (np.abs(g) + s) + 16 * tiny(dt) * (1 + np.abs(y))
        return 4 * e, [atol]

    check(op, case, tol)


test_softmax, test_softmax_long = fuzz_tests(softmax_cases, softmax_run,
                                             ("softmax", "softmax_backward"))


@st.composite
def cross_entropy_cases(draw, op):
    dt = draw(dtypes())
    n, c = draw(A.sizes()), draw(A.sizes())
    logits = draw(spec(draw(st.sampled_from([(n, c)] * 8 + [(n,), (1, n, c)])),
                       draw(arg_dtype(dt))))
    kind = draw(st.sampled_from(["ok"] * 8 + ["negative", "too big", "fractional", "shape"]))
    lo, hi = {"ok": (0, max(c, 1)), "negative": (-2, 0), "too big": (c, c + 3),
              "fractional": (0, max(c, 1)), "shape": (0, max(c, 1))}[kind]
    label_dt = draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int16, np.uint64,
                                     np.float64]))
    vals = A.Values(seed=draw(st.integers(0, 2 ** 16)), ints=(lo, hi))
    shape = (n + 1,) if kind == "shape" else (n,)
    labels = A.Spec(shape, np.dtype(label_dt), draw(st.sampled_from(["c", "neg", "step",
                                                                      "list"])), 0, vals)
    if kind == "fractional":
        labels = A.Spec(shape, A.F64, "c", 0, A.Values(seed=vals.seed, scale=0.3))
    return Case((logits, labels))


def cross_entropy_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[1].dtype
        z = f64(args[0])
        n, c = z.shape
        e = eps(dt)
        with np.errstate(all="ignore"):
            zs = np.abs(z - z.max(axis=1, keepdims=True))
            loss_atol = 8 * (c + 4) * e * (float(np.mean(zs.max(axis=1))) + math.log(c) + 1)
        return (2e-5 if dt == A.F32 else 1e-12), [loss_atol, 4 * (c + 4) * e / n]

    check(op, case, tol)


test_cross_entropy, test_cross_entropy_long = fuzz_tests(
    cross_entropy_cases, cross_entropy_run, ("softmax_cross_entropy",))


# ----------------------------------------------------------------------------- optimizer steps

def _inplace_tol(args, kwargs, wants):
    """An update p ← f(p, g, state...) is exact to a few ulp of the terms it adds: bound by the
    magnitudes of every same-shaped input and of the twin's outputs."""
    arrays = [a for a in _flat_arrays(args) + _flat_arrays(list(kwargs.values()))]
    atols = []
    for w in wants:
        dt = w.dtype
        with np.errstate(all="ignore"):
            s = np.abs(f64(w))
            for a in arrays:
                if np.shape(a) == w.shape:
                    s = s + np.abs(f64(a))
        atols.append(32 * eps(dt) * s + 64 * tiny(dt))
    return 8 * eps(wants[0].dtype) if wants else 0, atols


def _flat_arrays(x):
    out = []
    for a in x:
        if isinstance(a, list):
            out += _flat_arrays(a)
        elif isinstance(a, np.ndarray):
            out.append(a)
    return out


def _not_contiguous(exc, args, kwargs):
    """Documented: an optimizer step updates param and its state through a flat view, so a
    non-C-contiguous one is refused (nnlite/ops/_checks.py, inplace_arrays)."""
    return isinstance(exc, ValueError) and "must be C-contiguous to be updated in place" in str(exc)


def inplace_spec(draw, shape, dt, positive=False):
    """An array the step updates: contiguous (maybe unaligned), now and then another layout
    (refused, documented) or read-only (refused by both)."""
    layouts = list(A.INPLACE) * 6 + ["perm", "neg", "step", "readonly"]
    return draw(A.specs(shape, draw(arg_dtype(dt)), layouts,
                        A.values(positive=positive)))


LRS = (0.01, 0.1, 1.0, 0.0, 1e-3)
WDS = (0.0, 0.01, 0.1)


@st.composite
def sgd_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    p = inplace_spec(draw, shape, dt)
    g = draw(spec(shape, draw(arg_dtype(dt))))
    momentum = draw(st.sampled_from((0.0, 0.9, 0.5)))
    vel = inplace_spec(draw, shape, dt) if momentum or draw(st.booleans()) else None
    kw = (("lr", draw(st.sampled_from(LRS))), ("momentum", momentum),
          ("nesterov", draw(st.booleans())), ("weight_decay", draw(st.sampled_from(WDS))))
    return Case((p, g, vel), kw, (0, 2) if momentum else (0,))


@st.composite
def rmsprop_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    p = inplace_spec(draw, shape, dt)
    g = draw(spec(shape, draw(arg_dtype(dt))))
    sq = inplace_spec(draw, shape, dt, positive=True)
    kw = (("lr", draw(st.sampled_from(LRS))), ("alpha", draw(st.sampled_from((0.99, 0.9, 0.0)))),
          ("eps", draw(st.sampled_from((1e-8, 0.0, 1e-3)))),
          ("weight_decay", draw(st.sampled_from(WDS))))
    return Case((p, g, sq), kw, (0, 2))


def _adam_kwargs(draw):
    return (("lr", draw(st.sampled_from(LRS))),
            ("beta1", draw(st.sampled_from((0.9, 0.0, 0.5, 1.0)))),
            ("beta2", draw(st.sampled_from((0.999, 0.99, 0.0)))),
            ("eps", draw(st.sampled_from((1e-8, 0.0, 1e-3)))),
            ("step", draw(st.sampled_from((1, 2, 3, 100, 2 ** 31, 2 ** 62)))),
            ("decoupled", draw(st.booleans())))


@st.composite
def adam_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(0, 3))
    p = inplace_spec(draw, shape, dt)
    g = draw(spec(shape, draw(arg_dtype(dt))))
    m = inplace_spec(draw, shape, dt)
    v = inplace_spec(draw, shape, dt, positive=True)
    kw = _adam_kwargs(draw) + (("weight_decay", draw(st.sampled_from(WDS))),)
    return Case((p, g, m, v), kw, (0, 2, 3))


@st.composite
def adam_many_cases(draw, op):
    n = draw(st.integers(0, 3))
    ps, gs, ms, vs = [], [], [], []
    for _ in range(n):
        dt = draw(dtypes())
        shape = draw(shapes(0, 2, 1000))
        ps.append(inplace_spec(draw, shape, dt))
        gs.append(draw(spec(shape, draw(arg_dtype(dt)))))
        ms.append(inplace_spec(draw, shape, dt))
        vs.append(inplace_spec(draw, shape, dt, positive=True))
    if draw(st.booleans()):
        wds = draw(st.sampled_from(WDS))
    else:
        wds = draw(st.lists(st.sampled_from(WDS), min_size=n, max_size=n + (
            1 if draw(st.integers(0, 9)) == 0 else 0)))
    kw = _adam_kwargs(draw) + (("weight_decays", wds),)
    return Case((ps, gs, ms, vs), kw, (0, 2, 3))


def optim_run(op, case):
    check(op, case, _inplace_tol, documented=_not_contiguous)


test_sgd, test_sgd_long = fuzz_tests(sgd_cases, optim_run, ("sgd_update",))
test_rmsprop, test_rmsprop_long = fuzz_tests(rmsprop_cases, optim_run, ("rmsprop_update",))
test_adam, test_adam_long = fuzz_tests(adam_cases, optim_run, ("adam_update",))
test_adam_many, test_adam_many_long = fuzz_tests(adam_many_cases, optim_run,
                                                 ("adam_update_many",))


# ----------------------------------------------------------------------------- attention

SCALES = (None, None, 0.125, 1.0, 10.0, 0.0, -1.0)


@st.composite
def qkv(draw, max_elems=6000):
    dt = draw(dtypes())
    b, h = draw(st.sampled_from((1, 2, 0))), draw(st.sampled_from((1, 2, 3)))
    t = draw(A.sizes())                 # up to 65: two tiles of 64 keys
    d = draw(A.sizes(max(2, min(65, max_elems // max(1, b * h * t)))))
    shape = (b, h, t, d)
    return dt, shape, [draw(spec(shape, draw(arg_dtype(dt)))) for _ in range(3)]


def _lse(causal, scale):
    def lse(q, k, v):
        return ref.attention(q, k, v, causal=causal, scale=scale, return_lse=True)[1]
    lse.__name__ = f"lse(causal={causal}, scale={scale})"
    return lse


def _out(causal, scale):
    def out(q, k, v):
        return ref.attention(q, k, v, causal=causal, scale=scale)
    out.__name__ = f"attention(causal={causal}, scale={scale})"
    return out


@st.composite
def attention_cases(draw, op):
    dt, shape, (q, k, v) = draw(qkv())
    causal, scale = draw(st.booleans()), draw(st.sampled_from(SCALES))
    if op == "attention":
        return Case((q, k, v), (("causal", causal), ("scale", scale),
                                ("return_lse", draw(st.booleans()))))
    out = Derived(_out(causal, scale), (0, 1, 2)) if draw(st.booleans()) else \
        draw(spec(shape, draw(arg_dtype(dt))))
    g = draw(spec(shape, draw(arg_dtype(dt))))
    kw = (("causal", causal), ("scale", scale))
    if draw(st.booleans()):
        kw += (("lse", Derived(_lse(causal, scale), (0, 1, 2))),)
    return Case((q, k, v, out, g), kw)


def _masked_by_skipping(args, kwargs, op):
    """Attention with the causal mask applied by leaving the masked keys out (what the kernel
    does: it skips whole 64-key tiles above the diagonal), row by row in float64; the twin
    multiplies them by a probability of 0, which gives NaN where an input is inf or NaN. Both
    are legitimate readings for non-finite inputs."""
    q, k, v = (np.asarray(a, np.float64) for a in args[:3])
    causal, scale = kwargs["causal"], kwargs["scale"]
    if not causal or all(np.isfinite(a).all() for a in args if isinstance(a, np.ndarray)):
        return None
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    B, H, T, _ = q.shape
    out, lse = np.zeros_like(q), np.zeros(q.shape[:3])
    dq, dk, dv = np.zeros_like(q), np.zeros_like(q), np.zeros_like(q)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                kk, vv = k[b, h, :t + 1], v[b, h, :t + 1]
                sc = kk @ q[b, h, t] * s
                m = sc.max()
                e = np.exp(sc - m)
                z = e.sum()
                p = e / z
                out[b, h, t], lse[b, h, t] = p @ vv, m + np.log(z)
                if op == "attention_backward":
                    o, g = np.asarray(args[3], np.float64), np.asarray(args[4], np.float64)
                    dv[b, h, :t + 1] += np.outer(p, g[b, h, t])
                    ds = p * (vv @ g[b, h, t] - g[b, h, t] @ o[b, h, t])
                    dq[b, h, t] += ds @ kk * s
                    dk[b, h, :t + 1] += np.outer(ds, q[b, h, t]) * s
    if op == "attention":
        return [out, lse] if kwargs.get("return_lse") else [out]
    return [dq, dk, dv]


def _probs(q, k, causal, scale):
    with np.errstate(all="ignore"):
        return ref._attention_probs(q, k, causal, scale)[0]


def attention_run(op, case):
    """Error bounds: a score s = scale·q·k is off by E ~ D·eps·|scale|·Σ|q||k| (float
    rounding), which moves each probability P = exp(s - lse) by a factor up to e^(±2E):
    relative error e^(2E) - 1 (~2E when small; inf, any value, once e^(2E) overflows: scores
    of ~1e29 are rounded by more than the exponent range, and a given ``lse`` that is not the
    kernel's own may put exp(s - lse) anywhere in [0, inf]). Everything downstream is bounded
    with absolute values (|P|, |V|, ...) times that factor plus ~(T + D)·eps."""
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        q, k, v = (f64(a) for a in args[:3])
        causal, scale = kwargs["causal"], kwargs["scale"]
        s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        t, d = q.shape[2], q.shape[3]
        e, fl = eps(dt), 64 * (t + d) * tiny(dt)
        mask = np.tril(np.ones((t, t), bool)) if causal else np.ones((t, t), bool)
        with np.errstate(all="ignore"):
            p = _probs(q, k, causal, s)
            err = 4 * (d + 2) * e * abs(s) * (np.abs(q) @ np.swapaxes(np.abs(k), -1, -2))
            big_e = np.where(mask, err, 0).max(axis=-1, keepdims=True)        # (B,H,T,1)
            cond = np.expm1(2 * big_e) + 8 * (t + d + 2) * e
            # P's absolute error; + tiny: a P below the normal range is flushed to 0 (FTZ),
            # which a huge V makes visible
            perr = np.where(mask, cond * p + 2 * tiny(dt), 0)
            if op == "attention":       # (NaN: inf · 0 in a bound, i.e. no bound)
                atol = [perr @ np.abs(v) + fl]
                if kwargs.get("return_lse"):
                    atol.append(2 * big_e[..., 0] + 8 * e * np.abs(f64(wants[1])) + fl)
                return 4 * e, [np.where(np.isnan(a), np.inf, a) for a in atol]
            o, g = f64(args[3]), f64(args[4])
            dp = np.abs(g) @ np.swapaxes(np.abs(v), -1, -2)
            delta = np.abs(g * o).sum(axis=-1, keepdims=True)
            ds = p * (dp + delta)                                   # |dS|
            ds_err = (perr + 4 * (d + 2) * e * p) * (dp + delta) + 2 * tiny(dt)
            ds_err = np.where(mask, ds_err + 4 * (t + 2) * e * ds, 0)
            sc = abs(s)
            dq = (ds_err @ np.abs(k)) * sc + fl
            dk = (np.swapaxes(ds_err, -1, -2) @ np.abs(q)) * sc + fl
            dv = np.swapaxes(perr + 4 * (t + 2) * e * p, -1, -2) @ np.abs(g) + fl
        return 4 * e, [np.where(np.isnan(a), np.inf, a) for a in (dq, dk, dv)]

    check(op, case, tol, readings=[lambda args, kwargs: _masked_by_skipping(args, kwargs, op)],
          loose_nonfinite=True)


test_attention, test_attention_long = fuzz_tests(attention_cases, attention_run,
                                                 ("attention", "attention_backward"))


# ----------------------------------------------------------------------------- layernorm

def _ln_stats(eps_):
    def stats(x, gamma, beta):
        return ref.layernorm(x, gamma, beta, eps_)[1]
    stats.__name__ = f"layernorm_mean(eps={eps_})"

    def rstd(x, gamma, beta):
        return ref.layernorm(x, gamma, beta, eps_)[2]
    rstd.__name__ = f"layernorm_rstd(eps={eps_})"
    return stats, rstd


@st.composite
def layernorm_cases(draw, op):
    dt = draw(dtypes())
    shape = draw(shapes(1, 3))
    c = shape[-1]
    gshape = draw(st.sampled_from([(c,)] * 8 + [(c + 1,)]))
    x = draw(spec(shape, draw(arg_dtype(dt))))
    gamma = draw(spec(gshape, draw(arg_dtype(dt))))
    beta = draw(spec((c,), draw(arg_dtype(dt))))
    eps_ = draw(st.sampled_from((1e-5, 1e-12, 0.0, 1.0)))
    if op == "layernorm":
        return Case((x, gamma, beta), (("eps", eps_),))
    g = draw(spec(shape, draw(arg_dtype(dt))))
    if draw(st.booleans()):      # the forward's statistics (as training passes them)
        mean_fn, rstd_fn = _ln_stats(eps_)
        # the twin's forward, on x, gamma and a beta of gamma's shape
        return Case((g, x, gamma, Derived(mean_fn, (1, 2, 2)), Derived(rstd_fn, (1, 2, 2))))
    mean = draw(spec(shape[:-1], draw(arg_dtype(dt))))
    rstd = draw(spec(shape[:-1], draw(arg_dtype(dt)), positive=True))
    kwargs = ()
    if draw(st.booleans()):      # a skip connection's gradient, added to dx
        kwargs = (("residual", draw(spec(shape, draw(arg_dtype(dt))))),)
    return Case((g, x, gamma, mean, rstd), kwargs)


def _inf_or_finite(a):
    """|a| in float64 with NaN set to 0 (a NaN row is compared as NaN) and inf kept."""
    a = np.abs(np.asarray(a, np.float64))
    return np.where(np.isnan(a), 0.0, a)


def layernorm_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        e = eps(dt)
        with np.errstate(all="ignore"):
            if op == "layernorm":
                x, gamma, beta = (f64(a) for a in args[:3])
                c = x.shape[-1]
                rstd = _inf_or_finite(wants[2])                   # inf: a row of equal values
                big = np.abs(x).max(axis=-1)                      # (rows,)
                r = big * rstd                                    # condition of x - mean
                fl = 64 * c * tiny(dt)
                cy = 4 * (c + 4) * e * (r + r * r)
                # x̂ off by 1 or more, or an infinite or NaN condition (ε = 0 and a constant
                # row: rstd = 1/√(rounding noise), finite in one rounding, inf in the other):
                # any value is right
                cy = np.where(np.isfinite(cy) & (cy < 1), cy, np.inf)[..., None]
                y = np.where(np.isinf(cy), np.inf, cy * np.abs(gamma) + 4 * e * np.abs(beta) + fl)
                cr = 4 * (c + 4) * e * (1 + r * r)
                cr = np.where(np.isfinite(cr) & (cr < 1), cr * rstd + fl, np.inf)
                return 4 * e, [y, 4 * (c + 4) * e * big + fl, cr]
            g, x, gamma, mean = (f64(a) for a in args[:4])
            rstd = _inf_or_finite(args[4])                       # inf stays inf: see the end
            c = x.shape[-1]
            rows = max(1, x.size // max(c, 1))
            xh = np.abs(x - mean[..., None]) * np.abs(rstd[..., None])
            rx = (np.abs(x) + np.abs(mean[..., None])) * np.abs(rstd[..., None])
            ah = xh + rx
            dxh = np.abs(g * gamma)
            fl = 64 * (c + rows) * tiny(dt)
            dx = 4 * (c + 4) * e * np.abs(rstd[..., None]) * (
                dxh + dxh.mean(axis=-1, keepdims=True)
                + ah * (dxh * ah).mean(axis=-1, keepdims=True)) + fl
            axes = tuple(range(x.ndim - 1))
            dgamma = 4 * (rows + 4) * e * (np.abs(g) * ah).sum(axis=axes) + fl
            dbeta = 4 * (rows + 4) * e * np.abs(g).sum(axis=axes) + fl
            # x̂ off by 1 or more in a row (mean and rstd far from x's): rounding noise
            noise = (4 * (c + 4) * e * rx.max(axis=-1) >= 1)[..., None]
            dx = np.where(noise, np.inf, dx)
            if kwargs.get("residual") is not None:     # added after: its own rounding
                dx = dx + 4 * e * np.abs(f64(kwargs["residual"]))
            if noise.any():
                dgamma = np.full_like(dgamma, np.inf)
            # an infinite rstd (ε = 0 and a constant row) makes x̂ = 0·inf: any value is right
            return 4 * e, [np.where(np.isnan(a), np.inf, a) for a in (dx, dgamma, dbeta)]

    check(op, case, tol, loose_nonfinite=True)


test_layernorm, test_layernorm_long = fuzz_tests(layernorm_cases, layernorm_run,
                                                 ("layernorm", "layernorm_backward"))


# ----------------------------------------------------------------------------- embedding

@st.composite
def embedding_cases(draw, op):
    dt = draw(dtypes())
    vocab, c = draw(A.sizes()), draw(A.sizes())
    ids_shape = draw(shapes(0, 3, 500))
    kind = draw(st.sampled_from(["ok"] * 10 + ["negative", "too big", "float"]))
    lo, hi = {"ok": (0, max(vocab, 1)), "negative": (-3, 0), "too big": (vocab, vocab + 2),
              "float": (0, max(vocab, 1))}[kind]
    id_dt = np.float64 if kind == "float" else draw(st.sampled_from(
        [np.int64, np.int32, np.uint8, np.int16, np.uint64, np.int8]))
    ids = A.Spec(ids_shape, np.dtype(id_dt), draw(st.sampled_from(
        ["c", "neg", "step", "perm", "unaligned", "bcast", "list"])), draw(st.integers(0, 3)),
        A.Values(seed=draw(st.integers(0, 2 ** 16)), ints=(lo, hi)))
    if op == "embedding":
        return Case((ids, draw(spec((vocab, c), draw(arg_dtype(dt))))))
    gshape = draw(st.sampled_from([ids_shape + (c,)] * 8 + [ids_shape + (c + 1,)]))
    g = draw(spec(gshape, draw(arg_dtype(dt))))
    dtable = draw(spec((vocab, c), draw(arg_dtype(dt)), A.WRITABLE + ("readonly",)))
    return Case((ids, g, dtable), (), (2,))


def embedding_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        if op == "embedding":
            return 0.0, [0.0]                       # a gather: exact
        ids = np.asarray(args[0]).reshape(-1).astype(np.int64)
        g, table = f64(args[1]), f64(args[2])
        with np.errstate(all="ignore"):
            s = np.abs(table).copy()
            np.add.at(s, ids, np.abs(g).reshape(ids.size, table.shape[1]))
        return 2 * eps(dt), [4 * (ids.size + 2) * eps(dt) * s + 8 * (ids.size + 1) * tiny(dt)]

    check(op, case, tol)


test_embedding, test_embedding_long = fuzz_tests(embedding_cases, embedding_run,
                                                 ("embedding", "embedding_backward"))


# ----------------------------------------------------------------------------- convolution
# Finite values only (zeros and subnormals among them): a convolution's error bound is that of
# a dot product, |w| ⋆ |x| times its length, computed by the twin on absolute values.
CONV_OPS = ("conv2d", "conv2d_input_grad", "conv2d_backward")
POOL_OPS = ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")
BN_OPS = ("batchnorm", "batchnorm_backward", "batchnorm_inference")


def _clean(shape, dt, positive=False):
    return spec(shape, dt, specials=("zero", "subnormal"), positive=positive)


@st.composite
def _geometry(draw):
    """(kernel, stride, padding, dilation) pairs, small."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return k, s, p, d


@st.composite
def conv_cases(draw, op):
    dt = draw(dtypes())
    G = draw(st.sampled_from([1, 1, 2, 3]))
    N, Cg, Og = draw(st.sampled_from([0, 1, 2, 3])), draw(st.integers(1, 4)), draw(
        st.integers(1, 4))
    C, O = Cg * G, Og * G
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    k, stride, pad, dil = draw(_geometry())
    wshape = (O, Cg + draw(st.sampled_from([0] * 12 + [1])), *k)   # now and then a bad C
    w = draw(_clean(wshape, draw(arg_dtype(dt))))
    geo = (("stride", stride), ("padding", pad), ("dilation", dil), ("groups", G))
    out = [(n + 2 * q - e * (kk - 1) - 1) // ss + 1
           for n, kk, ss, q, e in zip((H, W), k, stride, pad, dil)]
    gshape = (N, O, max(out[0], 1), max(out[1], 1))
    if op == "conv2d_input_grad":
        g = draw(_clean(gshape, draw(arg_dtype(dt))))
        return Case((g, w, (H, W)), geo)
    x = draw(_clean((N, C, H, W), draw(arg_dtype(dt))))
    if op == "conv2d":
        b = draw(st.one_of(st.just(None), _clean((O,), draw(arg_dtype(dt)))))
        return Case((x, w, b), geo)
    g = draw(_clean(gshape, draw(arg_dtype(dt))))
    return Case((g, x, w), geo + (("input_grad", draw(st.booleans())),))


def conv_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        e = eps(dt)
        geo = {k: v for k, v in kwargs.items() if k != "input_grad"}
        with np.errstate(all="ignore"):
            if op == "conv2d":
                x, w = f64(args[0]), f64(args[1])
                b = np.zeros(w.shape[0]) if args[2] is None else np.abs(f64(args[2]))
                n = w[0].size + 2
                return 4 * e, [4 * n * e * ref.conv2d(np.abs(x), np.abs(w), b, **geo)
                               + 8 * n * tiny(dt)]
            if op == "conv2d_input_grad":
                g, w = f64(args[0]), f64(args[1])
                n = w.shape[0] * w[0, 0].size + 2
                return 4 * e, [4 * n * e * ref.conv2d_input_grad(np.abs(g), np.abs(w), args[2],
                                                                 **geo) + 8 * n * tiny(dt)]
            g, x, w = (np.abs(f64(a)) for a in args[:3])
            dx, dw, db = ref.conv2d_backward(g, x, w, **geo,
                                             input_grad=kwargs.get("input_grad", True))
            n = g.size + w.size + 2
            outs = [dw, db] if dx is None else [dx, dw, db]      # dx None: not an output
            return 4 * e, [4 * n * e * a + 8 * n * tiny(dt) for a in outs]

    check(op, case, tol)


test_conv, test_conv_long = fuzz_tests(conv_cases, conv_run, CONV_OPS)


def _pool_argmax(x_spec, kernel, stride, padding):
    """The forward's argmax for an input drawn as ``x_spec`` (the backward's index input)."""
    def argmax():
        return ref.max_pool2d(x_spec.make(), kernel, stride, padding)[1]
    argmax.__name__ = f"max_pool2d_argmax({kernel}, {stride}, {padding})"
    return argmax


@st.composite
def pool_cases(draw, op):
    dt = draw(dtypes())
    N, C = draw(st.sampled_from([0, 1, 2, 3])), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.just(None), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    s = k if stride is None else stride
    out = [max((n + 2 * q - kk) // ss + 1, 1) for n, kk, ss, q in zip((H, W), k, s, pad)]
    x = draw(_clean((N, C, H, W), draw(arg_dtype(dt))))
    if op in ("max_pool2d", "avg_pool2d"):
        return Case((x, k, stride, pad))
    g = draw(_clean((N, C, *out), draw(arg_dtype(dt))))
    if op == "avg_pool2d_backward":
        return Case((g, (H, W), k, stride, pad))
    xs = draw(_clean((N, C, H, W), A.F64, ("c",)))
    return Case((g, Derived(_pool_argmax(xs, k, stride, pad), ()), (H, W)))


def pool_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        e = eps(dt)
        with np.errstate(all="ignore"):
            if op == "max_pool2d":
                return 0.0, [0.0, 0.0]          # a choice: exact, argmax included
            if op == "avg_pool2d":
                x = np.abs(f64(args[0]))
                kk = np.prod(args[1]) if np.ndim(args[1]) else args[1] ** 2
                return 4 * e, [4 * (kk + 2) * e * ref.avg_pool2d(x, *args[1:]) + tiny(dt)]
            g = np.abs(f64(args[0]))
            if op == "avg_pool2d_backward":
                return 4 * e, [40 * e * ref.avg_pool2d_backward(g, *args[1:]) + tiny(dt)]
            return 4 * e, [40 * e * ref.max_pool2d_backward(g, args[1], args[2]) + tiny(dt)]

    check(op, case, tol)


test_pool, test_pool_long = fuzz_tests(pool_cases, pool_run, POOL_OPS)


def _bn_stats(eps_):
    def mean(x, gamma, beta):
        return ref.batchnorm(x, gamma, beta, eps_)[1]
    mean.__name__ = f"batchnorm_mean(eps={eps_})"

    def rstd(x, gamma, beta):
        return ref.batchnorm(x, gamma, beta, eps_)[2]
    rstd.__name__ = f"batchnorm_rstd(eps={eps_})"
    return mean, rstd


@st.composite
def bn_cases(draw, op):
    dt = draw(dtypes())
    N, C = draw(st.sampled_from([1, 2, 3, 7])), draw(st.integers(1, 5))
    rest = draw(st.sampled_from([(), (1,), (5,), (3, 4), (7, 9)]))
    shape = (N, C, *rest)
    cshape = draw(st.sampled_from([(C,)] * 10 + [(C + 1,)]))
    x = draw(_clean(shape, draw(arg_dtype(dt))))
    gamma = draw(_clean(cshape, draw(arg_dtype(dt))))
    beta = draw(_clean((C,), draw(arg_dtype(dt))))
    eps_ = draw(st.sampled_from((1e-5, 1e-3, 1.0)))
    if op == "batchnorm":
        return Case((x, gamma, beta), (("eps", eps_),))
    if op == "batchnorm_inference":
        mean = draw(_clean((C,), draw(arg_dtype(dt))))
        var = draw(_clean((C,), draw(arg_dtype(dt)), positive=True))
        return Case((x, gamma, beta, mean, var), (("eps", eps_),))
    g = draw(_clean(shape, draw(arg_dtype(dt))))
    mean_fn, rstd_fn = _bn_stats(eps_)
    return Case((g, x, gamma, Derived(mean_fn, (1, 2, 2)), Derived(rstd_fn, (1, 2, 2))))


def bn_run(op, case):
    def tol(args, kwargs, wants):
        dt = wants[0].dtype
        e = eps(dt)
        eps_ = dict(kwargs).get("eps", 1e-5)
        with np.errstate(all="ignore"):
            x, gamma, beta = (np.abs(f64(a)) for a in args[1:4]) if op == "batchnorm_backward" \
                else (np.abs(f64(a)) for a in args[:3])
            C = x.shape[1]
            M = x.size // C
            axes = (0, *range(2, x.ndim))
            shape = (1, C) + (1,) * (x.ndim - 2)
            big = x.max(axis=axes)
            if op == "batchnorm_inference":
                scale = gamma / np.sqrt(f64(args[4]) + eps_)
                ymax = (x + np.abs(f64(args[3])).reshape(shape)) * scale.reshape(shape) + \
                    beta.reshape(shape)
                return 8 * e, [16 * e * ymax + tiny(dt)]
            rstd = 1 / np.sqrt(eps_) + 0 * big          # rstd <= 1/√ε: its worst case
            r = big * rstd
            c = 4 * (M + 4) * e * (1 + r + r * r)
            if op == "batchnorm":
                y = (c * gamma + 4 * e * beta).reshape(shape) + 64 * M * tiny(dt) + 0 * x
                return 4 * e, [y, 4 * (M + 4) * e * big + tiny(dt), c * rstd + tiny(dt)]
            g = np.abs(f64(args[0]))
            gs = g.sum(axis=axes)
            dx = (c * rstd * gamma * (g.max(axis=axes) + 2 * gs / M * (1 + r))).reshape(shape) \
                + 0 * g + 64 * M * tiny(dt)
            return 4 * e, [dx, c * gs * (1 + r) + tiny(dt), 4 * (M + 4) * e * gs + tiny(dt)]

    check(op, case, tol, loose_nonfinite=True)


test_bn, test_bn_long = fuzz_tests(bn_cases, bn_run, BN_OPS)


def test_every_compiled_op_is_fuzzed():
    """A new row of ops._TABLE needs its fuzz test here."""
    fuzzed = set(GEMM) | {"bias_act", "act_forward", "act_backward", "act_backward_bias_grad",
                          "bias_grad", "dropout", "softmax",
                          "softmax_backward", "softmax_cross_entropy", "sgd_update",
                          "rmsprop_update", "adam_update", "adam_update_many", "attention",
                          "attention_backward", "layernorm", "layernorm_backward",
                          "embedding", "embedding_backward", "sum_squares_many",
                          *CONV_OPS, *POOL_OPS, *BN_OPS}
    assert fuzzed == set(ops.OPS)


# ----------------------------------------------------------------------------- sum_squares_many
# Σ x² over a list of arrays, in float64 (the gradients' global norm). Within a 128-element
# chunk float32 squares are summed in float32: a relative error of a few float32 ulps, plus the
# squares of subnormal inputs that DAZ reads as 0.
_SPECIAL = (0.0, -0.0, 1e30, -1e30, 1e20, 1e-40, -1e-45, 3.4e38, np.inf, -np.inf, np.nan)


@st.composite
def squares_cases(draw):
    arrays = []
    for _ in range(draw(st.integers(0, 4))):
        dt = draw(st.sampled_from((np.float32, np.float64)))
        n = draw(st.sampled_from((0, 1, 7, 63, 65, 129, 257, 4099)))
        x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).standard_normal(2 * n)
        for _ in range(draw(st.integers(0, 3))):
            if n:
                x[draw(st.integers(0, 2 * n - 1))] = draw(st.sampled_from(_SPECIAL))
        x = x.astype(dt)
        layout = draw(st.sampled_from(("contiguous", "strided", "reversed", "unaligned")))
        if layout == "strided":
            x = x[::2]
        elif layout == "reversed":
            x = x[::-1][:n]
        elif layout == "unaligned":
            raw = np.zeros(n * x.itemsize + 1, np.uint8)[1:].view(dt)
            raw[...] = x[:n]
            x = raw
        else:
            x = x[:n]
        arrays.append(x)
    return arrays


def _squares_check(arrays):
    got, want = ops.sum_squares_many(arrays), ref.sum_squares_many(arrays)
    if math.isnan(want):
        assert math.isnan(got)
    elif math.isinf(want):
        assert got == want
    else:
        floor = sum(a.size for a in arrays) * 1e-76
        assert abs(got - want) <= 1e-6 * want + floor, (got, want)


@settings(BOUNDED)
@given(squares_cases())
def test_sum_squares_many(arrays):
    _squares_check(arrays)


@pytest.mark.fuzz
@settings(LONG)
@given(squares_cases())
def test_sum_squares_many_long(arrays):
    _squares_check(arrays)
