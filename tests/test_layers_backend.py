"""Layers and losses compute through nnlite.ops and ``xp = ops.array_module(x)`` only, so a GPU
backend is one more column of the ops table. Checked with a stand-in backend: its arrays are a
numpy subclass of their own, its kernels the numpy twins; every op a layer calls must reach that
column (never the cpu one), and every array coming out must still be the backend's type."""
import inspect

import numpy as np
import pytest

import nnlite as nl
from nnlite import losses, ops
from nnlite.layers import Layer
from nnlite.ops import reference as ref


class DeviceArray(np.ndarray):
    """Stands in for cupy.ndarray."""


def _host(a):
    if isinstance(a, DeviceArray):
        return a.view(np.ndarray)
    if isinstance(a, (list, tuple)):
        return type(a)(_host(v) for v in a)
    return a


def _device(r):
    if type(r) is np.ndarray:
        return r.view(DeviceArray)
    if isinstance(r, tuple):
        return tuple(_device(v) for v in r)
    return r


class DeviceXP:
    """The stand-in backend's array module: numpy's functions, results as DeviceArray."""
    ndarray = DeviceArray

    def __getattr__(self, name):
        f = getattr(np, name)
        if not callable(f) or isinstance(f, type):
            return f                                    # dtypes, constants
        return lambda *a, **k: _device(f(*_host(a), **{n: _host(v) for n, v in k.items()}))


@pytest.fixture
def device(monkeypatch):
    """ops with a "device" column; the cpu/numpy column raises if a layer reaches it."""
    monkeypatch.setattr(ops, "_TABLE", {k: dict(v) for k, v in ops._TABLE.items()})
    monkeypatch.setattr(ops, "_RUNS", {k: dict(v) for k, v in ops._RUNS.items()})
    monkeypatch.setattr(ops, "_BACKEND_OF", dict(ops._BACKEND_OF))
    calls = []

    def leak(op):
        def run(*args, **kwargs):
            raise AssertionError(f"{op} reached the numpy-array column with "
                                 f"{type(args[0]).__name__}: a numpy array leaked out")
        return run

    def kernel(op):
        twin = getattr(ref, op)

        def run(*args, **kwargs):
            calls.append(op)
            return _device(twin(*_host(args), **{k: _host(v) for k, v in kwargs.items()}))
        return run

    for op in ops.OPS:
        ops._RUNS[op][np.ndarray] = leak(op)
    ops.add_backend("device", DeviceArray, DeviceXP(), {op: kernel(op) for op in ops.OPS})
    yield calls
    monkeypatch.undo()
    ops._bind()


def on_device(a):
    return np.ascontiguousarray(a).view(DeviceArray)


def run_layer(layer, x, rng):
    y = layer.forward(on_device(x))
    assert type(y) is DeviceArray, type(layer).__name__
    dx = layer.backward(on_device(rng.standard_normal(y.shape).astype(y.dtype)))
    assert dx is None or type(dx) is DeviceArray, type(layer).__name__
    return y


LAYERS = [
    lambda: nl.Linear(6, 5, rng=0), nl.ReLU, nl.GELU, nl.Tanh, lambda: nl.LeakyReLU(0.2),
    nl.Sigmoid, nl.Softmax, nl.Identity, nl.Flatten, lambda: nl.Dropout(0.5, rng=0),
    lambda: nl.LayerNorm(6), lambda: nl.Residual(nl.Linear(6, 6, rng=0)),
]


@pytest.mark.parametrize("make", LAYERS)
def test_layers_stay_on_the_backend(device, rng, make):
    run_layer(make(), rng.standard_normal((4, 3, 6)).astype(np.float32), rng)


def test_transformer_layers_stay_on_the_backend(device, rng):
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    run_layer(nl.MultiHeadAttention(8, 2, dropout=0.1, rng=0), x, rng)
    run_layer(nl.PositionalEmbedding(7, 8, rng=0), x, rng)
    emb = nl.Embedding(11, 8, rng=0)
    assert run_layer(emb, rng.integers(0, 11, (2, 5)), rng).shape == (2, 5, 8)
    assert {"attention", "attention_backward", "bias_act", "bias_grad", "embedding",
            "embedding_backward"} <= set(device)


@pytest.mark.parametrize("loss, target", [
    (losses.MSE(), lambda z, r: r.standard_normal(z.shape)),
    (losses.L1(), lambda z, r: r.standard_normal(z.shape)),
    (losses.CrossEntropy(), lambda z, r: r.integers(0, z.shape[-1], z.shape[:-1])),
    (losses.CrossEntropy(), lambda z, r: r.dirichlet(np.ones(z.shape[-1]), z.shape[:-1])),
    (losses.BinaryCrossEntropy(), lambda z, r: r.random(z.shape)),
])
def test_losses_stay_on_the_backend(device, rng, loss, target):
    z = rng.standard_normal((4, 3, 5)).astype(np.float32)
    t = target(z, rng)
    value = loss(on_device(z), on_device(t))
    assert isinstance(value, float) and np.isfinite(value)
    assert type(loss.backward()) is DeviceArray


def test_no_numpy_calls_in_forward_and_backward():
    """The contract, read off the source: layers' and losses' forward/backward bodies call
    no ``np.`` function (array work goes through ops or xp = ops.array_module(x))."""
    classes = [c for c in Layer.registry.values() if c.__module__.startswith("nnlite.layers")]
    classes += [c for c in losses.Loss.registry.values() if c.__module__ == "nnlite.losses"]
    assert len(classes) > 15
    for cls in classes:
        for name in ("forward", "backward"):
            fn = cls.__dict__.get(name)
            if fn is not None:
                assert "np." not in inspect.getsource(fn), f"{cls.__name__}.{name}"
