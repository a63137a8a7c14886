"""The safetensors format, read and written with numpy only (no pickle, nothing executed).

Layout (https://github.com/huggingface/safetensors, "Format")::

    [8 bytes]  N, unsigned little-endian: length of the header
    [N bytes]  JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
                      "__metadata__": {"str": "str"}}   padded with spaces to a multiple of 8
    [rest]     the tensors' bytes, little-endian, C order; offsets are relative to here

Tensors must tile the data buffer exactly: in offset order, each starts where the previous
ended, the first at 0, the last ends at the end of the file. ``load_file`` checks all of it
and raises :class:`CheckpointError` (a ``ValueError``) naming the file, never crashes.
"""
import json
import os
import re
import tempfile
import time

import numpy as np

from .._args import is_int
from .._files import open_regular

# safetensors dtype code <-> numpy dtype (little-endian). BF16/F8 have no numpy dtype.
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "?",
}
_CODES = {np.dtype(v): k for k, v in DTYPES.items()}
# the reference writer's layout order: its Dtype enum, largest first (so offsets stay aligned)
_ORDER = ["U64", "I64", "F64", "F32", "U32", "I32", "F16", "U16", "I16", "I8", "U8", "BOOL"]
MAX_HEADER = 100_000_000   # same limit as the reference implementation


class CheckpointError(ValueError):
    """A file that is not a valid safetensors / nnlite model file (truncated, corrupt, ...)."""


def _dtype_code(name, arr):
    code = _CODES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
    if code is None:
        raise TypeError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored in safetensors "
                        f"(supported: {', '.join(str(np.dtype(d)) for d in DTYPES.values())})")
    return code


def serialize(tensors, metadata=None):
    """``(header_bytes, [(name, little-endian C-contiguous array), ...])`` for ``tensors``.

    The 8-byte length prefix is included in ``header_bytes``. Tensors are laid out in the
    reference implementation's order (dtype, largest first, then name), so every tensor starts
    at a multiple of its item size and the bytes match the reference writer's.
    """
    if metadata is not None and (not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("metadata must be a dict of str -> str")
    arrays = []
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise TypeError(f"tensor names must be str other than '__metadata__', got {name!r}")
        a = np.asarray(t)
        code = _dtype_code(name, a)
        a = a.astype(DTYPES[code], order="C", copy=False)   # (ascontiguousarray makes 0-d 1-d)
        arrays.append((name, code, a))
    arrays.sort(key=lambda e: (_ORDER.index(e[1]), e[0]))

    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, code, a in arrays:
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    js = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * (-(8 + len(js)) % 8)          # data starts 8-byte aligned
    return len(js).to_bytes(8, "little") + js, [(n, a) for n, _, a in arrays]


def _write_all(f, header, arrays):
    """Write the header then each tensor's bytes (no copies: the array's buffer is written)."""
    f.write(header)
    for _, a in arrays:
        if a.nbytes:
            f.write(a.reshape(-1).view(np.uint8).data)


_STARTED = time.time()      # about when this process started: older temp files are not ours


def _umask():
    """The process's umask, read without changing it where Linux allows (``os.umask`` sets it
    for every thread for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True                         # someone else's process, or cannot tell: keep
    return True


def remove_stale_temp_files(path):
    """Remove the temporary files that :func:`atomic_write` left beside ``path`` when its
    process was killed (SIGKILL, power cut): ``.<name>.<pid>.<random>.tmp`` whose process is
    gone, and ``.<name>.<random>.tmp`` (older nnlite) from before this process started.
    Other files, and temporary files of live processes, are left alone. Returns the removed
    paths."""
    d, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(r"\." + re.escape(name) + r"\.(?:(\d+)\.)?[A-Za-z0-9_]{6,}\.tmp")
    removed = []
    try:
        entries = os.listdir(d)
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry)
        if m is None:
            continue
        full = os.path.join(d, entry)
        try:
            if m.group(1) is not None:
                pid = int(m.group(1))
                stale = pid != os.getpid() and not _pid_alive(pid)
            else:
                stale = os.lstat(full).st_mtime < _STARTED
            if stale:
                os.unlink(full)
                removed.append(full)
        except OSError:
            pass                            # raced with another cleaner: fine
    return removed


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over
    ``path``: a crash leaves the old file intact, and an exception no temporary file behind.

    The temporary file is ``.<name>.<pid>.<random>.tmp``; one left by a killed process (no
    ``except`` runs on SIGKILL) is removed by the next write of the same ``path``
    (:func:`remove_stale_temp_files`). The file gets the mode any new file gets (0666 less
    the umask), not ``mkstemp``'s 0600.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    remove_stale_temp_files(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.{os.getpid()}.",
                                   suffix=".tmp")
    except OSError as e:        # name the user's path, not the temporary file's
        hint = "" if os.path.isdir(d) else (f" (the folder {d} does not exist: create it "
                                            f"first, os.makedirs(folder, exist_ok=True))")
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}{hint}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:                                        # make the rename itself durable (POSIX)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_file(tensors, path, metadata=None):
    """Write ``tensors`` (dict name -> ndarray) to ``path`` in the safetensors format.

    Parameters
    ----------
    tensors : dict[str, ndarray]
    path : str or os.PathLike
    metadata : dict[str, str], optional
        Stored as ``__metadata__`` in the header.

    The file is written atomically (temporary file, fsync, rename).
    """
    header, arrays = serialize(tensors, metadata)
    atomic_write(path, lambda f: _write_all(f, header, arrays))


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _is_int(v):
    return is_int(v) and v >= 0


def parse_header(raw, path):
    """Validate a decoded header; return ``(metadata, {name: (dtype, shape, begin, end)})``."""
    def bad(msg):
        return CheckpointError(f"{path}: invalid safetensors header: {msg}")

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:   # (nested ~1000 deep)
        raise bad(f"not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise bad(f"expected a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise bad("__metadata__ must map str to str")
    entries = {}
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r} must have exactly dtype, shape, data_offsets; got {e!r}")
        code, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if code not in DTYPES:
            raise bad(f"tensor {name!r} has unsupported dtype {code!r} "
                      f"(supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(_is_int(s) for s in shape) or len(shape) > 32 \
                or int(np.prod([s for s in shape if s], dtype=object)) >= 2 ** 62:  # numpy's
            raise bad(f"tensor {name!r} has invalid shape {str(shape)[:200]}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs)
                and offs[0] <= offs[1]):
            raise bad(f"tensor {name!r} has invalid data_offsets {offs!r}")
        dtype = np.dtype(DTYPES[code])
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if offs[1] - offs[0] != nbytes:
            raise bad(f"tensor {name!r}: {code} {tuple(shape)} needs {nbytes} bytes but "
                      f"data_offsets {offs} span {offs[1] - offs[0]}")
        entries[name] = (dtype, tuple(shape), offs[0], offs[1])
    # the tensors must tile the buffer: no gaps, no overlaps
    end, prev = 0, None
    for name, (_, _, b, e) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if b != end:
            what = "overlaps" if b < end else "leaves a gap after"
            raise bad(f"tensor {name!r} at data_offsets [{b}, {e}] {what} "
                      f"{'the start of the data' if prev is None else repr(prev)} (ends at {end})")
        end, prev = e, name
    return metadata, entries, end


def read_file(path):
    """``(tensors, metadata)`` from a safetensors file; see :func:`load_file`."""
    path = os.fspath(path)
    with open_regular(path, CheckpointError) as f:   # a FIFO would block, /dev/zero never end
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise CheckpointError(f"{path}: truncated or not a safetensors file "
                                  f"({size} bytes, need at least 8)")
        n = int.from_bytes(f.read(8), "little")
        if n > MAX_HEADER:
            raise CheckpointError(f"{path}: not a safetensors file: header length {n} is "
                                  f"implausible (limit {MAX_HEADER})")
        if 8 + n > size:
            raise CheckpointError(f"{path}: truncated: header says {n} bytes, "
                                  f"file has {size - 8} after the length prefix")
        raw = f.read(n)
        if not raw.lstrip(b" \t\r\n").startswith(b"{"):
            raise CheckpointError(f"{path}: not a safetensors file: header does not start "
                                  f"with '{{'")
        metadata, entries, data_len = parse_header(raw, path)
        have = size - 8 - n
        if have < data_len:
            raise CheckpointError(f"{path}: truncated: header says {data_len} bytes of tensor "
                                  f"data, file has {have}")
        if have > data_len:
            raise CheckpointError(f"{path}: invalid: {have - data_len} unexpected bytes after "
                                  f"the tensor data")
        buf = bytearray(data_len)       # one writable buffer; tensors are views into it
        if f.readinto(buf) != data_len:
            raise CheckpointError(f"{path}: truncated while reading tensor data")
    tensors = {}
    for name, (dtype, shape, b, e) in entries.items():
        a = np.frombuffer(buf, dtype=dtype, count=(e - b) // dtype.itemsize, offset=b)
        if not a.flags.aligned:         # foreign files need not align their tensors
            a = a.copy()
        tensors[name] = a.reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    return tensors, metadata


def load_file(path):
    """Read a safetensors file into a dict name -> ndarray (writable, native byte order).

    Raises
    ------
    CheckpointError
        (a ``ValueError``) if the file is truncated or its header is malformed or
        inconsistent, or if ``path`` is not a regular file (a FIFO, directory or device).
    """
    return read_file(path)[0]


def load_metadata(path):
    """The ``__metadata__`` dict of a safetensors file (validates the whole file)."""
    return read_file(path)[1]
