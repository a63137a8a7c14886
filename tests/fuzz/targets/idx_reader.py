"""Fuzz target: the IDX reader of the MNIST loader, ``read_idx`` (nnlite/datasets/_idx.py). See
_target.py for the rules and run.py to run it.

Input: one mode byte, then the file. Mode bit 0: the rest is gzip-compressed here first, so
mutations reach the IDX parsing (a mutated .gz fails its CRC); otherwise it is the .gz file
itself. Mode bits 1-2: the magic number asked for (any, images, labels).

Documented error: ``DataFileError`` (nnlite/datasets/_errors.py, a ValueError) naming the
file, for a bad checksum, a corrupt or truncated gzip stream, a bad header or a payload that
is not what the header says. Memory: the reader may hold what the header declares, which a
valid file that compresses well makes up to ``MAX_RATIO`` (1100, about deflate's best) times
its size, but never inflate more than that: the budget is ``(MAX_RATIO + 64) × file size +
allowance``. The regression inputs are a gzip bomb (a 1-byte IDX followed by 64 MiB of
zeros: a 64 kB file; inflated whole, it costs ~2300 x its size), headers whose dimensions
multiply past 2**64 (int64 wraps to 0 or 1), and a 0 beside dimensions numpy cannot hold.
"""
import gzip
import os
import sys
import zlib

import numpy as np

import _target

with _target.instrumented("nnlite.datasets"):
    from nnlite.datasets import _idx
    from nnlite.datasets._errors import DataFileError

ALLOWED = (DataFileError,)
MAX_LEN = 4096
MEMORY_FACTOR = getattr(_idx, "MAX_RATIO", 1100) + 64
MAGICS = (None, _idx.IMAGES_MAGIC, _idx.LABELS_MAGIC, None)
DICT = ["\x00\x00\x08\x03", "\x00\x00\x08\x01", "\x00\x00\x08\x04", "\x00\x01\x00\x00",
        "\xff\xff\xff\xff", "\x1f\x8b\x08\x00"]


def error_ok(exc, work):
    return work in str(exc)


def idx_bytes(arr, magic=None):
    """An unsigned-byte IDX file of ``arr`` (the format's header, then the bytes)."""
    arr = np.asarray(arr, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 + arr.ndim
    return (magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            + arr.tobytes())


def setup(work):
    pass


def seeds(work):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 5, 4))
    labels = rng.integers(0, 10, 7)
    out = {}
    for name, raw in (("images", idx_bytes(images)), ("labels", idx_bytes(labels)),
                      ("empty", idx_bytes(np.zeros((0, 2)))),
                      ("four_d", idx_bytes(np.ones((1, 2, 1, 3))))):
        out[f"{name}_plain"] = bytes([1]) + raw                        # compressed by run()
        out[f"{name}_gz"] = bytes([0]) + gzip.compress(raw, mtime=0)
    out["images_magic"] = bytes([3]) + idx_bytes(images)
    out["labels_magic"] = bytes([5]) + idx_bytes(labels)
    return out


def _deflate_zeros(head, n):
    """gzip of ``head`` followed by ``n`` zero bytes, made without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(head)]
    chunk = bytes(1 << 20)
    for _ in range(n >> 20):
        parts.append(c.compress(chunk))
    parts.append(c.flush())
    return b"".join(parts)


def regressions(work):
    """Known attacks (issue 9, item 11; fixed in nnlite/datasets/_idx.py)."""
    one = idx_bytes(np.zeros(1))
    dims = lambda *d: (0x0800 + len(d)).to_bytes(4, "big") + b"".join(
        x.to_bytes(4, "big") for x in d)
    return {
        # 64 MiB of zeros after a 1-byte IDX: a 64 kB file inflated whole before any check
        "gzip_bomb": bytes([0]) + _deflate_zeros(one, 64 << 20),
        # dims whose product is 2**64: int64 wraps to 0, an empty payload "matches"
        "dims_wrap_to_0": bytes([1]) + dims(1 << 16, 1 << 16, 1 << 16, 1 << 16),
        # (2**32 - 1)**2 · 3 · 2863311531 = (1 - 2**33)(1 + 2**33) wraps to 1: one byte of
        # payload "matches"
        "dims_wrap_to_1": bytes([1]) + dims(0xFFFFFFFF, 0xFFFFFFFF, 3, 2863311531) + b"\0",
        # a 0 among dims whose product passes numpy's limit: 0 bytes "match" the payload,
        # then numpy refuses the shape ("array is too big", a bare ValueError); found by this
        # target in seconds once the wrapping product was fixed
        "dims_zero_and_huge": bytes([1]) + dims(0, 0x01000100, 0x0008FFFF, 0x7B6B7B02),
    }


def run(data, work):
    if not data:
        return
    mode, data = data[0], data[1:]
    if mode & 1:
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path = _target.write(os.path.join(work, "f-idx-ubyte.gz"), data)
    a = _idx.read_idx(path, magic=MAGICS[(mode >> 1) & 3])
    assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.flags.writeable


if __name__ == "__main__":
    sys.exit(_target.main(sys.modules[__name__]))
