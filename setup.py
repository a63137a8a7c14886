"""Build nnlite's compiled kernels.

Extensions (one per kernel family, so each can be rebuilt and tested on its own):

    nnlite.ops._gemm        csrc/cpu/gemm.cpp       + csrc/bindings/bind_gemm.cpp   (pybind11)
                            + csrc/common/peak.cpp (the FMA peak probe the benchmarks divide by)
    nnlite.ops._pointwise   csrc/cpu/pointwise.cpp, softmax.cpp + bindings/bind_pointwise.cpp
    nnlite.ops._attention   csrc/cpu/attention.cpp  + csrc/bindings/bind_attention.cpp
    nnlite.ops._nn          csrc/cpu/layernorm.cpp, embedding.cpp, adam_many.cpp, sum_squares.cpp
                                                                      + bind_nn.cpp
    nnlite.ops._conv        csrc/cpu/conv.cpp (+ gemm.cpp, which it calls) + bind_conv.cpp
    nnlite.ops._optim_kernels  nnlite/ops/_optim_kernels.pyx                (Cython)
    nnlite.ops._cuda        csrc/cuda/*.cu (nvcc) + csrc/bindings/bind_cuda*.cpp, the CUDA runtime
                            linked statically; only where a CUDA toolkit is found (_build_cuda.py)

Every C++ extension also compiles csrc/common/cpu.cpp (run-time SIMD choice, FTZ/DAZ, threads).
The .pyx is turned into C at build time, under the build directory (build/temp.*/cython): the
generated C is in neither the sdist nor the wheel.

Switches (environment variables):
    NNLITE_NO_OPENMP=1     build without OpenMP even if the compiler has it
    NNLITE_SANITIZE=address,undefined
                           AddressSanitizer + UndefinedBehaviorSanitizer build (-O1 -g, frame
                           pointers; OpenMP kept). Python itself is not instrumented: run it with
                           the sanitizer runtimes preloaded (README, "Sanitizer builds")
    NNLITE_BUILD_ONLY=a,b  build only these families (developer convenience; ``cuda`` is one)
    NNLITE_NO_CUDA=1       no CUDA module even where a toolkit is found
    NNLITE_CUDA_ARCHS=80;90+PTX
                           the GPU architectures of the CUDA module (the default; _build_cuda.py)
    NNLITE_NVCC_FLAGS, CUDA_HOME, CUDA_PATH
                           extra nvcc flags; where the CUDA toolkit is (else from `nvcc --dryrun`)
    NNLITE_DEBUG=1         -O0 -g instead of -O3
    CFLAGS, CXXFLAGS, CPPFLAGS, LDFLAGS, CC, CXX
                           honoured, and placed after nnlite's own flags so they win (-O0 beats
                           -O3); C++ takes CXXFLAGS, or CFLAGS when CXXFLAGS is unset. The OpenMP
                           probe compiles and links with them too.
No -march=native: the AVX2/FMA and AVX-512 paths are compiled with per-function target
attributes and picked at run time by cpuid, so one wheel runs on any x86-64 (or ARM) CPU.

The CUDA module is optional in every way: without a toolkit, with NNLITE_NO_CUDA=1 or in a
sanitizer build it is left out (✗ CUDA (why) in the summary), and when nvcc or its link fails the
CPU modules are built all the same (✗ CUDA, the compiler's complaint, and a warning).

Rebuilds: the configuration that shapes the objects (flags, OpenMP on/off, sanitizers, compiler,
versions of Python/numpy/pybind11/Cython) is recorded in the build directory; when it changes
(e.g. ``NNLITE_NO_OPENMP=1 pip install .`` after a build with OpenMP) everything is rebuilt.
Otherwise each object is recompiled only when its source or a csrc header is newer, also under
``pip install -e .`` (whose temporary build directory is replaced by build/temp.* here).
"""
import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap


def _require_build_tools():
    """Fail with a recipe, not a traceback, where this Python cannot build nnlite."""
    try:
        import setuptools
        old = int(setuptools.__version__.split(".")[0]) < 77
        have = f"setuptools {setuptools.__version__}"
    except ImportError:
        old, have = True, "no setuptools"
    missing = [m for m in ("pybind11", "Cython", "numpy") if importlib.util.find_spec(m) is None]
    if old or missing:
        sys.exit(textwrap.dedent(f"""\
            nnlite: setup.py needs setuptools>=77, pybind11, Cython and numpy in this Python
              ({sys.executable}: {have}{', no ' + ', no '.join(missing) if missing else ''}).
            `pip install .` or `pip install -e .` fetch them by themselves (build isolation).
            To run `python setup.py build_ext --inplace` directly, install them first:
                python -m pip install "setuptools>=77" pybind11 Cython numpy"""))


if __name__ == "__main__":
    _require_build_tools()

# _build_cuda.py lies beside this file; setuptools' build backend does not put it on sys.path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _build_cuda as cuda_build  # noqa: E402

import glob
import hashlib
import json
import sysconfig
import threading

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# csrc/common/  the shared toolbox (cpu.h: dispatch, FTZ, threads; simd.h: vector traits)
# csrc/cpu/     one file per kernel family, no Python
# csrc/bindings/ the only C++ that knows Python (pybind11)
CPP_FAMILIES = {
    "gemm": ["csrc/cpu/gemm.cpp", "csrc/common/peak.cpp", "csrc/bindings/bind_gemm.cpp"],
    "pointwise": ["csrc/cpu/pointwise.cpp", "csrc/cpu/softmax.cpp",
                  "csrc/bindings/bind_pointwise.cpp"],
    "attention": ["csrc/cpu/attention.cpp", "csrc/bindings/bind_attention.cpp"],
    "nn": ["csrc/cpu/layernorm.cpp", "csrc/cpu/embedding.cpp", "csrc/cpu/adam_many.cpp",
           "csrc/cpu/sum_squares.cpp", "csrc/bindings/bind_nn.cpp"],
    "conv": ["csrc/cpu/conv.cpp", "csrc/cpu/gemm.cpp",   # conv calls the GEMM: its own copy
             "csrc/bindings/bind_conv.cpp"],
    # the array buffer cache, installed as numpy's memory handler (needs numpy's headers)
    "memory": ["csrc/common/array_pool.cpp", "csrc/bindings/bind_memory.cpp"],
}
NUMPY_HEADER_FAMILIES = {"memory"}
HEADERS = sorted(glob.glob("csrc/*/*.h") + glob.glob("csrc/*/*.inc"))  # kernels live in .inc too
CYTHON_FAMILIES = {
    "optim_kernels": ["nnlite/ops/_optim_kernels.pyx"],
}
# the CUDA module: every launcher file and every CUDA binding file (globbed: a new kernel family
# needs no edit here); the .cu are compiled by nvcc, the bindings by the C++ compiler
CUDA_EXT = "nnlite.ops._cuda"
CUDA_SOURCES = sorted(glob.glob("csrc/cuda/*.cu"))
CUDA_BINDINGS = sorted(glob.glob("csrc/bindings/bind_cuda*.cpp"))
CUDA_HEADERS = sorted(glob.glob("csrc/cuda/**/*.h", recursive=True)
                      + glob.glob("csrc/cuda/**/*.cuh", recursive=True)
                      + glob.glob("csrc/cuda/**/*.inc", recursive=True)
                      + glob.glob("csrc/bindings/bind_cuda*.h"))
CYTHON_DIRECTIVES = {"language_level": 3, "boundscheck": False, "wraparound": False,
                     "cdivision": True, "initializedcheck": False}
SANITIZERS = ("address", "undefined", "leak", "thread")
STAMP = "nnlite-build-config.json"   # in build_temp: the configuration its objects were built with
BUILD_INFO = ("nnlite", "ops", "_build_info.json")   # shipped: how the modules were built


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _wanted(family):
    only = os.environ.get("NNLITE_BUILD_ONLY", "").strip()
    return not only or family in [s.strip() for s in only.split(",")]


def _env_flags(name):
    return shlex.split(os.environ.get(name, ""))


def sanitizers():
    """The sanitizers NNLITE_SANITIZE asks for (``address,undefined`` -> ['address', 'undefined'])."""
    names = [s.strip().lower() for s in os.environ.get("NNLITE_SANITIZE", "").split(",") if s.strip()]
    unknown = [n for n in names if n not in SANITIZERS]
    if unknown:
        sys.exit(f"nnlite: NNLITE_SANITIZE={os.environ['NNLITE_SANITIZE']!r}: unknown sanitizer "
                 f"{', '.join(unknown)} (choose among {', '.join(SANITIZERS)})")
    if "thread" in names and ("address" in names or "leak" in names):
        sys.exit("nnlite: NNLITE_SANITIZE: 'thread' cannot be combined with 'address' or 'leak'")
    return names


OPENMP_PROBE = textwrap.dedent("""
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
""")


def _why(output):
    """The line of a compiler's output that says what went wrong, shortened."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for key in ("error", "undefined reference", "cannot find", "not found"):
        for ln in lines:
            if key in ln.lower():
                return ln if len(ln) <= 200 else ln[:197] + "..."
    return (lines[-1][:200] if lines else "no output")


def probe_openmp(compiler, compile_flags, link_flags):
    """Compile *and link* a tiny OpenMP program with the flags the extensions get.

    Returns ``(ok, why)``: ``why`` is the compiler's own complaint when it fails (a flag the
    compiler accepts but cannot link, -fsanitize without the runtime on the link line, ...).
    """
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        if compiler.compiler_type == "msvc":
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=compile_flags)
                compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                         extra_postargs=link_flags)
                return True, ""
            except Exception as e:  # noqa: BLE001  (any failure: no OpenMP, say why)
                return False, f"{type(e).__name__}: {e}"
        # one command, as the extensions are built: C++ compiler with CXXFLAGS (compiler_cxx),
        # then ours and the user's, then the link flags (the user's LDFLAGS among them)
        cmd = list(compiler.compiler_cxx) + [src, "-o", os.path.join(tmp, "probe")] \
            + compile_flags + link_flags
        try:
            r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            return False, f"{' '.join(cmd[:1])}: {e}"
        if r.returncode != 0:
            return False, (f"`{shlex.join(cmd[:1] + compile_flags + link_flags)}` failed: "
                           f"{_why(r.stderr + r.stdout)}")
        return True, ""


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class BuildExt(build_ext):
    """Probe OpenMP, add the flags to every extension, print a ✓/✗ line per feature, and
    rebuild exactly what a change of source or of configuration needs (see the docstring)."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:      # one compiler per core unless -j says otherwise
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            self.parallel = cores or os.cpu_count() or 1

    def run(self):
        if getattr(self, "editable_mode", False):
            # `pip install -e .` builds in a fresh temporary directory each time, which would
            # recompile everything: keep the objects where `pip install .` keeps them
            self.build_temp = os.path.join(
                "build", f"temp.{sysconfig.get_platform()}-{sys.implementation.cache_tag}")
        # (setuptools clears self.inplace while it builds, then copies the modules in place)
        self._in_place = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()
        if self.extensions and (self.inplace or getattr(self, "editable_mode", False)):
            # the modules were copied into the source tree: their description goes with them
            src = os.path.join(self.build_lib, *BUILD_INFO)
            if os.path.exists(src):
                package_dir = self.get_finalized_command("build_py").get_package_dir("nnlite.ops")
                self.copy_file(src, os.path.join(package_dir, BUILD_INFO[-1]), level=self.verbose)

    # -- configuration -------------------------------------------------------------------------
    def _configure(self):
        cc = self.compiler
        is_msvc = cc.compiler_type == "msvc"
        san = sanitizers()
        user_c, user_cxx = _env_flags("CFLAGS"), _env_flags("CXXFLAGS")
        user_cpp, user_ld = _env_flags("CPPFLAGS"), _env_flags("LDFLAGS")
        cxx_from = "CXXFLAGS" if "CXXFLAGS" in os.environ else ("CFLAGS" if user_c else "")
        if cxx_from == "CFLAGS":
            user_cxx = user_c          # distutils would give C++ only the interpreter's flags
        if is_msvc:
            omp_c, omp_l = ["/openmp"], []
            base, san_c, san_l = ["/O2", "/std:c++17"], [], []
            if san:
                san_c = [f"/fsanitize={s}" for s in san if s == "address"] + ["/Zi"]
        else:
            omp_c, omp_l = ["-fopenmp"], ["-fopenmp"]
            if san:
                base = ["-O1", "-g"]
            elif _truthy("NNLITE_DEBUG"):
                base = ["-O0", "-g"]
            else:
                base = ["-O3"]
            base += ["-fvisibility=hidden", "-fno-math-errno"]
            san_c = san_l = []
            if san:
                flag = "-fsanitize=" + ",".join(san)
                # a report always stops the program: no test can pass over one
                san_c = [flag, "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
                if "undefined" in san:
                    # Python's own CFLAGS carry -fwrapv, which defines signed overflow and so
                    # turns UBSan's check of it off: the kernels are checked without it
                    san_c.append("-fno-wrapv")
                san_l = [flag]
        # the user's flags last, so that they win over ours; on the link line too, where
        # -fsanitize=... or -fopenmp also decide which runtime is linked
        cxx_args = base + san_c + user_cpp + user_cxx
        c_args = base + san_c + user_cpp + user_c
        link_args = san_l + user_cxx + user_ld
        if _truthy("NNLITE_NO_OPENMP"):
            openmp, why = False, "switched off by NNLITE_NO_OPENMP"
        else:
            openmp, why = probe_openmp(cc, omp_c + cxx_args, omp_l + link_args)
            if not openmp:
                why = "the probe failed: " + why
        if not openmp and not is_msvc:
            cxx_args, c_args = cxx_args + ["-Wno-unknown-pragmas"], c_args + ["-Wno-unknown-pragmas"]
        if openmp:
            cxx_args, c_args, link_args = omp_c + cxx_args, omp_c + c_args, omp_l + link_args
        return {"openmp": openmp, "why": why, "sanitize": san, "cxx_args": cxx_args,
                "c_args": c_args, "link_args": link_args, "cxx_from": cxx_from}

    def _stamp(self, cfg):
        """What the objects depend on besides their sources: compared between builds."""
        def version(mod):
            try:
                return __import__(mod).__version__
            except Exception:  # noqa: BLE001
                return None
        cc = self.compiler
        tools = {k: list(getattr(cc, k, None) or []) for k in
                 ("compiler_so", "compiler_so_cxx", "linker_so", "linker_so_cxx")}
        return {
            "summary": {"OpenMP": "on" if cfg["openmp"] else "off",
                        "sanitizers": ",".join(cfg["sanitize"]) or "none",
                        "NNLITE_DEBUG": _truthy("NNLITE_DEBUG"),
                        **{k: os.environ.get(k, "") for k in
                           ("CC", "CXX", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS")}},
            "flags": {"c": cfg["c_args"], "c++": cfg["cxx_args"], "link": cfg["link_args"],
                      "tools": tools},
            "versions": {"python": sys.version, "numpy": version("numpy"),
                         "pybind11": version("pybind11"), "Cython": version("Cython")},
        }

    def _stamp_paths(self):
        # one stamp for the objects (build_temp), one per place the modules are linked into
        key = hashlib.sha1(os.path.abspath(self.build_lib).encode()).hexdigest()[:12]
        return (os.path.join(self.build_temp, STAMP),
                os.path.join(self.build_temp, f"nnlite-outputs-{key}.json"))

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @staticmethod
    def _changes(old, new):
        """What differs between two stamps, in words."""
        if old is None:
            return "no record of how the existing objects were built"
        diffs = [f"{k}: {old.get('summary', {}).get(k)!r} -> {v!r}"
                 for k, v in new["summary"].items() if old.get("summary", {}).get(k) != v]
        if not diffs and old.get("versions") != new["versions"]:
            diffs.append("Python/numpy/pybind11/Cython version")
        if not diffs and old != new:
            diffs.append("compiler flags")
        return ", ".join(diffs)

    def _remove_objects(self):
        """Remove the objects (and generated C) of an earlier configuration; True if any."""
        found = False
        for root, _, files in os.walk(self.build_temp):
            for name in files:
                if name.endswith((".o", ".obj")) or os.path.join("cython", "") in \
                        os.path.join(root, ""):
                    os.remove(os.path.join(root, name))
                    found = True
        return found

    # -- incremental compilation ---------------------------------------------------------------
    def _compile_only_what_changed(self):
        """Wrap the compiler's ``compile``: an object newer than its source and every csrc
        header is kept (unless the configuration changed). csrc/common/cpu.cpp, shared by the
        C++ extensions, is compiled once per build even with -j (one lock per object)."""
        cc = self.compiler
        if getattr(cc, "_nnlite_wrapped", False):
            return
        original = cc.compile
        locks, guard, done = {}, threading.Lock(), set()

        def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=False,
                    extra_preargs=None, extra_postargs=None, depends=None):
            objects = cc.object_filenames(sources, strip_dir=False, output_dir=output_dir or "")
            deps = [_mtime(d) or 0.0 for d in (depends or [])]
            for src, obj in zip(sources, objects):
                with guard:
                    lock = locks.setdefault(obj, threading.Lock())
                with lock:
                    t_obj = _mtime(obj)
                    fresh = obj in done or (not self._objects_stale and t_obj is not None
                                            and t_obj >= max([_mtime(src) or float("inf")] + deps))
                    if fresh:
                        continue
                    original([src], output_dir=output_dir, macros=macros,
                             include_dirs=include_dirs, debug=debug, extra_preargs=extra_preargs,
                             extra_postargs=extra_postargs, depends=depends)
                    done.add(obj)
                    self._compiled.append(src)
            return objects

        cc.compile = compile
        cc._nnlite_wrapped = True

    def _cythonize(self):
        """.pyx -> .c under build_temp/cython. Cython would redo it whenever one of its own .pxd
        files looks newer, which under pip's build isolation (a fresh Cython each time) is
        always: the C is reused while it is newer than its .pyx and the configuration (Cython's
        version among it) is unchanged."""
        build_dir = os.path.join(self.build_temp, "cython")
        for ext in self.extensions:
            pyx = [s for s in ext.sources if s.endswith(".pyx")]
            if not pyx:
                continue
            generated = {s: os.path.join(build_dir, os.path.splitext(s)[0] + ".c") for s in pyx}
            if not self._objects_stale and all(
                    (_mtime(c) or 0) >= (_mtime(s) or float("inf")) for s, c in generated.items()):
                ext.sources = [generated.get(s, s) for s in ext.sources]
                continue
            from Cython.Build import cythonize
            # only the sources are taken over: the Extension stays the one setuptools prepared
            ext.sources = cythonize([ext], build_dir=build_dir, force=True, quiet=True,
                                    compiler_directives=CYTHON_DIRECTIVES)[0].sources

    # -- the CUDA module ------------------------------------------------------------------------
    def _configure_cuda(self, cfg):
        """The CUDA part's configuration (_build_cuda.configure); drops the CUDA extension
        from this build, and any module an earlier build left, when it is not to be built."""
        ext = next((e for e in self.extensions if e.name == CUDA_EXT), None)
        if ext is None:
            why = ("not in NNLITE_BUILD_ONLY" if not _wanted("cuda")
                   else "no csrc/cuda/*.cu in this tree")
            if cuda_build.truthy("NNLITE_NO_CUDA"):
                why = "switched off by NNLITE_NO_CUDA"
            return {"enabled": False, "why": why}     # (a module built before is left alone)
        cuda = cuda_build.configure(sanitize=cfg["sanitize"])
        if not cuda["enabled"]:
            self._drop_cuda()
        return cuda

    def _cuda_module_paths(self):
        """Where a built _cuda module may lie: build_lib, and the source tree when in place."""
        dirs = [os.path.join(self.build_lib, "nnlite", "ops")]
        if getattr(self, "_in_place", False):
            dirs.append(self.get_finalized_command("build_py").get_package_dir("nnlite.ops"))
        return [p for d in dirs for p in glob.glob(os.path.join(d, "_cuda.*"))
                if p.endswith((".so", ".pyd"))]

    def _drop_cuda(self):
        """No CUDA module in this build: out of the extensions, and an old one deleted (so
        that a wheel built after one with CUDA is exactly the CPU-only one)."""
        self.extensions = [e for e in self.extensions if e.name != CUDA_EXT]
        for path in self._cuda_module_paths():
            os.remove(path)

    def _compile_cuda_objects(self, ext):
        """csrc/cuda/*.cu -> objects with nvcc, into a folder named after the nvcc command (a
        change of architectures or flags compiles anew); an object newer than its source and
        every csrc/cuda header is kept. The module is relinked when any object changed."""
        cuda = self._cuda
        key = hashlib.sha1(json.dumps([cuda["nvcc"], cuda["version"], cuda["nvcc_flags"]])
                           .encode()).hexdigest()[:12]
        out_dir = os.path.join(self.build_temp, f"cuda-{key}")
        os.makedirs(out_dir, exist_ok=True)
        newest_header = max([_mtime(h) or 0.0 for h in CUDA_HEADERS] + [0.0])
        jobs, objects = [], []
        for src in ext.cu_sources:
            obj = os.path.join(out_dir, os.path.splitext(os.path.basename(src))[0] + ".o")
            objects.append(obj)
            t_obj = _mtime(obj)
            if self.force or t_obj is None or t_obj < max(_mtime(src) or float("inf"),
                                                          newest_header):
                jobs.append((src, obj))

        def nvcc(job):
            src, obj = job
            cmd = cuda_build.nvcc_command(cuda, src, obj, include_dirs=["csrc", "csrc/cuda"])
            print(shlex.join(cmd), flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                if os.path.exists(obj):
                    os.remove(obj)
                raise RuntimeError(f"nvcc failed on {src}: {_why(r.stderr + r.stdout)}\n"
                                   f"{(r.stderr + r.stdout)[-4000:]}")
            return src

        if jobs:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max(1, min(len(jobs), int(self.parallel or 1)))) as pool:
                self._compiled.extend(pool.map(nvcc, jobs))
        # which objects the module in build_lib was linked from (another folder after a change
        # of architectures, and back)
        linked = self._stamp_paths()[1].replace("nnlite-outputs-", "nnlite-cuda-linked-")
        if jobs or self._read(linked) != key:
            for path in glob.glob(os.path.join(self.build_lib, "nnlite", "ops", "_cuda.*")):
                os.remove(path)            # a missing module is relinked by build_extension
        ext.extra_objects = objects
        return linked, key

    def build_extension(self, ext):
        if ext.name != CUDA_EXT:
            return super().build_extension(ext)
        try:
            linked, key = self._compile_cuda_objects(ext)
            super().build_extension(ext)
            with open(linked, "w") as f:
                json.dump(key, f)
        except Exception as e:  # noqa: BLE001  (whatever went wrong: the CPU build goes on)
            text = str(e)
            self._cuda_failed = text.splitlines()[0] if text else type(e).__name__
            print(f"nnlite build: the CUDA module failed:\n{text}", file=sys.stderr, flush=True)

    # -- the build -----------------------------------------------------------------------------
    def build_extensions(self):
        import numpy as np

        cfg = self._configure()
        self._cuda = cuda = self._configure_cuda(cfg)
        self._cuda_failed = None
        stamp = self._stamp(cfg)
        objects_stamp, outputs_stamp = self._stamp_paths()
        old = self._read(objects_stamp)
        self._objects_stale = old != stamp
        removed = False
        if self._objects_stale:
            # objects of another configuration go, and the new one is recorded now: whatever
            # object is found later was built with it (a failed build keeps its progress)
            removed = self._remove_objects()
            os.makedirs(self.build_temp, exist_ok=True)
            with open(objects_stamp, "w") as f:
                json.dump(stamp, f, indent=1)
        relink = self._read(outputs_stamp) != stamp
        self.force = bool(self.force or self._objects_stale or relink)
        self._compiled = []
        omp_flags = ("-fopenmp", "/openmp")
        for ext in self.extensions:
            cpp = getattr(ext, "language", None) == "c++"
            if ext.name == CUDA_EXT:
                # the bindings: the same flags without OpenMP; the static runtime at the end
                ext.extra_compile_args = list(ext.extra_compile_args or []) + \
                    [a for a in cfg["cxx_args"] if a not in omp_flags]
                ext.extra_link_args = list(ext.extra_link_args or []) + \
                    [a for a in cfg["link_args"] if a not in omp_flags] + cuda["link_libs"]
                continue
            ext.extra_compile_args = list(ext.extra_compile_args or []) + \
                (cfg["cxx_args"] if cpp else cfg["c_args"])
            ext.extra_link_args = list(ext.extra_link_args or []) + cfg["link_args"]
            if not cpp or ext.name.rsplit("._", 1)[-1] in NUMPY_HEADER_FAMILIES:
                ext.include_dirs = list(ext.include_dirs or []) + [np.get_include()]
            if cfg["openmp"]:
                ext.define_macros = list(ext.define_macros or []) + [("NNLITE_OPENMP", "1")]
        self._cythonize()
        self._compile_only_what_changed()

        ok = lambda b: "✓" if b else "✗"
        lines = [f"  {ok(cfg['openmp'])} OpenMP" + (f" ({cfg['why']})" if cfg["why"] else ""),
                 "  ✓ SIMD paths chosen at run time (scalar everywhere; AVX2/FMA, AVX-512 on x86-64)",
                 cuda_build.summary(cuda)]
        if cfg["sanitize"]:
            lines.append(f"  ✓ sanitizers: {','.join(cfg['sanitize'])} (-O1 -g; run Python with "
                         f"the runtimes preloaded: README, 'Sanitizer builds')")
        if cfg["cxx_from"] == "CFLAGS":
            lines.append("  ✓ CFLAGS applied to C++ too (CXXFLAGS is unset)")
        if removed:
            lines.append(f"  ↻ rebuilding everything: the build configuration changed "
                         f"({self._changes(old, stamp)})")
        print("nnlite build:\n" + "\n".join(lines), flush=True)
        if cuda.get("warn"):
            print(f"nnlite build: WARNING: building without CUDA ({cuda['why']})",
                  file=sys.stderr, flush=True)
        if not cfg["openmp"] and "NNLITE_NO_OPENMP" not in cfg["why"]:
            print(f"nnlite build: WARNING: building without OpenMP ({cfg['why']})",
                  file=sys.stderr, flush=True)
        super().build_extensions()
        if self._cuda_failed:
            # the CPU modules are built: only the CUDA one is missing, and the summary says why
            self._drop_cuda()
            cuda = dict(cuda, enabled=False, why=f"the build failed: {self._cuda_failed}")
            print(f"nnlite build:\n{cuda_build.summary(cuda)}", flush=True)
            print(f"nnlite build: WARNING: building without CUDA ({cuda['why']})",
                  file=sys.stderr, flush=True)
        n = len(self._compiled)
        print(f"nnlite build: {n} source file{'s' if n != 1 else ''} compiled"
              + ("" if n else " (every object was up to date)"), flush=True)
        with open(outputs_stamp, "w") as f:
            json.dump(stamp, f, indent=1)
        # what `python -m nnlite` reports: pip hides this build's output unless -v
        info = os.path.join(self.build_lib, *BUILD_INFO)
        os.makedirs(os.path.dirname(info), exist_ok=True)
        with open(info, "w") as f:
            json.dump({"openmp": cfg["openmp"], "openmp_why": cfg["why"],
                       "sanitize": cfg["sanitize"], "debug": _truthy("NNLITE_DEBUG"),
                       "cxx_flags": cfg["cxx_args"], "link_flags": cfg["link_args"],
                       "cuda": {"built": cuda["enabled"], "why": cuda["why"],
                                **{k: cuda.get(k) for k in ("toolkit", "version", "archs",
                                                            "nvcc_flags")}}}, f, indent=1)


def _built(families):
    """``(extension name, sources)`` of each family in ``families`` that this build makes."""
    return [(f"nnlite.ops._{family}", sources) for family, sources in families.items()
            if _wanted(family)]


def extensions():
    # depends: an edited header rebuilds the family (not only an edited .cpp). numpy's include
    # directory, the flags and the .pyx -> .c step are added by BuildExt.
    from pybind11.setup_helpers import Pybind11Extension
    exts = [Pybind11Extension(name, sources=sources + ["csrc/common/cpu.cpp"], depends=HEADERS,
                              include_dirs=["csrc"], cxx_std=17)
            for name, sources in _built(CPP_FAMILIES)]
    exts += [Extension(name, sources=sources, include_dirs=["csrc/common"],
                       depends=["csrc/common/ftz.h"],
                       define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
             for name, sources in _built(CYTHON_FAMILIES)]
    if CUDA_SOURCES and _wanted("cuda"):
        # built only where BuildExt finds a toolkit (_build_cuda.py); the .cu are compiled by
        # nvcc into extra objects, the bindings by the C++ compiler
        ext = Pybind11Extension(CUDA_EXT, sources=CUDA_BINDINGS, include_dirs=["csrc"],
                                depends=HEADERS + CUDA_HEADERS, cxx_std=17,
                                define_macros=[("NNL_CUDA_MODULE", "_cuda")])
        ext.cu_sources = CUDA_SOURCES
        exts.append(ext)
    return exts


if __name__ == "__main__":
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
