"""Shared by the tests of the scripts in examples/ and scripts/: load one as a module (they are
not packages), so a test can call its ``main([...])`` and read its helpers."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(relpath, name=None):
    """The module at ``REPO / relpath``, executed once per call (a fresh module each time)."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(name or f"script_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
