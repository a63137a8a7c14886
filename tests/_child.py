"""Child interpreters that import the same nnlite as the tests do.

A test that starts ``python -c ...`` or ``python -m ...`` must not let the child pick up another
nnlite: Python puts the child's working directory (or the script's folder) first on ``sys.path``,
and CI runs the suite inside an unpacked, unbuilt sdist while testing the installed package. A
child started from there would quietly run the numpy twins. ``HOME`` is the folder holding the
nnlite imported here; children get it first on ``PYTHONPATH`` and, by default, as their cwd.
"""
import os
import subprocess
import sys
from pathlib import Path

import nnlite

HOME = Path(nnlite.__file__).resolve().parents[1]


def env(**extra):
    """``os.environ`` with HOME first on PYTHONPATH, then ``extra`` (None removes a variable)."""
    out = {**os.environ,
           "PYTHONPATH": os.pathsep.join(p for p in (str(HOME), os.environ.get("PYTHONPATH"))
                                         if p)}
    for k, v in extra.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def python(*args, cwd=None, extra_env=None, **kwargs):
    """``subprocess.run([python, *args])`` in HOME (or ``cwd``) with ``env(**extra_env)``."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd or HOME,
                          env=env(**(extra_env or {})), **kwargs)


def popen(*args, cwd=None, extra_env=None, **kwargs):
    """``subprocess.Popen`` counterpart of :func:`python`."""
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=cwd or HOME,
                            env=env(**(extra_env or {})), **kwargs)
