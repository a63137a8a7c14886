"""safetensors files and whole-model (.nnl) files: round trips, spec compatibility, atomic
writes, and clear errors for damaged files."""
import json
import os
import struct

import numpy as np
import pytest

import nnlite as nl
from nnlite.io import CheckpointError, load_file, load_metadata, save_file
from nnlite.io import safetensors as st

ALL_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
              np.uint64, np.uint32, np.uint16, np.uint8, np.bool_]


def spec_file(header, data=b"", pad=True):
    """A safetensors file built byte by byte from the format description."""
    js = json.dumps(header).encode()
    if pad:
        js += b" " * (-(8 + len(js)) % 8)
    return struct.pack("<Q", len(js)) + js + data


# -- safetensors -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_round_trip_every_dtype(tmp_path, dtype):
    rng = np.random.default_rng(0)
    tensors = {
        "matrix": (rng.standard_normal((3, 5)) * 50).astype(dtype),
        "scalar": np.array(7, dtype=dtype),                       # 0-d
        "empty": np.zeros((0, 4), dtype=dtype),                   # no bytes
        "noncontig": (rng.standard_normal((4, 6)) * 50).astype(dtype)[:, ::2],
    }
    save_file(tensors, tmp_path / "t.safetensors", metadata={"who": "test"})
    back = load_file(tmp_path / "t.safetensors")
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.writeable
    assert load_metadata(tmp_path / "t.safetensors") == {"who": "test"}


def test_layout_is_aligned_and_padded(tmp_path):
    save_file({"b": np.ones(3, np.uint8), "a": np.ones(2, np.float64)}, tmp_path / "f")
    raw = (tmp_path / "f").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert (8 + n) % 8 == 0 and raw[8 + n - 1:8 + n] in (b"}", b" ")
    header = json.loads(raw[8:8 + n])
    assert header["a"]["data_offsets"] == [0, 16]                 # 8-byte dtype first
    assert header["b"]["data_offsets"] == [16, 19]


def test_loads_a_file_built_from_the_spec(tmp_path):
    # unpadded header, I32 scalar then F16 vector: the F16 data is at offset 4 (not aligned)
    data = struct.pack("<i", -3) + np.array([1.5, -2.0], "<f2").tobytes() + b"\x01\x00"
    header = {"__metadata__": {"format": "np"},
              "s": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]},
              "h": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]},
              "m": {"dtype": "BOOL", "shape": [1, 2], "data_offsets": [8, 10]}}
    (tmp_path / "spec.safetensors").write_bytes(spec_file(header, data, pad=False))
    got = load_file(tmp_path / "spec.safetensors")
    assert got["s"].shape == () and got["s"] == -3 and got["s"].dtype == np.int32
    np.testing.assert_array_equal(got["h"], np.array([1.5, -2.0], np.float16))
    np.testing.assert_array_equal(got["m"], [[True, False]])
    assert load_metadata(tmp_path / "spec.safetensors") == {"format": "np"}


def test_bytes_match_the_reference_writer(tmp_path):
    # what safetensors.numpy.save_file({"a": np.arange(3, dtype=np.int32)}) writes
    expected = (b"8\x00\x00\x00\x00\x00\x00\x00"
                b'{"a":{"dtype":"I32","shape":[3],"data_offsets":[0,12]}} '
                + np.arange(3, dtype="<i4").tobytes())
    save_file({"a": np.arange(3, dtype=np.int32)}, tmp_path / "a.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == expected


def test_interoperates_with_official_package(tmp_path):
    stn = pytest.importorskip("safetensors.numpy")
    t = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "i": np.arange(3),
         "s": np.array(1.0), "u": np.arange(3, dtype=np.uint8)}
    save_file(t, tmp_path / "ours", metadata={"k": "v"})
    stn.save_file(t, str(tmp_path / "theirs"), metadata={"k": "v"})
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "theirs").read_bytes()
    for k, v in stn.load_file(str(tmp_path / "ours")).items():
        np.testing.assert_array_equal(v, t[k])


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="complex"):
        save_file({"c": np.zeros(2, np.complex64)}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        save_file({"a": np.zeros(2)}, tmp_path / "x", metadata={"n": 1})
    with pytest.raises(TypeError, match="__metadata__"):
        save_file({"__metadata__": np.zeros(2)}, tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_atomic_save_keeps_old_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_file({"a": np.arange(4.0)}, path)
    before = path.read_bytes()

    def crash(f, header, arrays):
        f.write(header[:10])            # half-written file, then the "power cut"
        raise OSError("disk full")

    monkeypatch.setattr(st, "_write_all", crash)
    with pytest.raises(OSError, match="disk full"):
        save_file({"a": np.arange(1000.0)}, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]       # no temp file left


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:5], "truncated or not a safetensors"),
    (lambda raw: raw[:-3], "truncated: header says 32 bytes of tensor data, file has 29"),
    (lambda raw: struct.pack("<Q", 10 ** 15) + raw[8:], "implausible"),
    (lambda raw: struct.pack("<Q", 5000) + raw[8:], "truncated: header says 5000 bytes"),
    (lambda raw: raw + b"xx", "unexpected bytes"),
    (lambda raw: raw[:8] + b"[" + raw[9:], "start with"),
    (lambda raw: raw[:9] + b"!" + raw[10:], "not valid JSON"),
])
def test_damaged_files_give_clear_errors(tmp_path, damage, message):
    path = tmp_path / "d.safetensors"
    save_file({"a": np.arange(4.0, dtype=np.float32), "b": np.arange(2.0)}, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as e:
        load_file(path)
    assert str(path) in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("entries, nbytes, message", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, "gap"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, "needs 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, 8, "invalid data_offsets"),
    ({"a": {"dtype": "BF17", "shape": [2], "data_offsets": [0, 8]}}, 8, "unsupported dtype"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8, "invalid shape"),
    ({"a": {"dtype": "F32", "shape": [2]}}, 8, "exactly dtype, shape, data_offsets"),
    ({"__metadata__": {"k": 1}}, 0, "__metadata__"),
    ([1, 2], 0, "does not start with"),
    ("text", 0, "does not start with"),
])
def test_inconsistent_headers_are_rejected(tmp_path, entries, nbytes, message):
    path = tmp_path / "h.safetensors"
    path.write_bytes(spec_file(entries, bytes(nbytes)))
    with pytest.raises(CheckpointError, match=message):
        load_file(path)


def test_duplicate_names_are_rejected(tmp_path):
    js = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' \
         b'"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    (tmp_path / "dup").write_bytes(struct.pack("<Q", len(js)) + js + b"\x00")
    with pytest.raises(CheckpointError, match="duplicate key 'a'"):
        load_file(tmp_path / "dup")


# -- model files -----------------------------------------------------------------------------
def _mlp():
    nl.random.seed(0)
    return nl.Sequential([nl.Flatten(), nl.Linear(12, 16), nl.ReLU(), nl.Linear(16, 3)])


def _data(n=64):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 3, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_save_load_model_identical_predictions_and_compile_state(tmp_path):
    x, y = _data()
    model = _mlp()
    model.compile(optimizer=nl.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    model.save(tmp_path / "m.nnl")

    loaded = nl.load_model(tmp_path / "m.nnl")
    assert [type(layer).__name__ for layer in loaded] == ["Flatten", "Linear", "ReLU", "Linear"]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert type(loaded.optimizer) is nl.optim.SGD and loaded.optimizer.get_config() == \
        model.optimizer.get_config()
    assert type(loaded.loss) is type(model.loss) and loaded.metrics_names == ["accuracy"]
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    # optimizer state restored: one more identical step from both gives identical weights
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_model_file_is_a_safetensors_file(tmp_path):
    model = _mlp()
    model.save(tmp_path / "m.nnl")           # uncompiled: architecture + weights only
    tensors = load_file(tmp_path / "m.nnl")
    assert sorted(tensors) == ["1.W", "1.b", "3.W", "3.b"]
    meta = load_metadata(tmp_path / "m.nnl")
    assert meta["format"] == "nnlite.model" and "sha256" in meta
    arch = json.loads(meta["architecture"])
    assert [spec["class_name"] for spec in arch["config"]["layers"]][1] == "Linear"
    assert nl.load_model(tmp_path / "m.nnl").loss is None


def test_flipped_data_byte_fails_checksum(tmp_path):
    _mlp().save(tmp_path / "m.nnl")
    raw = bytearray((tmp_path / "m.nnl").read_bytes())
    raw[-5] ^= 0x01
    (tmp_path / "m.nnl").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt: checksum mismatch"):
        nl.load_model(tmp_path / "m.nnl")


def test_truncated_model_file(tmp_path):
    _mlp().save(tmp_path / "m.nnl")
    raw = (tmp_path / "m.nnl").read_bytes()
    (tmp_path / "m.nnl").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        nl.load_model(tmp_path / "m.nnl")


def test_tampered_architecture_fails_checksum(tmp_path):
    path = tmp_path / "m.nnl"
    _mlp().save(path)
    tensors, meta = st.read_file(path)
    meta["architecture"] = meta["architecture"].replace('"ReLU"', '"Tanh"')
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        nl.load_model(path)


def test_unknown_layer_class_is_named(tmp_path):
    from nnlite.io.model_file import checksum
    path = tmp_path / "m.nnl"
    _mlp().save(path)
    tensors, meta = st.read_file(path)
    meta["architecture"] = meta["architecture"].replace('"ReLU"', '"MyFancyLayer"')
    meta["sha256"] = checksum(tensors, meta)
    save_file(tensors, path, metadata=meta)
    with pytest.raises(ValueError, match="unknown layer class 'MyFancyLayer'"):
        nl.load_model(path)


def test_plain_safetensors_is_not_a_model(tmp_path):
    save_file({"a": np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="not an nnlite model file"):
        nl.load_model(tmp_path / "w.safetensors")


def test_weights_only_round_trip(tmp_path):
    a = _mlp()
    nl.random.seed(5)
    b = nl.Sequential([nl.Flatten(), nl.Linear(12, 16), nl.ReLU(), nl.Linear(16, 3)])
    a.save_weights(tmp_path / "w.safetensors")
    b.load_weights(tmp_path / "w.safetensors")
    x, _ = _data(8)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_schedule_and_dropout_survive_save_load(tmp_path):
    x, y = _data(32)
    nl.random.seed(0)
    model = nl.Sequential([nl.Flatten(), nl.Linear(12, 8), nl.Dropout(0.5), nl.Linear(8, 3)])
    model.compile(optimizer=nl.optim.Adam(lr=nl.optim.CosineDecay(1e-2, total_steps=50)),
                  loss=nl.losses.CrossEntropy(), metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.nnl")
    loaded = nl.load_model(tmp_path / "m.nnl")
    assert isinstance(loaded.optimizer.lr, nl.optim.CosineDecay)
    assert loaded.optimizer.get_lr() == model.optimizer.get_lr()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))   # dropout off
