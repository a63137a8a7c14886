"""Every file reader refuses what is not a regular file (issue 9): opening a FIFO with no
writer blocked ``load_model`` forever, and a directory or device gave an OSError or garbage.
Each reader runs in a thread, so a reader that blocks fails the test instead of hanging it."""
import os
import threading

import numpy as np
import pytest

import nnlite as nl
from nnlite.datasets import (
    DataFileError,
    _idx,
    load_mnist,
    load_tiny_shakespeare,
    mnist,
)
from nnlite.io import CheckpointError

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs or /dev here")

READERS = {   # name -> (reader of a path, the error it must raise)
    "load_model": (nl.load_model, CheckpointError),
    "load_file": (nl.io.load_file, CheckpointError),
    "read_idx": (_idx.read_idx, DataFileError),
    "read_idx with MD5": (lambda p: _idx.read_idx(p, md5="0" * 32), DataFileError),
    "load_tiny_shakespeare": (lambda p: load_tiny_shakespeare(p, download=False), DataFileError),
}


def call_without_blocking(read, path, fifo=None):
    """The exception ``read(path)`` raises; fails the test if it blocks (on ``fifo``)."""
    outcome = []

    def run():
        try:
            read(path)
            outcome.append(None)
        except Exception as e:       # noqa: BLE001  (returned to the test, which checks it)
            outcome.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():               # blocked opening the FIFO: a writer releases it
        os.close(os.open(fifo or path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail(f"reading {path} blocked")
    return outcome[0]


@posix_only
@pytest.mark.parametrize("reader", READERS)
def test_a_fifo_is_refused_not_waited_on(tmp_path, reader):
    read, error = READERS[reader]
    fifo = tmp_path / "input.txt"
    os.mkfifo(fifo)
    e = call_without_blocking(read, fifo)
    assert isinstance(e, error), repr(e)
    assert str(e) == (f"{fifo}: is a FIFO (named pipe), not a regular file; only regular "
                      "files can be read")


@posix_only
@pytest.mark.parametrize("reader", ["load_model", "load_file", "read_idx", "read_idx with MD5",
                                    "load_tiny_shakespeare"])
def test_a_device_is_refused(reader):
    read, error = READERS[reader]
    with pytest.raises(error, match="^/dev/null: is a character device, not a regular file"):
        read("/dev/null")


@pytest.mark.parametrize("reader", ["load_model", "load_file", "read_idx", "read_idx with MD5"])
def test_a_directory_is_refused(tmp_path, reader):
    read, error = READERS[reader]
    with pytest.raises(error, match="is a directory, not a regular file"):
        read(tmp_path)


@posix_only
def test_mnist_reports_a_fifo_in_place_of_a_file(tmp_path):
    """A FIFO named like an MNIST file is reported, not taken for a missing file."""
    for name, _, _ in mnist.MNIST.files.values():
        (tmp_path / name).write_bytes(b"")
    fifo = tmp_path / "train-images-idx3-ubyte.gz"
    fifo.unlink()
    os.mkfifo(fifo)
    e = call_without_blocking(lambda p: load_mnist(p, download=False), tmp_path, fifo)
    assert isinstance(e, DataFileError), repr(e)
    assert str(e).startswith(f"{fifo}: is a FIFO (named pipe), not a regular file")


def test_regular_files_still_load(tmp_path):
    path = tmp_path / "m.nnl"
    model = nl.Sequential([nl.Linear(3, 2)])
    model.save(path)
    assert np.array_equal(nl.load_model(path).params["0.W"], model.params["0.W"])
    with pytest.raises(FileNotFoundError):          # a missing file stays what it was
        nl.load_model(tmp_path / "nothing.nnl")
