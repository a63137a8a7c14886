"""Where data sets are looked for and cached."""
import os
from pathlib import Path

ENV_VAR = "NNLITE_DATA"


def get_data_home():
    """The user cache folder for downloaded data: ``$XDG_CACHE_HOME/nnlite`` or
    ``~/.cache/nnlite`` (one subfolder per data set). Not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnlite"


def candidate_dirs(subdir, data_dir=None):
    """The folders to search, in order, as ``(folder, where-it-came-from)`` pairs.

    ``data_dir`` (its ``subdir`` subfolder, then itself), then ``$NNLITE_DATA`` (likewise), then
    the user cache's ``subdir`` folder.
    """
    out = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        out += [(d / subdir, "data_dir"), (d, "data_dir")]
    env = os.environ.get(ENV_VAR)
    if env:
        d = Path(env).expanduser()
        out += [(d / subdir, f"${ENV_VAR}"), (d, f"${ENV_VAR}")]
    out.append((get_data_home() / subdir, "cache"))
    return out
