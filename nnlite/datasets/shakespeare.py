"""Tiny Shakespeare: Karpathy's char-rnn text (1 115 394 ASCII characters, 65 distinct).

>>> text = nnlite.datasets.load_tiny_shakespeare()   # a str starting with "First Citizen:"

Where it is looked for, in order (the first ``input.txt`` found wins, and must pass the MD5
check):

1. ``data_dir`` if given: ``data_dir/tinyshakespeare/input.txt``, then ``data_dir/input.txt``
   (``data_dir`` may also be the path of the file itself);
2. ``$NNLITE_DATA/tinyshakespeare/input.txt`` (then ``$NNLITE_DATA/input.txt``);
3. the user cache, ``get_data_home()/tinyshakespeare/input.txt``;
4. with ``download=True``: a download into the cache from GitHub (karpathy/char-rnn), streamed
   to a temporary file, MD5-checked, then renamed into place;
5. the copy bundled with nnlite (``tinyshakespeare.txt.gz``, ~430 KB, rebuilt byte for byte by
   ``scripts/build_shakespeare_sample.py``), also MD5-checked after decompression.

The text is public domain and small, so the bundled copy is the complete file, not a sample:
the loader always succeeds (no warning when it falls back to it). A file found on disk with the
wrong checksum is never skipped: it raises ``DataFileError`` naming the file.
"""
import gzip
import hashlib
import os
import zlib
from importlib import resources
from pathlib import Path

from . import _download
from ._errors import DataFileError
from ._paths import candidate_dirs, get_data_home

SUBDIR = "tinyshakespeare"
FILENAME = "input.txt"
MD5 = "6fb458f1232090904fb40fe944165e91"
SIZE = 1115394
MIRRORS = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",)
BUNDLED_FILE = "tinyshakespeare.txt.gz"


def _decode(raw, name):
    got = hashlib.md5(raw).hexdigest()
    if got != MD5:
        raise DataFileError(
            f"{name}: MD5 checksum mismatch (expected {MD5}, got {got}, {len(raw)} bytes, "
            f"expected {SIZE}); the file is corrupt, truncated or a different file -- delete it "
            "so it can be fetched again")
    return raw.decode("ascii")


def _read_file(path):
    """The verified text of an ``input.txt`` on disk."""
    with open(path, "rb") as f:
        return _decode(f.read(), os.fspath(path))


def _find(data_dir=None):
    """The first ``input.txt`` in the lookup order (a path), or None."""
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        return Path(data_dir).expanduser()
    for folder, _origin in candidate_dirs(SUBDIR, data_dir):
        path = folder / FILENAME
        if path.is_file():
            return path
    return None


def load_bundled_shakespeare():
    """The copy of Tiny Shakespeare bundled with nnlite (gzip-compressed in the package),
    decompressed and MD5-checked."""
    name = f"the bundled Tiny Shakespeare ({BUNDLED_FILE})"
    try:
        with resources.files(__package__).joinpath(BUNDLED_FILE).open("rb") as f:
            raw = gzip.decompress(f.read())
    except (OSError, EOFError, zlib.error) as e:
        raise DataFileError(f"{name} is missing or corrupt: {type(e).__name__}: {e}") from None
    return _decode(raw, name)


def load_tiny_shakespeare(data_dir=None, *, download=True):
    """Tiny Shakespeare as one ``str`` (1 115 394 characters, 65 distinct, 40 000 lines).

    Looked for in ``data_dir`` (the file itself, or a folder holding ``input.txt`` directly or
    in ``tinyshakespeare/``), then ``$NNLITE_DATA/tinyshakespeare``, then the user cache
    (``get_data_home()``), then downloaded into the cache (``download=True``; progress and
    failures on stderr). If none of that works, the complete copy bundled with nnlite is used,
    so this always returns the text (offline too, silently). Every file is MD5-checked; a
    wrong one found on disk raises ``DataFileError`` naming it.
    """
    path = _find(data_dir)
    if path is not None:
        return _read_file(path)
    if download:
        dest = get_data_home() / SUBDIR / FILENAME
        failures = _download.fetch_from_mirrors(MIRRORS, FILENAME, dest, MD5, SIZE)
        if not failures:
            return _read_file(dest)
    return load_bundled_shakespeare()
