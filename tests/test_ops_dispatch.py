"""The ops dispatch table (op → {numpy twin, cpu kernel, ...}), array_module, the bias-gradient
op, and compiled kernels that answer odd input themselves instead of calling their twin."""
import copy
import inspect
import os

import numpy as np
import pytest

from _kernels import same_error
from nnlite import ops
from nnlite.ops import native_attention, native_gemm, native_nn, native_optim, native_pointwise
from nnlite.ops import reference as ref

NATIVE = os.environ.get("NNLITE_BACKEND", "").strip().lower() != "numpy"


# ----------------------------------------------------------------------------- the table


def test_every_op_has_a_twin_and_a_cpu_kernel():
    for op in ops.OPS:
        row = ops._TABLE[op]
        assert row["numpy"] is getattr(ref, op)
        assert inspect.signature(getattr(ops, op)) == inspect.signature(row["numpy"]), op
        if NATIVE:
            assert row["cpu"] is not None and row["cpu"] is not row["numpy"], op
            assert getattr(ops, op) is row["cpu"], op     # bound directly: no per-call cost
        else:
            assert getattr(ops, op) is row["numpy"], op


def test_native_wrappers_never_call_their_twin():
    for mod in (native_attention, native_gemm, native_nn, native_optim, native_pointwise):
        assert ref not in vars(mod).values(), mod.__name__
        assert not any(getattr(v, "__module__", None) == ref.__name__ for v in vars(mod).values())


def test_array_module():
    assert ops.array_module(np.zeros(3)) is np
    assert ops.array_module([1, 2]) is np and ops.array_module(2.0) is np


class FakeDeviceArray(np.ndarray):
    """Stands in for cupy.ndarray: a type of its own that a backend registers."""


@pytest.fixture
def fake_backend(monkeypatch):
    """ops with a third column for FakeDeviceArray, restored afterwards."""
    monkeypatch.setattr(ops, "_TABLE", copy.copy({k: dict(v) for k, v in ops._TABLE.items()}))
    monkeypatch.setattr(ops, "_RUNS", {k: dict(v) for k, v in ops._RUNS.items()})
    monkeypatch.setattr(ops, "_BACKEND_OF", dict(ops._BACKEND_OF))
    calls = []

    def fake_gemm(a, b, out=None, accumulate=False):
        calls.append("gemm")
        return ref.gemm(np.asarray(a), np.asarray(b)).view(FakeDeviceArray)

    def fake_adam_many(params, *args, **kwargs):
        calls.append("adam_update_many")

    fake_xp = object()
    ops.add_backend("fake", FakeDeviceArray, fake_xp,
                    {"gemm": fake_gemm, "adam_update_many": fake_adam_many})
    yield calls, fake_xp
    monkeypatch.undo()
    ops._bind()


def test_a_third_column_is_chosen_per_call(fake_backend, rng):
    calls, fake_xp = fake_backend
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(ops.gemm(a, b), a @ b, rtol=1e-5)      # numpy: the cpu column
    assert calls == []
    fa = a.view(FakeDeviceArray)
    assert type(ops.gemm(fa, b)) is FakeDeviceArray and calls == ["gemm"]
    ops.adam_update_many([fa], [fa], [fa], [fa])                       # by the first param
    assert calls == ["gemm", "adam_update_many"]
    assert ops.array_module(fa) is fake_xp and ops.array_module(a) is np
    assert ops.gemm.__doc__ == ops._TABLE["gemm"]["numpy"].__doc__
    with pytest.raises(NotImplementedError, match="softmax: the 'fake' backend has no kernel"):
        ops.softmax(fa)                                                # never a numpy detour


def test_add_backend_errors():
    with pytest.raises(ValueError, match="unknown ops"):
        ops.add_backend("x", FakeDeviceArray, np, {"gemmm": None})
    with pytest.raises(ValueError, match="built in"):
        ops.add_backend("cpu", FakeDeviceArray, np, {})


# ----------------------------------------------------------------------------- bias_grad


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (7, 63), (64, 256), (65, 257), (300, 1300), (5,),
                                   (2, 3, 65)])
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_bias_grad_matches_twin(rng, shape, dtype):
    g = rng.standard_normal(shape).astype(dtype)
    want = ref.bias_grad(g)
    got = ops.bias_grad(g)
    assert got.shape == shape[-1:] and got.dtype == dtype
    np.testing.assert_allclose(got, want, **tol(dtype))
    # summed row by row like numpy's sum(axis=0): bit-identical to the Linear layer's old code
    np.testing.assert_array_equal(got, g.reshape(-1, shape[-1]).sum(axis=0))
    db = rng.standard_normal(shape[-1]).astype(dtype)
    db2 = db.copy()
    assert ops.bias_grad(g, out=db, accumulate=True) is db
    db2 += g.reshape(-1, shape[-1]).sum(axis=0)
    np.testing.assert_array_equal(db, db2)
    assert ops.bias_grad(g, out=db) is db
    np.testing.assert_array_equal(db, want)


def test_bias_grad_odd_inputs(rng):
    g = rng.standard_normal((9, 40)).astype(np.float32)
    base = np.ones(80, np.float32)
    out = base[::2]                                          # non-contiguous out: written back
    ops.bias_grad(g[:, ::-1], out=out, accumulate=True)      # and a strided grad
    np.testing.assert_allclose(out, 1 + g[:, ::-1].sum(axis=0), rtol=1e-6)
    assert np.all(base[1::2] == 1)
    assert np.array_equal(ops.bias_grad(np.zeros((0, 4))), np.zeros(4))      # no rows: 0
    keep = np.full(4, 2.0)
    ops.bias_grad(np.zeros((0, 4)), out=keep, accumulate=True)
    assert np.all(keep == 2)
    assert ops.bias_grad(np.zeros((3, 0), np.float32)).shape == (0,)
    assert ops.bias_grad(np.ones((2, 3), np.int64)).dtype == np.float64      # like the twin


def test_bias_grad_errors_match_twin():
    g = np.zeros((4, 3), np.float32)
    f = (ops.bias_grad, ref.bias_grad)
    same_error(*f, np.float32(1))
    same_error(*f, g, out=np.zeros(4, np.float32))
    same_error(*f, g, out=np.zeros(3, np.float64))
    same_error(*f, g, accumulate=True)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    same_error(*f, g, out=ro)


# ----------------------------------------------------------------------------- odd input


def test_empty_and_0d_inputs_match_twin():
    e = np.zeros((0, 5), np.float32)
    g5 = np.ones(5, np.float32)
    for got, want in zip(ops.layernorm(e, g5, g5), ref.layernorm(e, g5, g5)):
        assert got.shape == want.shape and got.dtype == want.dtype
    m = np.zeros(0, np.float32)
    for got, want in zip(ops.layernorm_backward(e, e, g5, m, m),
                         ref.layernorm_backward(e, e, g5, m, m)):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    table = np.ones((4, 3), np.float32)
    assert ops.embedding(np.zeros((2, 0), np.int64), table).shape == (2, 0, 3)
    assert ops.embedding(np.array([1, 2]), np.ones((4, 0))).shape == (2, 0)
    d = np.zeros((4, 3), np.float32)
    ops.embedding_backward(np.zeros(0, np.int64), np.zeros((0, 3), np.float32), d)
    assert not d.any()
    x = np.float64(0.5)
    for act in ("relu", "gelu", "sigmoid"):
        np.testing.assert_allclose(ops.act_forward(x, act), ref.act_forward(x, act))
        np.testing.assert_allclose(ops.act_backward(x, x, x, act), ref.act_backward(x, x, x, act))
    assert ops.softmax(np.zeros((3, 0))).shape == (3, 0)
    assert ops.softmax_backward(np.zeros((0, 2)), np.zeros((0, 2))).shape == (0, 2)


def test_odd_input_errors_match_twin():
    x = np.zeros((2, 3), np.float32)
    g3 = np.ones(3, np.float32)
    m = np.zeros(2, np.float32)
    f = (ops.layernorm_backward, ref.layernorm_backward)
    same_error(*f, x, x, g3, np.zeros((2, 1), np.float32), m)     # stats of the wrong shape
    same_error(*f, x, x, g3, m, np.zeros(3, np.float32))
    same_error(*f, x, x, g3, m.astype(complex), m)
    e = np.zeros((2, 0), np.float32)
    same_error(ops.layernorm, ref.layernorm, e, np.ones(0, np.float32), np.ones(0, np.float32))
    same_error(ops.softmax_backward, ref.softmax_backward, np.float32(1), np.float32(1))
    ro = np.zeros((5, 3), np.float32)
    ro.flags.writeable = False
    same_error(ops.embedding_backward, ref.embedding_backward, np.array([1]), x[:1], ro)
    same_error(ops.bias_act, ref.bias_act, x, g3, out=ro[:2])
    p = np.zeros(3, np.float32)
    p.flags.writeable = False
    z = np.zeros(3, np.float32)
    same_error(ops.sgd_update, ref.sgd_update, p, z)
    same_error(ops.rmsprop_update, ref.rmsprop_update, z.copy(), z, p)
    same_error(ops.adam_update, ref.adam_update, z.copy(), z, z.copy(), p)
    same_error(ops.adam_update_many, ref.adam_update_many, [p], [z], [z.copy()], [z.copy()])
