"""Tiny Shakespeare: Karpathy's char-rnn text (1 115 394 ASCII characters, 65 distinct).

>>> text = nnlite.datasets.load_tiny_shakespeare()   # a str starting with "First Citizen:"

The text is public domain and small, so nnlite bundles the complete file, not a sample
(``tinyshakespeare.txt.gz``, ~430 KB, rebuilt byte for byte by
``scripts/build_shakespeare_sample.py``): the loader needs no network. Where it is looked
for, in order (the first ``input.txt`` found wins, and must pass the MD5 check):

1. ``data_dir`` if given: ``data_dir/tinyshakespeare/input.txt``, then ``data_dir/input.txt``
   (``data_dir`` may also be the path of the file itself);
2. ``$NNLITE_DATA/tinyshakespeare/input.txt`` (then ``$NNLITE_DATA/input.txt``);
3. the user cache, ``get_data_home()/tinyshakespeare/input.txt``;
4. the bundled copy, decompressed and MD5-checked: the same bytes as the published file;
5. only if the bundled copy is missing or corrupt (a broken install) and ``download=True``:
   a download into the cache from GitHub (karpathy/char-rnn), streamed to a temporary file,
   MD5-checked, then renamed into place.

A file found on disk with the wrong checksum, or that is not a regular file, is never
skipped: it raises ``DataFileError`` naming the file.
"""
import gzip
import hashlib
import os
import zlib
from importlib import resources
from pathlib import Path

from .._files import open_regular
from . import _download
from ._errors import DataFileError, DatasetNotFoundError
from ._paths import ENV_VAR, candidate_dirs, get_data_home

SUBDIR = "tinyshakespeare"
FILENAME = "input.txt"
MD5 = "6fb458f1232090904fb40fe944165e91"
SIZE = 1115394
MIRRORS = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",)
BUNDLED_FILE = "tinyshakespeare.txt.gz"


def _decode(raw, name):
    got = hashlib.md5(raw).hexdigest()
    if got != MD5:
        n = f"more than {SIZE}" if len(raw) > SIZE else len(raw)   # (read no further)
        raise DataFileError(
            f"{name}: MD5 checksum mismatch (expected {MD5}, got {got}, {n} bytes, "
            f"expected {SIZE}); the file is corrupt, truncated or a different file -- delete it "
            "so it can be fetched again")
    return raw.decode("ascii")


def _read_file(path):
    """The verified text of an ``input.txt`` on disk."""
    with open_regular(path, DataFileError) as f:
        return _decode(f.read(SIZE + 1), os.fspath(path))   # a bigger file is wrong anyway


def _find(data_dir=None):
    """The first ``input.txt`` in the lookup order (a path), or None."""
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        if given.exists() and not given.is_dir():   # the file itself (or a FIFO: refused)
            return given
    for folder, _origin in candidate_dirs(SUBDIR, data_dir):
        path = folder / FILENAME
        if path.exists():               # not is_file: a FIFO in the way is reported
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

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The file itself, or a folder holding ``input.txt`` directly or in
        ``tinyshakespeare/``; looked in first.
    download : bool, default True
        Only used if the bundled copy is missing or corrupt: download into the user cache.

    Looked for in ``data_dir``, then ``$NNLITE_DATA/tinyshakespeare``, then the user cache
    (``get_data_home()``); if none holds it, the complete copy bundled with nnlite is used,
    offline and silently. Every file is MD5-checked; a wrong one found on disk raises
    ``DataFileError`` naming it.
    """
    path = _find(data_dir)
    if path is not None:
        return _read_file(path)
    try:
        return load_bundled_shakespeare()
    except DataFileError as e:
        if not download:
            raise
        broken = e
    dest = get_data_home() / SUBDIR / FILENAME
    failures = _download.fetch_from_mirrors(MIRRORS, FILENAME, dest, MD5, SIZE)
    if not failures:
        return _read_file(dest)
    lines = [(f"Tiny Shakespeare: {broken}; reinstall nnlite, or put input.txt in "
              f"${ENV_VAR}/{SUBDIR}/. The download into {dest.parent} failed too:")]
    lines += [f"  {url}: {type(err).__name__}: {err}" for url, err in failures]
    raise DatasetNotFoundError("\n".join(lines))
