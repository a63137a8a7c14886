"""nnlite.training on its own: the data adapters, the metrics, the module boundaries, and the
contract that training, weights, files and the summary go through ``model.params``/``grads``."""
import ast
from pathlib import Path

import numpy as np
import pytest

import nnlite as nl
from nnlite.training import data_adapter as da
from nnlite.training import metrics


def arrays(n=10, d=3):
    x = np.arange(n * d, dtype=np.float64).reshape(n, d)
    return x, np.arange(n)


# -- ArrayAdapter ------------------------------------------------------------------------------
def test_array_batches_in_order_cover_every_sample_once():
    x, y = arrays(10)
    a = da.ArrayAdapter(x, y, batch_size=4)
    batches = list(a.epoch())
    assert a.steps == 3 and [len(xb) for xb, _ in batches] == [4, 4, 2]
    assert np.array_equal(np.concatenate([yb for _, yb in batches]), y)
    assert np.shares_memory(batches[0][0], x)          # in order: views, no copies


def test_array_shuffle_keeps_pairs_and_draws_a_new_order_each_epoch():
    x, y = arrays(50)
    a = da.ArrayAdapter(x, y, batch_size=8, shuffle=True, rng=np.random.default_rng(0))
    orders = []
    for _ in range(2):
        xs, ys = zip(*a.epoch())
        xs, ys = np.concatenate(xs), np.concatenate(ys)
        assert np.array_equal(xs, x[ys]) and sorted(ys) == list(range(50))
        orders.append(ys)
    assert not np.array_equal(*orders)


def test_array_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        da.ArrayAdapter(*arrays(), batch_size=0)


# -- IterableAdapter ---------------------------------------------------------------------------
def test_iterable_full_pass_needs_len_and_restarts_each_epoch():
    batches = [arrays(4), arrays(2)]
    a = da.IterableAdapter(batches, np.float32, "x", None, per_epoch_iterator=False)
    assert a.steps == 2
    for _ in range(2):
        got = list(a.epoch())
        assert [len(xb) for xb, _ in got] == [4, 2]
    with pytest.raises(ValueError, match="without len\\(\\): pass steps_per_epoch=N"):
        da.IterableAdapter(iter(batches), np.float32, "x", None, per_epoch_iterator=False)


def test_iterable_with_steps_continues_across_epochs_and_restarts_when_reiterable():
    batches = [(np.full((1, 1), i), np.array([i])) for i in range(3)]
    train = da.IterableAdapter(batches, np.float32, "x", 2, per_epoch_iterator=False)
    seen = [int(yb[0]) for _ in range(3) for _, yb in train.epoch()]
    assert seen == [0, 1, 2, 0, 1, 2]                  # continued, then restarted the list
    val = da.IterableAdapter(batches, np.float32, "v", 2, per_epoch_iterator=True)
    assert [int(yb[0]) for _ in range(2) for _, yb in val.epoch()] == [0, 1, 0, 1]
    gen = da.IterableAdapter(iter(batches), np.float32, "x", 2, per_epoch_iterator=False)
    assert [len(list(gen.epoch())) for _ in range(3)] == [2, 1, 0]     # a generator runs dry


def test_iterable_batches_are_typed_and_checked():
    x, y = arrays(4)
    a = da.IterableAdapter([(x, y), (x, y.astype(np.float64))], np.float32, "x", None,
                           per_epoch_iterator=True)
    (x1, y1), (_, y2) = a.epoch()
    assert x1.dtype == np.float32 and y1.dtype == y.dtype and y2.dtype == np.float32
    ids = da.IterableAdapter([(x, y)], np.int64, "x", None, per_epoch_iterator=True)
    assert next(ids.epoch())[0].dtype == np.float64    # float "ids": left for the layer to refuse
    with pytest.raises(TypeError, match=r"x must yield \(xb, yb\) batches \(or \(xb, yb, "
                                        r"sample_weight\)\), got a tuple of length 4"):
        next(da.IterableAdapter([(x, y, y, y)], np.float32, "x", 1, True).epoch())
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive int, got 0"):
        da.IterableAdapter([(x, y)], np.float32, "x", 0, per_epoch_iterator=False)


def test_is_batch_iterable():
    assert da.is_batch_iterable(nl.data.DataLoader(arrays(), batch_size=2))
    assert da.is_batch_iterable(b for b in [])
    for not_batches in (np.zeros(3), [1, 2], (1, 2), "ab", 3.0, {"a": 1}):
        assert not da.is_batch_iterable(not_batches)


# -- fit_adapters / evaluate_adapter -----------------------------------------------------------
def test_fit_adapters_split_the_tail_before_shuffling():
    x, y = arrays(10)
    train, val = da.fit_adapters(x, y, np.float32, batch_size=4, validation_split=0.2, seed=0)
    assert train.x.dtype == np.float32 and len(train.x) == 8 and train.steps == 2
    assert np.array_equal(val.y, [8, 9]) and val.batch_size == 256
    _, val = da.fit_adapters(x, y, np.float32, batch_size=512, validation_split=0.2)
    assert val.batch_size == 512
    _, val = da.fit_adapters(x, y, np.float32, validation_data=arrays(3), validation_split=0.5)
    assert len(val.x) == 3                             # validation_data wins over the split
    assert da.fit_adapters(x, y, np.float32)[1] is None


@pytest.mark.parametrize("kwargs, match", [
    ({"x": iter([]), "y": None, "validation_split": 0.1}, "validation_split needs arrays"),
    ({"validation_steps": 2}, "validation_steps given without validation_data"),
    ({"steps_per_epoch": 2}, "steps_per_epoch applies to an iterable x"),
    ({"validation_data": (1, 2, 3)}, r"validation_data must be a tuple \(x_val, y_val\)"),
    ({"validation_data": 5}, "validation_data must be a tuple .* got int"),
    ({"validation_data": (np.zeros((2, 3)), np.zeros(3))}, "x_val and x_val targets must have"),
    ({"x": np.zeros((0, 3)), "y": np.zeros(0)}, "fit\\(\\) got 0 training samples"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"y": None}, "fit\\(\\) needs targets y for x of type ndarray"),
])
def test_fit_adapters_errors(kwargs, match):
    args = dict(zip(("x", "y"), arrays()))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        da.fit_adapters(args.pop("x"), args.pop("y"), np.float32, **args)


def test_evaluate_adapter_arrays_unchecked_and_iterables_by_steps():
    x, y = arrays(5)
    x[0, 0] = np.nan
    a = da.evaluate_adapter(x, y, np.float32, batch_size=2)
    assert a.steps == 3 and np.isnan(a.x[0, 0])
    it = da.evaluate_adapter(iter([(x, y)] * 4), None, np.float32, steps=3)
    assert it.steps == 3 and len(list(it.epoch())) == 3
    with pytest.raises(ValueError, match="evaluate\\(\\) needs targets y"):
        da.evaluate_adapter(x, None, np.float32)


# -- metrics -----------------------------------------------------------------------------------
def test_metric_lookup_by_name_and_function():
    ce = nl.losses.get("cross_entropy")
    assert metrics.get("ACC", ce)[0] == "ACC"          # the name given is the log key
    assert metrics.get("mean_absolute_error", ce)[1] is metrics.mae
    assert metrics.get("mse", ce)[1] is metrics.mse

    def top1(y_pred, y_true):
        return 1.0
    assert metrics.get(top1, ce) == ("top1", top1)
    with pytest.raises(ValueError, match="unknown metric 'f1'; expected 'accuracy'"):
        metrics.get("f1", ce)


def test_metric_values():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    acc = metrics.accuracy_for(nl.losses.get("cross_entropy"))
    assert acc(logits, np.array([0, 1, 1, 1])) == 0.75
    assert acc(logits, np.eye(2)[[0, 1, 1, 1]]) == 0.75          # one-hot targets
    bce = metrics.accuracy_for(nl.losses.BinaryCrossEntropy())    # logits: threshold 0
    assert bce(np.array([[-0.1], [0.2]]), np.array([0.0, 1.0])) == 1.0
    prob = metrics.accuracy_for(nl.losses.get("mse"))             # probabilities: 0.5
    assert prob(np.array([[0.4], [0.6]]), np.array([0.0, 1.0])) == 1.0
    pred, true = np.array([[1.0], [3.0]], np.float32), np.array([2.0, 1.0])
    assert metrics.mae(pred, true) == 1.5 and metrics.mse(pred, true) == 2.5


# -- module boundaries -------------------------------------------------------------------------
def test_training_does_not_import_models():
    for path in Path(nl.training.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
                assert not any("models" in n for n in names), f"{path.name} imports {names}"


def test_public_names_kept():
    assert isinstance(nl.Sequential(), nl.training.Trainer)
    assert nl.callbacks.EarlyStopping is nl.training.callbacks.EarlyStopping
    assert nl.models.Progbar is nl.training.Progbar


class Named(nl.Sequential):
    """A stack that keys its parameters by name, as GPT does: everything must use them."""

    @property
    def params(self):
        return {f"{self.names[i]}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.params.items()}

    @property
    def grads(self):
        return {f"{self.names[i]}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.grads.items()}

    names = ("inp", "act", "out")


def test_params_and_grads_properties_are_the_only_keys(tmp_path, capsys):
    nl.random.seed(0)
    m = Named([nl.Linear(3, 4), nl.ReLU(), nl.Linear(4, 2)])
    m.compile(nl.optim.SGD(0.1), "cross_entropy")
    before = m.state_dict()
    assert set(before) == {"inp.W", "inp.b", "out.W", "out.b"}
    x, y = arrays(6)
    m.fit(x / 10, y % 2, epochs=1, batch_size=3, verbose=0)
    assert not np.array_equal(before["out.W"], m.params["out.W"])
    m.save_weights(tmp_path / "w.safetensors")
    m.load_state_dict(before)
    m.load_weights(tmp_path / "w.safetensors")
    assert set(nl.io.load_file(tmp_path / "w.safetensors")) == set(before)
    m.summary()
    assert "Total params: 26 " in capsys.readouterr().out
