"""Fuzz target: whole-model files, ``nl.load_model`` (nnlite/io/model_file.py). See _target.py
for the rules and run.py to run it.

Input: one mode byte, then the bytes of a ``.nnl`` file. Mode bit 0 "reseals" the file
before loading: its tensors and metadata are read and written back with a fresh ``sha256``
(an attacker can do the same: the digest detects damage, it is no signature), so mutations
reach the architecture, compile and optimizer-state parsing instead of stopping at the
checksum. Mode bit 1 loads with ``compile=False``.

Documented errors: ``CheckpointError`` (a ValueError) naming the file, for anything
truncated, malformed, inconsistent or not rebuildable as saved. Nothing else may escape, and
loading may not allocate more than the file's size allows (the architecture's parameter
shapes are checked against the file's tensors before anything is built).
"""
import os
import sys

import numpy as np

import _target

with _target.instrumented("nnlite"):
    import nnlite as nl
    from nnlite.io.model_file import checksum
    from nnlite.io.safetensors import CheckpointError, read_file, serialize

ALLOWED = (CheckpointError,)
MAX_LEN = 1 << 16
DICT = ['"class_name"', '"config"', '"layers"', '"Sequential"', '"Linear"', '"GPT"',
        '"Embedding"', '"LayerNorm"', '"Residual"', '"inner"', '"in_features"',
        '"out_features"', '"n_layer"', '"n_embd"', '"vocab_size"', '"block_size"',
        '"optimizer"', '"loss"', '"metrics"', '"lr"', '"__tensor__"', '"__dict__"',
        '"__items__"', '"iterations"', '"state"', '"format_version"', '"architecture"',
        '"compile"', '"optimizer_state"', '"sha256"', '"F32"', '"F64"', '"I64"', '"shape"',
        '"dtype"', '"data_offsets"', '"__metadata__"', "true", "false", "null", "-1",
        "1e308", "99999999999", "[]", "{}"]


def error_ok(exc, work):
    return work in str(exc)


def _data(rng, n=16):
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _models():
    rng = np.random.default_rng(0)
    nl.random.seed(0)
    x, y = _data(rng)
    mlp = nl.Sequential([nl.layers.Linear(4, 8), nl.layers.ReLU(), nl.layers.Linear(8, 2)])
    mlp.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    mlp.fit(x, y, batch_size=8, epochs=1, verbose=0)

    mixed = nl.Sequential([
        nl.layers.Linear(4, 6), nl.layers.LayerNorm(6), nl.layers.GELU(), nl.layers.Dropout(0.1),
        nl.layers.Residual(nl.layers.Linear(6, 6)), nl.layers.Tanh(), nl.layers.LeakyReLU(0.2),
        nl.layers.Linear(6, 2, bias=False), nl.layers.Sigmoid()])
    mixed.compile(optimizer=nl.optim.SGD(lr=nl.optim.StepDecay(0.1, 5), momentum=0.9),
                  loss="mse", metrics=["mae"])
    mixed.fit(x, np.ones((len(x), 2), np.float32), batch_size=8, epochs=1, verbose=0)

    rms = nl.Sequential([nl.layers.Embedding(10, 3), nl.layers.Flatten(),
                         nl.layers.Linear(6, 2), nl.layers.Softmax()])
    rms.compile(optimizer="rmsprop", loss="mse")

    gpt = nl.models.GPT(8, 4, 1, 1, 4)
    gpt.compile(optimizer=nl.optim.AdamW(lr=nl.optim.CosineDecay(1e-3, 10, 2),
                                         decay_filter="matrices"), loss="cross_entropy")
    ids = rng.integers(0, 8, (4, 5))
    gpt.fit(ids[:, :-1], ids[:, 1:], batch_size=4, epochs=1, verbose=0)

    plain = nl.Sequential([nl.layers.Linear(2, 1)])
    return {"mlp": mlp, "mixed": mixed, "rms": rms, "gpt": gpt, "plain": plain}


def setup(work):
    pass


def seeds(work):
    """Model files written by nnlite, each raw and resealed, with and without compile."""
    out = {}
    for name, model in _models().items():
        path = os.path.join(work, f"seed_{name}.nnl")
        model.save(path)
        with open(path, "rb") as f:
            data = f.read()
        for mode in range(4):
            out[f"{name}_{mode}"] = bytes([mode]) + data
    return out


def regressions(work):
    return {}


def _reseal(data, work):
    """The file with its sha256 recomputed (CheckpointError if it is no safetensors file)."""
    tensors, meta = read_file(_target.write(os.path.join(work, "raw.nnl"), data))
    meta["sha256"] = checksum(tensors, meta)
    header, arrays = serialize(tensors, meta)
    return header + b"".join(a.reshape(-1).view(np.uint8).tobytes() for _, a in arrays)


def run(data, work):
    if not data:
        return
    mode, data = data[0], data[1:]
    if mode & 1:
        data = _reseal(data, work)
    path = _target.write(os.path.join(work, "model.nnl"), data)
    model = nl.load_model(path, compile=not mode & 2)
    assert isinstance(model, nl.layers.Layer)


if __name__ == "__main__":
    sys.exit(_target.main(sys.modules[__name__]))
