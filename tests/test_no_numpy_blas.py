"""No training step calls numpy's BLAS between nnlite's kernels.

numpy's matrix products run on OpenBLAS, whose worker threads keep spinning for tens of
milliseconds after each call; nnlite's next kernel then finds its second core taken (measured:
38-200 GFLOP/s instead of ~290 for ~50 ms after numpy matmuls). So every product in the library
goes through ``nnlite.ops`` (gemm, attention, ...). Only the numpy twins (ops/reference.py, the
definitions the kernels are tested against) may use numpy's products. This scans the source:
``a @ b``, ``np.dot``/``matmul``/``einsum``/``tensordot``/``inner``/``outer``/``vdot`` and
``np.linalg`` calls.
"""
import ast
from pathlib import Path

import nnlite

PKG = Path(nnlite.__file__).resolve().parent
ALLOWED = {PKG / "ops" / "reference.py"}
PRODUCTS = {"dot", "matmul", "einsum", "tensordot", "inner", "outer", "vdot", "linalg"}
ARRAY_MODULES = {"np", "numpy", "xp", "cp", "cupy"}   # the names nnlite imports them as


def blas_calls(tree):
    """Sorted (line, text) of each matrix product in a module's syntax tree: ``@``, ``@=``,
    ``np.<product>`` (any of the array-module names) and the ``.dot`` method."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.MatMult):
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Attribute) and (
                node.attr == "dot" or (node.attr in PRODUCTS and isinstance(node.value, ast.Name)
                                       and node.value.id in ARRAY_MODULES)):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_the_scan_finds_products():
    code = ("y = x @ w\nz = np.dot(x, w)\nq = xp.linalg.norm(x)\nx @= w\nu = a.dot(b)\n"
            "ok = x * w\nfine = self.inner(x)\n")
    assert [line for line, _ in blas_calls(ast.parse(code))] == [1, 2, 3, 4, 5]


def test_no_numpy_matrix_products_outside_the_twins():
    found = [f"{path.relative_to(PKG.parent)}:{line}: {text}"
             for path in sorted(PKG.rglob("*.py")) if path not in ALLOWED
             for line, text in blas_calls(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, ("matrix products on numpy's BLAS outside nnlite/ops/reference.py (use "
                       "nnlite.ops.gemm and friends):\n  " + "\n  ".join(found))
