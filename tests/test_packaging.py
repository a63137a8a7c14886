"""What a new user meets: the sdist holds everything needed to build and test (MANIFEST.in),
the licence, the wheel ships no sources, an unbuilt checkout cannot be tested or benchmarked by
accident (it says which nnlite was imported, from where, and how to build), and the examples'
install hints name this project, not PyPI's unrelated "nnlite"."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nnlite as nl
from _scripts import REPO, load_script
from nnlite import _origin

PKG = Path(nl.__file__).resolve().parent
# files of the repository that are not for users: they stay out of the sdist
NOT_SHIPPED = re.compile(r"^(\.ci/|\.gitignore$|\.gitattributes$|\.github/)")


def _tracked_files():
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        return None
    r = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, timeout=60)
    return r.stdout.split() if r.returncode == 0 else None


def _manifest_files():
    """The files MANIFEST.in selects, as setuptools' sdist reads it."""
    try:
        from setuptools._distutils.filelist import FileList
    except ImportError:
        FileList = pytest.importorskip("distutils.filelist").FileList
    files = FileList()
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        files.findall()
        for line in (REPO / "MANIFEST.in").read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                files.process_template_line(line)
    finally:
        os.chdir(cwd)
    return {f.replace(os.sep, "/") for f in files.files}


def test_license_file_is_the_mit_licence_pyproject_names():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the nnlite authors" in text
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject


def test_manifest_ships_every_tracked_file_and_no_generated_one():
    tracked = _tracked_files()
    if tracked is None:
        pytest.skip("not a git checkout (an unpacked sdist: CI checks the sdist itself)")
    shipped = _manifest_files()
    missing = [f for f in tracked if not NOT_SHIPPED.match(f) and f not in shipped]
    assert not missing, f"MANIFEST.in leaves these out of the sdist: {missing}"
    for must in ("nnlite/ops/_optim_kernels.pyx", "tests/conftest.py", "tests/_kernels.py",
                 "tests/_offline.py", "LICENSE", "csrc/cpu/gemm.inc"):
        assert must in shipped
    # the CUDA sources, whether or not the machine building the sdist has a toolkit
    cuda = [f for f in tracked if f.startswith(("csrc/cuda/", "dev/cuda/"))]
    assert any(f.endswith(".cu") for f in cuda) and "csrc/cuda/shim/cuda_shim.h" in cuda
    for must in cuda + ["_build_cuda.py", "csrc/bindings/bind_cuda.cpp"]:
        assert must in shipped
    generated = [f for f in shipped
                 if f.endswith((".so", ".o", ".pyc", "_build_info.json"))
                 or re.match(r"nnlite/.*\.(c|cpp)$", f)]
    assert not generated, generated


def test_an_installed_nnlite_ships_no_sources():
    if _origin.checkout() is not None:
        pytest.skip("testing a source checkout, not an installed copy")
    sources = [p.name for p in PKG.rglob("*")
               if p.suffix in (".c", ".cpp", ".pyx", ".h", ".cu", ".cuh")]
    assert not sources, f"the installed package holds sources: {sources}"


# ------------------------------------------------------------ an unbuilt checkout, by accident

def _unbuilt_checkout(tmp_path):
    """A copy of the checkout with nnlite's kernels not built (what a fresh clone is)."""
    tree = tmp_path / "clone"
    shutil.copytree(PKG, tree / "nnlite", ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "__pycache__"))
    (tree / "setup.py").write_text("")           # what makes it look like a checkout
    (tree / "csrc").mkdir()
    return tree


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NNLITE_ALLOW_TWINS", "NNLITE_BACKEND", "NNLITE_TEST_INSTALLED",
                        "PYTHONPATH")}
    env.update(extra)
    return env


def _installed_elsewhere():
    """The installed nnlite this session imports, if it is one (CI: the sdist's install)."""
    return PKG if _origin.checkout() is None else None


def test_tests_refuse_to_run_on_an_unbuilt_checkout(tmp_path):
    """`python -m pytest` in a clone imports the clone's unbuilt nnlite (the current directory
    comes first on sys.path), even after `pip install .`: it used to give 23 failures of
    tests run on the numpy twins. Now the session stops at once and says why."""
    tree = _unbuilt_checkout(tmp_path)
    (tree / "tests").mkdir()
    for helper in ("conftest.py", "_offline.py"):          # (conftest imports _offline)
        shutil.copy(REPO / "tests" / helper, tree / "tests" / helper)
    (tree / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    r = subprocess.run(cmd, cwd=tree, env=_env(), capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 4, out                                   # a usage error, no test ran
    assert "ops have no compiled kernel, so these tests would test the numpy twins" in out
    assert f"imported: nnlite {nl.__version__} from {tree / 'nnlite'}" in out
    assert "not built: no compiled module" in out and "circular import" not in out
    assert "pip install -e ." in out and "NNLITE_ALLOW_TWINS=1" in out
    if _installed_elsewhere():
        assert f"not imported: nnlite {nl.__version__} installed at {PKG}" in out
        assert "`pytest`, not `python -m pytest`" in out

    r = subprocess.run(cmd, cwd=tree, env=_env(NNLITE_ALLOW_TWINS="1"), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr

    # CI tests the installed package from an unpacked sdist: the tree's own must not be used
    r = subprocess.run(cmd, cwd=tree, env=_env(NNLITE_ALLOW_TWINS="1", NNLITE_TEST_INSTALLED="1"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and "NNLITE_TEST_INSTALLED=1, but" in r.stdout + r.stderr


BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if p.name != "_common.py")


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmarks_refuse_to_time_the_numpy_twins(tmp_path, script):
    """The benchmarks put the checkout first on sys.path: after `pip install .` they used to
    time the unbuilt checkout's numpy twins as "nnlite", silently."""
    tree = _unbuilt_checkout(tmp_path)
    shutil.copytree(REPO / "benchmarks", tree / "benchmarks")
    r = subprocess.run([sys.executable, f"benchmarks/{script}"], cwd=tree,
                       env=_env(PYTHONPATH=str(tree)), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refusing to benchmark the numpy twins as nnlite" in r.stderr
    assert f"imported: nnlite {nl.__version__} from {tree / 'nnlite'}" in r.stderr
    assert "--allow-twins" in r.stderr


def test_benchmark_runs_on_the_twins_when_told(tmp_path):
    tree = _unbuilt_checkout(tmp_path)
    shutil.copytree(REPO / "benchmarks", tree / "benchmarks")
    r = subprocess.run([sys.executable, "benchmarks/bench_gemm.py", "--sizes", "8", "--no-mlp",
                        "--no-gpt", "--repeat", "1", "--no-torch", "--allow-twins"], cwd=tree,
                       env=_env(PYTHONPATH=str(tree)), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "their numpy twins are timed as 'nnlite'" in r.stderr


# ------------------------------------------------------------------------- install hints

def test_install_hints_name_this_checkout_not_pypi():
    """`pip install 'nnlite[examples]'` would install PyPI's unrelated "nnlite"."""
    bad = re.compile(r"pip install ['\"]?nnlite\[")
    offenders = [str(p.relative_to(REPO)) for d in ("examples", "benchmarks", "nnlite", "scripts")
                 for p in (REPO / d).rglob("*.py") if bad.search(p.read_text())]
    offenders += ["README.md"] if bad.search((REPO / "README.md").read_text()) else []
    assert not offenders


def test_readme_lists_every_extra():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    readme = (REPO / "README.md").read_text()
    for name in extras:
        assert f'".[{name}]"' in readme, f"README does not mention the {name!r} extra"


def test_wine_without_scikit_learn_says_how_to_get_it(monkeypatch):
    wine = load_script("examples/wine.py")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(SystemExit) as e:
        wine.load_wine_split()
    assert 'pip install ".[examples]"' in str(e.value) and "scikit-learn" in str(e.value)


def test_regression_plot_without_matplotlib_says_how_to_get_it(monkeypatch, capsys, tmp_path):
    regression = load_script("examples/regression.py")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    regression.main(["--plot", str(tmp_path / "fit.png"), "--epochs", "1"])
    out = capsys.readouterr().out
    assert 'pip install ".[examples]"' in out and "matplotlib" in out
    assert not (tmp_path / "fit.png").exists()


def test_child_interpreters_import_the_nnlite_under_test(tmp_path):
    """Tests that start ``python -c``/``-m`` (tests/_child.py) test this nnlite, not a tree that
    happens to be their working directory: CI runs them inside an unbuilt sdist."""
    import _child as child
    decoy = tmp_path / "nnlite"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy was imported')\n")
    code = "import nnlite, sys; sys.stdout.write(nnlite.__file__)"
    out = child.python("-c", code, check=True).stdout
    assert Path(out).resolve() == Path(nl.__file__).resolve()
    # a decoy first on the child's path by way of its cwd is what the env must not beat...
    assert "decoy" in child.python("-c", code, cwd=tmp_path).stderr
    # ...so children run in HOME unless a test says otherwise, and HOME holds this nnlite
    assert (child.HOME / "nnlite" / "__init__.py").resolve() == Path(nl.__file__).resolve()


def test_wheel_excludes_the_cuda_sources():
    """The wheel carries the compiled _cuda module (where built), never .cu/.cuh/.h: the package
    data exclusions name them (the installed-package test above checks the result in CI)."""
    tomllib = pytest.importorskip("tomllib")
    excluded = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "exclude-package-data"]["*"]
    assert {"*.cu", "*.cuh", "*.h", "*.cpp"} <= set(excluded)
