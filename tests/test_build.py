"""setup.py: the user's CFLAGS/CXXFLAGS/LDFLAGS reach the build and the OpenMP probe, a probe
failure says why, NNLITE_SANITIZE, rebuilds after a configuration change (NNLITE_NO_OPENMP=1
after a build with OpenMP), nothing recompiled when nothing changed, and a clear message where
the Python running setup.py lacks the build tools. The CUDA part (_build_cuda.py): the toolkit
found from CUDA_HOME/CUDA_PATH or from `nvcc --dryrun` (nvcc may be a wrapper script), the
NNLITE_CUDA_ARCHS parsing, NNLITE_NO_CUDA, and a failing nvcc leaving the CPU build whole.

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
    for rel in ("setup.py", "_build_cuda.py", "pyproject.toml", "README.md", "LICENSE",
                "nnlite/ops/_optim_kernels.pyx", "csrc/common/ftz.h"):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, dst / rel)
    (dst / "nnlite" / "__init__.py").write_text("")
    (dst / "nnlite" / "ops" / "__init__.py").write_text("")


def _build(tree, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "NNLITE_SANITIZE",
                         "NNLITE_NO_OPENMP", "NNLITE_NO_CUDA", "NNLITE_CUDA_ARCHS")}
    full.update(NNLITE_BUILD_ONLY="optim_kernels", NNLITE_DEBUG="1")
    full.update(env)
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


# ------------------------------------------------------------------ the CUDA part (_build_cuda.py)

def _cuda_build():
    spec = importlib.util.spec_from_file_location("nnlite_build_cuda", REPO / "_build_cuda.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DRYRUN = """#$ _NVVM_BRANCH_=nvvm
#$ _HERE_=/opt/cuda-13.0/bin
#$ TOP=/opt/cuda-13.0/bin/..
#$ NVVMIR_LIBRARY_DIR=/opt/cuda-13.0/bin/../nvvm/libdevice
#$ gcc -D__CUDA_ARCH_LIST__=750 -E -x c++ ...
"""


def _fake_toolkit(root, *, static_lib=True):
    """A toolkit's layout with a fake nvcc (a script) that answers --version and --dryrun."""
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "include" / "cuda_runtime.h").write_text("")
    (root / "lib64").mkdir()
    if static_lib:
        (root / "lib64" / "libcudart_static.a").write_text("")
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\n"
                    "case \"$1\" in --version) echo 'Cuda compilation tools, release 13.0, V13.0.88';;\n"
                    f"  *) printf '%s' '{DRYRUN.replace(chr(39), '')}' >&2;; esac\n")
    nvcc.chmod(0o755)
    return root


def test_cuda_toolkit_from_cuda_home_then_cuda_path(tmp_path):
    cb = _cuda_build()
    home = _fake_toolkit(tmp_path / "cuda")
    never = lambda name: pytest.fail("CUDA_HOME given: PATH is not searched")  # noqa: E731
    assert cb.find_toolkit({"CUDA_HOME": str(home)}, which=never) == (str(home), "")
    assert cb.find_toolkit({"CUDA_PATH": str(home)}, which=never) == (str(home), "")
    root, why = cb.find_toolkit({"CUDA_HOME": str(tmp_path / "nowhere")}, which=never)
    assert root is None and "CUDA_HOME=" in why and "holds no bin/nvcc" in why


def test_cuda_toolkit_from_nvcc_dryrun_not_from_the_wrappers_folder(tmp_path):
    """nvcc on PATH may be a wrapper script (/usr/local/bin/nvcc -> exec .../cuda-13.0/bin/nvcc):
    the toolkit is `nvcc --dryrun`'s `#$ TOP=` line, not the folder the script is in."""
    cb = _cuda_build()
    real = _fake_toolkit(tmp_path / "opt" / "cuda-13.0")
    wrapper_dir = tmp_path / "usr-local-bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "nvcc"
    # the wrapper's dryrun names the real toolkit (its TOP), as the real nvcc does
    wrapper.write_text(f"#!/bin/sh\nprintf '#$ _HERE_={real}/bin\\n#$ TOP={real}/bin/..\\n' >&2\n")
    wrapper.chmod(0o755)
    root, why = cb.find_toolkit({}, which=lambda name: str(wrapper))
    assert root == str(real) and why == ""
    # the same from a canned answer (no subprocess), and no TOP line at all
    fake_run = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, "", DRYRUN)  # noqa: E731
    assert cb.find_toolkit({}, which=lambda n: "/usr/local/bin/nvcc", run=fake_run) == \
        ("/opt/cuda-13.0", "")
    silent = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "nvcc fatal")  # noqa: E731
    root, why = cb.find_toolkit({}, which=lambda n: "/usr/local/bin/nvcc", run=silent)
    assert root is None and "TOP=" in why
    root, why = cb.find_toolkit({}, which=lambda n: None)
    assert root is None and why.startswith("no CUDA toolkit found")


def test_cuda_arch_parsing():
    cb = _cuda_build()
    assert cb.parse_archs(None) == [("80", False), ("90", True)]       # the default
    assert cb.parse_archs("  ") == [("80", False), ("90", True)]
    assert cb.parse_archs("80;90") == [("80", False), ("90", False)]
    assert cb.parse_archs("80,90+PTX") == [("80", False), ("90", True)]
    assert cb.parse_archs("8.0 9.0+ptx") == [("80", False), ("90", True)]
    assert cb.parse_archs("sm_75;compute_86;sm_90a;100;12.0") == \
        [("75", False), ("86", False), ("90a", False), ("100", False), ("120", False)]
    assert cb.parse_archs("90;90+PTX") == [("90", True)]              # merged, not twice
    archs = cb.parse_archs("80;90+PTX")
    assert cb.arch_names(archs) == ["sm_80", "sm_90", "compute_90"]
    assert cb.gencode_flags(archs) == ["-gencode=arch=compute_80,code=sm_80",
                                       "-gencode=arch=compute_90,code=sm_90",
                                       "-gencode=arch=compute_90,code=compute_90"]
    with pytest.raises(ValueError, match=r"sm_70 is older than sm_75"):
        cb.parse_archs("70;80")
    with pytest.raises(ValueError, match=r"sm_52 is older than sm_75"):
        cb.parse_archs("5.2")
    with pytest.raises(ValueError, match=r"'ampere' is not an architecture"):
        cb.parse_archs("80;ampere")
    with pytest.raises(ValueError, match=r"'9' is not an architecture"):
        cb.parse_archs("9")
    with pytest.raises(ValueError, match=r"'80\+SASS' is not an architecture"):
        cb.parse_archs("80+SASS")


def test_cuda_configure(tmp_path):
    cb = _cuda_build()
    home = str(_fake_toolkit(tmp_path / "cuda"))
    cfg = cb.configure({"CUDA_HOME": home})
    assert cfg["enabled"] and cfg["toolkit"] == home and cfg["version"] == "13.0"
    assert cfg["archs"] == ["sm_80", "sm_90", "compute_90"]
    flags = cfg["nvcc_flags"]
    assert {"-O3", "-std=c++17", "-lineinfo", "-fPIC"} <= set(flags)
    assert "-gencode=arch=compute_90,code=compute_90" in flags
    assert '-DNNLITE_CUDA_ARCHS="sm_80 sm_90 compute_90"' in flags
    # the static runtime, and no -lcuda: the module imports where there is no driver
    assert cfg["link_libs"] == [os.path.join(home, "lib64", "libcudart_static.a"),
                                "-lpthread", "-ldl", "-lrt"]
    assert "✓ CUDA (nvcc 13.0 at" in cb.summary(cfg) and "sm_80 sm_90 compute_90" in cb.summary(cfg)
    cmd = cb.nvcc_command(cfg, "csrc/cuda/x.cu", "x.o", include_dirs=["csrc"])
    assert cmd[0] == os.path.join(home, "bin", "nvcc") and cmd[-4:] == ["-c", "csrc/cuda/x.cu", "-o", "x.o"]

    cfg = cb.configure({"CUDA_HOME": home, "NNLITE_CUDA_ARCHS": "90a"})
    assert cfg["archs"] == ["sm_90a"] and "-gencode=arch=compute_90a,code=sm_90a" in cfg["nvcc_flags"]

    off = cb.configure({"CUDA_HOME": home, "NNLITE_NO_CUDA": "1"})
    assert off == {"enabled": False, "why": "switched off by NNLITE_NO_CUDA"}
    assert cb.summary(off) == "  ✗ CUDA (switched off by NNLITE_NO_CUDA)"
    off = cb.configure({"CUDA_HOME": home}, sanitize=["address"])
    assert not off["enabled"] and "sanitizer" in off["why"]
    bad = cb.configure({"CUDA_HOME": home, "NNLITE_CUDA_ARCHS": "70"})
    assert not bad["enabled"] and "sm_70 is older than sm_75" in bad["why"] and bad["warn"]
    none = cb.configure({}, which=lambda n: None)
    assert not none["enabled"] and not none["warn"] and "no CUDA toolkit found" in none["why"]
    lacking = str(_fake_toolkit(tmp_path / "cuda-no-static", static_lib=False))
    cfg = cb.configure({"CUDA_HOME": lacking})
    assert not cfg["enabled"] and "lacks libcudart_static.a" in cfg["why"] and cfg["warn"]


def _cuda_tree(tree, broken):
    """The tiny tree plus a CUDA family: the real shared pieces and, if asked, a .cu nvcc
    rejects."""
    _tiny_tree(tree)
    for rel in ("csrc/cuda/cuda_compat.h", "csrc/cuda/launch.h", "csrc/cuda/device.h",
                "csrc/cuda/device.cu", "csrc/cuda/shim/cuda_shim.h",
                "csrc/bindings/bind_cuda.h", "csrc/bindings/bind_cuda.cpp"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tree / rel)
    if broken:
        (tree / "csrc" / "cuda" / "broken.cu").write_text(
            '#include "cuda_compat.h"\n__global__ void k(float* x) { x[0] = undeclared; }\n')


@needs_cxx
@pytest.mark.skipif(not _build_tools_ok(),
                    reason="needs setuptools>=77, pybind11, Cython, numpy (the dev extra)")
def test_cuda_switched_off_or_failing_leaves_the_cpu_build_whole(tmp_path):
    tree = tmp_path / "tree"
    _cuda_tree(tree, broken=True)
    only = "optim_kernels,cuda"
    out, n = _build(tree, NNLITE_BUILD_ONLY=only, NNLITE_NO_CUDA="1")
    assert n == 1 and "✗ CUDA (switched off by NNLITE_NO_CUDA)" in out
    ops = tree / "nnlite" / "ops"
    assert list(ops.glob("_optim_kernels*.so")) and not list(ops.glob("_cuda*"))
    info = json.loads((ops / "_build_info.json").read_text())
    assert info["cuda"]["built"] is False and info["cuda"]["why"] == "switched off by NNLITE_NO_CUDA"

    out, _ = _build(tree, NNLITE_BUILD_ONLY=only, CUDA_HOME=str(tmp_path / "no-cuda"))
    assert f"✗ CUDA (CUDA_HOME={tmp_path / 'no-cuda'} holds no bin/nvcc)" in out

    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc: the failing-nvcc half needs a CUDA toolkit")
    env = {k: "" for k in ("CUDA_HOME", "CUDA_PATH")}
    r_out, _ = _build(tree, NNLITE_BUILD_ONLY=only, NNLITE_CUDA_ARCHS="90", **env)
    assert "✓ CUDA (nvcc" in r_out                                   # the toolkit was found...
    assert "✗ CUDA (the build failed: nvcc failed on csrc/cuda/broken.cu" in r_out   # ...nvcc failed
    assert list(ops.glob("_optim_kernels*.so")) and not list(ops.glob("_cuda*"))
    info = json.loads((ops / "_build_info.json").read_text())
    assert info["cuda"]["built"] is False and "broken.cu" in info["cuda"]["why"]
