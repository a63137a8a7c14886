"""Keras and PyTorch habits (issue 10, items 8-12): each works, or fails with an error that
names the nnlite way."""
import numpy as np
import pytest

import nnlite as nl


def blobs(n=120, d=4, k=3, seed=0):
    """k well-separated Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def mlp(d=4, k=3, hidden=8, seed=0, dropout=None):
    nl.random.seed(seed)
    layers = [nl.Linear(d, hidden), nl.ReLU()]
    if dropout is not None:
        layers.append(nl.Dropout(dropout))
    return nl.Sequential([*layers, nl.Linear(hidden, k)])


# -- item 9: train() / eval() as PyTorch's ---------------------------------------------------
def test_eval_then_call_applies_no_dropout():
    m = mlp(dropout=0.5)
    x = np.ones((64, 4), np.float32)
    assert not np.array_equal(m(x), m(x))               # a new model trains: dropout on
    assert m.eval() is m
    assert all(not layer.training for layer in m)       # eval() reaches every layer
    np.testing.assert_array_equal(m(x), m.predict(x))   # eval: model(x) is inference
    m.train()
    assert all(layer.training for layer in m)
    assert not np.array_equal(m(x), m(x))
    np.testing.assert_array_equal(m.predict(x), m.forward(x, training=False))   # always


def test_train_and_eval_reach_nested_layers():
    inner = nl.Sequential([nl.Linear(4, 4), nl.Dropout(0.5)])
    res = nl.Residual(nl.Sequential([nl.Dropout(0.5)]))
    m = nl.Sequential([inner, res, nl.Linear(4, 2)])
    m.eval()
    assert not inner[1].training and not res.inner[0].training
    m.train(False)
    assert not m.training
    m.train()
    assert inner[1].training and res.inner[0].training


def test_fit_trains_with_dropout_after_eval_and_restores_the_modes():
    x, y = blobs()
    m = mlp(dropout=0.5)
    m.compile("adam", "cross_entropy")
    seen = []

    class Spy(nl.Layer):
        def forward(self, x, training=True):
            seen.append((training, m[2].training))
            return x

        def backward(self, g):
            return g

    m.layers.insert(3, Spy())
    m.eval()
    m.fit(x, y, epochs=1, batch_size=60, verbose=0)
    assert seen == [(True, True)] * 2                   # dropout on while fitting
    assert not any(layer.training for layer in m)       # eval mode again after
    m.train_step(x, y)
    assert seen[-1] == (True, True) and not m[2].training
    m.train()
    m.fit(x, y, epochs=1, batch_size=120, verbose=0)
    assert m[2].training
