"""The teaching ladders in dev/ (not shipped in the wheel): every step builds and checks out.

Each step (dev/gemm/*.c, dev/attention/*.c, dev/conv/*.c) is compiled once per session into a
temporary directory (-O1; -fopenmp where the step has `#pragma omp` and the compiler links it),
then run in check mode on small awkward sizes: the program compares its answer with step 0's math run in
double and prints "OK ..." and exits 0, or prints "NOT OK ..." and exits 1 (dev/common.h).
A step whose instruction set this CPU lacks must say "skipped" and exit 0, and only then.
The AVX-512 steps are also run on scalar stand-ins for their intrinsics, so their logic is
checked on machines without AVX-512 too. Skipped only where there is no C compiler.
"""
import os
import platform
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

DEV = Path(__file__).resolve().parent.parent / "dev"
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
GEMM = sorted((DEV / "gemm").glob("[0-9]*.c"))
ATTENTION = sorted((DEV / "attention").glob("[0-9]*.c"))
CONV = sorted((DEV / "conv").glob("[0-9]*.c"))

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on PATH")

GEMM_SIZES = [(1, 1, 1), (7, 33, 65), (65, 7, 33), (64, 784, 256), (300, 600, 70)]  # M K N
ATTENTION_SIZES = [(1, 1, 1, 8), (2, 1, 63, 32), (1, 3, 65, 20), (1, 2, 130, 64), (1, 1, 70, 3)]
CONV_SIZES = [(1, 1, 1, 1, 1, 1, 1, 0), (2, 3, 7, 9, 5, 3, 2, 1), (1, 4, 13, 11, 6, 5, 1, 2),
              (3, 2, 5, 5, 2, 7, 1, 3),
              (2, 3, 7, 9, 5, 3, 1, 1), (1, 2, 6, 5, 3, 3, 1, 0), (2, 2, 3, 4, 3, 3, 1, 2)]
# N C H W O K S P; the last three are 3 x 3 at stride 1 (conv/03_winograd.c's own path)

# Scalar stand-ins for the AVX-512 intrinsics the steps use (names rewritten _mm512_ -> emu512_).
EMU512 = r"""
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
typedef struct { float f[16]; } emu512;
#define EMU_MAP(expr) emu512 r; for (int i = 0; i < 16; i++) r.f[i] = (expr); return r
static inline emu512 emu512_setzero_ps(void) { EMU_MAP(0.0f); }
static inline emu512 emu512_set1_ps(float x) { EMU_MAP(x); }
static inline emu512 emu512_loadu_ps(const float* p) { EMU_MAP(p[i]); }
static inline emu512 emu512_load_ps(const float* p) {  /* the real one faults when unaligned */
    if ((uintptr_t)p % 64) abort();
    EMU_MAP(p[i]);
}
static inline emu512 emu512_add_ps(emu512 a, emu512 b) { EMU_MAP(a.f[i] + b.f[i]); }
static inline emu512 emu512_fmadd_ps(emu512 a, emu512 b, emu512 c) {
    EMU_MAP(fmaf(a.f[i], b.f[i], c.f[i]));
}
static inline void emu512_storeu_ps(float* p, emu512 a) {
    for (int i = 0; i < 16; i++) p[i] = a.f[i];
}
static inline float emu512_reduce_add_ps(emu512 a) {
    float s = 0; for (int i = 0; i < 16; i++) s += a.f[i]; return s;
}
"""


def _cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo, or None where that is not readable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    m = re.search(r"^flags\s*:(.*)$", text, re.M)
    return set(m.group(1).split()) if m else None


def _needs(src):
    """The CPU flags a step's main() asks for before it runs (empty for portable steps)."""
    main = src.read_text().split("int main", 1)[1]
    if "HAS_AVX512()" in main:
        return {"avx512f"}
    if "HAS_AVX2()" in main:
        return {"avx2", "fma"}
    return set()


def _compile(src, exe, omp, extra=()):
    exe.parent.mkdir(parents=True, exist_ok=True)
    flags = ["-O1", "-std=gnu11", "-Wall", *extra]
    if "#pragma omp" in src.read_text():
        flags += omp
    cmd = [CC, *flags, "-o", str(exe), str(src), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr}"
    return exe


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """{source path: executable}, everything compiled once, in parallel."""
    out = tmp_path_factory.mktemp("dev")
    probe = out / "omp.c"
    probe.write_text("int main(void) { return 0; }\n")
    omp_ok = subprocess.run([CC, "-fopenmp", "-o", str(out / "omp"), str(probe)],
                            capture_output=True).returncode == 0
    omp = ["-fopenmp"] if omp_ok else ["-Wno-unknown-pragmas"]
    srcs = [DEV / "peak.c", *GEMM, *ATTENTION, *CONV]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {s: pool.submit(_compile, s, out / s.parent.name / s.stem, omp) for s in srcs}
    return {s: f for s, f in futures.items()}, omp, out


def _run(exe, args, threads=None):
    env = dict(os.environ, DEV_TIME="0")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120,
                       env=env)
    return r.returncode, r.stdout + r.stderr


def _check_step(build, src, size, threads=None):
    exe = build[0][src].result()  # raises the compile error, if any, here
    rc, out = _run(exe, ["--check", *size], threads)
    flags = _cpu_flags()
    if "skipped" in out:
        assert rc == 0, out
        assert _needs(src), f"{src.name} is portable, but said:\n{out}"
        if flags is not None and X86:
            assert not _needs(src) <= flags, f"the CPU has {_needs(src)}, yet:\n{out}"
        return
    assert rc == 0, out
    lines = out.strip().splitlines()
    assert lines and all(line.startswith("OK") for line in lines), out
    assert "NOT OK" not in out


@pytest.mark.parametrize("size", GEMM_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("src", GEMM, ids=lambda p: p.stem)
def test_gemm_step(build, src, size):
    _check_step(build, src, size)


@pytest.mark.parametrize("size", ATTENTION_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("src", ATTENTION, ids=lambda p: p.stem)
def test_attention_step(build, src, size):
    _check_step(build, src, size)


@pytest.mark.parametrize("size", CONV_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("src", CONV, ids=lambda p: p.stem)
def test_conv_step(build, src, size):
    _check_step(build, src, size)


THREADED = [s for s in GEMM + ATTENTION + CONV if "#pragma omp" in s.read_text()]


@pytest.mark.parametrize("src", THREADED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_threaded_step_with_three_threads(build, src):
    """An odd thread count: uneven splits of panels, tiles and heads."""
    sizes = [(300, 600, 70), (64, 784, 256)] if src in GEMM else \
        [(5, 3, 9, 8, 4, 3, 1, 1)] if src in CONV else [(2, 3, 130, 20)]
    for size in sizes:
        _check_step(build, src, size, threads=3)


def test_the_check_catches_a_wrong_answer(build, tmp_path):
    """A step with one bug must print NOT OK and exit 1: the OK lines mean something."""
    omp = build[1]
    cases = [  # (step, the line made wrong)
        (DEV / "gemm" / "01_loop_order.c", "for (int k = 0; k < K; k++) {",
         "for (int k = 1; k < K; k++) {"),
        (DEV / "attention" / "01_online.c", "o[d] = a * o[d] + p", "o[d] = o[d] + p"),
        (DEV / "conv" / "01_im2col_gemm.c", "ih < 0 || ih >= H", "ih < 0 || ih > H"),
        (DEV / "conv" / "03_winograd.c", "s[1][j] = m1 - m2 - m3;", "s[1][j] = m1 - m2 + m3;"),
    ]
    for src, good, bad in cases:
        text = src.read_text()
        assert good in text, f"{src.name} no longer has {good!r}: update this test"
        broken = tmp_path / src.name
        broken.write_text(text.replace(good, bad))
        exe = _compile(broken, tmp_path / src.stem, omp, ["-I", str(src.parent)])
        size = (5, 40, 9) if "gemm" in str(src) else (1, 1, 70, 8) if "attention" in str(src) \
            else (1, 2, 5, 5, 3, 3, 1, 1)
        rc, out = _run(exe, ["--check", *size])
        assert rc == 1 and "NOT OK" in out, out


AVX512_STEPS = [s for s in GEMM + ATTENTION if "AVX512 static" in s.read_text()]


@pytest.mark.skipif(not X86, reason="the steps' other kernels are x86 intrinsics")
@pytest.mark.parametrize("src", AVX512_STEPS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_avx512_step_logic_on_scalar_intrinsics(build, src, tmp_path):
    """The AVX-512 kernels, with every _mm512_ intrinsic replaced by a scalar stand-in."""
    flags = _cpu_flags()
    if flags is not None and not {"avx2", "fma"} <= flags and _needs(src) != {"avx512f"}:
        pytest.skip("the step's AVX2 path needs AVX2/FMA")
    emu = tmp_path / "emu512.h"
    emu.write_text(EMU512)
    text = src.read_text()
    for a, b in [("__m512", "emu512"), ("_mm512_", "emu512_"), ("AVX512 static", "static"),
                 ("HAS_AVX512()", "1")]:
        text = text.replace(a, b)
    emulated = tmp_path / src.name
    emulated.write_text(text)
    exe = _compile(emulated, tmp_path / src.stem, build[1],
                   ["-I", str(src.parent), "-include", str(emu)])
    sizes = GEMM_SIZES if src in GEMM else ATTENTION_SIZES
    for size in sizes:
        rc, out = _run(exe, ["--check", *size])
        assert rc == 0 and out.startswith("OK") and "NOT OK" not in out, out


def test_peak_probe(build):
    exe = build[0][DEV / "peak.c"].result()
    rc, out = _run(exe, [])
    assert rc == 0, out
    assert re.search(r"^PEAK +avx(2|512) \| threads 1 \| [0-9.]+ GFLOP/s$", out, re.M) or \
        "skipped" in out, out


def test_dev_is_not_shipped():
    """dev/ is no package and pyproject's package search only takes nnlite*."""
    assert not (DEV / "__init__.py").exists()
    text = (DEV.parent / "pyproject.toml").read_text()
    m = re.search(r"\[tool\.setuptools\.packages\.find\][^\[]*include\s*=\s*\[([^\]]*)\]", text)
    assert m and re.findall(r'"([^"]+)"', m.group(1)) == ["nnlite*"], m and m.group(0)


# ----------------------------------------------------------------------------- dev/cuda

# The CUDA ladders (dev/cuda/): each step's kernel header compiles through the shim
# (csrc/cuda/shim/cuda_shim.h: CUDA threads as std::threads) into one test driver per ladder,
# dev/cuda/<ladder>/shim_test.cpp, which checks every step against a CPU reference on small
# awkward sizes; the same drivers under ThreadSanitizer (--quick sizes) must be race-free. The
# mains (NN_name.cu) need nvcc: each compiles with `nvcc -c -arch=sm_80` where nvcc is present,
# and one linked main, on a machine without a GPU, must say "no GPU: <why>" and exit 77.
CUDA_DEV = DEV / "cuda"
CUDA_LADDERS = ("sgemm", "attention")
CUDA_HEADERS = sorted(p for ladder in CUDA_LADDERS for p in (CUDA_DEV / ladder).glob("[0-9]*.cuh"))
CUDA_MAINS = sorted(p for ladder in CUDA_LADDERS for p in (CUDA_DEV / ladder).glob("[0-9]*.cu"))
CUDA_NVCC_ONLY = {"07_tf32_wmma": "TF32 WMMA tensor-core fragments: nvcc only, the shim has no WMMA"}
CXX = shutil.which(os.environ.get("CXX", "g++"))
NVCC = shutil.which("nvcc")
NO_GPU_EXIT = 77
cuda_shim = pytest.mark.skipif(CXX is None or not sys.platform.startswith("linux"),
                               reason="the CUDA shim needs a C++20 compiler (g++) on Linux")


def _shim_compile(driver, exe, tsan=False):
    root = DEV.parent
    cmd = [CXX, "-std=c++20", "-O1", "-g", "-pthread", "-Wall", "-DNNLITE_CUDA_SHIM",
           f"-I{root / 'csrc'}", f"-I{root / 'csrc' / 'cuda'}",
           *(["-fsanitize=thread"] if tsan else []), "-o", str(exe), str(driver)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}"
    return exe


def _tsan_env():
    return dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_signal_unsafe=0",
                NNLITE_SHIM_TIMEOUT="120")


def _tsan_available(tmp):
    if CXX is None:
        return False
    probe = tmp / "tsan_probe.cpp"
    probe.write_text("int main() { return 0; }\n")
    return subprocess.run([CXX, "-fsanitize=thread", "-o", str(tmp / "tsan_probe"), str(probe)],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def cuda_shim_drivers(tmp_path_factory):
    """{ladder: the shim test driver}, compiled once (g++, one job at a time)."""
    out = tmp_path_factory.mktemp("cuda_shim")
    return {ladder: _shim_compile(CUDA_DEV / ladder / "shim_test.cpp", out / f"{ladder}_shim")
            for ladder in CUDA_LADDERS}


def _shim_run(exe, args, env=None, timeout=300):
    r = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    return r.returncode, r.stdout + r.stderr


@cuda_shim
@pytest.mark.parametrize("header", CUDA_HEADERS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cuda_step_through_the_shim(cuda_shim_drivers, header):
    """Every step's kernel, through the shim, against the CPU reference on awkward sizes."""
    if header.stem in CUDA_NVCC_ONLY:
        pytest.skip(CUDA_NVCC_ONLY[header.stem])
    rc, out = _shim_run(cuda_shim_drivers[header.parent.name], [header.stem[:2]])
    assert rc == 0, out
    lines = out.strip().splitlines()
    assert lines and all(ln.startswith(("OK ", "skip ")) for ln in lines), out
    ok = [ln for ln in lines if ln.startswith("OK ") and header.stem in ln]
    assert len(ok) >= 4, f"{header.stem}: too few checked sizes:\n{out}"


@cuda_shim
def test_cuda_step_headers_say_what_changed_and_their_sizes():
    """The worklog's rule: each step says what changed from the previous one and why it is
    faster, and which sizes it supports."""
    for h in CUDA_HEADERS:
        text = h.read_text()
        assert "Sizes:" in text, f"{h.name} does not state its size constraints"
        if not h.stem.startswith("01"):
            assert "What changed from step" in text, f"{h.name}: what changed from the step before?"
        assert "NNL_LAUNCH" in text and '#include "cuda_compat.h"' in text or \
            h.stem == "04_flash_backward", h.name
    assert "LOWER PRECISION" in (CUDA_DEV / "sgemm" / "07_tf32_wmma.cuh").read_text()


@cuda_shim
def test_cuda_shim_check_catches_a_wrong_answer(tmp_path):
    """A step with one bug must print NOT OK and make the driver exit 1."""
    for ladder, step, good, bad in [
            ("sgemm", "04_blocktile_2d", "for (int dot = 0; dot < BK; dot++)",
             "for (int dot = 1; dot < BK; dot++)"),
            ("attention", "04_flash_backward", "const float ds = p * (dp - Ds[r]);",
             "const float ds = p * dp;")]:
        copy = tmp_path / ladder
        shutil.copytree(CUDA_DEV / ladder, copy)
        src = copy / f"{step}.cuh"
        text = src.read_text()
        assert good in text, f"{step}.cuh no longer has {good!r}: update this test"
        src.write_text(text.replace(good, bad))
        exe = _shim_compile(copy / "shim_test.cpp", tmp_path / f"{ladder}_broken")
        rc, out = _shim_run(exe, ["--quick", step[:2]] if ladder == "attention" else [step[:2]])
        assert rc == 1 and "NOT OK" in out, out


@cuda_shim
@pytest.mark.parametrize("ladder", CUDA_LADDERS)
def test_cuda_shim_steps_under_thread_sanitizer(tmp_path, ladder):
    """Every shim step under ThreadSanitizer (--quick sizes): no data race, every check OK."""
    if not _tsan_available(tmp_path):
        pytest.skip(f"{CXX} cannot link -fsanitize=thread (no libtsan)")
    exe = _shim_compile(CUDA_DEV / ladder / "shim_test.cpp", tmp_path / f"{ladder}_tsan", tsan=True)
    rc, out = _shim_run(exe, ["--quick"], env=_tsan_env(), timeout=600)
    assert rc == 0 and "ThreadSanitizer" not in out, out[-6000:]
    assert out.count("OK ") >= 4 and "NOT OK" not in out, out


@cuda_shim
def test_cuda_shim_thread_sanitizer_catches_a_missing_barrier(tmp_path):
    """The TSan run means something: the flash forward without the barrier that completes a
    key/value tile before it is read is a reported race (exit 66)."""
    if not _tsan_available(tmp_path):
        pytest.skip(f"{CXX} cannot link -fsanitize=thread (no libtsan)")
    copy = tmp_path / "attention"
    shutil.copytree(CUDA_DEV / "attention", copy)
    src = copy / "03_flash_forward.cuh"
    good = "__syncthreads();                       // the tile is complete"
    text = src.read_text()
    assert good in text, "03_flash_forward.cuh changed: update this test"
    src.write_text(text.replace(good, "// (barrier removed)"))
    exe = _shim_compile(copy / "shim_test.cpp", tmp_path / "attention_race", tsan=True)
    rc, out = _shim_run(exe, ["--quick", "03"], env=_tsan_env())
    assert rc == 66 and "data race" in out, out[-4000:]


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (the CUDA toolkit is not installed)")
@pytest.mark.parametrize("main", CUDA_MAINS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cuda_step_compiles_with_nvcc(tmp_path, main):
    cmd = [NVCC, "-c", "-std=c++17", "-arch=sm_80", "-O1", f"-I{DEV.parent / 'csrc' / 'cuda'}",
           "-o", str(tmp_path / f"{main.stem}.o"), str(main)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (the CUDA toolkit is not installed)")
def test_cuda_step_without_a_gpu_says_no_gpu(tmp_path):
    """A linked step's main: on a machine without a GPU it prints "no GPU: <why>" and exits 77;
    with one, its small check passes."""
    main = CUDA_DEV / "sgemm" / "01_naive.cu"
    exe = tmp_path / "01_naive"
    cmd = [NVCC, "-std=c++17", "-arch=sm_80", "-O1", f"-I{DEV.parent / 'csrc' / 'cuda'}",
           "-o", str(exe), str(main)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}"
    rc, out = _shim_run(exe, ["--check", "7", "33", "65"])
    if rc == NO_GPU_EXIT:
        assert re.match(r"^01_naive: no GPU: \S", out), out
    else:
        assert rc == 0 and "\nOK " in "\n" + out, out
    rc, out = _shim_run(exe, ["0", "1", "1"])
    assert rc == 2 and "usage" in out, out
