"""Opening a file for reading that must be a regular file, shared by every reader of files
(``io``, ``datasets``).

A path can name a FIFO, a directory or a device as well as a file. Reading a FIFO with no
writer blocks forever, and ``/dev/zero`` never ends, so a reader refuses them with a clear
error instead. The kind is checked on the opened descriptor (``fstat``), not on the path
before opening, so the path cannot be swapped in between; ``O_NONBLOCK`` makes opening a
FIFO return at once instead of waiting for a writer.

Low level on purpose, like ``_args``: it imports nothing from nnlite.
"""
import os
import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _message(path, kind):
    return f"{path}: is {kind}, not a regular file; only regular files can be read"


def open_regular(path, error):
    """Open ``path`` for binary reading; raise ``error`` (an exception class) naming the path
    and its kind if it is not a regular file. ``FileNotFoundError`` and ``PermissionError``
    pass through unchanged."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:           # (Windows cannot open a directory at all)
        raise error(_message(path, "a directory")) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(_message(path, next((name for test, name in _KINDS if test(mode)),
                                            "of an unknown kind")))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
