"""setup.py: the user's CFLAGS/CXXFLAGS/LDFLAGS reach the build and the OpenMP probe, a probe
failure says why, NNLITE_SANITIZE, rebuilds after a configuration change (NNLITE_NO_OPENMP=1
after a build with OpenMP), nothing recompiled when nothing changed, and a clear message where
the Python running setup.py lacks the build tools.

Most tests import setup.py as a module (it builds nothing then) and need setuptools and a C++
compiler; the one that builds needs what setup.py needs (setuptools>=77, pybind11, Cython,
numpy): CI's venv has them (the `dev` extra). Skipped where they are missing.
"""
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
needs_cxx = pytest.mark.skipif(CXX is None or not sys.platform.startswith("linux"),
                               reason="needs a C++ compiler (Linux)")


def _setup_module():
    pytest.importorskip("setuptools")
    spec = importlib.util.spec_from_file_location("nnlite_setup", REPO / "setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)      # not __main__: defines the build, builds nothing
    return mod


def _build_tools_ok():
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77 and all(
        importlib.util.find_spec(m) for m in ("pybind11", "Cython", "numpy"))


@pytest.fixture
def build_ext_cmd(monkeypatch):
    """setup.py's BuildExt on a compiler configured from the environment, as a build does."""
    def make(**env):
        for k in ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "NNLITE_SANITIZE",
                  "NNLITE_NO_OPENMP", "NNLITE_DEBUG"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        setup = _setup_module()
        from setuptools import Distribution
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
        cmd = setup.BuildExt(Distribution({"name": "probe"}))
        cmd.compiler = new_compiler()
        customize_compiler(cmd.compiler)
        return cmd._configure()
    return make


@needs_cxx
def test_openmp_probe_gets_the_users_flags_at_link_time_too(build_ext_cmd):
    """-fsanitize=address in CXXFLAGS: the probe's link used to lack it (undefined __asan_*
    symbols), so the build quietly had no OpenMP."""
    cfg = build_ext_cmd(CXXFLAGS="-fsanitize=address")
    assert cfg["openmp"], cfg["why"]
    assert "-fsanitize=address" in cfg["link_args"]
    assert cfg["cxx_args"][-1] == "-fsanitize=address"       # the user's flags come last


@needs_cxx
def test_openmp_probe_failure_says_why(build_ext_cmd):
    cfg = build_ext_cmd(LDFLAGS="-lnnlite_no_such_library")
    assert not cfg["openmp"]
    assert "the probe failed" in cfg["why"] and "nnlite_no_such_library" in cfg["why"]


def test_cflags_reach_cpp_when_cxxflags_is_unset(build_ext_cmd):
    cfg = build_ext_cmd(CFLAGS="-O0 -DNNLITE_FROM_CFLAGS", NNLITE_NO_OPENMP="1")
    assert cfg["cxx_from"] == "CFLAGS"
    # after nnlite's own -O3, so that -O0 wins
    assert cfg["cxx_args"].index("-O0") > cfg["cxx_args"].index("-O3")
    assert "-DNNLITE_FROM_CFLAGS" in cfg["c_args"] and "-DNNLITE_FROM_CFLAGS" in cfg["cxx_args"]
    cfg = build_ext_cmd(CFLAGS="-DC_ONLY", CXXFLAGS="-DCXX_ONLY", NNLITE_NO_OPENMP="1")
    assert "-DCXX_ONLY" in cfg["cxx_args"] and "-DC_ONLY" not in cfg["cxx_args"]
    assert "-DC_ONLY" in cfg["c_args"]
    assert cfg["why"] == "switched off by NNLITE_NO_OPENMP"


@needs_cxx
def test_sanitize_switch_keeps_openmp(build_ext_cmd):
    cfg = build_ext_cmd(NNLITE_SANITIZE="address,undefined")
    flag = "-fsanitize=address,undefined"
    assert cfg["sanitize"] == ["address", "undefined"]
    assert flag in cfg["cxx_args"] and flag in cfg["c_args"] and flag in cfg["link_args"]
    assert {"-O1", "-g", "-fno-omit-frame-pointer"} <= set(cfg["cxx_args"])
    # Python's CFLAGS have -fwrapv, which would switch off the signed-overflow check
    assert "-fno-wrapv" in cfg["cxx_args"] and "-fno-wrapv" in cfg["c_args"]
    assert "-O3" not in cfg["cxx_args"]
    assert cfg["openmp"], cfg["why"]


def test_sanitize_switch_rejects_unknown_names(monkeypatch):
    setup = _setup_module()
    monkeypatch.setenv("NNLITE_SANITIZE", "address,adress")
    with pytest.raises(SystemExit, match="unknown sanitizer adress"):
        setup.sanitizers()
    monkeypatch.setenv("NNLITE_SANITIZE", "thread,address")
    with pytest.raises(SystemExit, match="cannot be combined"):
        setup.sanitizers()


def test_setup_py_without_build_tools_says_what_to_install(tmp_path):
    """`python setup.py build_ext --inplace` under a Python with an old setuptools (the
    system python3 here has 65): a recipe, not a traceback about the licence field."""
    fake = tmp_path / "fake" / "setuptools"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '65.5.0'\n")
    r = subprocess.run([sys.executable, str(REPO / "setup.py"), "build_ext", "--inplace"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "fake")})
    assert r.returncode == 1
    assert "setuptools>=77" in r.stderr and "setuptools 65.5.0" in r.stderr
    assert 'pip install "setuptools>=77" pybind11 Cython numpy' in r.stderr
    assert "Traceback" not in r.stderr


def _tiny_tree(dst):
    """The files setup.py needs to build the Cython family alone (the fastest to compile)."""
    for rel in ("setup.py", "pyproject.toml", "README.md", "LICENSE",
                "nnlite/ops/_optim_kernels.pyx", "csrc/common/ftz.h"):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, dst / rel)
    (dst / "nnlite" / "__init__.py").write_text("")
    (dst / "nnlite" / "ops" / "__init__.py").write_text("")


def _build(tree, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "NNLITE_SANITIZE",
                         "NNLITE_NO_OPENMP")}
    full.update(NNLITE_BUILD_ONLY="optim_kernels", NNLITE_DEBUG="1", **env)
    r = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree,
                       env=full, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    compiled = re.search(r"nnlite build: (\d+) source files? compiled", r.stdout)
    return r.stdout, int(compiled.group(1))


def _uses_openmp(so):
    data = so.read_bytes()
    return b"GOMP_" in data or b"__kmpc_fork_call" in data     # libgomp (gcc), libomp (clang)


def _compile_line(out):
    return next(ln for ln in out.splitlines() if " -c " in ln and "_optim_kernels.c" in ln)


@needs_cxx
@pytest.mark.skipif(not _build_tools_ok(),
                    reason="needs setuptools>=77, pybind11, Cython, numpy (the dev extra)")
def test_rebuilds_exactly_when_needed(tmp_path):
    tree = tmp_path / "tree"
    _tiny_tree(tree)
    out, n = _build(tree, CFLAGS="-DNNLITE_USER_FLAG")
    assert n == 1 and "✓ OpenMP" in out
    line = _compile_line(out)
    assert "-fopenmp" in line and line.rstrip().endswith("-DNNLITE_USER_FLAG")
    # the generated C is under build/, not beside the .pyx (so never in an sdist or wheel)
    assert not list((tree / "nnlite").rglob("*.c"))
    assert list((tree / "build").rglob("_optim_kernels.c"))

    assert _uses_openmp(next((tree / "nnlite" / "ops").glob("_optim_kernels*.so")))

    out, n = _build(tree, CFLAGS="-DNNLITE_USER_FLAG")
    assert n == 0, out                                   # nothing changed: nothing compiled

    # the switch used to reuse the OpenMP objects of the earlier build
    out, n = _build(tree, CFLAGS="-DNNLITE_USER_FLAG", NNLITE_NO_OPENMP="1")
    assert n == 1, out
    assert "✗ OpenMP (switched off by NNLITE_NO_OPENMP)" in out
    assert "rebuilding everything: the build configuration changed (OpenMP: 'on' -> 'off')" in out
    assert "-fopenmp" not in _compile_line(out)
    so = list((tree / "nnlite" / "ops").glob("_optim_kernels*.so"))
    assert len(so) == 1 and not _uses_openmp(so[0])
    # recorded beside the modules, for `python -m nnlite` (pip hides the build's output)
    info = json.loads((tree / "nnlite" / "ops" / "_build_info.json").read_text())
    assert info["openmp"] is False and info["openmp_why"] == "switched off by NNLITE_NO_OPENMP"

    (tree / "nnlite" / "ops" / "_optim_kernels.pyx").touch()
    out, n = _build(tree, CFLAGS="-DNNLITE_USER_FLAG", NNLITE_NO_OPENMP="1")
    assert n == 1 and "rebuilding everything" not in out


def test_show_config_says_why_there_is_no_openmp(monkeypatch):
    import nnlite as nl
    from nnlite import config
    monkeypatch.setattr(config, "_build_info", lambda: {
        "openmp": False, "openmp_why": "the probe failed: `g++ -fopenmp` failed: no omp.h",
        "sanitize": ["address", "undefined"]})
    monkeypatch.setattr(nl.ops, "has_openmp", lambda: False)
    buf = io.StringIO()
    nl.show_config(file=buf)
    text = buf.getvalue()
    assert "OpenMP     : no (the probe failed: `g++ -fopenmp` failed: no omp.h)" in text
    assert "sanitizers : address,undefined" in text
