"""Build nnlite's compiled kernels.

Extensions (one per kernel family, so each can be rebuilt and tested on its own):

    nnlite.ops._gemm        csrc/cpu/gemm.cpp       + csrc/bindings/bind_gemm.cpp   (pybind11)
    nnlite.ops._pointwise   csrc/cpu/pointwise.cpp, softmax.cpp + bindings/bind_pointwise.cpp
    nnlite.ops._attention   csrc/cpu/attention.cpp  + csrc/bindings/bind_attention.cpp
    nnlite.ops._nn          csrc/cpu/layernorm.cpp, embedding.cpp, adam_many.cpp, sum_squares.cpp
                                                                      + bind_nn.cpp
    nnlite.ops._optim_kernels  nnlite/ops/_optim_kernels.pyx                (Cython)

Every C++ extension also compiles csrc/common/cpu.cpp (run-time SIMD choice, FTZ/DAZ, threads).

Switches (environment variables):
    NNLITE_NO_OPENMP=1     build without OpenMP even if the compiler has it
    NNLITE_BUILD_ONLY=a,b  build only these families (developer convenience)
    NNLITE_DEBUG=1         -O0 -g instead of -O3
No -march=native: the AVX2/FMA and AVX-512 paths are compiled with per-function target
attributes and picked at run time by cpuid, so one wheel runs on any x86-64 (or ARM) CPU.
"""
import glob
import os
import sys
import tempfile
import textwrap

import numpy as np
from pybind11.setup_helpers import Pybind11Extension
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# csrc/common/  the shared toolbox (cpu.h: dispatch, FTZ, threads; simd.h: vector traits)
# csrc/cpu/     one file per kernel family, no Python
# csrc/bindings/ the only C++ that knows Python (pybind11)
CPP_FAMILIES = {
    "gemm": ["csrc/cpu/gemm.cpp", "csrc/bindings/bind_gemm.cpp"],
    "pointwise": ["csrc/cpu/pointwise.cpp", "csrc/cpu/softmax.cpp",
                  "csrc/bindings/bind_pointwise.cpp"],
    "attention": ["csrc/cpu/attention.cpp", "csrc/bindings/bind_attention.cpp"],
    "nn": ["csrc/cpu/layernorm.cpp", "csrc/cpu/embedding.cpp", "csrc/cpu/adam_many.cpp",
           "csrc/cpu/sum_squares.cpp", "csrc/bindings/bind_nn.cpp"],
}
HEADERS = sorted(glob.glob("csrc/*/*.h") + glob.glob("csrc/*/*.inc"))  # kernels live in .inc too
CYTHON_FAMILIES = {
    "optim_kernels": ["nnlite/ops/_optim_kernels.pyx"],
}


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _wanted(family):
    only = os.environ.get("NNLITE_BUILD_ONLY", "").strip()
    return not only or family in [s.strip() for s in only.split(",")]


OPENMP_PROBE = textwrap.dedent("""
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
""")


def _probe_flags(compiler, compile_flags, link_flags, source, suffix=".cpp"):
    """Compile *and link* a tiny program: a flag the compiler accepts but cannot link is useless."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe" + suffix)
        with open(src, "w") as f:
            f.write(source)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=compile_flags)
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=link_flags)
            return True
        except Exception:
            return False


class BuildExt(build_ext):
    """Probe OpenMP once, add flags to every extension, print a ✓/✗ line per feature."""

    def build_extensions(self):
        cc = self.compiler
        is_msvc = cc.compiler_type == "msvc"
        if is_msvc:
            omp_c, omp_l = ["/openmp"], []
            base = ["/O2", "/std:c++17"]
        else:
            omp_c, omp_l = ["-fopenmp"], ["-fopenmp"]
            base = ["-O0", "-g"] if _truthy("NNLITE_DEBUG") else ["-O3"]
            base += ["-fvisibility=hidden", "-fno-math-errno"]
        if _truthy("NNLITE_NO_OPENMP"):
            openmp, why = False, "switched off by NNLITE_NO_OPENMP"
        else:
            openmp = _probe_flags(cc, omp_c, omp_l, OPENMP_PROBE)
            why = "" if openmp else "the compiler cannot build and link -fopenmp"
        if not openmp and not is_msvc:
            base.append("-Wno-unknown-pragmas")     # the omp pragmas are simply ignored then
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + base
            if openmp:
                ext.extra_compile_args += omp_c
                ext.extra_link_args = list(ext.extra_link_args or []) + omp_l
                ext.define_macros = list(ext.define_macros or []) + [("NNLITE_OPENMP", "1")]
        print("nnlite build:")
        print(f"  {'✓' if openmp else '✗'} OpenMP {('(' + why + ')') if why else ''}")
        print("  ✓ SIMD paths chosen at run time (scalar everywhere; AVX2/FMA, AVX-512 on x86-64)")
        print("  ✗ CUDA (no CUDA kernels in this release; the build is CPU-only)")
        super().build_extensions()


def _built(families):
    """``(extension name, sources)`` of each family in ``families`` that this build makes."""
    return [(f"nnlite.ops._{family}", sources) for family, sources in families.items()
            if _wanted(family)]


def extensions():
    # depends: an edited header rebuilds the family (not only an edited .cpp)
    exts = [Pybind11Extension(name, sources=sources + ["csrc/common/cpu.cpp"], depends=HEADERS,
                              include_dirs=["csrc"], cxx_std=17)
            for name, sources in _built(CPP_FAMILIES)]
    cython_exts = [Extension(name, sources=sources, include_dirs=[np.get_include(), "csrc/common"],
                             define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
                   for name, sources in _built(CYTHON_FAMILIES)]
    if cython_exts:
        from Cython.Build import cythonize
        exts += cythonize(cython_exts, language_level=3, quiet=True,
                          compiler_directives={"boundscheck": False, "wraparound": False,
                                               "cdivision": True, "initializedcheck": False})
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
