"""Build and load nnlite's CUDA kernels as plain C++ through the shim (csrc/cuda/shim/), so that
the tests run every CUDA kernel, launcher and binding on CPU threads on a machine with no GPU.

``load()`` returns the module ``_cuda_shim``: the same sources as the real ``nnlite.ops._cuda``
(csrc/cuda/*.cu and csrc/bindings/bind_cuda*.cpp), compiled by g++ with ``NNLITE_CUDA_SHIM``.
``build(tsan=True)`` compiles them with ThreadSanitizer instead; such a module only loads in a
Python started with libtsan preloaded (``tsan_env()``; .ci/run's shim step, tests/test_cuda_shim.py).

Objects are cached in ``$NNLITE_SHIM_CACHE`` (default: a folder in the temp directory), one per
source, keyed on the hash of the flags, that source and every header it may include, so that a
changed kernel rebuilds only its own object. Builds of one key are serialised by a file lock.
"""
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
MODULE = "_cuda_shim"
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def compiler():
    return os.environ.get("CXX", "g++")


def sources():
    """The translation units of the CUDA module: every launcher and every binding file."""
    return sorted((CSRC / "cuda").glob("*.cu")) + sorted((CSRC / "bindings").glob("bind_cuda*.cpp"))


def _headers():
    return sorted(p for pattern in ("*.h", "*.cuh", "*.inc") for p in (CSRC / "cuda").rglob(pattern)) + \
        sorted((CSRC / "bindings").glob("bind_cuda*.h"))


def _flags(tsan):
    import pybind11
    flags = ["-std=c++20", "-fPIC", "-pthread", "-g", "-fvisibility=hidden",
             "-DNNLITE_CUDA_SHIM", f"-DNNL_CUDA_MODULE={MODULE}",
             f"-I{CSRC}", f"-I{CSRC / 'cuda'}", f"-I{pybind11.get_include()}",
             f"-I{sysconfig.get_paths()['include']}", "-Wall", "-Wno-unused-function"]
    # -O1: fast enough for the small test shapes, and what ThreadSanitizer wants
    flags += ["-O1", "-fsanitize=thread"] if tsan else ["-O1"]
    return flags


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_dir():
    base = os.environ.get("NNLITE_SHIM_CACHE") or os.path.join(
        tempfile.gettempdir(), f"nnlite-cuda-shim-{os.getuid()}")
    os.makedirs(base, exist_ok=True)
    return Path(base)


def _compile(cmd, out):
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    r = subprocess.run(cmd + ["-o", str(tmp)], check=False, capture_output=True, text=True)
    if r.returncode:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"the CUDA shim build failed:\n$ {' '.join(cmd)}\n{r.stderr[-6000:]}")
    os.replace(tmp, out)


def build(tsan=False):
    """Compile (what changed) and link; returns the path of the extension module."""
    cxx = compiler()
    flags = _flags(tsan)
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    headers = _headers()
    common = _digest(cxx, version, " ".join(flags))
    # a .cu may include any header; a binding file only the plain C++ ones (X.h, bind_cuda*.h),
    # so that editing a kernel recompiles its launcher, not every pybind11 file
    every = _digest(*(p.read_bytes() for p in headers))
    plain = _digest(*(p.read_bytes() for p in headers if p.suffix == ".h" and "shim" not in p.parts))
    cache = cache_dir()
    objects, jobs = [], []
    for src in sources():
        deps = every if src.suffix == ".cu" else plain
        obj = cache / f"{src.stem}-{src.suffix[1:]}-{_digest(common, deps, src.read_bytes())}.o"
        objects.append(obj)
        if not obj.exists():
            lang = ["-x", "c++"] if src.suffix == ".cu" else []
            jobs.append(([cxx, *flags, *lang, "-c", str(src)], obj))
    key = _digest(common, *[o.name for o in objects])
    target_dir = cache / f"{'tsan' if tsan else 'plain'}-{key}"
    target = target_dir / f"{MODULE}{_SUFFIX}"
    if target.exists():
        return target
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
            for f in [pool.submit(_compile, cmd, obj) for cmd, obj in jobs if not obj.exists()]:
                f.result()
        target_dir.mkdir(exist_ok=True)
        link = [cxx, "-shared", "-pthread", *(["-fsanitize=thread"] if tsan else []),
                *map(str, objects)]
        _compile(link, target)
    return target


_loaded = {}


def load(tsan=False):
    """The shim module (built if needed), imported once per process."""
    if tsan not in _loaded:
        path = build(tsan)
        spec = importlib.util.spec_from_file_location(MODULE, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[tsan] = module
    return _loaded[tsan]


def device(tsan=False):
    """A nnlite.ops.cuda_device.Device over the shim module: numpy arrays as 'device' memory."""
    from nnlite.ops.cuda_device import Device
    return Device.shim(load(tsan))


def tsan_runtime():
    """The path of libtsan.so of the compiler, or None when it has none."""
    r = subprocess.run([compiler(), "-print-file-name=libtsan.so"], capture_output=True, text=True)
    path = r.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def tsan_env(report_dir=None):
    """The environment for a Python that loads the ThreadSanitizer build of the shim."""
    env = dict(os.environ, LD_PRELOAD=tsan_runtime() or "", NNLITE_CUDA_SHIM_TSAN="1")
    opts = ["halt_on_error=1", "exitcode=66", "report_signal_unsafe=0", "second_deadlock_stack=1"]
    if report_dir:
        opts.append(f"log_path={os.path.join(report_dir, 'tsan')}")
    env["TSAN_OPTIONS"] = " ".join(opts)
    return env


def missing():
    """Why the shim cannot be built here ("" when it can): it needs a C++ compiler on Linux and
    pybind11's headers (in the [test] extra: pip install ".[test]")."""
    if not sys.platform.startswith("linux") or shutil.which(compiler()) is None:
        return f"the CUDA shim needs {compiler()} on Linux"
    if importlib.util.find_spec("pybind11") is None:
        return 'the CUDA shim needs pybind11\'s headers: pip install ".[test]"'
    return ""


def test_device(kind):
    """The device a kernel test runs on: "shim" (always; the ThreadSanitizer build when
    NNLITE_CUDA_SHIM_TSAN=1, as .ci/run's TSan step sets) or "gpu" (raises RuntimeError
    "no GPU: ..." when there is none)."""
    if kind == "shim":
        return device(tsan=bool(os.environ.get("NNLITE_CUDA_SHIM_TSAN")))
    from nnlite.ops import cuda_device
    return cuda_device.gpu()


def to_dev(dev, a):
    """A host (numpy) array on ``dev``: a cupy array on a GPU, a copy under the shim."""
    return dev.xp.array(a, copy=True)


def to_host(a):
    """Any result back as a numpy array (cupy's .get(); tuples and None pass through)."""
    if isinstance(a, tuple):
        return tuple(to_host(x) for x in a)
    if a is None or isinstance(a, (float, int)):
        return a
    return a.get() if hasattr(a, "get") else np.asarray(a)
