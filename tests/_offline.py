"""Shared by the data-set tests: where the real files are, and a fake network.

The real files come from $NNLITE_DATA, else <repo>/../shared/data. Tests needing them are
skipped when absent (``needs_data``; conftest.py counts them at the end of the run), unless
NNLITE_REQUIRE_DATA=1, where a missing file fails them.
"""
import io
import os
from pathlib import Path

import pytest

from nnlite.datasets import _download

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NNLITE_DATA") or REPO.parent / "shared" / "data")
REQUIRE = os.environ.get("NNLITE_REQUIRE_DATA") == "1"
NO_DATA = "data set not found"     # in every such skip reason: conftest.py counts them


def needs_data(what, *files):
    """Skip unless ``files`` (paths relative to DATA) are all there."""
    have = all((DATA / f).is_file() for f in files)
    return pytest.mark.skipif(not (have or REQUIRE),
                              reason=f"{NO_DATA}: {what} not in {DATA} (set NNLITE_DATA)")


class Opener:
    """A fake urlopen: serves bytes from a dict {url: bytes | Exception}; records calls."""

    def __init__(self, table=None, default=None):
        self.table, self.default, self.calls = table or {}, default, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        got = self.table.get(url, self.default)
        if got is None:
            raise OSError(f"no network (fake opener): {url}")
        if isinstance(got, Exception):
            raise got
        return io.BytesIO(got)


def isolate(tmp_path, monkeypatch):
    """Cache in tmp_path, no $NNLITE_DATA, and no network unless a test installs an opener."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NNLITE_DATA", raising=False)
    opener = Opener()
    monkeypatch.setattr(_download, "_urlopen", opener)
    return opener
