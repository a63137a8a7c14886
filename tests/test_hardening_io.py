"""Files that lie (issue 9): every malformed model file is a CheckpointError naming the file,
nothing is allocated before the shapes are checked, nothing is silently replaced by a
default, temporary files of killed writers are cleaned up, saved files honour the umask, and
the GPT example checks its ckpt.json."""
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import time

import _child as child
import numpy as np
import pytest
from _scripts import load_script

import nnlite as nl
from nnlite.io import CheckpointError, save_file
from nnlite.io import safetensors as st
from nnlite.io.model_file import checksum

REPO = pathlib.Path(__file__).resolve().parents[1]


class WarmConst(nl.optim.Schedule):
    """A user's schedule: registered while this module is loaded, unknown to a new process."""

    def __init__(self, lr):
        self.lr = float(lr)
        self._config = {"lr": self.lr}

    def __call__(self, step):
        return self.lr


class HalfMSE(nl.losses.MSE):
    """A user's loss."""


def my_metric(y_pred, y_true):
    return float(np.mean(np.abs(y_pred - y_true.reshape(y_pred.shape))))


def _data(n=16):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 12)).astype(np.float32), rng.integers(0, 8, n)


def _model(path, optimizer="sgd", loss="cross_entropy", metrics=("accuracy",), fit=True):
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(12, 8), nl.ReLU(), nl.Linear(8, 8)])
    m.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    if fit:
        x, y = _data()
        m.fit(x, y if loss == "cross_entropy" else np.eye(8, dtype=np.float32)[y],
              epochs=1, batch_size=8, verbose=0)
    m.save(path)
    return m


def rewrite(path, meta_fn=None, tensors_fn=None):
    """Change a model file's metadata/tensors and recompute its checksum (what an attacker,
    or a buggy tool, does)."""
    tensors, meta = st.read_file(path)
    if meta_fn:
        meta_fn(meta)
    if tensors_fn:
        tensors = tensors_fn(tensors)
    meta["sha256"] = checksum(tensors, meta)
    save_file(tensors, path, metadata=meta)


def edit_json(key, fn):
    def meta_fn(meta):
        meta[key] = json.dumps(fn(json.loads(meta[key])))
    return meta_fn


def set_text(key, text):
    def meta_fn(meta):
        meta[key] = text
    return meta_fn


# -- item 2: no silent default optimizer --------------------------------------------------------
def test_unknown_schedule_is_an_error_naming_it(tmp_path, monkeypatch):
    path = tmp_path / "m.nnl"
    saved = _model(path, nl.optim.SGD(lr=WarmConst(0.5), momentum=0.9, weight_decay=1e-3))
    monkeypatch.delitem(nl.optim.Schedule.registry, "WarmConst")     # as in a new process
    with pytest.raises(CheckpointError, match=r"m.nnl: cannot rebuild the optimizer SGD: "
                                              r"unknown learning-rate schedule 'WarmConst'; "
                                              r".*custom_objects=\{'WarmConst': WarmConst\}"):
        nl.load_model(path)
    m = nl.load_model(path, custom_objects={"WarmConst": WarmConst})
    assert isinstance(m.optimizer.lr, WarmConst) and m.optimizer.get_lr() == 0.5
    assert m.optimizer.get_config() == saved.optimizer.get_config()
    assert m.optimizer.momentum == 0.9 and m.optimizer.weight_decay == 1e-3
    assert m.optimizer.iterations == saved.optimizer.iterations == 2
    assert nl.load_model(path, compile=False).loss is None            # the weights alone


@pytest.mark.parametrize("change, message", [
    (lambda c: c["optimizer"]["config"].update(lr={"class_name": "NoSuch", "config": {}}),
     "unknown learning-rate schedule 'NoSuch'"),
    (lambda c: c["optimizer"]["config"].update(lr=-1.0),
     r"cannot rebuild the optimizer SGD from its saved settings .*lr must be >= 0"),
    (lambda c: c["optimizer"]["config"].update(momentum="fast"),
     "cannot rebuild the optimizer SGD from its saved settings"),
    (lambda c: c["optimizer"].update(class_name="Lion"), "unknown class 'Lion'"),
    (lambda c: c["optimizer"].update(config=None), "settings were not saved"),
    (lambda c: c["loss"].update(class_name="Hinge"), "cannot rebuild the loss: unknown class"),
])
def test_optimizer_or_loss_that_cannot_be_rebuilt_is_an_error(tmp_path, change, message):
    path = tmp_path / "m.nnl"
    _model(path, nl.optim.SGD(lr=0.1, momentum=0.9))

    def edit(comp):
        change(comp)
        return comp
    rewrite(path, edit_json("compile", edit))
    with pytest.raises(CheckpointError, match=message) as e:
        nl.load_model(path)
    assert str(path) in str(e.value)
    assert nl.load_model(path, compile=False).loss is None


def test_custom_metric_and_loss_load_with_custom_objects(tmp_path, monkeypatch):
    path = tmp_path / "m.nnl"
    saved = _model(path, "adam", HalfMSE(), metrics=[my_metric, "mae"])
    monkeypatch.delitem(nl.losses.Loss.registry, "HalfMSE")
    with pytest.raises(CheckpointError, match=r"cannot rebuild the loss: unknown class "
                                              r"'HalfMSE'.*custom_objects"):
        nl.load_model(path)
    with pytest.raises(CheckpointError, match=r"cannot rebuild the metric 'my_metric'.*"
                                              r"custom_objects=\{'my_metric': my_metric\}"):
        nl.load_model(path, custom_objects={"HalfMSE": HalfMSE})
    m = nl.load_model(path, custom_objects={"HalfMSE": HalfMSE, "my_metric": my_metric})
    assert type(m.loss) is HalfMSE and m.metrics_names == ["my_metric", "mae"]
    x, y = _data()
    t = np.eye(8, dtype=np.float32)[y]
    assert m.evaluate(x, t) == saved.evaluate(x, t)


def test_unsavable_settings_warn_at_save(tmp_path):
    opt = nl.optim.SGD(lr=lambda step: 0.1)                # a plain function: not JSON
    with pytest.warns(UserWarning, match="SGD's settings cannot be saved"):
        _model(tmp_path / "m.nnl", opt, fit=False)
    with pytest.raises(CheckpointError, match="settings were not saved"):
        nl.load_model(tmp_path / "m.nnl")


# -- item 3: every malformed file is a CheckpointError naming the file ----------------------------
def _nest(depth):
    spec = {"class_name": "Linear", "config": {"in_features": 12, "out_features": 8}}
    for _ in range(depth):
        spec = {"class_name": "Sequential", "config": {"layers": [spec]}}
    return spec


MALFORMED = {
    "deep JSON": (set_text("architecture", "[" * 100_000), "not valid JSON"),
    "deep layers": (set_text("architecture", json.dumps(_nest(200))), "nested more than"),
    "bad JSON": (set_text("compile", "{"), "'compile' metadata is not valid JSON"),
    "no architecture": (lambda m: m.pop("architecture"), "no 'architecture' metadata"),
    "architecture not a spec": (set_text("architecture", "[1, 2]"), "architecture must be"),
    "no class_name": (edit_json("architecture", lambda a: {"config": a["config"]}),
                      "architecture must be"),
    "layer without class_name": (
        edit_json("architecture", lambda a: {**a, "config": {"layers": [{}]}}),
        r"architecture.layers\[0\] must be"),
    "Residual without inner": (
        set_text("architecture", '{"class_name": "Residual", "config": {}}'),
        "architecture.inner must be"),
    "in_features Infinity": (
        lambda m: m.update(architecture=m["architecture"].replace(
            '"in_features": 12', '"in_features": Infinity')),
        r"in_features must be a positive int, got inf"),
    "in_features a string": (
        lambda m: m.update(architecture=m["architecture"].replace(
            '"in_features": 12', '"in_features": "12"')),
        r"in_features must be a positive int, got '12'"),
    "unknown argument": (
        lambda m: m.update(architecture=m["architecture"].replace(
            '"in_features": 12', '"in_features": 12, "colour": 1')),
        "cannot rebuild the model: TypeError"),
    "layers not a list": (
        edit_json("architecture", lambda a: {**a, "config": {"layers": 3}}),
        "layers must be a list"),
    "format_version": (set_text("format_version", "one"), "format_version 'one'"),
    "compile without loss": (edit_json("compile", lambda c: {"optimizer": c["optimizer"]}),
                             "compile has no 'loss'"),
    "compile without metrics": (
        edit_json("compile", lambda c: {k: c[k] for k in ("loss", "optimizer")}),
        "compile has no 'metrics'"),
    "loss without class_name": (edit_json("compile", lambda c: {**c, "loss": {}}),
                                "compile loss has no 'class_name'"),
    "metrics not names": (edit_json("compile", lambda c: {**c, "metrics": [1]}),
                          "metrics must be a list of names"),
    "state names a missing tensor": (
        set_text("optimizer_state", '{"__dict__": {"iterations": 2, '
                                    '"state.0.velocity": {"__tensor__": "optimizer.nope"}}}'),
        "names a tensor 'optimizer.nope'"),
    "state garbage": (set_text("optimizer_state", '{"x": 1}'), "unexpected entry"),
    "state infinite iterations": (
        lambda m: m.update(optimizer_state=m["optimizer_state"].replace(
            '"iterations": 2', '"iterations": Infinity')),
        "optimizer_state does not fit the SGD"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_model_files_raise_checkpoint_error(tmp_path, name):
    path = tmp_path / "m.nnl"
    _model(path, nl.optim.SGD(0.1, momentum=0.9))
    meta_fn, message = MALFORMED[name]
    rewrite(path, meta_fn)
    with pytest.raises(CheckpointError, match=message) as e:
        nl.load_model(path)
    assert str(path) in str(e.value) and isinstance(e.value, ValueError)


def test_state_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "m.nnl"
    _model(path, nl.optim.SGD(0.1, momentum=0.9))
    rewrite(path, tensors_fn=lambda t: {**t, "optimizer.state.0.velocity": np.zeros((3, 3),
                                                                                  np.float32)})
    with pytest.raises(CheckpointError, match=r"parameter 0's 'velocity' has shape \(3, 3\)"):
        nl.load_model(path)


@pytest.mark.parametrize("header", [
    '{"a":' * 100_000 + "1" + "}" * 100_000,                        # nested past the limit
    '{"a": {"dtype": "F32", "shape": [0, 99999999999999999999], "data_offsets": [0, 0]}}',
    '{"a": {"dtype": "F32", "shape": [' + "1," * 69 + '1], "data_offsets": [0, 4]}}',
])
def test_safetensors_headers_that_crashed(tmp_path, header):
    js = header.encode()
    data = b"\0" * 4 if '"data_offsets": [0, 4]' in header else b""
    (tmp_path / "h").write_bytes(len(js).to_bytes(8, "little") + js + data)
    with pytest.raises(CheckpointError, match="invalid safetensors header") as e:
        nl.io.load_file(tmp_path / "h")
    assert str(tmp_path / "h") in str(e.value)


# -- item 4: shapes checked before anything is allocated ---------------------------------------
def _refuse(name):
    def init(self, *args, **kwargs):
        raise AssertionError(f"{name} built before the shapes were checked")
    return init


def test_inflated_linear_is_refused_before_allocating(tmp_path, monkeypatch):
    path = tmp_path / "m.nnl"
    _model(path, fit=False)
    assert os.path.getsize(path) < 2000
    rewrite(path, lambda m: m.update(architecture=m["architecture"].replace(
        '"in_features": 12, "out_features": 8', '"in_features": 20000, "out_features": 20000')))
    monkeypatch.setattr(nl.layers.Linear, "__init__", _refuse("Linear"))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"architecture does not match the tensors: it "
                                              r"needs 400,[\d,]+ parameters .* file lacks: "
                                              r"20000x20000"):
        nl.load_model(path)
    assert time.perf_counter() - t0 < 1.0


def test_gpt_with_a_billion_token_vocabulary_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "g.nnl"
    nl.models.GPT(20, 8, n_layer=1, n_head=2, n_embd=8, rng=0).save(path)
    for v in ("1000000000", "1e9"):
        rewrite(path, edit_json("architecture", lambda a: {
            **a, "config": {**a["config"], "vocab_size": json.loads(v)}}))
        monkeypatch.setattr(nl.layers.Embedding, "__init__", _refuse("Embedding"))
        with pytest.raises(CheckpointError, match="does not match the tensors|vocab_size must "
                                                  "be a positive int, got 1000000000.0"):
            nl.load_model(path)
        monkeypatch.undo()


def test_extra_or_missing_tensors_are_named(tmp_path):
    path = tmp_path / "m.nnl"
    _model(path, fit=False)
    rewrite(path, tensors_fn=lambda t: {**t, "2.c": np.zeros(5, np.float32)})
    with pytest.raises(CheckpointError, match="tensors the architecture has no place for: 5"):
        nl.load_model(path)


# -- item 5: temporary files and file modes ---------------------------------------------------
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    path = tmp_path / "m.nnl"
    dead = _dead_pid()
    stale = tmp_path / f".m.nnl.{dead}.abcd1234.tmp"
    ours = tmp_path / f".m.nnl.{os.getpid()}.abcd1234.tmp"        # maybe being written now
    other = tmp_path / f".x.nnl.{dead}.abcd1234.tmp"              # another file's
    unrelated = tmp_path / "notes.tmp"
    old_style = tmp_path / ".m.nnl.k2j4h5g6.tmp"                  # older nnlite's name
    for f in (stale, ours, other, unrelated, old_style):
        f.write_bytes(b"half a file")
    os.utime(old_style, (0, 0))
    _model(path, fit=False)
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(["m.nnl", ours.name, other.name, unrelated.name])


def test_a_killed_save_leaves_nothing_for_the_next(tmp_path):
    path = tmp_path / "w.safetensors"
    script = f"""
import sys, time
import numpy as np
import nnlite as nl
from nnlite.io import safetensors as st
write = st._write_all
def slow(f, header, arrays):
    write(f, header, arrays)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
st._write_all = slow
nl.io.save_file({{"a": np.zeros(1000)}}, {str(path)!r})
"""
    p = child.popen("-c", script, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
    finally:
        p.kill()                                                  # SIGKILL: no cleanup runs
        p.wait()
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    save_file({"a": np.ones(3)}, path)
    assert os.listdir(tmp_path) == ["w.safetensors"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_file({"a": np.ones(3)}, tmp_path / "w.safetensors")
        _model(tmp_path / "m.nnl", fit=False)
    finally:
        os.umask(old)
    for f in ("w.safetensors", "m.nnl"):
        assert stat.S_IMODE(os.stat(tmp_path / f).st_mode) == mode, f


# -- items 5 and 12: the GPT example's ckpt.json -----------------------------------------------
def load_example():
    return load_script("examples/gpt_shakespeare.py", "example_gpt_hardening")


TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, "
        "speak.\n\n") * 20
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--block-size", "8",
        "--batch-size", "2", "--max-iters", "8", "--eval-interval", "4", "--eval-iters", "1",
        "--warmup-iters", "2", "--verbose", "0", "--max-new-tokens", "0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt")
    (d / "text.txt").write_text(TEXT, encoding="utf-8")
    load_example().main(TINY + ["--text-file", str(d / "text.txt"), "--out-dir",
                                str(d / "run"), "--stop-after", "4"])
    return d


def test_example_json_write_cleans_up(tmp_path):
    ex = load_example()
    stale = tmp_path / f".ckpt.json.{_dead_pid()}.abcdefgh.tmp"
    stale.write_text("{")
    ex.write_json_atomic(str(tmp_path / "ckpt.json"), {"a": np.float32(1.5)})
    with pytest.raises(TypeError):
        ex.write_json_atomic(str(tmp_path / "ckpt.json"), {"a": object()})
    assert os.listdir(tmp_path) == ["ckpt.json"]
    assert json.loads((tmp_path / "ckpt.json").read_text()) == {"a": 1.5}


def _args(**kw):
    def fn(s):
        s["args"].update(kw)
    return fn


CKPT_CASES = {
    "model_file up": (lambda s: s.update(model_file="../../x.nnl"), "model_file must be"),
    "model_file absolute": (lambda s: s.update(model_file="/tmp/model-000004.nnl"),
                            "model_file must be"),
    "text_file in args": (_args(text_file="/etc/passwd"), r"unexpected \['text_file'\]"),
    "eval_interval 0": (_args(eval_interval=0), r"eval_interval must be an int in \[1"),
    "missing key": (lambda s: s["args"].pop("lr"), r"missing \['lr'\]"),
    "batch_size float": (_args(batch_size=1e7), "batch_size must be an int"),
    "batch_size huge": (_args(batch_size=65536, block_size=65536), "tokens per batch"),
    "lr string": (_args(lr="0.1"), "lr must be a number"),
    "other model": (_args(n_layer=3), "do not describe the model"),
    "samplers": (lambda s: s.update(samplers={"train": 1, "eval_train": 1, "eval_val": 1}),
                 "samplers or random_state"),
    "evals": (lambda s: s.update(evals=[1]), "each of evals"),
    "format": (lambda s: s.pop("format"), "not a checkpoint of this example"),
    "not JSON": (None, "not valid JSON"),
}


@pytest.mark.parametrize("name", list(CKPT_CASES))
def test_example_checks_its_checkpoint(tmp_path, run_dir, name):
    d = tmp_path / "run"
    shutil.copytree(run_dir / "run", d)
    change, message = CKPT_CASES[name]
    ckpt = d / "ckpt.json"
    if change is None:
        ckpt.write_text("[" * 100_000)
    else:
        state = json.loads(ckpt.read_text())
        change(state)
        ckpt.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=message):
        load_example().main(["--resume", "--out-dir", str(d), "--text-file",
                             str(run_dir / "text.txt"), "--verbose", "0",
                             "--max-new-tokens", "0"])


def test_example_checks_its_flags(tmp_path, run_dir):
    with pytest.raises(ValueError, match=r"arguments: eval_interval must be an int in \[1"):
        load_example().main(TINY + ["--eval-interval", "0", "--text-file",
                                    str(run_dir / "text.txt"), "--out-dir", str(tmp_path)])


def test_example_removes_model_temp_files_of_killed_runs(tmp_path, run_dir):
    d = tmp_path / "run"
    shutil.copytree(run_dir / "run", d)
    dead = _dead_pid()
    stale = d / f".model-000002.nnl.{dead}.abcdefgh.tmp"          # a save killed long ago
    live = d / f".model-000002.nnl.{os.getpid()}.abcdefgh.tmp"    # a writer still running
    for f in (stale, live):
        f.write_bytes(b"half")
    r = load_example().main(["--resume", "--out-dir", str(d), "--text-file",
                             str(run_dir / "text.txt"), "--verbose", "0",
                             "--max-new-tokens", "0"])
    assert r["iterations"] == 8
    assert sorted(os.listdir(d)) == sorted(["ckpt.json", "model-000008.nnl", live.name])
