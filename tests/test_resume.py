"""Resuming a run (issue 9): ``fit(initial_epoch=...)`` from a ``ModelCheckpoint`` file gives the
epochs an uninterrupted run would have given, to the bit. The file holds the weights, the
optimizer state and the run's ``(epoch, seed)``; each epoch's randomness (shuffle, Dropout,
DataLoader order) is drawn from ``nl.random.epoch_rng(seed, epoch)``, so no generator state is
needed. The SIGKILL version of this is tests/test_crash_resume.py."""
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

import nnlite as nl
from nnlite.callbacks import LambdaCallback, ModelCheckpoint
from nnlite.io import CheckpointError
from nnlite.io import safetensors as st
from nnlite.io.model_file import checksum


def _data(n=90):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def _model():
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(6, 16), nl.ReLU(), nl.Dropout(0.3), nl.Linear(16, 3)])
    m.compile(nl.optim.Adam(lr=nl.optim.CosineDecay(1e-2, 40, warmup_steps=5), clipnorm=1.0),
              "cross_entropy", metrics=["accuracy"])
    return m


def _fit(m, data, **kw):
    x, y = data
    if y is None:                               # an iterable of batches
        return m.fit(x, verbose=0, **kw)
    return m.fit(x, y, batch_size=16, verbose=0, **kw)


INPUTS = {
    "arrays": lambda: _data(),
    "DataLoader": lambda: (nl.data.DataLoader(nl.data.TensorDataset(*_data()), batch_size=16,
                                              shuffle=True), None),
}


@pytest.mark.parametrize("seed", [None, 7])
@pytest.mark.parametrize("inputs", list(INPUTS))
def test_a_resumed_run_is_the_uninterrupted_run(tmp_path, seed, inputs):
    data = INPUTS[inputs]()
    states = {}
    straight = _model()
    h = _fit(straight, data, epochs=6, seed=seed, callbacks=[
        LambdaCallback(on_epoch_end=lambda e, logs: states.update(
            {e + 1: straight.optimizer.state_dict()})),
        ModelCheckpoint(tmp_path / "ckpt-{epoch}.nnl")])
    assert straight.epoch == 6 and straight.fit_seed is not None

    nl.random.seed(12345)                       # another process: nl.random is elsewhere
    data = INPUTS[inputs]()
    resumed = nl.load_model(tmp_path / "ckpt-3.nnl")
    assert (resumed.epoch, resumed.fit_seed) == (3, straight.fit_seed)
    # the optimizer state of the end of epoch 3: moments, step count (the schedule's position)
    saved = resumed.optimizer.state_dict()
    assert saved.keys() == states[3].keys() and saved["iterations"] == 3 * 6
    assert all(np.array_equal(saved[k], v) for k, v in states[3].items())
    r = _fit(resumed, data, epochs=6, initial_epoch=resumed.epoch)
    assert r.epoch == [3, 4, 5]
    assert r.history["loss"] == h.history["loss"][3:]              # to the bit
    assert r.history["accuracy"] == h.history["accuracy"][3:]
    assert all(np.array_equal(v, resumed.params[k]) for k, v in straight.params.items())
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 36


def test_continuing_in_the_same_process_is_one_run():
    data = _data()
    one = _model()
    h = _fit(one, data, epochs=5)
    two = _model()
    a = _fit(two, data, epochs=2)
    b = _fit(two, data, epochs=5, initial_epoch=two.epoch)         # the model's own seed
    assert a.history["loss"] + b.history["loss"] == h.history["loss"]
    assert all(np.array_equal(v, two.params[k]) for k, v in one.params.items())


def test_epoch_randomness_comes_from_the_seed_and_the_epoch_alone():
    data = _data()
    runs = []
    for other in (1, 2):
        m = _model()
        nl.random.seed(other)                   # the global generator: not used by the epochs
        before = nl.random.get_rng().bit_generator.state
        _fit(m, data, epochs=2, seed=5)
        assert nl.random.get_rng().bit_generator.state == before   # nothing drawn from it
        runs.append(m.state_dict())
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    a, b = nl.random.epoch_rng(5, 3).random(4), nl.random.epoch_rng(5, 3).random(4)
    assert np.array_equal(a, b) and not np.array_equal(a, nl.random.epoch_rng(5, 4).random(4))
    with nl.random.using(nl.random.epoch_rng(5, 3)) as g:
        assert nl.random.get_rng() is g
    assert nl.random.get_rng() is not g


def test_initial_epoch_counts_on_from_there():
    x, y = _data()
    m = _model()
    seen = []
    out = io.StringIO()
    with redirect_stdout(out):
        h = m.fit(x, y, epochs=5, initial_epoch=3, verbose=2,
                  callbacks=[LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))])
    assert seen == h.epoch == [3, 4] and m.epoch == 5
    assert [line for line in out.getvalue().splitlines() if line.startswith("Epoch")] == \
        ["Epoch 4/5", "Epoch 5/5"]
    w = m.state_dict()
    h = m.fit(x, y, epochs=5, initial_epoch=5, verbose=0)          # nothing left (as Keras)
    assert h.epoch == [] and all(np.array_equal(w[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("kw, match", [
    ({"initial_epoch": -1}, "initial_epoch must be an int >= 0, got -1"),
    ({"initial_epoch": 1.5}, "initial_epoch must be an int >= 0, got 1.5"),
    ({"initial_epoch": None}, "initial_epoch must be an int >= 0, got None"),
    ({"seed": -3}, "seed must be an int >= 0, got -3"),
    ({"seed": "0"}, "seed must be an int >= 0, got '0'"),
])
def test_fit_checks_initial_epoch_and_seed(kw, match):
    x, y = _data()
    with pytest.raises(ValueError, match=match):
        _model().fit(x, y, verbose=0, **kw)


def test_the_file_records_epoch_and_seed(tmp_path):
    m = _model()
    m.save(tmp_path / "new.nnl")                # never fit: nothing to continue
    assert "training" not in st.read_file(tmp_path / "new.nnl")[1]
    fresh = nl.load_model(tmp_path / "new.nnl")
    assert (fresh.epoch, fresh.fit_seed) == (0, None)
    _fit(m, _data(), epochs=2, seed=11)
    m.save(tmp_path / "m.nnl")
    meta = st.read_file(tmp_path / "m.nnl")[1]
    assert json.loads(meta["training"]) == {"epoch": 2, "seed": 11}
    for compile in (True, False):
        loaded = nl.load_model(tmp_path / "m.nnl", compile=compile)
        assert (loaded.epoch, loaded.fit_seed) == (2, 11)


@pytest.mark.parametrize("text, match", [
    ("{", "'training' metadata is not valid JSON"),
    ('{"epoch": 2}', "'training' metadata must be"),
    ('{"epoch": 2, "seed": 1, "rng": 0}', "'training' metadata must be"),
    ('[2, 1]', "'training' metadata must be"),
    ('{"epoch": -1, "seed": 1}', "epoch must be an int >= 0, got -1"),
    ('{"epoch": 2.0, "seed": 1}', "epoch must be an int >= 0, got 2.0"),
    ('{"epoch": 2, "seed": "1"}', "seed must be an int >= 0, got '1'"),
])
def test_malformed_training_metadata_is_a_checkpoint_error(tmp_path, text, match):
    path = tmp_path / "m.nnl"
    m = _model()
    _fit(m, _data(), epochs=1)
    m.save(path)
    tensors, meta = st.read_file(path)
    meta["training"] = text
    meta["sha256"] = checksum(tensors, meta)
    st.save_file(tensors, path, metadata=meta)
    with pytest.raises(CheckpointError, match=match) as e:
        nl.load_model(path)
    assert str(path) in str(e.value)
