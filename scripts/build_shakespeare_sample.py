"""Build ``nnlite/datasets/tinyshakespeare.txt.gz``: the complete Tiny Shakespeare text
(karpathy/char-rnn ``input.txt``), gzip-compressed, to bundle with nnlite.

    python scripts/build_shakespeare_sample.py --data-dir /path/to/data

``--data-dir`` holds ``tinyshakespeare/input.txt`` (or ``input.txt`` directly).

The input is MD5-checked by nnlite's own reader. The output is byte-reproducible: the gzip
header is written by hand with mtime 0, no file name, XFL 2 and OS 255 ("unknown"), and the
deflate stream comes from zlib at level 9, so rebuilding from the same file gives the same bytes
(and MD5, printed at the end) whatever the time, platform or Python version -- as long as zlib is
the stock one (built with 1.2.13; a different deflate implementation such as zlib-ng may
compress differently, though the decompressed text and its MD5 stay the same).
"""
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _build  # noqa: E402

DEFAULT_OUT = os.path.join(_build.DATASETS, "tinyshakespeare.txt.gz")
# magic, CM=deflate, FLG=0 (no name/comment/extra), MTIME=0, XFL=2 (max compression), OS=255
GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"


def gzip_bytes(data, level=9):
    """A deterministic single-member gzip file of ``data``."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9)  # raw deflate, 32 KB window, memLevel 9
    body = c.compress(data) + c.flush()
    return GZIP_HEADER + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def find_input(data_dir):
    """``input.txt`` in ``data_dir/tinyshakespeare/`` or ``data_dir`` (or ``data_dir`` itself)."""
    for path in (os.path.join(data_dir, "tinyshakespeare", "input.txt"),
                 os.path.join(data_dir, "input.txt"), data_dir):
        if os.path.isfile(path):
            return path
    raise SystemExit(f"build_shakespeare_sample: no tinyshakespeare/input.txt in {data_dir}")


def main(argv=None):
    args = _build.parse_args(__doc__, "folder with tinyshakespeare/input.txt (or input.txt "
                             "directly)", DEFAULT_OUT, "output .gz", argv)
    from nnlite.datasets import shakespeare

    src = find_input(args.data_dir)
    text = shakespeare._read_file(src)  # MD5-checked
    data = gzip_bytes(text.encode("ascii"))
    md5 = _build.write(args.out, data)
    print(f"wrote {args.out}: {len(data)} bytes, md5 {md5} (from {src}, {len(text)} characters)")
    return md5


if __name__ == "__main__":
    main()
