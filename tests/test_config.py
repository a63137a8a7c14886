"""Build configuration and the backend/SIMD switches: show_config, python -m nnlite,
NNLITE_BACKEND=numpy, NNLITE_SIMD, and a clear warning when the kernels were never built."""
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import _child as child
import nnlite as nl

PKG = Path(nl.__file__).resolve().parent
# subprocesses import the same nnlite as this process (installed, or a built checkout)
ENV = child.env()


def run(code, tmp_path, **env):
    """Run python code in a fresh interpreter (env switches are read at import), cwd tmp_path."""
    full_env = {**ENV, **env}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_show_config_lists_every_kernel():
    buf = io.StringIO()
    nl.show_config(file=buf)
    text = buf.getvalue()
    assert f"nnlite {nl.__version__}" in text
    assert f"SIMD path  : {nl.ops.simd_path()}" in text
    for op in nl.ops.OPS:
        assert op in text
    if nl.ops.BACKEND == "native":
        assert set(nl.ops.compiled_kernels().values()) == {"compiled"}


def test_python_m_nnlite(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nnlite"], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "nnlite" in r.stdout and "gemm" in r.stdout and "thread" in r.stdout


def test_numpy_backend_gives_the_same_training(tmp_path):
    code = """
import numpy as np, nnlite as nl
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 5)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
nl.random.seed(0)
m = nl.Sequential([nl.Linear(5, 8), nl.Tanh(), nl.Linear(8, 2)])
m.compile(optimizer="adam", loss="cross_entropy")
h = m.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=0)
print(nl.ops.BACKEND, set(nl.ops.compiled_kernels().values()), repr(h.history["loss"]))
"""
    native = run(code, tmp_path, NNLITE_BACKEND="native")
    twins = run(code, tmp_path, NNLITE_BACKEND="numpy")
    assert native.returncode == 0 and twins.returncode == 0, native.stderr + twins.stderr
    assert twins.stdout.startswith("numpy {'numpy twin'}")
    loss_native = eval(native.stdout.split("} ", 1)[1])
    loss_twins = eval(twins.stdout.split("} ", 1)[1])
    np.testing.assert_allclose(loss_native, loss_twins, rtol=1e-4)


@pytest.mark.parametrize("path", nl.ops.simd_paths())
def test_nnlite_simd_env_forces_a_path(tmp_path, path):
    r = run("import nnlite as nl; print(nl.ops.simd_path())", tmp_path, NNLITE_SIMD=path)
    assert r.stdout.strip() == path, r.stderr


def test_unknown_simd_name_warns(tmp_path):
    r = run("import nnlite as nl; print(nl.ops.simd_path())", tmp_path, NNLITE_SIMD="sse9")
    assert "NNLITE_SIMD='sse9'" in r.stderr
    assert r.stdout.strip() == nl.ops.simd_paths()[-1]      # the best path instead
    with pytest.raises(ValueError, match="unknown SIMD path"):
        nl.ops.set_simd_path("sse9")


def test_unbuilt_source_tree_warns_and_still_works(tmp_path):
    """A checkout imported without building: the numpy twins run, and a warning says why."""
    shutil.copytree(PKG, tmp_path / "nnlite",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.gz", "*.npz", "__pycache__"))
    r = run("import nnlite as nl, numpy as np; print(nl.ops.gemm(np.eye(2), np.ones((2, 2))).sum())",
            tmp_path, NNLITE_BACKEND="native")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4.0"
    assert "compiled kernels are unavailable" in r.stderr and "pip install ." in r.stderr
    # which nnlite, from where, and why: not Python's "partially initialized module" message
    assert f"imported: nnlite {nl.__version__} from {tmp_path / 'nnlite'}" in r.stderr
    assert "not built: no compiled module _gemm" in r.stderr and "circular" not in r.stderr
    assert 'pip install "setuptools>=77" pybind11 Cython numpy' in r.stderr


def test_python_m_nnlite_reports_cuda_or_why_not(tmp_path):
    """The CUDA section: the build, the driver and the devices, or why there are none."""
    from nnlite.ops import cuda_device
    r = subprocess.run([sys.executable, "-m", "nnlite"], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "  CUDA       : " in out
    info = cuda_device.info()
    if info["build"] is None:
        # no CUDA module: the build's own reason (no toolkit, NNLITE_NO_CUDA, ...)
        assert "  CUDA       : no (" in out
    else:
        assert f"built by nvcc for {info['archs']}" in out
        assert "    cupy     : " in out
        if not info["devices"]:
            assert "no GPU: " in out and "    devices  : none" in out
        else:
            assert "    device 0 : " in out


def _cuda_text(monkeypatch, info, build_info=None):
    from nnlite import config
    from nnlite.ops import cuda_device
    monkeypatch.setattr(cuda_device, "info", lambda: dict(info))
    monkeypatch.setattr(config, "_build_info", lambda: build_info)
    buf = io.StringIO()
    nl.show_config(file=buf)
    return buf.getvalue()


def test_show_config_cuda_section_says_why(monkeypatch):
    none = {"build": None, "archs": None, "runtime": None, "driver": None, "devices": [],
            "cupy": None, "why": "nnlite was built without CUDA kernels (...)"}
    text = _cuda_text(monkeypatch, none, {"cuda": {"built": False,
                                                   "why": "switched off by NNLITE_NO_CUDA"}})
    assert "  CUDA       : no (not built: switched off by NNLITE_NO_CUDA)" in text
    text = _cuda_text(monkeypatch, none, None)          # no build record: the module's reason
    assert "  CUDA       : no (nnlite was built without CUDA kernels (...))" in text

    no_driver = {"build": "nvcc", "archs": "sm_80 sm_90 compute_90", "runtime": "13.0",
                 "driver": None, "devices": [], "cupy": "14.2.0",
                 "why": "no GPU: cudaGetDeviceCount: CUDA driver version is insufficient"}
    text = _cuda_text(monkeypatch, no_driver)
    assert "  CUDA       : built by nvcc for sm_80 sm_90 compute_90, runtime 13.0" in text
    assert "    driver   : none (no GPU: cudaGetDeviceCount: CUDA driver version is insufficient)" in text
    assert "    devices  : none\n" in text and "    cupy     : 14.2.0" in text

    gpu = dict(no_driver, driver="13.0", why=None, devices=[{
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0),
        "total_memory": 80 * 2**30, "multiprocessors": 132, "max_shared_per_block": 232448}])
    text = _cuda_text(monkeypatch, gpu)
    assert "    driver   : CUDA 13.0" in text
    assert "    device 0 : NVIDIA H100 80GB HBM3, compute capability 9.0, 80.0 GiB, 132 SMs" in text
    assert "devices  : none" not in text
