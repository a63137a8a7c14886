"""Fuzz target: the safetensors reader, ``nl.io.load_file`` / ``load_metadata``
(nnlite/io/safetensors.py). See _target.py for the rules and run.py to run it.

Input: the bytes of a file. Documented errors: ``CheckpointError`` (a ValueError) naming the
file, for anything truncated, malformed or inconsistent. Nothing else may escape, and the
arrays returned must be what the header says (dtype, shape, native byte order, writable).
"""
import os
import sys

import numpy as np

import _target

with _target.instrumented("nnlite.io"):
    import nnlite as nl
    from nnlite.io.safetensors import CheckpointError

ALLOWED = (CheckpointError,)
MAX_LEN = 4096


def error_ok(exc, work):
    return os.path.join(work, "f.safetensors") in str(exc)


def setup(work):
    pass


def seeds(work):
    """Files written by nnlite: every dtype, empty and 0-d tensors, metadata, unicode names."""
    rng = np.random.default_rng(0)
    cases = {
        "empty": ({}, None),
        "one_f32": ({"w": rng.standard_normal((3, 4)).astype(np.float32)}, None),
        "dtypes": ({f"t_{np.dtype(d).name}": np.arange(5).astype(d) for d in
                    ("<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "i1", "<u8", "<u4", "<u2",
                     "u1", "?")}, {"format": "pt"}),
        "shapes": ({"scalar": np.float64(2.5) * np.ones(()), "zero": np.zeros((0, 3)),
                    "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
                    "ünï": np.ones((1, 1, 1, 2), np.int16)}, {"k": "v", "": "ünï"}),
    }
    out = {}
    for name, (tensors, meta) in cases.items():
        path = os.path.join(work, f"seed_{name}.safetensors")
        nl.io.save_file(tensors, path, metadata=meta)
        with open(path, "rb") as f:
            out[name] = f.read()
    return out


def regressions(work):
    return {}


def run(data, work):
    path = _target.write(os.path.join(work, "f.safetensors"), data)
    tensors, meta = nl.io.safetensors.read_file(path)
    assert isinstance(meta, dict)
    for name, a in tensors.items():
        assert isinstance(name, str) and isinstance(a, np.ndarray), name
        assert a.flags.writeable and a.dtype.isnative, (name, a.dtype)


if __name__ == "__main__":
    sys.exit(_target.main(sys.modules[__name__]))
