"""Tiny Shakespeare loader (lookup, download, checksum, bundled copy, build script) and the
character-level text tools (CharTokenizer, train_val_split, RandomWindowSampler).

The real file comes from $NNLITE_DATA, else <repo>/../shared/data (tests needing it are skipped
when absent, unless NNLITE_REQUIRE_DATA=1). No test touches the network: the URL opener is
replaced by a fake that fails unless a test installs its own; the user cache is in tmp_path.
"""
import gzip
import hashlib
import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from _offline import DATA, REPO, Opener, isolate, needs_data

from nnlite import datasets
from nnlite.data import CharTokenizer, RandomWindowSampler, train_val_split
from nnlite.datasets import (
    DataFileError,
    DatasetNotFoundError,
    _download,
    get_data_home,
    load_tiny_shakespeare,
    shakespeare,
)

REAL = DATA / "tinyshakespeare" / "input.txt"
needs_text = needs_data("Tiny Shakespeare", "tinyshakespeare/input.txt")
URL = shakespeare.MIRRORS[0] + shakespeare.FILENAME
BUNDLED = Path(shakespeare.__file__).with_name(shakespeare.BUNDLED_FILE)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def text():
    """The text, from the bundled copy (always there, MD5-checked)."""
    return shakespeare.load_bundled_shakespeare()


def cache_file():
    return get_data_home() / "tinyshakespeare" / "input.txt"


# ---- the loader -------------------------------------------------------------------------------

@needs_text
def test_real_file_via_env(monkeypatch, isolated):
    monkeypatch.setenv("NNLITE_DATA", str(DATA))
    s = load_tiny_shakespeare(download=False)
    assert isinstance(s, str) and len(s) == 1115394 and len(set(s)) == 65
    assert s.startswith("First Citizen:") and s.count("\n") == 40000
    assert s == shakespeare.load_bundled_shakespeare() == load_tiny_shakespeare(DATA)
    assert load_tiny_shakespeare(REAL) == s  # the file's own path
    assert isolated.calls == []


def test_bundled_copy(text):
    assert 400_000 < BUNDLED.stat().st_size < 450_000
    assert len(text) == 1115394 and len(set(text)) == 65 and text.startswith("First Citizen:")
    assert hashlib.md5(text.encode("ascii")).hexdigest() == shakespeare.MD5
    assert load_tiny_shakespeare is datasets.load_tiny_shakespeare


def test_lookup_precedence(tmp_path, monkeypatch, text):
    good, bad = tmp_path / "good", tmp_path / "bad"
    (good / "tinyshakespeare").mkdir(parents=True)
    (good / "tinyshakespeare" / "input.txt").write_text(text)
    (bad / "tinyshakespeare").mkdir(parents=True)
    (bad / "tinyshakespeare" / "input.txt").write_bytes(b"not Shakespeare")
    monkeypatch.setenv("NNLITE_DATA", str(bad))
    # data_dir wins over a corrupt $NNLITE_DATA; the file directly in it works too
    assert load_tiny_shakespeare(good, download=False) == text
    assert load_tiny_shakespeare(good / "tinyshakespeare", download=False) == text
    # without data_dir, the (corrupt) $NNLITE_DATA file is used and reported, not skipped
    with pytest.raises(DataFileError, match=r"bad.tinyshakespeare.input\.txt: MD5 checksum "
                                            r"mismatch.*15 bytes"):
        load_tiny_shakespeare()
    # $NNLITE_DATA wins over a corrupt cache, and the cache's bad file is reported
    cache_file().parent.mkdir(parents=True)
    cache_file().write_bytes(text[:1000].encode())
    big = tmp_path / "big.txt"                  # read no further than the expected size
    big.write_bytes(text.encode() * 3)
    with pytest.raises(DataFileError, match="big.txt: MD5 .* more than 1115394 bytes"):
        load_tiny_shakespeare(big)
    monkeypatch.setenv("NNLITE_DATA", str(good))
    assert load_tiny_shakespeare() == text
    monkeypatch.delenv("NNLITE_DATA")
    with pytest.raises(DataFileError, match="cache.*MD5"):
        load_tiny_shakespeare()


def test_bundled_copy_first_without_network(tmp_path, isolated, text, capsys):
    """No file anywhere: the bundled copy, which is the whole text, with no network call and
    nothing printed (the download was tried first, stalling offline, and told of its failure)."""
    assert load_tiny_shakespeare() == text
    assert load_tiny_shakespeare(tmp_path / "nowhere") == text
    assert isolated.calls == [] and capsys.readouterr().err == ""
    assert not cache_file().parent.exists()


def break_bundled_copy(monkeypatch):
    monkeypatch.setattr(shakespeare, "BUNDLED_FILE", "no_such_file.gz")


def test_download_repairs_a_missing_bundled_copy(monkeypatch, text):
    break_bundled_copy(monkeypatch)
    opener = Opener({URL: text.encode("ascii")})
    monkeypatch.setattr(_download, "_urlopen", opener)
    assert load_tiny_shakespeare() == text
    assert opener.calls == [URL]
    assert [p.name for p in cache_file().parent.iterdir()] == ["input.txt"]  # no .part left
    assert hashlib.md5(cache_file().read_bytes()).hexdigest() == shakespeare.MD5
    assert load_tiny_shakespeare() == text and len(opener.calls) == 1  # now from the cache


def test_corrupt_download_is_discarded(monkeypatch, text):
    break_bundled_copy(monkeypatch)
    data = bytearray(text.encode("ascii"))
    data[500] ^= 1
    monkeypatch.setattr(_download, "_urlopen", Opener({URL: bytes(data)}))
    with pytest.raises(DatasetNotFoundError, match=r"(?s)bundled Tiny Shakespeare.*missing or "
                                                   r"corrupt.*reinstall nnlite.*MD5 checksum "
                                                   r"mismatch.*download discarded"):
        load_tiny_shakespeare()
    assert list(cache_file().parent.iterdir()) == []  # neither the temp file nor input.txt


def test_corrupt_bundled_copy_is_an_error(tmp_path, monkeypatch, text):
    break_bundled_copy(monkeypatch)
    with pytest.raises(DataFileError, match="bundled Tiny Shakespeare.*missing or corrupt"):
        load_tiny_shakespeare(download=False)
    monkeypatch.setattr(shakespeare.resources, "files", lambda pkg: tmp_path)
    (tmp_path / "no_such_file.gz").write_bytes(gzip.compress(text[:-1].encode(), mtime=0))
    with pytest.raises(DataFileError, match="bundled Tiny Shakespeare.*MD5 checksum mismatch"):
        load_tiny_shakespeare(download=False)


@needs_text
def test_build_script_reproduces_bundled_file(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "build_shakespeare_sample", REPO / "scripts" / "build_shakespeare_sample.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ts.gz"
    md5 = script.main(["--data-dir", str(DATA), "--out", str(out)])
    assert out.read_bytes() == BUNDLED.read_bytes()
    assert md5 == hashlib.md5(BUNDLED.read_bytes()).hexdigest() and md5 in capsys.readouterr().out
    assert gzip.decompress(out.read_bytes()) == REAL.read_bytes()


# ---- CharTokenizer --------------------------------------------------------------------------

def test_tokenizer_round_trip(text):
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == len(tok) == 65 and tok.chars == "".join(sorted(set(text)))
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert list(ids[:5]) == [18, 47, 56, 57, 58]  # "First", as in nanoGPT
    assert tok.decode(ids) == text
    assert tok.decode(list(ids[:14])) == tok.decode(ids[:14].astype(np.uint8)) == "First Citizen:"
    assert tok.decode(18) == "F"
    e = tok.encode("")
    assert e.dtype == np.int64 and e.shape == (0,) and tok.decode(e) == tok.decode([]) == ""
    uni = CharTokenizer.from_text("héllo wörld 🙂")
    assert uni.decode(uni.encode("wörld 🙂 héllo")) == "wörld 🙂 héllo"
    assert CharTokenizer("ba").encode("abba").tolist() == [1, 0, 0, 1]  # order as given
    assert CharTokenizer(["x", "y"]).chars == "xy"


def test_tokenizer_errors():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"^CharTokenizer: character 'é' at position 3 is not "
                                         r"in the vocabulary \(3 characters\)$"):
        tok.encode("abcé")
    with pytest.raises(ValueError, match=r"character '\\n' at position 1"):
        tok.encode("a\nb")
    with pytest.raises(ValueError, match=r"character '🙂' at position 0"):
        tok.encode("🙂")  # code point beyond the lookup table
    with pytest.raises(ValueError, match=r"id 3 at position 1 is out of range .*3 characters "
                                         r"\(valid ids 0..2\)"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="id -1 at position 0"):
        tok.decode(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        tok.decode([0.5])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="duplicate characters.*'a'"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")
    with pytest.raises(TypeError):
        tok.encode(b"abc")


def test_tokenizer_config_round_trip():
    tok = CharTokenizer.from_text("hello, world\n")
    config = json.loads(json.dumps(tok.get_config()))
    assert config == {"chars": "\n ,dehlorw"}
    again = CharTokenizer.from_config(config)
    assert again == tok and again.encode("world").tolist() == tok.encode("world").tolist()
    assert "vocab_size=10" in repr(tok)


# ---- train_val_split -----------------------------------------------------------------------

def test_train_val_split(text):
    ids = np.arange(1115394)
    train, val = train_val_split(ids)
    assert len(train) == 1003854 and len(val) == 111540  # int(0.9 * n), as nanoGPT
    assert np.array_equal(np.concatenate([train, val]), ids) and np.shares_memory(train, ids)
    a, b = train_val_split(list(range(10)), train_fraction=0.75)
    assert a.tolist() == list(range(7)) and b.tolist() == [7, 8, 9]
    s, t = train_val_split(text)
    assert isinstance(s, str) and s + t == text and len(t) == 111540
    for bad in (1.5, -0.1, "0.9"):
        with pytest.raises(ValueError, match="train_fraction"):
            train_val_split(ids, bad)


# ---- RandomWindowSampler ------------------------------------------------------------------

def test_sampler_shapes_and_shift():
    ids = np.arange(1000) * 7
    s = RandomWindowSampler(ids, block_size=16, batch_size=8, seed=0)
    x, y = s.get_batch()
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    assert np.array_equal(y - x, np.full((8, 16), 7))  # y[i] = ids[offset + i + 1]
    assert x.flags.c_contiguous and y.flags.c_contiguous and not np.shares_memory(x, y)
    # every offset 0 .. len - block_size - 1 is reachable, and nothing beyond
    tiny = RandomWindowSampler(np.arange(6, dtype=np.uint8), block_size=3, batch_size=500, seed=1)
    x, y = tiny.get_batch()
    assert sorted(set(x[:, 0].tolist())) == [0, 1, 2] and y.max() == 5 and x.dtype == np.int64
    exact = RandomWindowSampler([5, 6, 7], block_size=2, batch_size=2, seed=0)
    x, y = exact.get_batch()
    assert x.tolist() == [[5, 6]] * 2 and y.tolist() == [[6, 7]] * 2


def test_sampler_determinism_and_iteration():
    ids = np.arange(10_000)
    a = RandomWindowSampler(ids, 32, 4, seed=123)
    b = RandomWindowSampler(ids, 32, 4, seed=123)
    batches = list(itertools.islice(a, 5))
    assert len(batches) == 5 and a.batches_drawn == 5
    for (xa, ya), (xb, yb) in zip(batches, (b.get_batch() for _ in range(5))):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    c = RandomWindowSampler(ids, 32, 4, seed=124)
    assert not np.array_equal(c.get_batch()[0], RandomWindowSampler(ids, 32, 4, seed=123)
                              .get_batch()[0])
    from nnlite import random as nl_random
    nl_random.seed(7)
    d = RandomWindowSampler(ids, 8, 2).get_batch()[0]
    nl_random.seed(7)
    assert np.array_equal(RandomWindowSampler(ids, 8, 2).get_batch()[0], d)


def test_sampler_state_round_trip():
    ids = np.arange(5000)
    s = RandomWindowSampler(ids, 16, 8, seed=0)
    for _ in range(3):
        s.get_batch()
    state = json.loads(json.dumps(s.state_dict()))  # JSON-able
    expected = [s.get_batch() for _ in range(3)]
    resumed = RandomWindowSampler(ids, 16, 8, seed=99)  # another seed: the state overrides it
    resumed.load_state_dict(state)
    assert resumed.batches_drawn == 3
    for (xe, ye), (xr, yr) in zip(expected, (next(resumed) for _ in range(3))):
        assert np.array_equal(xe, xr) and np.array_equal(ye, yr)
    with pytest.raises(ValueError, match="state_dict"):
        resumed.load_state_dict({"nope": 1})
    with pytest.raises(ValueError, match="MT19937"):
        resumed.load_state_dict({"bit_generator": {"bit_generator": "MT19937"}})


def test_sampler_errors():
    with pytest.raises(ValueError, match=r"has 8 tokens, too short for block_size=8 .*at least "
                                         r"block_size \+ 1 = 9"):
        RandomWindowSampler(np.arange(8), block_size=8, batch_size=1)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        RandomWindowSampler(np.arange(8), block_size=0, batch_size=1)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        RandomWindowSampler(np.arange(8), block_size=2, batch_size=2.0)
    with pytest.raises(ValueError, match="1-D"):
        RandomWindowSampler(np.zeros((4, 4), dtype=int), block_size=2, batch_size=1)
    with pytest.raises(TypeError, match="integers"):
        RandomWindowSampler(np.zeros(10), block_size=2, batch_size=1)
