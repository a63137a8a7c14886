"""PNG pictures without matplotlib: a grid of images, written with ``zlib`` and ``struct``.

A PNG (RFC 2083) is the 8-byte signature and a list of chunks, each
``length (4 bytes) | type (4) | data | CRC-32 of type + data``: ``IHDR`` (width, height, bit
depth 8, colour type 0 grey or 2 RGB), ``IDAT`` (the rows, each prefixed by the filter byte 0
"none", zlib-compressed) and an empty ``IEND``. That is the whole format as far as writing 8-bit
pictures goes, so the examples always leave their sample grids, with numpy as the only
dependency. The file is written atomically (:func:`nnlite.io.atomic_write`): a reader never
sees half a picture.
"""
import math
import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(pixels):
    """The bytes of a PNG file holding ``pixels``: uint8 of shape (H, W) (grey) or (H, W, 3)
    (RGB)."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or \
            (pixels.ndim == 3 and pixels.shape[2] != 3) or 0 in pixels.shape:
        raise ValueError(f"png_bytes: expected uint8 pixels of shape (H, W) or (H, W, 3), got "
                         f"{pixels.dtype} {pixels.shape}")
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    rows = pixels.reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)   # filter 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b""))


def write_png(pixels, path):
    """Write uint8 ``pixels`` (H, W) or (H, W, 3) to ``path`` as a PNG, atomically."""
    from ..io.safetensors import atomic_write  # (io imports no utils: no cycle)
    data = png_bytes(pixels)
    atomic_write(path, lambda f: f.write(data))


def _to_uint8(images, scale, what):
    x = np.asarray(images)
    if x.dtype == np.uint8 and scale is None:
        return x
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{what}: images must be numeric, got dtype {x.dtype}")
    kind, x = x.dtype.kind, x.astype(np.float64)
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.isfinite(x).sum())
        raise ValueError(f"{what}: images hold {bad} NaN/inf values; a picture needs finite "
                         f"pixels (did the training diverge?)")
    if scale is None:
        lo, hi = (0.0, 1.0) if kind == "b" or (kind == "f" and x.max() <= 1) else (0.0, 255.0)
    elif scale == "auto":
        lo, hi = float(x.min()), float(x.max())
    else:
        try:
            lo, hi = (float(v) for v in scale)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: scale must be None, 'auto' or a pair (lo, hi), got "
                             f"{scale!r}") from None
        if not hi > lo:
            raise ValueError(f"{what}: scale (lo, hi) needs hi > lo, got {scale!r}")
    if hi <= lo:                                   # 'auto' on a constant batch: all black
        return np.zeros(x.shape, np.uint8)
    return np.rint(np.clip((x - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def save_image_grid(images, path, nrow=8, pad=2, scale=None, pad_value=0):
    """Save a batch of images as one PNG grid, ``nrow`` images per row (torchvision's
    ``save_image``).

    Parameters
    ----------
    images : array of shape (N, H, W), (N, H, W, 3), or (N, H*W) with square images
        Grey or RGB. uint8 is written as it is; floats in [0, 1] (or any numbers, see
        ``scale``) are mapped to 0..255.
    path : str or path-like
        The ``.png`` file, written atomically (temporary file + rename).
    nrow : int
        Images per row of the grid (the last row may be short).
    pad : int
        Pixels of ``pad_value`` between the images and around the grid.
    scale : None, 'auto' or (lo, hi)
        How numbers become grey levels: None takes [0, 1] for booleans and for floats whose
        maximum is at most 1, and [0, 255] otherwise (integers, larger floats); ``(lo, hi)`` maps lo to black and hi to white (e.g.
        ``(-1, 1)`` for a tanh generator); ``'auto'`` uses the batch's own min and max. Values
        outside are clipped.
    pad_value : int
        The grey level (0-255) of the padding.

    Returns
    -------
    ndarray of uint8
        The grid as written, (H', W') or (H', W', 3).

    Raises
    ------
    ValueError
        For an array that is not a batch of images, NaN or inf pixels, or bad ``nrow``,
        ``pad``, ``scale``.
    """
    what = "save_image_grid"
    x = np.asarray(images)
    if x.ndim == 2:                                # (N, H*W): flattened square images
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1] or side == 0:
            raise ValueError(f"{what}: a 2-D array is read as (N, H*W) flattened square images, "
                             f"but {x.shape[1]} is not a square; reshape to (N, H, W) first")
        x = x.reshape(len(x), side, side)
    rgb = x.ndim == 4 and x.shape[3] == 3
    if x.ndim not in (3, 4) or (x.ndim == 4 and not rgb):
        raise ValueError(f"{what}: expected images of shape (N, H, W) or (N, H, W, 3), got "
                         f"shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{what}: no pixels to draw, images have shape {x.shape}")
    for name, value, low in (("nrow", nrow, 1), ("pad", pad, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{what}: {name} must be an int >= {low}, got {value!r}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"{what}: pad_value must lie in 0..255, got {pad_value!r}")
    x = _to_uint8(x, scale, what)
    n, h, w = x.shape[:3]
    cols = min(int(nrow), n)
    rows = -(-n // cols)
    shape = (pad + rows * (h + pad), pad + cols * (w + pad)) + ((3,) if rgb else ())
    grid = np.full(shape, pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top:top + h, left:left + w] = x[i]
    write_png(grid, path)
    return grid
