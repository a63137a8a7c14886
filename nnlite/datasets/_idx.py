"""Reading IDX files (the MNIST format), gzip-compressed, with checks.

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 = unsigned byte), the
number of dimensions, then one uint32 per dimension -- followed by the data, row-major. The
magic number is the first four bytes read as a big-endian uint32: 2051 (0x0803) for 3-D
image files and 2049 (0x0801) for 1-D label files.

The file is decompressed as a stream into an array of the size the header declares, and no
further than one block past it: a small file that inflates to gigabytes (a "gzip bomb", or
plain trailing garbage) costs no more memory than the array it claims to hold.
"""
import gzip
import hashlib
import math
import os
import zlib

import numpy as np

from .._files import open_regular
from ._errors import DataFileError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
# deflate cannot compress better than about 1032:1, so a header declaring more than this
# many bytes per compressed byte is lying, and is refused before anything is allocated
MAX_RATIO = 1100
CHUNK = 1 << 20


def md5sum(path, chunk=CHUNK):
    """Hex MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open_regular(path, DataFileError) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_payload(stream, dims, n, name):
    """The ``n`` payload bytes in a new writable buffer; ``DataFileError`` if it ends first."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:got + CHUNK])
        if not k:
            raise DataFileError(f"{name}: payload truncated: the header says shape {dims} "
                                f"= {n} bytes, the file holds {got}")
        got += k
    return buf


def read_idx(path, magic=None, md5=None):
    """Read one gzip-compressed unsigned-byte IDX file into a writable uint8 array.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file (a FIFO, directory or device is refused).
    magic : int, optional
        The expected magic number (``IMAGES_MAGIC`` / ``LABELS_MAGIC``); None accepts any
        unsigned-byte IDX file.
    md5 : str, optional
        The expected MD5 of the ``.gz`` file; None skips the check (home-made files only).

    Raises
    ------
    DataFileError
        Naming the file and what is wrong: checksum, gzip stream, header, or a payload
        shorter or longer than the header's shape.
    """
    path = os.fspath(path)
    if md5 is not None:
        got = md5sum(path)
        if got != md5:
            raise DataFileError(
                f"{path}: MD5 checksum mismatch (expected {md5}, got {got}); the file is "
                "corrupt, truncated or a different file -- delete it so it can be fetched again")
    with open_regular(path, DataFileError) as f:
        compressed = os.fstat(f.fileno()).st_size
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                return _read_stream(stream, magic, path, compressed)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFileError(f"{path}: not a valid gzip file, or truncated/corrupt "
                                f"({type(e).__name__}: {e})") from None


def _read_stream(stream, magic, name, compressed):
    head = stream.read(4)
    if len(head) < 4:
        raise DataFileError(f"{name}: only {len(head)} bytes, too short for an IDX header")
    got_magic = int.from_bytes(head, "big")
    if magic is not None and got_magic != magic:
        raise DataFileError(f"{name}: wrong magic number {got_magic} (0x{got_magic:08x}), "
                            f"expected {magic} (0x{magic:08x}); not an IDX "
                            f"{'image' if magic == IMAGES_MAGIC else 'label'} file")
    if head[:3] != b"\x00\x00\x08" or head[3] == 0:
        raise DataFileError(f"{name}: magic number 0x{got_magic:08x} is not that of an "
                            "unsigned-byte IDX file (0x000008NN)")
    ndim = head[3]
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataFileError(f"{name}: truncated header ({4 + len(dims_raw)} bytes, the header "
                            f"of a {ndim}-D IDX file needs {4 + 4 * ndim})")
    dims = tuple(int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    expected = math.prod(dims)          # a Python int: cannot wrap around like int64
    if expected > MAX_RATIO * compressed:
        raise DataFileError(f"{name}: the header says shape {dims} = {expected} bytes, more "
                            f"than a {compressed}-byte gzip file can hold; the file is corrupt")
    # an empty array may still have a shape numpy cannot make: (0, 2^32 - 1, 2^32 - 1, ...)
    if math.prod(d for d in dims if d) > np.iinfo(np.intp).max:
        raise DataFileError(f"{name}: the header says shape {dims}, which no array can have "
                            f"(its other dimensions multiply past {np.iinfo(np.intp).max}); "
                            f"the file is corrupt")
    data = _read_payload(stream, dims, expected, name)
    extra = len(stream.read(CHUNK))     # also reaches the end, where gzip checks the CRC
    if extra:
        more = "more than " if stream.read(1) else ""
        raise DataFileError(f"{name}: payload has trailing bytes: the header says shape "
                            f"{dims} = {expected} bytes, the file holds {more}"
                            f"{expected + extra}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)
