"""nnlite.datasets: MNIST / Fashion-MNIST loaders, checks, download, the bundled sample.

The real files come from $NNLITE_DATA, else <repo>/../shared/data (tests needing them are
skipped when absent). No test touches the network: the URL opener is replaced by a fake that
fails unless a test installs its own, and the user cache is redirected to tmp_path.
"""
import dataclasses
import functools
import gzip
import hashlib
import http.server
import importlib.util
import os
import shutil
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from _offline import DATA, REPO, REQUIRE, Opener, isolate
from nnlite import datasets
from nnlite.datasets import (DataFileError, DatasetNotFoundError, get_data_home,
                             load_fashion_mnist, load_mnist, load_mnist_sample)
from nnlite.datasets import _download, _idx, mnist

HAVE_MNIST = all((DATA / "mnist" / f).is_file() for f, _, _ in mnist.MNIST.files.values())
HAVE_FASHION = all((DATA / "fashion-mnist" / f).is_file()
                   for f, _, _ in mnist.FASHION_MNIST.files.values())
needs_mnist = pytest.mark.skipif(not (HAVE_MNIST or REQUIRE),
                                 reason=f"MNIST files not in {DATA}/mnist")
needs_fashion = pytest.mark.skipif(not (HAVE_FASHION or REQUIRE),
                                   reason=f"Fashion-MNIST files not in {DATA}/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


def cache_dir(name="mnist"):
    return get_data_home() / name


def real_bytes_opener(spec=mnist.MNIST, mirror=None):
    mirror = mirror or spec.mirrors[0]
    return Opener({mirror.rstrip("/") + "/" + f: (DATA / spec.subdir / f).read_bytes()
                   for f, _, _ in spec.files.values()})


def idx_bytes(arr, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 + arr.ndim
    return (magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            + arr.tobytes())


def write_gz(path, payload):
    Path(path).write_bytes(gzip.compress(payload, mtime=0))
    return path


def write_set(folder, n_train=5, n_test=3, labels=None, image_shape=(28, 28), n_labels=None):
    """Four small home-made IDX files (checksums won't match: load with verify=False)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = mnist.MNIST.files
    for split, n in (("train", n_train), ("test", n_test)):
        rng = np.random.default_rng(0)
        write_gz(folder / files[f"{split}_images"][0],
                 idx_bytes(rng.integers(0, 256, (n, *image_shape))))
        lab = labels if labels is not None else np.arange(n_labels or n) % 10
        write_gz(folder / files[f"{split}_labels"][0], idx_bytes(lab))
    return folder


# ---- the real files -----------------------------------------------------------------------------

@needs_mnist
def test_mnist_via_env(monkeypatch):
    monkeypatch.setenv("NNLITE_DATA", str(DATA))
    (x, y), (xt, yt) = load_mnist(download=False)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == xt.dtype == np.uint8 and y.dtype == yt.dtype == np.int64
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert list(y[:5]) == [5, 0, 4, 1, 9] and list(yt[:5]) == [7, 2, 1, 0, 4]
    assert y.min() == 0 and y.max() == 9 and np.bincount(y).sum() == 60000
    assert np.bincount(y, minlength=10)[1] == 6742  # MNIST's well-known class 1 count
    assert x.max() == 255 and x.min() == 0 and x.flags.writeable
    # the bundled sample is the first 1000 + 1000
    (sx, sy), (stx, sty) = load_mnist_sample()
    assert np.array_equal(sx, x[:1000]) and np.array_equal(sy, y[:1000])
    assert np.array_equal(stx, xt[:1000]) and np.array_equal(sty, yt[:1000])


@needs_fashion
def test_fashion_mnist_via_env(monkeypatch):
    monkeypatch.setenv("NNLITE_DATA", str(DATA))
    (x, y), (xt, yt) = load_fashion_mnist(download=False)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64
    assert np.array_equal(np.bincount(y, minlength=10), [6000] * 10)
    assert np.array_equal(np.bincount(yt, minlength=10), [1000] * 10)
    assert len(datasets.FASHION_CLASSES) == 10


@needs_mnist
def test_data_dir_beats_env_and_env_beats_cache(tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    for sub in ("mnist", "cachecopy"):
        (bad / sub).mkdir(parents=True)
        for f, _, _ in mnist.MNIST.files.values():
            (bad / sub / f).write_bytes(b"not the real file")
    monkeypatch.setenv("NNLITE_DATA", str(bad))
    # data_dir wins over the (corrupt) $NNLITE_DATA; files directly in it or in mnist/
    assert list(load_mnist(DATA, download=False)[0][1][:3]) == [5, 0, 4]
    assert list(load_mnist(DATA / "mnist", download=False)[0][1][:3]) == [5, 0, 4]
    # without data_dir, $NNLITE_DATA is used (and its bad files are reported, not skipped)
    with pytest.raises(DataFileError, match=r"bad.mnist.train-images.*MD5 checksum mismatch"):
        load_mnist(download=False)
    # $NNLITE_DATA wins over a corrupt cache
    shutil.copytree(bad / "cachecopy", cache_dir())
    monkeypatch.setenv("NNLITE_DATA", str(DATA))
    assert list(load_mnist(download=False)[1][1][:3]) == [7, 2, 1]
    monkeypatch.delenv("NNLITE_DATA")
    with pytest.raises(DataFileError, match="cache"):
        load_mnist(download=False)


@needs_fashion
def test_wrong_files_fail_the_checksum():
    # Fashion-MNIST files have MNIST's names: the MD5 check tells them apart
    with pytest.raises(DataFileError, match="MD5 checksum mismatch"):
        load_mnist(DATA / "fashion-mnist", download=False)


@needs_mnist
def test_truncated_real_file(tmp_path):
    d = tmp_path / "d"
    shutil.copytree(DATA / "mnist", d)
    os.chmod(d, 0o755)
    p = d / "t10k-labels-idx1-ubyte.gz"
    os.chmod(p, 0o644)
    p.write_bytes((DATA / "mnist" / p.name).read_bytes()[:3000])
    with pytest.raises(DataFileError, match="t10k-labels.*MD5"):
        load_mnist(d, download=False)
    with pytest.raises(DataFileError, match="t10k-labels.*gzip.*truncated"):
        _idx.read_idx(p, _idx.LABELS_MAGIC, md5=None)


# ---- IDX parsing and checks on home-made files ---------------------------------------------------

def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_gz(tmp_path / "a.gz", idx_bytes(arr))
    out = _idx.read_idx(p, _idx.IMAGES_MAGIC)
    assert np.array_equal(out, arr) and out.dtype == np.uint8 and out.flags.writeable
    md5 = hashlib.md5(p.read_bytes()).hexdigest()
    assert np.array_equal(_idx.read_idx(p, md5=md5), arr)
    with pytest.raises(DataFileError, match="a.gz: MD5 checksum mismatch"):
        _idx.read_idx(p, md5="0" * 32)


@pytest.mark.parametrize("payload, match", [
    (idx_bytes(np.zeros(5), magic=2049), "wrong magic number 2049.*expected 2051"),
    (idx_bytes(np.zeros((2, 28, 28)))[:-10], r"payload truncated.*\(2, 28, 28\).*1568 bytes.*1558"),
    (idx_bytes(np.zeros((2, 28, 28))) + b"xx", "payload has trailing bytes.*1570"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
    (b"\x00\x00", "only 2 bytes, too short"),
], ids=["magic", "truncated", "trailing", "header", "short"])
def test_bad_idx_contents(tmp_path, payload, match):
    p = write_gz(tmp_path / "images.gz", payload)
    with pytest.raises(DataFileError, match="images.gz: " + match):
        _idx.read_idx(p, _idx.IMAGES_MAGIC)


def test_non_ubyte_idx(tmp_path):
    p = write_gz(tmp_path / "f.gz", b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"abcd")
    with pytest.raises(DataFileError, match="not that of an unsigned-byte IDX"):
        _idx.read_idx(p)


def test_bad_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((4, 28, 28))), mtime=0)
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFileError, match="cut.gz: not a valid gzip file, or truncated"):
        _idx.read_idx(tmp_path / "cut.gz")
    (tmp_path / "plain.gz").write_bytes(idx_bytes(np.zeros(3)))
    with pytest.raises(DataFileError, match="plain.gz: not a valid gzip"):
        _idx.read_idx(tmp_path / "plain.gz")
    flipped = bytearray(good)
    flipped[-6] ^= 0xFF  # inside the CRC32 trailer
    (tmp_path / "crc.gz").write_bytes(bytes(flipped))
    with pytest.raises(DataFileError, match="crc.gz"):
        _idx.read_idx(tmp_path / "crc.gz")


def test_set_level_checks(tmp_path):
    (x, y), (xt, yt) = mnist._load_dir(write_set(tmp_path / "ok"), mnist.MNIST, verify=False)
    assert x.shape == (5, 28, 28) and y.dtype == np.int64 and len(yt) == 3
    with pytest.raises(DataFileError, match="labels must be in 0..9, found 12"):
        mnist._load_dir(write_set(tmp_path / "lab", labels=np.array([0, 12, 3, 4, 5])),
                        mnist.MNIST, verify=False)
    with pytest.raises(DataFileError, match="5 train images .* but 4 labels"):
        mnist._load_dir(write_set(tmp_path / "n", n_labels=4), mnist.MNIST, verify=False)
    with pytest.raises(DataFileError, match=r"shape \(5, 20, 20\), expected \(N, 28, 28\)"):
        mnist._load_dir(write_set(tmp_path / "s", image_shape=(20, 20)), mnist.MNIST,
                        verify=False)
    # the public loaders always verify: home-made files fail the MD5 check
    with pytest.raises(DataFileError, match="MD5"):
        load_mnist(tmp_path / "ok", download=False)


# ---- not found, download, sample fallback -----------------------------------------------------

def test_not_found_without_download(tmp_path, isolated):
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(tmp_path / "nowhere", download=False)
    msg = str(e.value)
    assert "nowhere" in msg and str(cache_dir()) in msg and "NNLITE_DATA" in msg
    assert "download=False" in msg and "data_dir" in msg
    assert isolated.calls == []
    assert isinstance(e.value, FileNotFoundError)


def test_failing_download_raises(isolated):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Download into .*failed.*no network"):
        load_mnist()
    assert len(isolated.calls) == len(mnist.MNIST.mirrors)  # every mirror tried once
    assert not [p for p in cache_dir().glob("*")]          # nothing left behind
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST"):
        load_fashion_mnist()


def test_failing_download_falls_back_to_sample(isolated):
    with pytest.warns(UserWarning, match="bundled 1000/1000 sample.*rather than 98 %"):
        (x, y), (xt, yt) = load_mnist(allow_sample=True)
    assert x.shape == xt.shape == (1000, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64 and list(y[:5]) == [5, 0, 4, 1, 9]
    assert isolated.calls  # the download was tried first
    with pytest.warns(UserWarning, match="sample"):
        load_mnist(download=False, allow_sample=True)


@needs_mnist
def test_download_into_cache(monkeypatch):
    opener = real_bytes_opener()
    monkeypatch.setattr(_download, "_urlopen", opener)
    (x, y), (xt, yt) = load_mnist()
    assert len(opener.calls) == 4
    assert x.shape == (60000, 28, 28) and list(y[:5]) == [5, 0, 4, 1, 9]
    files = sorted(p.name for p in cache_dir().iterdir())
    assert files == sorted(f for f, _, _ in mnist.MNIST.files.values())  # no .part leftovers
    for f, md5, size in mnist.MNIST.files.values():
        assert _idx.md5sum(cache_dir() / f) == md5 and (cache_dir() / f).stat().st_size == size
    load_mnist()  # now from the cache: no more downloads
    assert len(opener.calls) == 4


@needs_mnist
def test_download_only_missing_files_and_mirror_fallback(monkeypatch):
    cache_dir().mkdir(parents=True)
    shutil.copy(DATA / "mnist" / "train-images-idx3-ubyte.gz", cache_dir())
    opener = real_bytes_opener(mirror=mnist.MNIST.mirrors[1])  # first mirror is "down"
    monkeypatch.setattr(_download, "_urlopen", opener)
    assert list(load_mnist()[1][1][:2]) == [7, 2]
    assert len(opener.calls) == 6  # 3 missing files, each: mirror 0 fails, mirror 1 serves
    assert all(u.startswith(mnist.MNIST.mirrors[1]) for u in opener.calls[1::2])


@needs_mnist
def test_corrupt_download_is_discarded(monkeypatch):
    opener = real_bytes_opener()
    for url, data in opener.table.items():
        opener.table[url] = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    monkeypatch.setattr(_download, "_urlopen", opener)
    with pytest.raises(DatasetNotFoundError, match="MD5 checksum mismatch.*download discarded"):
        load_mnist()
    assert list(cache_dir().iterdir()) == []  # neither the temp file nor a final file
    with pytest.warns(UserWarning, match="sample"):
        assert len(load_mnist(allow_sample=True)[0][0]) == 1000


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@needs_mnist
def test_download_over_real_http(monkeypatch, capsys):
    """The real urllib path, against http.server on 127.0.0.1 (a 404 mirror first)."""
    monkeypatch.setattr(_download, "_urlopen", urllib.request.urlopen)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    handler = functools.partial(QuietHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        spec = dataclasses.replace(mnist.MNIST, mirrors=(base + "/missing/", base + "/mnist/"))
        monkeypatch.setattr(mnist, "MNIST", spec)
        (x, y), (xt, yt) = load_mnist()
    finally:
        server.shutdown()
        server.server_close()
    assert x.shape == (60000, 28, 28) and list(y[:5]) == [5, 0, 4, 1, 9]
    assert _idx.md5sum(cache_dir() / "train-images-idx3-ubyte.gz") == spec.files["train_images"][1]
    err = capsys.readouterr().err
    assert "Downloading" in err and "100%" in err and "404" in err


# ---- paths and the bundled sample ------------------------------------------------------------

def test_get_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "nnlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == tmp_path / "home" / ".cache" / "nnlite"


def test_bundled_sample():
    path = Path(mnist.__file__).with_name(mnist.SAMPLE_FILE)
    assert path.stat().st_size < 330_000
    (x, y), (xt, yt) = load_mnist_sample()
    assert x.shape == xt.shape == (1000, 28, 28) and x.dtype == xt.dtype == np.uint8
    assert y.dtype == yt.dtype == np.int64 and y.min() >= 0 and y.max() <= 9
    assert list(y[:5]) == [5, 0, 4, 1, 9] and list(yt[:5]) == [7, 2, 1, 0, 4]
    assert set(np.unique(y)) == set(range(10))


def test_missing_sample_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(mnist, "SAMPLE_FILE", "no_such_sample.npz")
    with pytest.raises(DataFileError, match="bundled MNIST sample"):
        load_mnist_sample()


@needs_mnist
def test_build_script_is_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "build_mnist_sample", REPO / "scripts" / "build_mnist_sample.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    md5s = [script.main(["--data-dir", str(DATA), "--out", str(tmp_path / f"s{i}.npz")])
            for i in range(2)]
    assert md5s[0] == md5s[1]
    assert (tmp_path / "s0.npz").read_bytes() == (tmp_path / "s1.npz").read_bytes()
    packaged = Path(mnist.__file__).with_name(mnist.SAMPLE_FILE)
    with np.load(tmp_path / "s0.npz") as new, np.load(packaged) as old:
        assert sorted(new.files) == sorted(old.files)
        for k in new.files:
            assert np.array_equal(new[k], old[k]) and new[k].dtype == old[k].dtype
