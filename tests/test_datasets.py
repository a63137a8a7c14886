"""nnlite.datasets: MNIST / Fashion-MNIST loaders, checks, download, the bundled sample.

The real files come from $NNLITE_DATA, else <repo>/../shared/data (tests needing them are
skipped when absent). No test touches the network: the URL opener is replaced by a fake that
fails unless a test installs its own, and the user cache is redirected to tmp_path.
"""
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import importlib.util
import io
import os
import shutil
import socket
import ssl
import sys
import threading
import time
import tracemalloc
import urllib.request
import zlib
from pathlib import Path

import _child as child
import numpy as np
import pytest
from _offline import DATA, REPO, Opener, isolate, needs_data

from nnlite import datasets
from nnlite.datasets import (
    DataFileError,
    DatasetNotFoundError,
    _download,
    _idx,
    get_data_home,
    load_fashion_mnist,
    load_mnist,
    load_mnist_sample,
    mnist,
)

needs_mnist = needs_data("MNIST", *(f"mnist/{f}" for f, _, _ in mnist.MNIST.files.values()))
needs_fashion = needs_data("Fashion-MNIST", *(f"fashion-mnist/{f}"
                                              for f, _, _ in mnist.FASHION_MNIST.files.values()))
MIRROR_0 = mnist.MNIST.mirrors[0]


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


def test_gzip_bomb_costs_no_more_than_the_declared_array(tmp_path):
    """64 MiB of zeros after a (2, 28, 28) payload, in a 64 KB file, MD5 check off."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)           # 31: gzip framing
    parts = [z.compress(idx_bytes(np.zeros((2, 28, 28))))]
    parts += [z.compress(bytes(1 << 20)) for _ in range(64)] + [z.flush()]
    p = tmp_path / "bomb.gz"
    p.write_bytes(b"".join(parts))
    del parts
    tracemalloc.start()
    try:
        with pytest.raises(DataFileError, match=r"bomb.gz: payload has trailing bytes: the "
                                                r"header says shape \(2, 28, 28\) = 1568 bytes"):
            _idx.read_idx(p, _idx.IMAGES_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_header_dimensions_are_checked_before_allocating(tmp_path):
    def header(*dims):
        return (0x0800 + len(dims)).to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in dims)
    # 2^31 * 2^31 * 4 = 2^64: wrapped to 0 in int64, which "matched" the empty payload
    p = write_gz(tmp_path / "wrap.gz", header(2**31, 2**31, 4))
    with pytest.raises(DataFileError, match=r"wrap.gz: the header says shape \(2147483648, "
                                            r"2147483648, 4\) = 18446744073709551616 bytes, "
                                            r"more than a \d+-byte gzip file can hold"):
        _idx.read_idx(p)
    # MNIST's shape in a file far too small to hold it: refused, not allocated then filled
    p = write_gz(tmp_path / "small.gz", header(60000, 28, 28) + bytes(10))
    with pytest.raises(DataFileError, match=r"\(60000, 28, 28\) = 47040000 bytes, more than"):
        _idx.read_idx(p, _idx.IMAGES_MAGIC)


def test_set_level_checks(tmp_path):
    (x, y), (_, yt) = mnist._load_dir(write_set(tmp_path / "ok"), mnist.MNIST, verify=False)
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
    assert "allow_sample=True" in msg                    # MNIST has a sample: say so
    with pytest.raises(DatasetNotFoundError) as e:
        load_fashion_mnist(download=False)
    assert "allow_sample" not in str(e.value)            # Fashion-MNIST has none


@needs_mnist
def test_partial_folder_names_the_missing_file_and_downloads_only_it(tmp_path, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz"):
        os.symlink(DATA / "mnist" / f, d / f)
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(d, download=False)
    msg = str(e.value)
    assert msg.startswith("MNIST: t10k-labels-idx1-ubyte.gz not found")
    assert f"{d}  [data_dir]: has 3 of 4, lacks t10k-labels-idx1-ubyte.gz" in msg
    opener = real_bytes_opener()
    monkeypatch.setattr(_download, "_urlopen", opener)
    assert list(load_mnist(d)[1][1][:3]) == [7, 2, 1]
    assert opener.calls == [MIRROR_0 + "t10k-labels-idx1-ubyte.gz"]   # that one file only
    assert [p.name for p in cache_dir().iterdir()] == ["t10k-labels-idx1-ubyte.gz"]


def test_readme_first_snippet_works_offline(isolated):
    """The README's first call works without data or network: the sample, with a warning."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if "nl.datasets.load_mnist(" in ln)
    env = {"nl": __import__("nnlite")}
    with pytest.warns(UserWarning, match="bundled 1000/1000 sample"):
        exec(line.split("#")[0].strip(), env)  # noqa: S102  (the README's line, as written)
    assert env["x_train"].shape == (1000, 28, 28) and isolated.calls


def test_failing_download_raises(isolated):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Download into .*failed.*no network"):
        load_mnist()
    assert len(isolated.calls) == len(mnist.MNIST.mirrors)  # every mirror tried once
    assert not [p for p in cache_dir().glob("*")]          # nothing left behind
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST"):
        load_fashion_mnist()


def test_failing_download_falls_back_to_sample(isolated):
    with pytest.warns(UserWarning, match="bundled 1000/1000 sample.*rather than 98 %"):
        (x, y), (xt, _) = load_mnist(allow_sample=True)
    assert x.shape == xt.shape == (1000, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64 and list(y[:5]) == [5, 0, 4, 1, 9]
    assert isolated.calls  # the download was tried first
    with pytest.warns(UserWarning, match="sample"):
        load_mnist(download=False, allow_sample=True)


@needs_mnist
def test_download_into_cache(monkeypatch):
    opener = real_bytes_opener()
    monkeypatch.setattr(_download, "_urlopen", opener)
    (x, y), _ = load_mnist()
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


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files quietly; ``/redirect/<path>`` answers 302 to ``server.redirect_to/<path>``."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to + self.path[len("/redirect"):])
            self.end_headers()
        else:
            super().do_GET()


TLS_PEM = Path(__file__).with_name("localhost.pem")   # test-only, self-signed for 127.0.0.1


@contextlib.contextmanager
def serve(directory, tls=True, redirect_to=None):
    """A file server on 127.0.0.1 in a thread: https (with TLS_PEM) or plain http."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    server.redirect_to = redirect_to
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS_PEM)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def real_network(monkeypatch):
    """The real urllib opener, trusting TLS_PEM, with no proxy in the way."""
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    context = ssl.create_default_context(cafile=str(TLS_PEM))
    monkeypatch.setattr(_download, "_urlopen",
                        functools.partial(urllib.request.urlopen, context=context))


@needs_mnist
def test_download_over_real_https(monkeypatch, capsys, real_network):
    """The real urllib path, against a local https server (a 404 mirror first)."""
    with serve(DATA) as base:
        spec = dataclasses.replace(mnist.MNIST, mirrors=(base + "/missing/", base + "/mnist/"))
        monkeypatch.setattr(mnist, "MNIST", spec)
        (x, y), _ = load_mnist()
    assert x.shape == (60000, 28, 28) and list(y[:5]) == [5, 0, 4, 1, 9]
    assert _idx.md5sum(cache_dir() / "train-images-idx3-ubyte.gz") == spec.files["train_images"][1]
    err = capsys.readouterr().err
    assert err.count("Downloading") == 4 and "100%" in err and "MD5 ok" in err
    assert "404" not in err  # a mirror that fails before another serves is no news
    assert "\r" not in err   # not a terminal: one final line per file, no redraws


@needs_mnist
def test_progress_bar_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(_download, "_urlopen", real_bytes_opener())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    load_mnist()
    err = capsys.readouterr().err
    bars = [part for part in err.split("\r") if "train-images" not in part and "[" in part]
    assert len(bars) > 10 and "[########################] 100%  9.9 MB / 9.9 MB" in err
    assert err.count("\n") == 8       # per file: its line, and the bar's final state


def test_mirrors_are_https_only(tmp_path, real_network):
    from nnlite.datasets import shakespeare
    for url in (*mnist.MNIST.mirrors, *mnist.FASHION_MNIST.mirrors, *shakespeare.MIRRORS):
        assert url.startswith("https://"), url
    name, md5, size = mnist.MNIST.files["test_labels"]
    with pytest.raises(DataFileError, match="not an https URL"):
        _download.fetch("http://127.0.0.1:9/" + name, tmp_path / name, md5, size)
    # nor does a redirect from https to http get through (it would have downloaded before)
    with serve(DATA, tls=False) as plain, serve(DATA, redirect_to=plain) as secure, \
            pytest.raises(DataFileError, match=r"redirected to http://127\.0\.0\.1.*https"):
        _download.fetch(f"{secure}/redirect/mnist/{name}", tmp_path / name, md5, size)
    assert list(tmp_path.iterdir()) == []


class Endless:
    """A response that never ends (a server gone wrong); counts the bytes read from it."""

    def __init__(self, limit, headers=None):
        self.served, self.limit, self.headers = 0, limit, headers or {}

    def read(self, n):
        if self.served > self.limit:
            raise AssertionError(f"read {self.served} bytes, the cap is {self.limit}")
        self.served += n
        return bytes(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_stops_at_the_expected_size(tmp_path, monkeypatch):
    name, md5, size = mnist.MNIST.files["test_labels"]     # 4542 bytes
    dest = tmp_path / name
    resp = Endless(size + 1)
    monkeypatch.setattr(_download, "_urlopen", lambda url, timeout: resp)
    with pytest.raises(DataFileError, match=f"more than the expected {size} bytes; download "
                                            "discarded"):
        _download.fetch(MIRROR_0 + name, dest, md5, size)
    assert resp.served == size + 1 and list(tmp_path.iterdir()) == []
    # a server that announces 300 MB is refused before anything is read
    resp = Endless(0, headers={"Content-Length": "300000000"})
    with pytest.raises(DataFileError, match=f"announces 300000000 bytes, expected {size}"):
        _download.fetch(MIRROR_0 + name, dest, md5, size)
    assert resp.served == 0 and list(tmp_path.iterdir()) == []
    # and a short one is named as such
    monkeypatch.setattr(_download, "_urlopen", lambda url, timeout: io.BytesIO(bytes(100)))
    with pytest.raises(DataFileError, match=f"only 100 of {size} bytes received"):
        _download.fetch(MIRROR_0 + name, dest, md5, size)


def test_download_timeout_is_short_and_configurable(monkeypatch, isolated):
    seen = []
    monkeypatch.setattr(_download, "_urlopen",
                        lambda url, timeout: seen.append(timeout) or isolated(url))
    with pytest.raises(DatasetNotFoundError):
        load_mnist()
    assert seen and set(seen) == {_download.DEFAULT_TIMEOUT} and _download.DEFAULT_TIMEOUT <= 10
    monkeypatch.setenv("NNLITE_DOWNLOAD_TIMEOUT", "2.5")
    with pytest.raises(DatasetNotFoundError):
        load_mnist()
    assert seen[-1] == 2.5
    for bad in ("soon", "0", "-1", "inf", "nan"):
        monkeypatch.setenv("NNLITE_DOWNLOAD_TIMEOUT", bad)
        with pytest.raises(ValueError, match=f"NNLITE_DOWNLOAD_TIMEOUT must be a positive "
                                             f"number of seconds, got '{bad}'"):
            load_mnist()


def test_a_mirror_that_never_answers_costs_one_timeout(monkeypatch, capsys, real_network):
    """A proxy or server that accepts the connection and then says nothing: each mirror costs
    the timeout (here 0.5 s), then the sample comes with one notice."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)                # connections queue up, nobody ever answers
        base = f"https://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(
            mnist.MNIST, mirrors=(base + "/a/", base + "/b/")))
        monkeypatch.setenv("NNLITE_DOWNLOAD_TIMEOUT", "0.5")
        start = time.monotonic()
        with pytest.warns(UserWarning) as record:
            (x, _), _ = load_mnist(allow_sample=True)
        elapsed = time.monotonic() - start
    assert len(x) == 1000 and elapsed < 5
    assert len(record) == 1                               # one notice, naming both failures
    notice = str(record[0].message)
    assert "bundled 1000/1000 sample" in notice and notice.count("timed out") == 2
    err = capsys.readouterr().err
    assert err.count("Downloading") == 1 and "none of the 2 mirrors" in err
    assert err.count("\n") == 2                           # the file's line and the status line


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


def test_data_skips_are_counted_at_the_end(tmp_path):
    """Without the data, the run ends saying how many tests skipped and how to enable them."""
    tests = REPO / "tests"
    run = child.python(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
        f"--rootdir={REPO}",
        f"{tests / 'test_datasets.py'}::test_mnist_via_env",
        f"{tests / 'test_text.py'}::test_real_file_via_env",
        f"{tests / 'test_datasets.py'}::test_get_data_home",
        extra_env={"NNLITE_DATA": str(tmp_path / "empty"), "NNLITE_REQUIRE_DATA": None},
        timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (f"2 tests skipped: the data sets are not in {tmp_path / 'empty'}. To run them, point "
            "NNLITE_DATA at a folder") in run.stdout, run.stdout
