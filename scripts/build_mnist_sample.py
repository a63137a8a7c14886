"""Build ``nnlite/datasets/mnist_sample.npz``: the first 1000 training and first 1000 test
MNIST images and labels, from the original ``.gz`` files (read and checked by nnlite's own
loader).

    python scripts/build_mnist_sample.py --data-dir /path/to/data   # holds mnist/*.gz (or *.gz)

The output is byte-reproducible: the .npz (a zip of .npy files, as np.savez_compressed writes)
is assembled with zipfile using a fixed entry order, timestamp and permissions, so rebuilding
from the same files gives the same bytes (and MD5, printed at the end).
"""
import io
import os
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _build  # noqa: E402

DEFAULT_OUT = os.path.join(_build.DATASETS, "mnist_sample.npz")
N = 1000
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can store


def sample_arrays(data_dir, n=N):
    from nnlite.datasets import load_mnist
    (x, y), (xt, yt) = load_mnist(data_dir, download=False)
    # labels as uint8 to keep the file small; the loader returns int64
    return {"x_train": np.ascontiguousarray(x[:n]), "y_train": y[:n].astype(np.uint8),
            "x_test": np.ascontiguousarray(xt[:n]), "y_test": yt[:n].astype(np.uint8)}


def npz_bytes(arrays):
    """Like np.savez_compressed, but deterministic bytes (fixed date_time, order, attrs)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, arr, allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the building OS
            zf.writestr(info, npy.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(argv=None):
    args = _build.parse_args(__doc__, "folder with the four MNIST .gz files (directly or in "
                             "mnist/)", DEFAULT_OUT, "output .npz", argv)
    data = npz_bytes(sample_arrays(args.data_dir))
    md5 = _build.write(args.out, data)
    print(f"wrote {args.out}: {len(data)} bytes, md5 {md5}")
    return md5


if __name__ == "__main__":
    main()
