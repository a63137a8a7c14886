"""Which nnlite this is and where it came from, and how to build its kernels.

Inside a clone of the repository, Python finds the source tree first (``python -m ...`` and the
REPL put the current directory at the front of ``sys.path``), so an ``import nnlite`` there gets
the unbuilt sources even after ``pip install .``. The import warning, ``python -m nnlite``, the
test session (tests/conftest.py) and the benchmarks use these helpers to say so plainly.
Standard library only: imported while ``nnlite.ops`` is still loading.
"""
import json
import os
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def checkout():
    """The source checkout this package lives in (its root), or None for an installed copy."""
    root = PACKAGE.parent
    return root if (root / "setup.py").is_file() and (root / "csrc").is_dir() else None


def _editable_target(dist):
    """The directory an editable install points at, or None (a regular install)."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except (OSError, ValueError):
        return None
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = info.get("url", "")
    return Path(url[len("file://"):]).resolve() if url.startswith("file://") else None


def installations():
    """``[(version, package directory, editable)]`` of the installed nnlite distributions
    (.dist-info; a checkout's stray nnlite.egg-info is not an installation)."""
    found, seen = [], set()
    for dist in metadata.distributions(name="nnlite"):
        path = getattr(dist, "_path", None)
        if path is not None and not str(path).endswith(".dist-info"):
            continue
        target = _editable_target(dist)
        if target is not None:
            pkg, editable = target / "nnlite", True
        else:
            pkg, editable = Path(dist.locate_file("nnlite")).resolve(), False
            if not (pkg / "__init__.py").is_file():
                continue
        if pkg not in seen:
            seen.add(pkg)
            found.append((dist.version, pkg, editable))
    return found


def others():
    """Installed nnlite packages that are not the one imported (shadowed by it)."""
    return [(v, p, e) for v, p, e in installations() if p != PACKAGE]


def describe():
    """One line: which nnlite was imported, from where."""
    from . import __version__
    root, mine = checkout(), [e for _, p, e in installations() if p == PACKAGE]
    if root is None:
        kind = "installed" if mine else "not an installed distribution nor a checkout"
    elif any(mine):
        kind = f"the source checkout {root}, installed in editable mode"
    else:
        kind = f"the source checkout {root}, not installed"
    return f"nnlite {__version__} from {PACKAGE} ({kind})"


BUILD_HOWTO = (
    "`pip install -e .` in the checkout compiles the kernels in place and later rebuilds only "
    "what changed; `pip install .` installs a compiled copy (import it from outside the "
    "checkout); `python setup.py build_ext --inplace` needs "
    "`pip install \"setuptools>=77\" pybind11 Cython numpy` first")


def advice():
    """Lines saying why the imported nnlite has no kernels and how to get them."""
    lines = [f"imported: {describe()}"]
    shadowed = others()
    for version, pkg, editable in shadowed:
        lines.append(f"not imported: nnlite {version} installed at {pkg}"
                     f"{' (editable)' if editable else ''}")
    if shadowed and checkout() is not None:
        lines.append("the checkout shadows it: `python -m ...` and the REPL put the current "
                     "directory first on sys.path; run from another directory (or `pytest`, "
                     "not `python -m pytest`), or build the checkout itself")
    lines.append("build: " + BUILD_HOWTO)
    return lines


def running_from(directory):
    """True when the imported nnlite is inside ``directory`` (a test tree, say)."""
    try:
        PACKAGE.relative_to(Path(directory).resolve())
        return True
    except ValueError:
        return False


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
