"""Standard data sets: MNIST and Fashion-MNIST, read from the original IDX ``.gz`` files, and
Tiny Shakespeare (``load_tiny_shakespeare()``: the text as a str, complete in the package, so
it needs no network -- see ``shakespeare.py``).

>>> (x, y), (x_test, y_test) = nnlite.datasets.load_mnist()   # uint8 (N, 28, 28), int64 labels

Where each of the four files is looked for, in order (each file is taken from the first
folder holding it: they are MD5-checked, so which copy makes no difference):

1. ``data_dir`` if given: its ``mnist/`` (or ``fashion-mnist/``) subfolder, then itself;
2. ``$NNLITE_DATA``: likewise (the usual layout is ``$NNLITE_DATA/mnist/*.gz``);
3. the user cache, ``get_data_home()/mnist``: ``$XDG_CACHE_HOME/nnlite`` or
   ``~/.cache/nnlite``;
4. if still missing and ``download=True``: only the missing files are downloaded into the
   cache, over https, from a list of mirrors (one line per file and a progress bar on stderr),
   streamed to a temporary file that may not grow past the file's known size, MD5-checked,
   then renamed into place, so a partial, oversized or corrupt download never keeps the real
   name. A mirror gets ``$NNLITE_DOWNLOAD_TIMEOUT`` seconds (default 10) to connect and for
   each block, so a network that never answers costs seconds, not minutes.

Checks: every file's MD5 is compared with the published one (constants in ``mnist.py``); the
IDX header is parsed big-endian (magic 2051 for images, 2049 for labels), the payload length
must match the header's dimensions (read as a stream: a file that inflates past them is
refused without being inflated), images must be 28x28, labels in 0..9, and image and label
counts must agree. A path that is not a regular file (a FIFO, a directory) is refused. Any
failure raises ``DataFileError`` (a ``ValueError``) naming the file and what is wrong. Files
found nowhere and not downloadable raise ``DatasetNotFoundError`` (a ``FileNotFoundError``)
naming the missing files, the folders searched (and what each lacks), and how to fix it.

The sample: ``load_mnist(allow_sample=True)`` falls back, with one warning, to a bundled copy
of the first 1000 training and 1000 test MNIST images (``mnist_sample.npz``, ~300 KB, rebuilt
byte-for-byte by ``scripts/build_mnist_sample.py``). ``load_mnist_sample()`` returns it
directly. Expect ~85-90 % test accuracy from it rather than the full set's ~98 %.
"""
from ._errors import DataFileError, DatasetNotFoundError
from ._paths import get_data_home
from .mnist import FASHION_CLASSES, load_fashion_mnist, load_mnist, load_mnist_sample
from .shakespeare import load_tiny_shakespeare

__all__ = ["FASHION_CLASSES", "DataFileError", "DatasetNotFoundError", "get_data_home",
           "load_fashion_mnist", "load_mnist", "load_mnist_sample", "load_tiny_shakespeare"]
