"""Standard data sets: MNIST and Fashion-MNIST, read from the original IDX ``.gz`` files, and
Tiny Shakespeare (``load_tiny_shakespeare()``: the text as a str; same lookup, checks and
download, with a complete copy bundled as a last resort -- see ``shakespeare.py``).

>>> (x, y), (x_test, y_test) = nnlite.datasets.load_mnist()   # uint8 (N, 28, 28), int64 labels

Where the files are looked for, in order (the first folder holding all four files wins):

1. ``data_dir`` if given: its ``mnist/`` (or ``fashion-mnist/``) subfolder, then itself;
2. ``$NNLITE_DATA``: likewise (the usual layout is ``$NNLITE_DATA/mnist/*.gz``);
3. the user cache, ``get_data_home()/mnist``: ``$XDG_CACHE_HOME/nnlite`` or
   ``~/.cache/nnlite``;
4. if still missing and ``download=True``: each missing file is downloaded into the cache from
   a list of mirrors (progress on stderr), streamed to a temporary file, MD5-checked, then
   renamed into place, so a partial or corrupt download never keeps the real name.

Checks: every file's MD5 is compared with the published one (constants in ``mnist.py``); the
IDX header is parsed big-endian (magic 2051 for images, 2049 for labels), the payload length
must match the header's dimensions, images must be 28x28, labels in 0..9, and image and label
counts must agree. Any failure raises ``DataFileError`` (a ``ValueError``) naming the file and
what is wrong. Nothing found and nothing downloadable raises ``DatasetNotFoundError`` (a
``FileNotFoundError``) listing the folders searched and how to fix it.

The sample: ``load_mnist(allow_sample=True)`` falls back, with a warning, to a bundled copy of
the first 1000 training and 1000 test MNIST images (``mnist_sample.npz``, ~300 KB, rebuilt
byte-for-byte by ``scripts/build_mnist_sample.py``). ``load_mnist_sample()`` returns it
directly. Expect ~85-90 % test accuracy from it rather than the full set's ~98 %.
"""
from ._errors import DataFileError, DatasetNotFoundError
from ._paths import get_data_home
from .mnist import FASHION_CLASSES, load_fashion_mnist, load_mnist, load_mnist_sample
from .shakespeare import load_tiny_shakespeare

__all__ = ["load_mnist", "load_fashion_mnist", "load_mnist_sample", "load_tiny_shakespeare",
           "get_data_home",
           "DatasetNotFoundError", "DataFileError", "FASHION_CLASSES"]
