"""Keras and PyTorch habits (issue 10, items 8-12): each works, or fails with an error that
names the nnlite way."""
import json
import re
import warnings

import numpy as np
import pytest

import nnlite as nl
from _training import Score, blobs
from nnlite.testing import check_layer_gradients, numerical_gradient


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


# -- item 8: Keras' names and shapes --------------------------------------------------------
@pytest.mark.parametrize("cls, default", [(nl.optim.Adam, 1e-3), (nl.optim.AdamW, 1e-3),
                                          (nl.optim.SGD, 0.01), (nl.optim.RMSprop, 0.01)])
def test_learning_rate_is_an_alias_of_lr(cls, default):
    assert cls(learning_rate=0.05).lr == 0.05 and cls(0.05).lr == 0.05
    assert cls().lr == default
    opt = cls(learning_rate=nl.optim.ExponentialDecay(0.1, 0.5))
    assert opt.get_lr() == 0.1 and cls.from_config(opt.get_config()).get_lr() == 0.1
    opt.learning_rate = 0.2                             # Keras: optimizer.learning_rate = ...
    assert opt.lr == 0.2 and opt.learning_rate == 0.2
    with pytest.raises(TypeError, match="give the learning rate once"):
        cls(lr=0.1, learning_rate=0.1)


def test_weights_are_keras_lists_and_state_dict_is_the_dict():
    m = mlp()
    w = m.get_weights()
    assert isinstance(w, list) and [a.shape for a in w] == [(4, 8), (8,), (8, 3), (3,)]
    assert all(a is not p for a, p in zip(w, m.params.values()))       # copies
    assert all(a is p for a, p in zip(m.weights, m.params.values()))   # the arrays themselves
    assert m[0].weights[0] is m[0].params["W"]
    new = [np.full_like(a, i) for i, a in enumerate(w)]
    m.set_weights(new)                                  # Keras' list, in get_weights order
    assert all(np.array_equal(m.params[k], a) for k, a in zip(m.params, new))
    sd = m.state_dict()                                 # PyTorch's dict, keyed as params
    assert list(sd) == ["0.W", "0.b", "2.W", "2.b"] and np.array_equal(sd["2.b"], new[3])
    m.set_weights(w)
    m.load_state_dict(sd)
    assert np.array_equal(m.params["2.b"], new[3])
    m.set_weights({k: np.zeros_like(v) for k, v in sd.items()})     # a dict is taken too
    assert not m.params["0.W"].any()
    m[0].set_weights([np.ones((4, 8)), np.ones(8)])     # a layer's own, float64 cast in place
    assert m[0].params["W"].dtype == np.float32 and m.params["0.W"].all()
    with pytest.raises(ValueError, match=r"expected a list of 4 arrays \(0.W, 0.b, 2.W, "
                                         r"2.b\), as get_weights\(\) returns, got 3"):
        m.set_weights(w[:3])
    with pytest.raises(ValueError, match=r"array 2 \('2.W'\) has shape \(3, 8\), the model's "
                                         r"has \(8, 3\)"):
        m.set_weights([w[0], w[1], w[2].T, w[3]])
    with pytest.raises(ValueError, match=r"missing \['2.b'\]"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "2.b"})


def test_count_params():
    m = mlp()
    assert m.count_params() == m.num_params() == 4 * 8 + 8 + 8 * 3 + 3
    assert m[0].count_params() == 40 and m[1].count_params() == 0


def test_set_seed_makes_runs_repeatable_and_np_random_seed_does_not_reach_nnlite():
    assert nl.set_seed is nl.random.seed
    x, y = blobs()

    def run():
        m = nl.Sequential([nl.Linear(4, 8), nl.Dropout(0.3), nl.Linear(8, 3)])
        m.compile("adam", "cross_entropy")
        m.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return m.get_weights()

    nl.set_seed(3)
    a = run()
    nl.set_seed(3)
    assert all(np.array_equal(u, v) for u, v in zip(a, run()))
    np.random.seed(3)
    b = run()
    np.random.seed(3)
    assert not all(np.array_equal(u, v) for u, v in zip(b, run()))
    assert "np.random.seed" in nl.random.__doc__ and "nl.set_seed" in nl.random.__doc__


def test_sparse_categorical_accuracy_metric():
    x, y = blobs()
    m = mlp()
    m.compile("adam", "cross_entropy",
              metrics=["sparse_categorical_accuracy", "categorical_accuracy"])
    out = m.predict(x)
    with pytest.raises(ValueError, match=r"for one-hot targets use 'categorical_accuracy'"):
        m.evaluate(x, np.eye(3)[y])
    m.compile("adam", "cross_entropy", metrics=["categorical_accuracy"])
    h = m.evaluate(x, np.eye(3)[y])                     # one-hot targets
    assert h["categorical_accuracy"] == pytest.approx(np.mean(out.argmax(1) == y))
    m.compile("adam", "cross_entropy", metrics=["sparse_categorical_accuracy"])
    h = m.fit(x, y, epochs=1, verbose=0).history
    assert 0 <= h["sparse_categorical_accuracy"][0] <= 1
    assert m.evaluate(x, y)["sparse_categorical_accuracy"] == pytest.approx(
        np.mean(m.predict(x).argmax(1) == y))


def test_evaluate_return_dict_false_is_keras_list():
    x, y = blobs()
    m = mlp()
    m.compile("adam", "cross_entropy", metrics=["accuracy"])
    d = m.evaluate(x, y)
    assert m.evaluate(x, y, return_dict=False) == [d["loss"], d["accuracy"]]
    assert m.evaluate(x, y, return_dict=True) == d
    m.compile("adam", "cross_entropy")
    assert m.evaluate(x, y, return_dict=False) == d["loss"]


def test_predict_takes_loaders_and_verbose(capsys):
    x, y = blobs(n=70)
    m = mlp(dropout=0.5)                                # train mode: predict still infers
    want = m.forward(x, training=False)
    loader = nl.data.DataLoader(nl.data.TensorDataset(x, y), batch_size=32)
    np.testing.assert_allclose(m.predict(loader), want, rtol=1e-6)
    xs = nl.data.DataLoader(nl.data.TensorDataset(x), batch_size=32)    # (xb,) batches
    np.testing.assert_allclose(m.predict(xs), want, rtol=1e-6)
    np.testing.assert_allclose(m.predict(iter([x[:30], x[30:]]), steps=2), want, rtol=1e-6)
    np.testing.assert_allclose(m.predict(xs, steps=1), want[:32], rtol=1e-6)
    with pytest.raises(ValueError, match="without len\\(\\): pass steps=N"):
        m.predict(iter([x]))
    capsys.readouterr()
    m.predict(x, batch_size=32, verbose=2)
    assert re.fullmatch(r"3/3 - \S+ \S+/step\n", capsys.readouterr().out)
    m.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    m.compile("adam", "cross_entropy")                  # fit and evaluate took loaders already
    m.fit(loader, epochs=1, verbose=0)
    assert set(m.evaluate(loader)) == {"loss"}


# -- item 12: error messages ------------------------------------------------------------------
def test_optimizer_step_given_params_names_the_pairs():
    m = mlp()
    opt = nl.optim.SGD()
    for wrong, what in [(m.params, r"a dict \(model.params\?\)"), (m, "a Sequential"),
                        (list(m.params.values()), "ndarray at position 0")]:
        with pytest.raises(TypeError, match=rf"SGD.step\(\) takes a list of \(param, grad\) "
                                            rf"pairs, got {what}: pass \[\(model.params\[k\], "
                                            rf"model.grads\[k\]\) for k in model.params\]"):
            opt.step(wrong)
    opt.step([(m.params[k], m.grads[k]) for k in m.params])     # the nnlite way
    assert opt.iterations == 1


# -- item 8: Dense(units, activation=...), its input size inferred -------------------------
def test_dense_infers_its_input_size_and_trains(capsys):
    x, y = blobs()
    nl.set_seed(0)
    m = nl.Sequential([nl.Dense(16, activation="relu"), nl.Dense(3)])
    assert not m.built and m.params == {} and m[0].in_features is None
    with pytest.raises(ValueError, match=r"count_params\(\): not built yet.*model.build"):
        m.count_params()
    m.compile(nl.optim.Adam(learning_rate=0.05), "cross_entropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert m.built and m[0].in_features == 4 and m[1].in_features == 16
    assert list(m.params) == ["0.W", "0.b", "1.W", "1.b"] and m.count_params() == 131
    assert m.optimizer.iterations == 60 and h.history["accuracy"][-1] > 0.9
    m.summary()
    out = capsys.readouterr().out
    assert re.search(r"dense \(Dense\) +\(None, 16\) +80\n", out) and "Total params: 131 " in out
    assert repr(m[0]).startswith("Dense(units=16, activation='relu'")
    assert "input_dim=4" in repr(m[0])


def test_dense_is_linear_then_its_activation():
    x = np.random.default_rng(1).standard_normal((5, 3))
    d = nl.Dense(4, activation="tanh", rng=0).astype(np.float64)
    lin = nl.Linear(3, 4, init="glorot_uniform", rng=0, dtype=np.float64)
    y = d(x)
    assert d.params["W"].dtype == np.float64
    np.testing.assert_allclose(y, np.tanh(lin(x)), rtol=1e-12)
    check_layer_gradients(d, x)
    check_layer_gradients(nl.Dense(2, "relu", use_bias=False, rng=1), x + 0.1)
    assert nl.Dense(2, input_dim=3).built and nl.Dense(2, input_dim=3).params["W"].shape == (3, 2)
    for act in (None, "linear"):
        assert nl.Dense(2, activation=act).activation is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "softmax"])
def test_dense_fuses_the_activations_ops_knows(act, dtype):
    """Dense(activation=...) computes relu, leaky_relu, tanh, sigmoid and gelu with its bias
    (Linear(act=...)); softmax stays a layer after it. Same values and gradients either way."""
    rng = np.random.default_rng(2)
    d = nl.Dense(9, activation=act, rng=0, dtype=dtype)
    lin = nl.Linear(3, 9, init="glorot_uniform", rng=0, dtype=dtype)
    f = nl.Activation(act)
    x = rng.standard_normal((140, 3)).astype(dtype)
    d.build(x.shape)
    d.params["b"][:] = lin.params["b"][:] = rng.standard_normal(9)
    assert (d.act, d._act is None) == ((None, False) if act == "softmax" else (act, True))
    np.testing.assert_array_equal(d(x), f.forward(lin.forward(x)))
    g = rng.standard_normal((140, 9)).astype(dtype)
    np.testing.assert_array_equal(d.backward(g), lin.backward(f.backward(g)))
    np.testing.assert_array_equal(d.grads["W"], lin.grads["W"])
    np.testing.assert_allclose(d.grads["b"], lin.grads["b"],
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    assert d.get_config()["activation"] == act and "act" not in d.get_config()


def test_dense_build_summary_and_errors(tmp_path, capsys):
    m = nl.Sequential([nl.Dense(8, "relu"), nl.Dense(2, "softmax")], input_shape=(5,))
    assert m.built and m.count_params() == 5 * 8 + 8 + 8 * 2 + 2   # input_shape: built at once
    m2 = nl.Sequential([nl.Dense(8), nl.Dense(2)])
    m2.summary()
    assert "Total params: 0 " in capsys.readouterr().out          # unbuilt: nothing yet
    assert m2.build((None, 5)).built and m2.input_shape == (5,)  # Keras' (None, 5) or (5,)
    m2.summary()
    assert "(None, 8)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"Dense\(\? → 3\): expected input of shape \(batch, "
                                         r"\.\.\., features\), got shape \(6,\) \(a single "
                                         r"sample\? x\[None\]; one feature per sample\? "
                                         r"x\[:, None\]\)"):
        nl.Dense(3)(np.ones(6))
    with pytest.raises(ValueError, match="unknown activation 'rleu'"):
        nl.Dense(3, activation="rleu")
    with pytest.raises(TypeError, match=r"put it after: Sequential\(\[Dense\(64\), "
                                        r"LeakyReLU\(0.2\)\]\)"):
        nl.Dense(3, activation=nl.LeakyReLU(0.2))
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        nl.Dense(3, "relu").backward(np.ones((2, 3)))
    unbuilt = nl.Sequential([nl.Dense(3, name="head")])
    unbuilt.compile("adam", "mse")
    for save in (unbuilt.save, unbuilt.save_weights):
        with pytest.raises(ValueError, match=r"Dense\(\? → 3\) 'head' is not built yet .*"
                                             r"model.build\(\(784,\)\)"):
            save(tmp_path / "m.nnl")
    assert not (tmp_path / "m.nnl").exists()


def test_dense_saves_and_loads(tmp_path):
    x, y = blobs()
    nl.set_seed(0)
    m = nl.Sequential([nl.Dense(8, "relu", kernel_initializer="he_uniform"), nl.Dropout(0.1),
                       nl.Dense(3, use_bias=False)])
    m.compile(nl.optim.Adam(learning_rate=0.01), "cross_entropy", metrics=["accuracy"])
    m.fit(x, y, epochs=2, verbose=0)
    m.save(tmp_path / "m.nnl")
    r = nl.load_model(tmp_path / "m.nnl")
    assert r[0].get_config() == m[0].get_config() and r[0].in_features == 4
    assert r[2].get_config()["use_bias"] is False and r[0].activation == "relu"
    np.testing.assert_array_equal(r.predict(x), m.predict(x))
    assert r.evaluate(x, y) == m.evaluate(x, y)
    r.fit(x, y, epochs=1, verbose=0)                                 # and trains on
    nl.io.save_file({"0.W": np.zeros((4, 8), np.float32)}, tmp_path / "w.safetensors")
    m.save_weights(tmp_path / "w.safetensors")
    fresh = nl.Sequential([nl.Dense(8, "relu"), nl.Dropout(0.1), nl.Dense(3, use_bias=False)])
    fresh.build((4,)).load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(fresh.predict(x), m.predict(x))


def test_one_dimensional_input_hint_names_the_missing_axis():
    with pytest.raises(ValueError, match=r"Linear\(1 → 1\): .* got shape \(5,\) \(one feature "
                                         r"per sample\? x\[:, None\] has shape \(5, 1\)\)"):
        nl.Linear(1, 1)(np.ones(5))
    m = nl.Sequential([nl.Linear(1, 1)])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"x\[:, None\] has shape \(8, 1\)"):
        m.fit(np.arange(20.0), np.arange(20.0), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"a single sample\? add a batch axis: x\[None\]"):
        nl.Linear(3, 1)(np.ones(3))
    with pytest.raises(ValueError) as e:
        nl.Linear(3, 1)(np.ones(5))                     # neither: no guess
    assert "x[None]" not in str(e.value) and "x[:, None]" not in str(e.value)


# -- item 8: fit(class_weight=..., sample_weight=...) ------------------------------------------
def _loss_cases(rng):
    z = rng.standard_normal((6, 4))
    return [
        (nl.losses.MSE(), z, rng.standard_normal((6, 4))),
        (nl.losses.L1(), z, rng.standard_normal((6, 4))),
        (nl.losses.CrossEntropy(), z, rng.integers(0, 4, 6)),
        (nl.losses.CrossEntropy(), z, rng.dirichlet(np.ones(4), 6)),        # probabilities
        (nl.losses.CrossEntropy(), rng.standard_normal((3, 5, 4)), rng.integers(0, 4, (3, 5))),
        (nl.losses.BinaryCrossEntropy(), z[:, :1], rng.integers(0, 2, (6, 1)).astype(float)),
    ]


@pytest.mark.parametrize("case", range(6))
def test_weighted_losses_weigh_each_sample_and_have_the_right_gradient(case):
    rng = np.random.default_rng(case)
    loss, z, t = _loss_cases(rng)[case]
    w = rng.uniform(0, 3, len(z))
    per = np.array([loss(z[i:i + 1], t[i:i + 1]) for i in range(len(z))])
    assert loss(z, t, sample_weight=w) == pytest.approx(np.mean(w * per), rel=1e-10)
    assert loss(z, t, sample_weight=np.ones(len(z))) == pytest.approx(loss(z, t), rel=1e-12)
    loss.forward(z, t, sample_weight=w)
    g = loss.backward()
    num = numerical_gradient(lambda _: loss.forward(z, t, sample_weight=w), z)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match=rf"sample_weight must have shape \({len(z)},\)"):
        loss(z, t, sample_weight=w[:-1])


def test_sample_weight_is_the_same_as_duplicated_samples():
    """Integer weights: a weighted full-batch SGD run equals a run on the data with each
    sample repeated w times, at lr scaled by N / sum(w) (Keras' mean over N, not sum(w))."""
    x, y = blobs(n=30)
    w = np.random.default_rng(0).integers(0, 4, 30)
    xd, yd = np.repeat(x, w, axis=0), np.repeat(y, w)

    def run(lr, *args, **kw):
        m = mlp().astype(np.float64)
        m.compile(nl.optim.SGD(lr), "cross_entropy")
        m.fit(*args, batch_size=1000, epochs=5, shuffle=False, verbose=0, **kw)
        return m.get_weights()

    for a, b in zip(run(0.1 * 30 / len(xd), x, y, sample_weight=w), run(0.1, xd, yd)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # class_weight is a sample weight per label; both multiply
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    per_label = np.array([cw[c] for c in y])
    for a, b in zip(run(0.1, x, y, class_weight=cw), run(0.1, x, y, sample_weight=per_label)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(run(0.1, x, y, class_weight=cw, sample_weight=w),
                    run(0.1, x, y, sample_weight=per_label * w)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(run(0.1, x, np.eye(3)[y], class_weight=cw),        # one-hot targets
                    run(0.1, x, y, sample_weight=per_label)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # batches (xb, yb, wb) from an iterable weigh the same; validation_split keeps x's weights
    loader = nl.data.DataLoader(nl.data.TensorDataset(x, y, w), batch_size=1000)
    for a, b in zip(run(0.1, loader), run(0.1, x, y, sample_weight=w)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    xx, yy, ww = np.concatenate([x, x[:10]]), np.concatenate([y, y[:10]]), np.r_[w, [9] * 10]
    for a, b in zip(run(0.1, xx, yy, sample_weight=ww, validation_split=0.25),
                    run(0.1, x, y, sample_weight=w)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_weights_in_the_logs_evaluate_and_train_step():
    x, y = blobs(n=40)
    w = np.linspace(0, 2, 40)
    m = mlp()
    m.compile(nl.optim.SGD(0.0), "cross_entropy", metrics=["accuracy"])   # lr 0: nothing moves
    per = np.array([m.evaluate(x[i:i + 1], y[i:i + 1])["loss"] for i in range(40)])
    h = m.fit(x, y, sample_weight=w, batch_size=16, epochs=1, verbose=0).history
    assert h["loss"][0] == pytest.approx(np.mean(w * per), rel=1e-5)
    res = m.evaluate(x, y, sample_weight=w)
    assert res["loss"] == pytest.approx(np.mean(w * per), rel=1e-5)
    assert res["accuracy"] == m.evaluate(x, y)["accuracy"]             # metrics: unweighted
    assert m.train_step(x, y, sample_weight=w) == pytest.approx(np.mean(w * per), rel=1e-5)


def test_weight_errors_name_the_way():
    x, y = blobs(n=20)
    m = mlp()
    m.compile("sgd", "cross_entropy")

    def fit(**kw):
        return m.fit(x, y, verbose=0, **kw)

    with pytest.raises(ValueError, match=r"sample_weight must have shape \(20,\), one weight "
                                         r"per sample, got shape \(19,\)"):
        fit(sample_weight=np.ones(19))
    with pytest.raises(ValueError, match=r"sample_weight must be finite and >= 0, got -1.0 at "
                                         r"sample 3"):
        fit(sample_weight=np.r_[1, 1, 1, -1, np.ones(16)])
    with pytest.raises(ValueError, match=r"class_weight has no weight for class 2 \(it has 0, "
                                         r"1\); give one for every class"):
        fit(class_weight={0: 1.0, 1: 3.0})
    with pytest.raises(TypeError, match=r"class_weight must be a dict \{class index: weight\}"):
        fit(class_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="class_weight keys must be class indices"):
        fit(class_weight={"cat": 1.0})
    with pytest.raises(ValueError, match=r"an iterable x can yield \(xb, yb, sample_weight\)"):
        m.fit(iter([(x, y)]), steps_per_epoch=1, sample_weight=np.ones(20), verbose=0)

    class Plain(nl.losses.CrossEntropy):                  # a loss written before weights
        def forward(self, y_pred, y_true):
            return super().forward(y_pred, y_true)

    m.compile("sgd", Plain())
    with pytest.raises(TypeError, match=r"the loss Plain takes no sample_weight; give its "
                                        r"forward a sample_weight=None argument"):
        fit(class_weight={0: 1, 1: 1, 2: 1})
    fit()                                                               # unweighted: fine


# -- item 11: evaluate on no data raises, as fit does -----------------------------------------
def test_evaluate_on_an_empty_data_set_raises():
    m = mlp()
    m.compile("adam", "cross_entropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"evaluate\(\) got 0 samples"):
        m.evaluate(np.zeros((0, 4)), np.zeros(0, int))
    empty = nl.data.DataLoader(nl.data.TensorDataset(np.zeros((0, 4)), np.zeros(0, int)))
    with pytest.raises(ValueError, match=r"evaluate\(\): the data gave no samples"):
        m.evaluate(empty)
    x, y = blobs(n=20)
    with pytest.raises(ValueError, match="validation_data holds 0 samples"):
        m.fit(x, y, validation_data=(x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match=r"fit\(\) validation: the data gave no samples"):
        m.fit(x, y, validation_data=empty, verbose=0)


# -- item 8: ReduceLROnPlateau ------------------------------------------------------------------
def test_reduce_lr_on_plateau_keras_semantics(capsys):
    x, y = blobs(n=20)
    m = mlp()
    m.compile(nl.optim.SGD(learning_rate=0.1), "cross_entropy")
    scores = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.5, 0.6, 0.6, 0.6, 0.6]
    cb = nl.callbacks.ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, cooldown=1,
                                        min_lr=0.02, min_delta=0.0, verbose=1)
    h = m.fit(x, y, epochs=12, verbose=0, callbacks=[Score(scores), cb])
    assert h.history["lr"] == pytest.approx([0.1] * 4 + [0.05] * 2 + [0.025] * 4 + [0.02] * 2)
    assert m.optimizer.lr == pytest.approx(0.02)
    out = capsys.readouterr().out
    assert "Epoch 4: ReduceLROnPlateau reducing learning rate to 0.05." in out
    # min_delta: a smaller change is no improvement; mode 'max' for accuracies
    m.compile(nl.optim.Adam(0.01), "cross_entropy")
    cb = nl.callbacks.ReduceLROnPlateau(monitor="score_acc", patience=1, min_delta=0.1)
    m.fit(x, y, epochs=3, verbose=0, callbacks=[
        nl.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: logs.update(
            score_acc=[0.5, 0.55, 0.9][e])), cb])
    assert cb.mode == "max" and m.optimizer.lr == pytest.approx(1e-3)   # once, at epoch 2
    with pytest.warns(UserWarning, match="monitor 'val_loss' is not available"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[nl.callbacks.ReduceLROnPlateau()])


def test_reduce_lr_on_plateau_refuses_a_schedule():
    m = mlp()
    m.compile(nl.optim.Adam(learning_rate=nl.optim.CosineDecay(1e-3, 100)), "cross_entropy")
    with pytest.raises(TypeError, match=r"the optimizer's lr is a schedule \(CosineDecay\).*"
                                        r"use a constant lr with ReduceLROnPlateau"):
        m.fit(*blobs(n=20), verbose=0, callbacks=[nl.callbacks.ReduceLROnPlateau()])
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\)"):
        nl.callbacks.ReduceLROnPlateau(factor=2.0)


# -- item 10: a final Softmax (Sigmoid) before a loss that takes logits ------------------------
@pytest.mark.parametrize("last, loss, y", [
    (nl.Softmax, "cross_entropy", "labels"),
    (lambda: nl.Dense(3, activation="softmax"), "sparse_categorical_crossentropy", "labels"),
    (lambda: nl.Sequential([nl.Linear(3, 3), nl.Softmax(name="probs")]), "cross_entropy",
     "labels"),
    (nl.Sigmoid, "binary_crossentropy", "binary"),
])
def test_probabilities_into_a_logit_loss_warn_once(last, loss, y):
    x, labels = blobs(n=20)
    targets = labels if y == "labels" else (labels == 0).astype(np.float32)[:, None]
    head = [nl.Linear(8, 3)] if y == "labels" else [nl.Linear(8, 1)]
    m = nl.Sequential([nl.Linear(4, 8), nl.ReLU(), *head, last()])
    with pytest.warns(UserWarning, match=r"the model ends in .*, but the loss \w+ takes logits "
                                         r"and applies the (softmax|sigmoid) itself.* Remove the "
                                         r"final (softmax|sigmoid)"):
        m.compile("adam", loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # once: not again at fit
        m.fit(x, targets, epochs=1, verbose=0)
        m.train_step(x, targets)


def test_no_warning_for_logits_or_other_losses_and_a_late_softmax_warns_at_fit():
    x, y = blobs(n=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlp().compile("adam", "cross_entropy")
        nl.Sequential([nl.Linear(4, 3), nl.Softmax()]).compile("adam", "mse")
    m = mlp()
    m.compile("adam", "cross_entropy")
    m.add(nl.Softmax())                                 # after compile: the first step warns
    with pytest.warns(UserWarning, match=r"ends in Softmax"):
        m.fit(x, y, epochs=1, verbose=0)


def test_saving_into_a_missing_folder_names_the_users_path(tmp_path):
    m = mlp()
    m.compile("adam", "cross_entropy")
    for save, name in ((m.save, "m.nnl"), (m.save_weights, "w.safetensors")):
        path = tmp_path / "missing" / name
        with pytest.raises(FileNotFoundError) as e:
            save(path)
        msg = str(e.value)
        assert f"cannot write {path}" in msg and ".tmp" not in msg
        assert f"the folder {tmp_path / 'missing'} does not exist: create it first" in msg


def _rewrite(path, out, edit):
    """A copy of the model file ``path`` with its metadata edited by ``edit(meta)``, the
    checksum recomputed (an intact file from some other writer)."""
    tensors, meta = nl.io.safetensors.read_file(path)
    edit(meta)
    if "sha256" in meta:
        meta["sha256"] = nl.io.model_file.checksum(tensors, meta)
    nl.io.save_file(tensors, out, metadata=meta)
    return out


def test_load_errors_say_what_is_missing_and_which_versions(tmp_path):
    m = nl.Sequential([nl.Linear(4, 3), nl.Residual(nl.Sequential([nl.Linear(3, 3)]))])
    m.save(tmp_path / "m.nnl")

    def no_checksum(meta):
        del meta["sha256"]

    with pytest.raises(nl.io.CheckpointError, match=r"has no checksum \(no 'sha256' metadata\): "
                                                     r"not written by nnlite's save_model"):
        nl.load_model(_rewrite(tmp_path / "m.nnl", tmp_path / "a.nnl", no_checksum))

    def newer(extra_at, version):
        def edit(meta):
            arch = json.loads(meta["architecture"])
            extra_at(arch["config"]["layers"])["fancy"] = 3       # an argument from elsewhere
            meta["architecture"], meta["nnlite_version"] = json.dumps(arch), version
        return edit

    def first(layers):
        return layers[0]["config"]

    def inner(layers):                                  # Residual -> Sequential -> Linear
        return layers[1]["config"]["inner"]["config"]["layers"][0]["config"]

    with pytest.raises(nl.io.CheckpointError, match=r"layers\[0\] \(Linear\): .*unexpected "
                                                     r"keyword argument 'fancy'; the file was "
                                                     r"written by nnlite 9.1.0, this is nnlite "
                                                     rf"{nl.__version__}: load it with nnlite "
                                                     r"9.1.0, or upgrade nnlite"):
        nl.load_model(_rewrite(tmp_path / "m.nnl", tmp_path / "b.nnl", newer(first, "9.1.0")))
    with pytest.raises(nl.io.CheckpointError, match=r"layers\[1\] \(Residual\): inner "
                                                     r"\(Sequential\): layers\[0\] \(Linear\): .*"
                                                     r"written by this nnlite version"):
        nl.load_model(_rewrite(tmp_path / "m.nnl", tmp_path / "c.nnl",
                               newer(inner, nl.__version__)))

    def unknown(meta):
        arch = json.loads(meta["architecture"])
        arch["config"]["layers"][0]["class_name"] = "Conv3D"
        meta["architecture"] = json.dumps(arch)

    with pytest.raises(nl.io.CheckpointError, match="unknown layer class 'Conv3D'") as e:
        nl.load_model(_rewrite(tmp_path / "m.nnl", tmp_path / "d.nnl", unknown))
    assert "Dense, Dropout" in str(e.value) and "_" not in str(e.value).split("known layers")[1]
