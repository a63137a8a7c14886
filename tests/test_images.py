"""nl.utils.save_image_grid / write_png: PNGs decoded here with zlib and struct (and with PIL
or matplotlib when installed) give back exactly the pixels written."""
import os
import struct
import zlib

import numpy as np
import pytest

import nnlite as nl
from nnlite.utils.images import png_bytes


def decode_png(data):
    """``(pixels, chunk types)`` of a PNG of 8-bit grey or RGB written with filter 0; every
    chunk's CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds, idat, header = 8, [], b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind}"
        kinds.append(kind)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (0, 2) and interlace == 0
    channels = 1 if colour == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    assert (raw[:, 0] == 0).all()                  # filter "none" on every row
    pixels = raw[:, 1:].reshape((h, w) if channels == 1 else (h, w, 3))
    return pixels, kinds


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (28, 28), (3, 4, 3), (17, 2, 3)])
def test_png_round_trip_is_exact(shape, tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "a.png"
    nl.utils.write_png(pixels, path)
    got, kinds = decode_png(path.read_bytes())
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    np.testing.assert_array_equal(got, pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]     # no temporary file left


def test_grid_layout_sizes_and_padding(tmp_path):
    images = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4) * 4
    grid = nl.utils.save_image_grid(images, tmp_path / "g.png", nrow=2, pad=1, pad_value=255)
    # 3 rows of 2 images (the last one short): (1 + 3 * (3 + 1), 1 + 2 * (4 + 1))
    assert grid.shape == (13, 11)
    got, _ = decode_png((tmp_path / "g.png").read_bytes())
    np.testing.assert_array_equal(got, grid)
    np.testing.assert_array_equal(grid[1:4, 1:5], images[0])
    np.testing.assert_array_equal(grid[1:4, 6:10], images[1])
    np.testing.assert_array_equal(grid[9:12, 1:5], images[4])
    assert (grid[0] == 255).all() and (grid[9:12, 6:10] == 255).all()   # padding, empty cell


def test_float_scaling(tmp_path):
    x = np.array([[[0.0, 0.5, 1.0]]])
    assert nl.utils.save_image_grid(x, tmp_path / "a.png", pad=0).tolist() == [[0, 128, 255]]
    y = np.array([[[-1.0, 0.0, 1.0, 3.0]]])
    g = nl.utils.save_image_grid(y, tmp_path / "b.png", pad=0, scale=(-1, 1))
    assert g.tolist() == [[0, 128, 255, 255]]                  # clipped above
    g = nl.utils.save_image_grid(y, tmp_path / "c.png", pad=0, scale="auto")
    assert g.tolist() == [[0, 64, 128, 255]]
    ints = np.array([[[0, 128, 255]]], np.int64)                 # integers: 0..255
    assert nl.utils.save_image_grid(ints, tmp_path / "e.png", pad=0).tolist() == [[0, 128, 255]]
    mask = np.array([[[True, False]]])
    assert nl.utils.save_image_grid(mask, tmp_path / "f.png", pad=0).tolist() == [[255, 0]]
    flat = np.zeros((2, 16))
    assert nl.utils.save_image_grid(flat, tmp_path / "d.png", pad=0).shape == (4, 8)


def test_rgb_grid(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (3, 2, 2, 3), dtype=np.uint8)
    grid = nl.utils.save_image_grid(x, tmp_path / "rgb.png", nrow=3, pad=0)
    got, _ = decode_png((tmp_path / "rgb.png").read_bytes())
    assert got.shape == (2, 6, 3)
    np.testing.assert_array_equal(got, grid)
    np.testing.assert_array_equal(got[:, 2:4], x[1])


@pytest.mark.parametrize("images, match", [
    (np.full((2, 3, 3), np.nan), "NaN"),
    (np.zeros((2, 3, 3, 2)), r"\(N, H, W\)"),
    (np.zeros(5), r"shape \(5,\)"),
    (np.zeros((2, 15)), "not a square"),
    (np.zeros((0, 3, 3)), "no pixels"),
])
def test_bad_images_raise_clear_errors(images, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        nl.utils.save_image_grid(images, tmp_path / "x.png")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("kw, match", [({"nrow": 0}, "nrow"), ({"pad": -1}, "pad"),
                                       ({"scale": (1, 0)}, "hi > lo"), ({"scale": "x"}, "scale"),
                                       ({"pad_value": 300}, "pad_value")])
def test_bad_options_raise(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        nl.utils.save_image_grid(np.zeros((2, 3, 3)), tmp_path / "x.png", **kw)


def test_png_bytes_refuses_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((2, 2), np.float32))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        nl.utils.save_image_grid(np.zeros((1, 2, 2)), tmp_path / "no" / "x.png")


def test_other_decoders_read_it(tmp_path):
    path = tmp_path / "p.png"
    pixels = np.random.default_rng(2).integers(0, 256, (6, 9), dtype=np.uint8)
    nl.utils.write_png(pixels, path)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        np.testing.assert_array_equal(np.asarray(Image.open(path)), pixels)
    try:
        import matplotlib.image as mpimg
    except ImportError:
        mpimg = None
    if mpimg is not None:
        np.testing.assert_array_equal(np.rint(mpimg.imread(path) * 255).astype(np.uint8), pixels)
    if Image is None and mpimg is None:
        pytest.skip("neither PIL nor matplotlib installed (the zlib decoder above checks the "
                    "format)")
