"""Shared by the scripts that build the files bundled in ``nnlite/datasets/``.

A script imports it as ``_build``: its own folder is first on ``sys.path`` when it runs, and
it puts the folder there itself for a test that loads it by path.
"""
import argparse
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = os.path.join(ROOT, "nnlite", "datasets")


def parse_args(doc, data_help, out, out_help, argv=None):
    """``--data-dir`` (required) and ``--out`` (default ``out``), parsed from ``argv``; then
    this checkout's nnlite goes first on ``sys.path`` (the scripts read with its loaders)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help=data_help)
    p.add_argument("--out", default=out, help=out_help)
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    return args


def write(path, data):
    """Write the bytes ``data`` to ``path`` whole or not at all (a temporary file, then
    ``os.replace``); returns their MD5 (hex)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return hashlib.md5(data).hexdigest()
