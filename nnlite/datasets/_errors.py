"""Exceptions of ``nnlite.datasets``."""


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files were found nowhere and could not be downloaded."""


class DataFileError(ValueError):
    """A data file exists but is wrong: bad checksum, corrupt/truncated gzip, bad IDX header."""
