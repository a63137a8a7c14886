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
