"""Sequential: compile/fit/evaluate/predict/summary, callbacks, progress output, and the
errors a user meets first."""
import io
import math
import re
import warnings

import numpy as np
import pytest

import nnlite as nl
from nnlite.callbacks import (
    Callback,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
)
from nnlite.layers import Layer
from nnlite.training.progress import Progbar


def blobs(n=240, d=6, k=3, seed=0):
    """k well-separated Gaussian blobs: a problem a small MLP learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def mlp(d=6, k=3, hidden=16, seed=0):
    nl.random.seed(seed)
    return nl.Sequential([nl.Linear(d, hidden), nl.ReLU(), nl.Linear(hidden, k)])


def compiled(lr=0.01, **kw):
    m = mlp(**kw)
    m.compile(optimizer=nl.optim.Adam(lr=lr), loss="cross_entropy", metrics=["accuracy"])
    return m


class Spy(Layer):
    """Identity layer recording what passes through it (a test double)."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.dtypes, self.flags, self.calls, self.nan_at = [], [], 0, nan_at

    def forward(self, x, training=True):
        self.calls += training
        self.dtypes.append(x.dtype)
        if training and self.calls == self.nan_at:
            x = x.copy()
            x[0, 0] = np.nan
        return x

    def backward(self, g):
        self.flags.append(self.needs_input_grad)
        return g if self.needs_input_grad else None


# -- building ----------------------------------------------------------------------------------
def test_add_and_params_are_prefixed():
    m = nl.Sequential(name="net")
    m.add(nl.Linear(4, 3)).add(nl.ReLU())
    assert len(m) == 2 and isinstance(m[0], nl.Linear)
    assert sorted(m.params) == ["0.W", "0.b"] and m.num_params() == 15
    outer = nl.Sequential([nl.Flatten(), m])
    assert sorted(outer.params) == ["1.0.W", "1.0.b"]
    with pytest.raises(TypeError, match="Layer instance"):
        m.add("relu")
    with pytest.raises(TypeError, match="call it"):
        m.add(nl.ReLU)


def test_sequential_is_a_layer_with_correct_backward():
    nl.random.seed(0)
    inner = nl.Sequential([nl.Linear(3, 4), nl.Tanh()]).astype(np.float64)
    model = nl.Sequential([inner, nl.Linear(4, 2).astype(np.float64)])
    x = np.random.default_rng(0).standard_normal((5, 3))
    dy = np.random.default_rng(1).standard_normal((5, 2))
    model.zero_grad()
    model.forward(x)
    dx = model.backward(dy)
    eps, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = ((model.forward(xp) - model.forward(xm)) * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


# -- fit -----------------------------------------------------------------------------------
def test_fit_reduces_loss_and_records_history():
    x, y = blobs()
    m = compiled()
    before = m.evaluate(x, y)["loss"]
    h = m.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=0)
    assert h is m.history and h.epoch == [0, 1, 2, 3]
    assert set(h.history) == {"loss", "accuracy"}
    assert all(len(v) == 4 for v in h.history.values())
    assert h.history["loss"][-1] < h.history["loss"][0] < before * 1.5
    after = m.evaluate(x, y)
    assert after["loss"] < 0.5 * before and after["accuracy"] > 0.9


def test_fit_is_repeatable_with_seeds():
    x, y = blobs()
    runs = []
    for _ in range(2):
        m = compiled()
        m.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=3)
        runs.append(m.predict(x))
    np.testing.assert_array_equal(*runs)


def test_validation_split_takes_the_last_samples():
    x, y = blobs(n=100)
    m = compiled()
    h = m.fit(x, y, epochs=2, batch_size=10, validation_split=0.25, verbose=0, seed=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    last = m.evaluate(x[75:], y[75:])             # final weights = those of the last val pass
    assert h.history["val_loss"][-1] == pytest.approx(last["loss"], rel=1e-6)
    assert h.history["val_accuracy"][-1] == pytest.approx(last["accuracy"])
    steps = []
    m.fit(x, y, epochs=1, batch_size=10, validation_split=0.25, verbose=0,
          callbacks=[LambdaCallback(on_batch_end=lambda b, logs: steps.append(b))])
    assert len(steps) == 8                          # 75 training samples / 10 per batch


def test_validation_data():
    x, y = blobs()
    xv, yv = blobs(n=50, seed=0)
    m = compiled()
    h = m.fit(x, y, epochs=2, validation_data=(xv, yv), verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(m.evaluate(xv, yv)["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="x_val and x_val targets must have the same number"):
        m.fit(x, y, validation_data=(xv, yv[:10]), verbose=0)


def test_float64_input_trains_in_float32_without_per_batch_casts():
    x, y = blobs()
    spy = Spy()
    nl.random.seed(0)
    m = nl.Sequential([spy, nl.Linear(6, 3)])
    m.compile("sgd", "cross_entropy")
    m.fit(x.astype(np.float64), y, epochs=1, batch_size=60, verbose=0)
    assert set(spy.dtypes) == {np.dtype(np.float32)} and m[1].params["W"].dtype == np.float32
    # the input gradient of the first trainable layer and below is skipped during fit ...
    assert spy.flags == [] and m[1].needs_input_grad is True   # ... and the flags restored
    assert m.predict(x.astype(np.float64)).dtype == np.float32


def test_input_gradient_skipped_only_below_first_trainable_layer():
    spy = Spy()
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(6, 6), spy, nl.Linear(6, 3)])
    m.compile("sgd", "cross_entropy")
    flags = []
    m.fit(*blobs(n=40), epochs=1, batch_size=20, verbose=0,
          callbacks=[LambdaCallback(on_batch_end=lambda b, logs: flags.append(
              m[0].needs_input_grad))])
    assert spy.flags == [True, True] and flags == [False, False] and m[0].needs_input_grad


def test_metrics_mae_mse_and_binary_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float32)
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(3, 1)])
    m.compile("adam", "bce", metrics=["acc", "mae", "mse"])
    m.fit(x, y, epochs=1, verbose=0)
    out = m.evaluate(x, y)
    p = m.predict(x)[:, 0]
    assert out["acc"] == pytest.approx(np.mean((p > 0) == (y > 0.5)))   # threshold 0: logits
    assert out["mae"] == pytest.approx(np.mean(np.abs(p - y)), rel=1e-5)
    assert out["mse"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-5)


def test_evaluate_and_predict_values():
    x, y = blobs(n=70)
    m = compiled()
    p = m.predict(x, batch_size=32)
    assert p.shape == (70, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p, m.forward(x, training=False), rtol=1e-6)
    res = m.evaluate(x, y, batch_size=32)          # batches 32, 32, 6: sample-weighted
    assert set(res) == {"loss", "accuracy"}
    assert res["loss"] == pytest.approx(nl.losses.CrossEntropy()(p, y), rel=1e-5)
    assert res["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))


# -- callbacks -----------------------------------------------------------------------------
class Score(Callback):
    """Puts a scripted 'score' into the epoch logs and keeps each epoch's weights."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights.append(self.model.state_dict())


def test_early_stopping_stops_and_restores_best_weights():
    x, y = blobs(n=64)
    m = compiled()
    score = Score([3.0, 1.0, 2.0, 2.5, 0.1, 0.1])
    es = EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[score, es])
    assert h.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best_epoch == 1
    for k, w in score.weights[1].items():
        np.testing.assert_array_equal(m.params[k], w)


def test_early_stopping_unknown_monitor_warns_with_keys():
    x, y = blobs(n=32)
    m = compiled()
    with pytest.warns(UserWarning, match=r"'val_los' is not available.*loss, accuracy"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping(monitor="val_los")])


def test_stop_training_from_a_callback():
    x, y = blobs(n=64)
    m = compiled()
    stopper = LambdaCallback(on_batch_end=lambda b, logs: setattr(m, "stop_training", b == 1))
    h = m.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[stopper])
    assert h.epoch == [0]


def test_hooks_called_in_order():
    events = []

    class Rec(Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_train_end(self, logs=None): events.append("train_end")
        def on_epoch_begin(self, e, logs=None): events.append(f"epoch_begin{e}")
        def on_epoch_end(self, e, logs=None): events.append(f"epoch_end{e}:{sorted(logs)}")
        def on_batch_begin(self, b, logs=None): events.append(f"b{b}")
        def on_batch_end(self, b, logs=None): events.append(f"e{b}")

    x, y = blobs(n=20)
    compiled().fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[Rec()])
    assert events == ["train_begin", "epoch_begin0", "b0", "e0", "b1", "e1",
                      "epoch_end0:['accuracy', 'loss']", "epoch_begin1", "b0", "e0", "b1", "e1",
                      "epoch_end1:['accuracy', 'loss']", "train_end"]


def test_model_checkpoint_writes_files(tmp_path):
    x, y = blobs(n=64)
    m = compiled()
    cb = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.4f}.nnl"))
    m.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(re.fullmatch(r"ckpt-0[12]-\d\.\d{4}\.nnl", f) for f in files)
    np.testing.assert_array_equal(nl.load_model(tmp_path / files[-1]).predict(x), m.predict(x))

    best = ModelCheckpoint(tmp_path / "best.nnl", monitor="score", save_best_only=True)
    m.fit(x, y, epochs=3, verbose=0, callbacks=[Score([2.0, 1.0, 3.0]), best])
    assert (tmp_path / "best.nnl").exists() and best.best == 1.0


def test_learning_rate_scheduler():
    x, y = blobs(n=32)
    m = compiled(lr=0.1)
    h = m.fit(x, y, epochs=3, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch, lr: lr / 10 if epoch else lr)])
    assert h.history["lr"] == pytest.approx([0.1, 0.01, 0.001])


# -- progress output -------------------------------------------------------------------------
def test_progress_off_a_tty_is_one_line_per_epoch(capsys):
    x, y = blobs(n=400)
    compiled().fit(x, y, epochs=3, batch_size=4, validation_split=0.1)   # 90 steps/epoch
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0] == "Epoch 1/3" and "\r" not in "".join(lines)
    assert re.fullmatch(r"90/90 \[=+\] - \d+s \d+[mu]?s/step - loss: \d\.\d{4} - accuracy: "
                        r"\d\.\d{4} - val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}", lines[1])


def test_verbose_0_is_silent_and_2_has_no_bar(capsys):
    x, y = blobs(n=40)
    compiled().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    compiled().fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "[" not in lines[1] and lines[1].startswith("2/2 - ")


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progbar_on_a_tty_redraws_in_place_throttled():
    f = FakeTTY()
    bar = Progbar(1000, verbose=1, file=f, interval=3600)   # nothing redraws after the first
    bar._last -= 7200                                        # ... except one due redraw
    for i in range(1, 1001):
        bar.update(i, {"loss": 1.0 / i})
    bar.update(1000, {"loss": 0.5}, finalize=True)
    out = f.getvalue()
    assert out.count("\r") == 2 and out.endswith("\n") and out.count("\n") == 1
    assert "ETA:" in out.split("\r")[1] and "1000/1000 [" in out.split("\r")[2]


# -- summary -------------------------------------------------------------------------------
def test_summary_table(capsys):
    nl.random.seed(0)
    m = nl.Sequential([nl.Flatten(), nl.Linear(784, 128), nl.ReLU(), nl.Linear(128, 10)],
                      input_shape=(28, 28))
    assert m.summary() is None
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    for row in [r"flatten \(Flatten\)\s+\(None, 784\)\s+0",
                r"linear \(Linear\)\s+\(None, 128\)\s+100,480",
                r"relu \(ReLU\)\s+\(None, 128\)\s+0",
                r"linear_1 \(Linear\)\s+\(None, 10\)\s+1,290",
                r"Total params: 101,770 \(397\.54 KB\)", r"Trainable params: 101,770"]:
        assert re.search(row, out), row
    lines = []
    nl.Sequential([nl.Linear(3, 2)]).summary(print_fn=lines.append)
    assert any(re.search(r"\(None, 2\)\s+8$", s) for s in lines)


def test_summary_shapes_known_after_fit(capsys):
    x, y = blobs(n=20)
    nl.random.seed(0)
    m = nl.Sequential([nl.Flatten(), nl.ReLU(), nl.Linear(6, 3)])   # (a Flatten then a
    m.compile("sgd", "cross_entropy")                                  # Linear is known)
    m.summary()
    assert re.search(r"flatten \(Flatten\)\s+\?", capsys.readouterr().out)
    m.fit(x.reshape(20, 2, 3), y, verbose=0)
    m.summary()
    assert re.search(r"flatten \(Flatten\)\s+\(None, 6\)", capsys.readouterr().out)


# -- errors --------------------------------------------------------------------------------
def test_fit_before_compile():
    with pytest.raises(RuntimeError, match=r"call model.compile\("):
        mlp().fit(*blobs(n=10), verbose=0)


def test_compile_needs_a_loss_and_known_metrics():
    with pytest.raises(ValueError, match="needs a loss"):
        mlp().compile("adam")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        mlp().compile("adam", "mse", metrics=["f1"])


def test_nan_and_inf_in_data_named_with_sample():
    x, y = blobs(n=30)
    x[17, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN at sample 17"):
        compiled().fit(x, y, verbose=0)
    x[17, 2], x[4, 0] = 0, np.inf
    with pytest.raises(ValueError, match="x contains inf at sample 4"):
        compiled().fit(x, y, verbose=0)
    yf = np.zeros((30, 3), np.float32)
    yf[9] = np.nan
    m = mlp()
    m.compile("adam", "mse")
    with pytest.raises(ValueError, match="y contains NaN at sample 9"):
        m.fit(blobs(n=30)[0], yf, verbose=0)


def test_loss_becoming_nan_names_epoch_and_step():
    x, y = blobs(n=40)
    spy = Spy(nan_at=11)           # 11th training batch: 4 in the first fit, then epoch 2, step 3
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(6, 4), spy, nl.Linear(4, 3)])
    m.compile("sgd", "cross_entropy")
    m.fit(x, y, epochs=1, batch_size=10, verbose=0)
    before = m.state_dict()
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 2, step 3/4; try "
                                                 r"a lower learning rate"):
        m.fit(x, y, epochs=3, batch_size=10, verbose=0)
    assert all(np.isfinite(w).all() for w in m.get_weights())
    assert m[0].needs_input_grad is True
    assert not all(np.array_equal(before[k], w) for k, w in m.state_dict().items())


def test_diverging_training_stops_with_message():
    x, y = blobs(n=64)
    x *= 1e18                               # float32 overflow within a few SGD steps
    m = mlp()
    m.compile(nl.optim.SGD(lr=1e6), "cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch \d+, "
                                                     r"step \d+/4"):
            m.fit(x, y, epochs=5, batch_size=16, verbose=0)


def test_length_mismatch_names_both_lengths():
    x, y = blobs(n=30)
    with pytest.raises(ValueError, match="x has 30, y has 29"):
        compiled().fit(x, y[:29], verbose=0)


def test_wrong_feature_count_error_reaches_user_unchanged():
    x, y = blobs(n=30, d=5)
    with pytest.raises(ValueError) as e:
        compiled().fit(x, y, batch_size=8, verbose=0)         # the model expects 6 features
    msg = str(e.value)                                      # the layer's own message
    assert "Linear(6 → 16)" in msg and "(8, 5)" in msg and "6" in msg.replace("(8, 5)", "")


def test_labels_out_of_range_use_loss_error():
    x, y = blobs(n=30)
    y[3] = 7
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        compiled().fit(x, y, verbose=0)


def test_validation_split_bounds():
    with pytest.raises(ValueError, match="validation_split"):
        compiled().fit(*blobs(n=10), validation_split=1.5, verbose=0)
    assert not math.isnan(compiled().evaluate(*blobs(n=10))["loss"])


# -- a finite loss with a non-finite gradient (issue 9): no update, a message ---------------
@pytest.mark.parametrize("clipnorm", [1.0, None])
def test_nonfinite_gradient_stops_fit_before_the_update(clipnorm):
    # a finite loss (1.6e37) whose dW overflows float32: 8 * 1e30 * 1e18
    m = nl.Sequential([nl.Linear(4, 1)])
    m.compile(optimizer=nl.optim.SGD(lr=0.1, clipnorm=clipnorm), loss="mse")
    m[0].params["W"][...] = 1e-12
    before = m.state_dict()
    x, y = np.full((8, 4), 1e30, np.float32), np.zeros((8, 1), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"gradient norm became (inf|nan) at epoch "
                                                     r"1, step 1/1, with a finite loss"):
            m.fit(x, y, epochs=1, batch_size=8, verbose=0)
        for k, w in m.state_dict().items():
            np.testing.assert_array_equal(w, before[k], err_msg=k)   # not NaN, not moved
        assert not math.isfinite(m.optimizer.last_grad_norm) and m.optimizer.iterations == 0
        with pytest.raises(FloatingPointError, match=r"gradient norm became (inf|nan), with"):
            m.train_step(x, y)
    for k, w in m.state_dict().items():
        np.testing.assert_array_equal(w, before[k], err_msg=k)


@pytest.mark.parametrize("make", [lambda: nl.optim.SGD(0.1, momentum=0.9), nl.optim.Adam,
                                  lambda: nl.optim.RMSprop(clipnorm=1.0)])
def test_optimizer_step_refuses_nonfinite_gradients(make):
    opt = make()
    p, g = np.ones((2, 3), np.float32), np.full((2, 3), 0.5, np.float32)
    opt.step([(p, g)])                                        # state made, one step taken
    p0, state0 = p.copy(), [{k: a.copy() for k, a in st.items()} for st in opt.state]
    for bad in (np.nan, np.inf, -np.inf):
        g2 = g.copy()
        g2[1, 2] = bad
        with pytest.raises(nl.optim.NonFiniteGradient, match="step 2 not taken"):
            opt.step([(p, g2)])
        np.testing.assert_array_equal(p, p0)
        assert opt.iterations == 1 and not math.isfinite(opt.last_grad_norm)
        for st, st0 in zip(opt.state, state0):
            assert all(np.array_equal(st[k], st0[k]) for k in st)
        assert np.isnan(g2[1, 2]) == np.isnan(bad)            # clipping left it alone
    # large but finite: float32's sum of squares overflows, the norm is finite (float64)
    big = np.full((2, 3), 1e20, np.float32)
    opt.step([(p, big)])
    assert opt.iterations == 2 and opt.last_grad_norm == pytest.approx(np.sqrt(6) * 1e20,
                                                                         rel=1e-6)
    assert np.isfinite(p).all()


def test_global_norm_matches_float64():
    rng = np.random.default_rng(0)
    gs = [rng.standard_normal(s).astype(np.float32) for s in [(784, 256), (256,), (256, 10)]]
    want = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in gs))
    assert nl.optim.global_norm(gs) == pytest.approx(want, rel=1e-5)
    assert nl.optim.global_norm([]) == 0.0
