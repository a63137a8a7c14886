"""``nl.show_config()`` / ``python -m nnlite``: what this build of nnlite can do."""
import json
import os
import platform
import sys

import numpy as np


def _build_info():
    """How the compiled modules were built (setup.py writes it beside them), or None."""
    try:
        with open(os.path.join(os.path.dirname(__file__), "ops", "_build_info.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def config():
    """A dict describing the build: version, kernels compiled, SIMD path, threads."""
    from . import __version__, _origin, ops
    return {
        "version": __version__,
        "origin": _origin.describe(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "backend": ops.BACKEND,
        "simd_path": ops.simd_path(),
        "simd_paths": ops.simd_paths(),
        "openmp": ops.has_openmp(),
        "build": _build_info(),
        "threads": ops.num_threads(),
        "openmp_wait": ops._openmp_wait.describe() if ops.has_openmp() else None,
        "kernels": ops.compiled_kernels(),
        "cuda": _cuda_info(),
    }


def _cuda_info():
    """nnlite.ops.cuda_device.info(), with the build's reason when there is no CUDA module."""
    from .ops import cuda_device
    info = cuda_device.info()
    cuda_build = (_build_info() or {}).get("cuda") or {}
    if info["build"] is None and cuda_build.get("why"):
        info["why"] = f"not built: {cuda_build['why']}"
    return info


def _cuda_lines(cuda):
    """The CUDA section of show_config: the build, the driver, the devices, or why not."""
    if cuda["build"] is None:
        return [f"  CUDA       : no ({cuda['why']})"]
    lines = [f"  CUDA       : built by {cuda['build']} for {cuda['archs']}, runtime "
             f"{cuda['runtime'] or '-'} (linked in)"]
    if cuda["driver"]:
        lines.append(f"    driver   : CUDA {cuda['driver']}")
    else:
        lines.append(f"    driver   : none ({cuda['why']})")
    for d in cuda["devices"]:
        cc = ".".join(map(str, d["compute_capability"]))
        lines.append(f"    device {d['index']} : {d['name']}, compute capability {cc}, "
                     f"{d['total_memory'] / 2**30:.1f} GiB, {d['multiprocessors']} SMs")
    if not cuda["devices"]:
        lines.append("    devices  : none" + (f" ({cuda['why']})" if cuda["driver"] else ""))
    lines.append(f"    cupy     : {cuda['cupy']}")
    return lines


def show_config(file=None):
    """Print the version, which kernels are compiled, the chosen ISA path and thread count."""
    c = config()
    out = file or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"nnlite {c['version']}  (python {c['python']}, numpy {c['numpy']}, {c['machine']})")
    p(f"  imported   : {c['origin'].split(' from ', 1)[1]}")
    p(f"  backend    : {c['backend']}  (NNLITE_BACKEND=numpy runs everything on the numpy twins)")
    p(f"  SIMD path  : {c['simd_path']}  (this CPU can run: {', '.join(c['simd_paths']) or '-'};"
      f" NNLITE_SIMD forces one)")
    build = c["build"] or {}
    why = f" ({build['openmp_why']})" if not c["openmp"] and build.get("openmp_why") else ""
    p(f"  OpenMP     : {'yes' if c['openmp'] else 'no'}{why}, {c['threads']} thread(s)"
      f"  (OMP_NUM_THREADS or nl.ops.set_num_threads)")
    if c["openmp_wait"]:
        p(f"  idle wait  : {c['openmp_wait']}")
    if build.get("sanitize"):
        p(f"  sanitizers : {','.join(build['sanitize'])}  (run Python with their runtimes "
          f"preloaded: README, 'Sanitizer builds')")
    for line in _cuda_lines(c["cuda"]):
        p(line)
    p("  kernels    :")
    for op, status in c["kernels"].items():
        mark = "✓" if status == "compiled" else "✗"
        p(f"    {mark} {op:<22} {status}")
    if c["backend"] == "native" and set(c["kernels"].values()) != {"compiled"}:
        from . import _origin
        for line in _origin.advice()[1:]:
            p(f"  {line}")
