"""The optional CUDA part of nnlite's build (setup.py imports it): where the toolkit is, which
GPU architectures to compile for, and the nvcc command for csrc/cuda/*.cu.

    nnlite.ops._cuda   csrc/cuda/*.cu (nvcc)  +  csrc/bindings/bind_cuda*.cpp (the C++ compiler)
                       linked with the CUDA runtime *statically* (libcudart_static.a, no -lcuda):
                       the module imports on a machine without a driver, and its device queries
                       raise RuntimeError("no GPU: <CUDA's reason>") there.

Every ``.cu`` under csrc/cuda/ and every ``bind_cuda*.cpp`` under csrc/bindings/ is built (a glob,
as tests/_cuda_shim.py does): a new kernel family needs no edit here.

Switches (environment variables):
    NNLITE_NO_CUDA=1        no CUDA module, even with a toolkit
    NNLITE_CUDA_ARCHS       the GPU architectures: "80;90", "8.0 9.0+PTX", "sm_80,sm_90a", ...
                            (separated by ; , or spaces; "+PTX" adds that architecture's PTX, which
                            the driver compiles for GPUs newer than any listed). Default
                            "80;90+PTX": sm_80 (A100), sm_90 (H100) and compute_90 PTX. CUDA 13
                            compiles for sm_75 and newer only: older ones are refused.
    NNLITE_NVCC_FLAGS       extra nvcc flags, placed after nnlite's own (so they win)
    CUDA_HOME, CUDA_PATH    the toolkit (else found from `nvcc --dryrun`, nvcc being on PATH)
Without a toolkit (or with NNLITE_NO_CUDA=1, or under NNLITE_SANITIZE) the build, the wheel and
the package are the CPU-only ones, and the build summary says why (✗ CUDA (...)).
"""
import os
import re
import shlex
import shutil
import subprocess

DEFAULT_ARCHS = "80;90+PTX"
MIN_ARCH = 75                   # CUDA 13 dropped everything older than Turing (sm_75)
NVCC_STD = "c++17"
# nvcc's own flags (the architectures and defines are added by nvcc_command)
NVCC_FLAGS = ["-O3", f"-std={NVCC_STD}", "-lineinfo", "--expt-relaxed-constexpr",
              "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden",
              "-Xcompiler", "-fno-math-errno"]
# the static runtime needs these from the system on the link line (no -lcuda: libcuda.so is
# opened by the runtime itself, when there is a driver)
STATIC_RUNTIME_LIBS = ["-lpthread", "-ldl", "-lrt"]


def truthy(name, environ=None):
    env = os.environ if environ is None else environ
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# ------------------------------------------------------------------------------- architectures

_ARCH = re.compile(r"^(?:sm_|compute_)?(\d+)(?:\.(\d))?([af]?)(\+ptx)?$", re.IGNORECASE)


def parse_archs(text=None):
    """NNLITE_CUDA_ARCHS -> ``[(arch, ptx)]``, e.g. ``"80;90+PTX"`` -> ``[("80", False),
    ("90", True)]``. Raises ValueError naming the bad entry."""
    text = DEFAULT_ARCHS if text is None or not text.strip() else text
    out = []
    for item in re.split(r"[;,\s]+", text.strip()):
        if not item:
            continue
        m = _ARCH.match(item)
        if not m:
            raise ValueError(f"NNLITE_CUDA_ARCHS={text!r}: {item!r} is not an architecture "
                             f"(write e.g. \"80;90+PTX\", \"8.0 9.0\" or \"sm_80,sm_90a\")")
        major_minor, dot, suffix, ptx = m.groups()
        num = int(major_minor + (dot or "")) if dot is not None else int(major_minor)
        if dot is None and len(major_minor) == 1:       # "9" is not an architecture
            raise ValueError(f"NNLITE_CUDA_ARCHS={text!r}: {item!r} is not an architecture "
                             f"(two digits, e.g. 80 or 8.0)")
        if num < MIN_ARCH:
            raise ValueError(f"NNLITE_CUDA_ARCHS={text!r}: sm_{num} is older than sm_{MIN_ARCH}, "
                             f"the oldest architecture CUDA 13 compiles for (Turing)")
        arch = f"{num}{suffix.lower()}"
        if arch not in [a for a, _ in out]:
            out.append((arch, bool(ptx)))
        elif ptx:
            out = [(a, p or a == arch) for a, p in out]
    if not out:
        raise ValueError(f"NNLITE_CUDA_ARCHS={text!r}: no architecture given")
    return out


def gencode_flags(archs):
    """``[(arch, ptx)]`` -> nvcc's -gencode flags: machine code for each, PTX where asked."""
    flags = []
    for arch, ptx in archs:
        base = arch.rstrip("af")
        # PTX is the portable one: compute_90 (not compute_90a, which runs on sm_90 only)
        flags.append(f"-gencode=arch=compute_{arch},code=sm_{arch}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{base},code=compute_{base}")
    return flags


def arch_names(archs):
    """``[(arch, ptx)]`` -> ``["sm_80", "sm_90", "compute_90"]`` (what the module reports)."""
    names = []
    for arch, ptx in archs:
        names.append(f"sm_{arch}")
        if ptx:
            names.append(f"compute_{arch.rstrip('af')}")
    return names


# ------------------------------------------------------------------------------------- toolkit

def _dryrun_top(nvcc, run=subprocess.run):
    """The toolkit's root from `nvcc --dryrun` (its `#$ TOP=...` line): nvcc may be a wrapper
    script (/usr/local/bin/nvcc -> exec /usr/local/cuda-13.0/bin/nvcc), so its own folder says
    nothing."""
    try:
        r = run([nvcc, "--dryrun", "-E", "-x", "cu", os.devnull], capture_output=True, text=True,
                timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (r.stdout + r.stderr).splitlines():
        m = re.match(r"^#\$ TOP=(.+?)\s*$", line)
        if m:
            return os.path.normpath(m.group(1))
    return None


def find_toolkit(environ=None, which=shutil.which, run=subprocess.run):
    """``(root, why)``: the CUDA toolkit's root folder, or None and why there is none.

    CUDA_HOME, then CUDA_PATH (each must hold bin/nvcc), then the `nvcc` on PATH, whose real
    root `nvcc --dryrun` tells."""
    env = os.environ if environ is None else environ
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = env.get(var, "").strip()
        if root:
            if os.path.isfile(os.path.join(root, "bin", "nvcc")):
                return os.path.normpath(root), ""
            return None, f"{var}={root} holds no bin/nvcc"
    nvcc = which("nvcc")
    if not nvcc:
        return None, "no CUDA toolkit found (no nvcc on PATH; CUDA_HOME unset)"
    top = _dryrun_top(nvcc, run=run)
    if top is None:
        return None, f"`{nvcc} --dryrun` did not say where its toolkit is (no '#$ TOP=' line)"
    return top, ""


def _first(root, *candidates):
    for rel in candidates:
        path = os.path.join(root, rel)
        if os.path.exists(path):
            return path
    return None


def toolkit_files(root):
    """``(files, why)``: nvcc, the include folder and libcudart_static.a of the toolkit at
    ``root``, or None and what is missing."""
    files = {
        "nvcc": _first(root, "bin/nvcc"),
        "include": _first(root, "include/cuda_runtime.h", "targets/x86_64-linux/include/cuda_runtime.h",
                          "targets/sbsa-linux/include/cuda_runtime.h"),
        "cudart_static": _first(root, "lib64/libcudart_static.a", "lib/libcudart_static.a",
                                "targets/x86_64-linux/lib/libcudart_static.a",
                                "targets/sbsa-linux/lib/libcudart_static.a"),
    }
    missing = [k for k, v in files.items() if v is None]
    if missing:
        names = {"nvcc": "bin/nvcc", "include": "cuda_runtime.h",
                 "cudart_static": "libcudart_static.a"}
        return None, f"the toolkit at {root} lacks {', '.join(names[k] for k in missing)}"
    files["include"] = os.path.dirname(files["include"])
    return files, ""


def nvcc_version(nvcc, run=subprocess.run):
    """'13.0' from `nvcc --version`, or None."""
    try:
        r = run([nvcc, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+\.\d+)", r.stdout)
    return m.group(1) if m else None


# --------------------------------------------------------------------------------- the config

def configure(environ=None, sanitize=(), wanted=True, which=shutil.which, run=subprocess.run):
    """What the CUDA part of the build is: a dict with ``enabled`` and ``why`` (when not), and,
    when enabled, the toolkit's files, its version, the architectures and the nvcc flags."""
    env = os.environ if environ is None else environ
    off = lambda why: {"enabled": False, "why": why}  # noqa: E731
    if truthy("NNLITE_NO_CUDA", env):
        return off("switched off by NNLITE_NO_CUDA")
    if not wanted:
        return off("not in NNLITE_BUILD_ONLY")
    if sanitize:
        return off("left out of sanitizer builds (NNLITE_SANITIZE)")
    try:
        archs = parse_archs(env.get("NNLITE_CUDA_ARCHS"))
    except ValueError as e:
        return dict(off(str(e)), warn=True)       # asked for, and wrong: say so loudly
    root, why = find_toolkit(env, which=which, run=run)
    if root is None:
        # no toolkit at all is the CPU-only build, not a problem; a wrong CUDA_HOME is one
        return dict(off(why), warn=not why.startswith("no CUDA toolkit"))
    files, why = toolkit_files(root)
    if files is None:
        return dict(off(why), warn=True)
    version = nvcc_version(files["nvcc"], run=run)
    names = arch_names(archs)
    flags = NVCC_FLAGS + gencode_flags(archs) + [
        f"-DNNLITE_CUDA_ARCHS=\"{' '.join(names)}\""] + shlex.split(env.get("NNLITE_NVCC_FLAGS", ""))
    return {"enabled": True, "why": "", "toolkit": root, "version": version,
            "archs": names, "nvcc": files["nvcc"], "include": files["include"],
            "cudart_static": files["cudart_static"], "nvcc_flags": flags,
            "link_libs": [files["cudart_static"]] + STATIC_RUNTIME_LIBS}


def summary(cfg):
    """The build summary's line: ✓ CUDA (...) or ✗ CUDA (why)."""
    if not cfg["enabled"]:
        return f"  ✗ CUDA ({cfg['why']})"
    return (f"  ✓ CUDA (nvcc {cfg['version'] or '?'} at {cfg['toolkit']}; {' '.join(cfg['archs'])};"
            f" runtime linked statically: nnlite.ops._cuda)")


def nvcc_command(cfg, src, obj, include_dirs=()):
    """The nvcc command compiling one .cu into an object of the extension."""
    return [cfg["nvcc"], *cfg["nvcc_flags"], *[f"-I{d}" for d in include_dirs], "-c", src, "-o", obj]
