"""Inference (training=False: evaluate, predict, model.eval()) keeps no backward caches, and
gives what the training-mode forward gives for deterministic layers."""
import numpy as np
import pytest

import nnlite as nl
from nnlite.testing import check_layer_gradients


def _layers(layer):
    yield layer
    for sub in layer.sublayers():
        yield from _layers(sub)


def cached_arrays(model):
    """``[(layer, attribute)]`` for every array a layer holds outside params/grads."""
    held = []
    for layer in _layers(model):
        for k, v in vars(layer).items():
            if k in ("params", "grads") or not k.startswith("_"):
                continue
            if isinstance(v, np.ndarray) or (isinstance(v, tuple) and any(
                    isinstance(a, np.ndarray) for a in v)):
                held.append((type(layer).__name__, k))
    return held


def mlp():
    nl.random.seed(0)
    m = nl.Sequential([nl.Flatten(), nl.Dense(17, activation="relu"), nl.Linear(17, 9),
                       nl.Tanh(), nl.Dropout(0.3), nl.LayerNorm(9), nl.GELU(), nl.Sigmoid(),
                       nl.Linear(9, 3), nl.Softmax()])
    m.compile("adam", "mse")
    return m


def gpt():
    nl.random.seed(0)
    m = nl.models.GPT(13, 16, 2, 2, 8, dropout=0.1)
    m.compile(nl.optim.AdamW(1e-3), "cross_entropy")
    return m


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_training_step_holds_caches_evaluate_drops_them(rng):
    """The check itself can fail: a training forward leaves caches, evaluate() none."""
    m = mlp()
    x, y = rng.random((7, 2, 3), dtype=np.float32), rng.random((7, 3), dtype=np.float32)
    m.train_step(x, y)
    assert len(cached_arrays(m)) >= 8
    m.evaluate(x, y, batch_size=4)
    assert cached_arrays(m) == []
    m.train_step(x, y)                      # and training still works after it
    m.predict(x, batch_size=5)
    assert cached_arrays(m) == []


def test_gpt_evaluate_and_predict_hold_no_cache(rng):
    m = gpt()
    ids = rng.integers(0, 13, (3, 16))
    m.train_step(ids, ids)
    assert cached_arrays(m)
    m.evaluate(ids, ids, batch_size=2)
    assert cached_arrays(m) == []
    m.train_step(ids, ids)
    m.eval()
    m(ids)                                  # model.eval() then a call: inference too
    assert cached_arrays(m) == []
    m.train()
    with pytest.raises(RuntimeError, match="before forward"):
        m.h[0].attn.backward(np.zeros((3, 16, 8), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_output_equals_the_training_forward(rng, dtype):
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(65, 7), nl.GELU(), nl.LayerNorm(7), nl.Linear(7, 63),
                       nl.ReLU(), nl.Softmax()]).astype(dtype)
    x = rng.standard_normal((5, 3, 65)).astype(dtype)[:, 1]     # non-contiguous (5, 65)
    np.testing.assert_array_equal(m.forward(x, training=False), m.forward(x, training=True))
    g = gpt()
    g.drop.rate = 0.0
    for block in g.h:                       # deterministic: no dropout
        block.attn.dropout = 0.0
        block.mlp.drop.rate = 0.0
    ids = rng.integers(0, 13, (2, 16))
    np.testing.assert_array_equal(g.forward(ids, training=False), g.forward(ids, training=True))


def test_block_residual_adds_leave_the_input_alone(rng):
    """The residual adds go in place into the branches' outputs, never into x, which ln_1
    keeps for backward; two identical steps agree."""
    nl.random.seed(0)
    b = nl.models.gpt_blocks.Block(8, 2)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    x0 = x.copy()
    y = b.forward(x)
    np.testing.assert_array_equal(x, x0)
    assert not np.shares_memory(x, y)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g0 = g.copy()
    dx = b.backward(g)
    np.testing.assert_array_equal(g, g0)    # the gradient it was given, untouched
    grads = {k: v.copy() for k, v in b.grads.items()}
    b.zero_grad()
    np.testing.assert_array_equal(b.forward(x), y)
    np.testing.assert_array_equal(b.backward(g), dx)
    for k, v in b.grads.items():
        np.testing.assert_array_equal(v, grads[k])
    check_layer_gradients(b, x[:, :3], rng=0)
