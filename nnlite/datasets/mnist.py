"""MNIST and Fashion-MNIST loaders (see the package docstring for lookup order and checks)."""
import os
import warnings
from dataclasses import dataclass
from importlib import resources

import numpy as np

from . import _download
from ._errors import DataFileError, DatasetNotFoundError
from ._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from ._paths import ENV_VAR, candidate_dirs, get_data_home


@dataclass(frozen=True)
class _Spec:
    name: str        # for messages
    subdir: str      # folder name under $NNLITE_DATA and the cache
    files: dict      # role -> (file name, md5, size in bytes); roles: train/test _images/_labels
    mirrors: tuple   # https base URLs, tried in order
    has_sample: bool = False


# The four files, by role: Fashion-MNIST is a drop-in for MNIST, with the same file names, so
# one table holds both sets: role -> (file name, MNIST's (md5, size), Fashion-MNIST's (md5, size))
_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
                     ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880)),
    "train_labels": ("train-labels-idx1-ubyte.gz", ("d53e105ee54ea40749a09fcbcd1e9432", 28881),
                     ("25c81989df183df01b3e8a0aad5dffbe", 29515)),
    "test_images": ("t10k-images-idx3-ubyte.gz", ("9fb629c4189551a2d022fa330f9573f3", 1648877),
                    ("bef4ecab320f06d8554ea6380940ec79", 4422102)),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", ("ec29112dd5afa0611ce80d1b7f02629c", 4542),
                    ("bb300cfdad3c16e7a12a480ee83cd310", 5148)),
}


def _files(column):
    """One set's ``_Spec.files`` from ``_FILES``: column 0 is MNIST, 1 Fashion-MNIST."""
    return {role: (name, *sums[column]) for role, (name, *sums) in _FILES.items()}


# https only (yann.lecun.com and Zalando's S3 website serve plain http): see _download.py
MNIST = _Spec("MNIST", "mnist", _files(0), mirrors=(
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
), has_sample=True)
FASHION_MNIST = _Spec("Fashion-MNIST", "fashion-mnist", _files(1), mirrors=(
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
))

SAMPLE_FILE = "mnist_sample.npz"
SAMPLE_SIZE = 1000
SAMPLE_WARNING = (
    "MNIST files not found and not downloadable: using the bundled 1000/1000 sample (the first "
    "1000 training and 1000 test images); expect ~85-90 % test accuracy rather than 98 %. "
    f"To use the full set, set ${ENV_VAR} to a folder holding mnist/*.gz, pass data_dir=, or allow "
    "the download.")


def _load_split(paths, spec, split, verify=True):
    img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
    img_md5, lab_md5 = spec.files[f"{split}_images"][1], spec.files[f"{split}_labels"][1]
    images = read_idx(img_path, IMAGES_MAGIC, img_md5 if verify else None)
    labels = read_idx(lab_path, LABELS_MAGIC, lab_md5 if verify else None)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFileError(f"{img_path}: images have shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise DataFileError(f"{lab_path}: labels have shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise DataFileError(f"{len(images)} {split} images ({img_path}) but {len(labels)} "
                            f"labels ({lab_path})")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{lab_path}: labels must be in 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)


def _load_files(paths, spec, verify=True):
    """Load both splits from the four files (role -> path); ``verify=False`` skips the MD5s
    (for home-made test files only)."""
    return tuple(_load_split(paths, spec, split, verify) for split in ("train", "test"))


def _load_dir(folder, spec, verify=True):
    """``_load_files`` on the four files in ``folder``."""
    return _load_files({role: os.path.join(folder, name)
                        for role, (name, _, _) in spec.files.items()}, spec, verify)


def _find(spec, data_dir):
    """Each file's path in the first folder holding it (None where none does), and a line per
    folder searched saying which files it lacks.

    Files are found one by one, not as a set of four: each is MD5-checked, so a copy from one
    folder is as good as from another, and a partial folder needs only its missing files."""
    paths = dict.fromkeys(spec.files)
    searched = []
    for folder, origin in candidate_dirs(spec.subdir, data_dir):
        if all(paths.values()):
            break
        lacking = []
        for role, (name, _, _) in spec.files.items():
            # exists, not isfile: a FIFO or folder in the way is reported, not skipped
            if not os.path.exists(folder / name):
                lacking.append(name)
            elif paths[role] is None:
                paths[role] = str(folder / name)
        have = len(spec.files) - len(lacking)
        note = (f"has {have} of {len(spec.files)}, lacks {', '.join(lacking)}" if have
                else "none of them")
        searched.append(f"{folder}  [{origin}]: {note}")
    return paths, searched


def _download_missing(spec, paths, quiet=False):
    """Fetch the files no folder holds into the cache, filling in ``paths``; returns the
    failures (empty when all are there now)."""
    folder = get_data_home() / spec.subdir
    for role, (name, md5, size) in spec.files.items():
        if paths[role] is not None:
            continue
        failures = _download.fetch_from_mirrors(spec.mirrors, name, folder / name, md5, size,
                                                quiet=quiet)
        if failures:
            return failures     # a file no mirror has: the others would fail alike
        paths[role] = str(folder / name)
    return []


def _load(spec, data_dir, download, allow_sample):
    paths, searched = _find(spec, data_dir)
    failures = []
    if not all(paths.values()) and download:
        failures = _download_missing(spec, paths)
    if all(paths.values()):
        return _load_files(paths, spec)

    missing = [name for role, (name, _, _) in spec.files.items() if paths[role] is None]
    lines = [f"{spec.name}: {', '.join(missing)} not found. Looked in:"]
    lines += [f"  {s}" for s in searched]
    if not download:
        lines.append("Download disabled (download=False).")
    elif failures:
        lines.append(f"Download into {get_data_home() / spec.subdir} failed:")
        lines += [f"  {url}: {type(e).__name__}: {e}" for url, e in failures]
    fixes = [f"set {ENV_VAR} to a folder holding {spec.subdir}/*.gz",
             "pass data_dir=<folder with the .gz files>",
             "allow the download (download=True, network access)"]
    if spec.has_sample and not allow_sample:
        fixes.append(f"or pass allow_sample=True to use the bundled {SAMPLE_SIZE}+{SAMPLE_SIZE}"
                     "-image sample")
    lines.append("Fix: " + "; ".join(fixes) + ".")
    message = "\n".join(lines)
    if allow_sample:
        warnings.warn(SAMPLE_WARNING + "\n" + message, UserWarning, stacklevel=3)
        return load_mnist_sample()
    raise DatasetNotFoundError(message)


def load_mnist(data_dir=None, *, download=True, allow_sample=False):
    """MNIST handwritten digits: ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 arrays of shape (N, 28, 28) (0 = background, 255 = ink), labels int64 in
    0..9; 60 000 training and 10 000 test images.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        A folder holding the four original ``.gz`` files (directly or in ``mnist/``), looked
        in first; then ``$NNLITE_DATA/mnist``, then the user cache (``get_data_home()``).
    download : bool, default True
        Download the files found nowhere into the cache (over https, MD5-checked).
    allow_sample : bool, default False
        If the files can be neither found nor downloaded, return the bundled 1000 + 1000-image
        sample (``load_mnist_sample()``) with a warning, instead of raising.

    Raises
    ------
    DatasetNotFoundError
        Files found nowhere and not downloadable (without ``allow_sample``): the message
        names them, the folders searched, and the fixes.
    DataFileError
        A file that is there but wrong (checksum, format, not a regular file).
    """
    return _load(MNIST, data_dir, download, allow_sample)


def load_fashion_mnist(data_dir=None, *, download=True):
    """Fashion-MNIST (Zalando): like ``load_mnist`` -- uint8 (N, 28, 28) images, int64 labels
    0..9 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle
    boot), 60 000 + 10 000 -- looked for in ``data_dir`` (or its ``fashion-mnist/``),
    ``$NNLITE_DATA/fashion-mnist``, the user cache, then downloaded. No sample is bundled.
    """
    return _load(FASHION_MNIST, data_dir, download, allow_sample=False)


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def load_mnist_sample():
    """The bundled sample: the first 1000 training and the first 1000 test images of MNIST,
    as ``(x_train, y_train), (x_test, y_test)`` (uint8 (1000, 28, 28), int64 labels)."""
    try:
        with resources.files(__package__).joinpath(SAMPLE_FILE).open("rb") as f, \
                np.load(f) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, KeyError, ValueError) as e:
        raise DataFileError(f"the bundled MNIST sample ({SAMPLE_FILE}) is missing or "
                            f"corrupt: {type(e).__name__}: {e}") from None
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != (SAMPLE_SIZE, 28, 28):
            raise DataFileError(f"bundled sample: x_{split} is {x.dtype} {x.shape}, "
                                f"expected uint8 ({SAMPLE_SIZE}, 28, 28)")
        if y.shape != (SAMPLE_SIZE,) or y.dtype.kind not in "iu" or y.min() < 0 or y.max() > 9:
            raise DataFileError(f"bundled sample: y_{split} is {y.dtype} {y.shape}, expected "
                                f"{SAMPLE_SIZE} integer labels in 0..9")
        out.append((x, y.astype(np.int64)))
    return tuple(out)
