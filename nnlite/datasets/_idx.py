"""Reading IDX files (the MNIST format), gzip-compressed, with checks.

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 = unsigned byte), the
number of dimensions, then one uint32 per dimension -- followed by the data, row-major. The
magic number is the first four bytes read as a big-endian uint32: 2051 (0x0803) for 3-D
image files and 2049 (0x0801) for 1-D label files.
"""
import gzip
import hashlib
import os
import zlib

import numpy as np

from ._errors import DataFileError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def md5sum(path, chunk=1 << 20):
    """Hex MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_idx(path, magic=None, md5=None):
    """Read one gzip-compressed unsigned-byte IDX file into a writable uint8 array.

    ``magic``: the expected magic number (``IMAGES_MAGIC`` / ``LABELS_MAGIC``) or None for any
    unsigned-byte IDX file. ``md5``: the expected MD5 of the ``.gz`` file, or None to skip the
    check (only for home-made files). Every problem raises ``DataFileError`` naming the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if md5 is not None:
        got = hashlib.md5(raw).hexdigest()
        if got != md5:
            raise DataFileError(
                f"{path}: MD5 checksum mismatch (expected {md5}, got {got}); the file is "
                "corrupt, truncated or a different file -- delete it so it can be fetched again")
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataFileError(f"{path}: not a valid gzip file, or truncated/corrupt "
                            f"({type(e).__name__}: {e})") from None
    return parse_idx(data, magic=magic, name=path)


def parse_idx(data, magic=None, name="<bytes>"):
    """Parse the uncompressed bytes of an unsigned-byte IDX file (see ``read_idx``)."""
    if len(data) < 4:
        raise DataFileError(f"{name}: only {len(data)} bytes, too short for an IDX header")
    got_magic = int.from_bytes(data[:4], "big")
    if magic is not None and got_magic != magic:
        raise DataFileError(f"{name}: wrong magic number {got_magic} (0x{got_magic:08x}), "
                            f"expected {magic} (0x{magic:08x}); not an IDX "
                            f"{'image' if magic == IMAGES_MAGIC else 'label'} file")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] == 0:
        raise DataFileError(f"{name}: magic number 0x{got_magic:08x} is not that of an "
                            "unsigned-byte IDX file (0x000008NN)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{name}: truncated header ({len(data)} bytes, the header of a "
                            f"{ndim}-D IDX file needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise DataFileError(f"{name}: payload {what}: the header says shape {dims} "
                            f"= {expected} bytes, the file holds {payload}")
    # copy: frombuffer over bytes is read-only, and users expect to modify what they load
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()
