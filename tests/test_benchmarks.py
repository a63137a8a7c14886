"""The benchmarks' shared timing and table (benchmarks/_common.py), and every script's --quick
run: each library timed in its own block after a pause, never call by call; median, IQR and
best in every table, GFLOP/s and % of the measured peak where the work is FLOPs. No timed
assertions: the statistics are checked on known samples and a fake clock."""
import itertools
import re
import shutil

import _child
import pytest
from _scripts import REPO, load_script

common = load_script("benchmarks/_common.py", "bench_common")


# ----------------------------------------------------------------------------- statistics

def test_stats_of_known_samples():
    st = common.Stats.of([9, 1, 8, 2, 7, 3, 6, 4, 5])       # order does not matter
    assert (st.median, st.q1, st.q3, st.best, st.worst, st.n) == (5, 3, 7, 1, 9, 9)
    assert st.iqr == pytest.approx((7 - 3) / 5)
    assert [common.fmt_iqr(r) for r in (0.0123, 0.8, 2.5, 12)] == ["1.2%", "80.0%", "250%",
                                                                  ">999%"]
    st = common.Stats.of([1.0, 2.0, 3.0, 4.0])
    assert (st.median, st.q1, st.q3) == (2.5, 1.75, 3.25)
    st = common.Stats.of([0.5])
    assert (st.median, st.q1, st.q3, st.best, st.worst, st.iqr) == (0.5, 0.5, 0.5, 0.5, 0.5, 0)
    assert common.Stats.from_dict(st.to_dict()).to_dict() == st.to_dict()
    with pytest.raises(ValueError, match="no samples"):
        common.Stats.of([])


class FakeClock:
    """A clock that only moves when a fake library call says so."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_time_block_warms_up_then_samples_to_count_and_budget():
    clock = FakeClock()
    calls = []

    u = 2.0 ** -10                  # every call takes u seconds (~1 ms; exact in binary)

    def fn():
        calls.append(clock.t)
        clock.t += u

    st = common.time_block(fn, budget=64 * u, min_samples=3, sample_s=16 * u, warmup_s=8 * u,
                           clock=clock)
    # warm-up: 8 calls (>= 2 and >= 8u); samples of 16 calls (16u) until 64u: 4 samples
    assert st.inner == 16 and st.n == 4 and len(calls) == 8 + 4 * 16
    assert st.median == u and st.iqr == 0
    # the count wins over a budget already spent
    st = common.time_block(fn, budget=0, min_samples=4, sample_s=0, warmup_s=0, clock=clock)
    assert st.n == 4 and st.inner == 1


def test_libraries_are_timed_in_blocks_with_a_pause_before_each():
    order = []
    libs = {name: (lambda name=name: order.append(name)) for name in ("nnlite", "numpy", "torch")}
    libs["absent"] = None
    stats = common.time_libraries(libs, pause=0.25, sleep=lambda s: order.append(("pause", s)),
                                  budget=0, min_samples=3, sample_s=0, warmup_s=0)
    assert set(stats) == {"nnlite", "numpy", "torch"}
    runs = [k for k, _ in itertools.groupby(order)]
    # each library's calls are one run, right after its own pause: never call by call
    assert runs == [("pause", 0.25), "nnlite", ("pause", 0.25), "numpy", ("pause", 0.25), "torch"]
    assert all(order.count(name) == 2 + 3 for name in ("nnlite", "numpy", "torch"))


def _result(threads, peak, rows):
    return {"meta": {"threads": threads, "peak": {"gflops": peak}, "missing": {}},
            "rows": [{"case": case, "lib": lib, "flops": flops,
                      "stats": common.Stats.of(samples).to_dict()}
                     for case, lib, flops, samples in rows]}


def test_table_columns_and_ratios_come_from_the_medians():
    rows = [("gemm", "nnlite", 2e9, [1e-3, 2e-3, 9e-3]),   # median 2 ms (1000 GF/s), iqr 4 ms
            ("gemm", "numpy", 2e9, [0.5e-3, 4e-3, 5e-3])]   # median 4 ms, best 0.5 ms
    lines = common.table([_result(1, 2000.0, rows), _result(2, 4000.0, rows)])
    assert "1 thread" in lines[0] and "2 threads" in lines[0]
    for col in ("median", "iqr", "best", "GF/s", "%peak", "xnumpy", "xtorch"):
        assert lines[1].count(col) == 2
    nn = next(ln for ln in lines if "nnlite" in ln).split("|")
    assert nn[1].split() == ["2.00ms", "200%", "1.00ms", "1000.0", "50%", "2.00", "-"]
    assert nn[2].split()[4] == "25%"                            # the 2-thread peak is 4000
    half = _result(1, 2000.0, rows[:1])
    half["rows"][0]["peak_factor"] = 0.5                        # float64: half the lanes
    assert next(ln for ln in common.table([half]) if "nnlite" in ln).split()[7] == "100%"
    np_row = next(ln for ln in lines if ln.split()[1:2] == ["numpy"]).split("|")
    assert np_row[1].split()[-2:] == ["1.00", "-"]   # its best (0.5 ms) does not count


def test_a_missing_library_is_said_in_the_table():
    res = _result(1, 100.0, [("op", "nnlite", None, [1e-6])])
    res["meta"]["missing"] = {"torch": "not installed (pip install torch==2.13.0)"}
    lines = common.table([res])
    assert "GF/s" not in lines[1]                  # no FLOP counts: no FLOP columns
    assert any(ln.split()[1:2] == ["torch"] and "not installed" in ln for ln in lines)


# ----------------------------------------------------------------------------- the scripts

FLOP_SCRIPTS = ("bench_gemm.py", "bench_attention.py", "bench_mnist_mlp.py", "bench_gpt.py")


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """A copy of benchmarks/ outside any checkout: the scripts put their checkout first on
    sys.path, and here the nnlite under test (_child's) must be the one they import."""
    d = tmp_path_factory.mktemp("bench") / "benchmarks"
    shutil.copytree(REPO / "benchmarks", d)
    return d


def _table_head(out):
    return next(ln for ln in out.splitlines() if ln.startswith("case"))


@pytest.mark.parametrize("script, extra", [
    ("bench_gemm.py", ["--threads", "1", "2"]),         # torch too, when installed
    ("bench_attention.py", ["--no-torch"]),
    ("bench_mnist_mlp.py", ["--no-torch"]),
    ("bench_gpt.py", ["--no-torch"]),
    ("bench_nn.py", ["--no-torch"]),
    ("bench_pointwise.py", ["--no-torch"]),
])
def test_script_quick_run_prints_the_table(bench_dir, script, extra):
    args = [bench_dir / script, "--quick"] + (extra if "--threads" in extra
                                              else ["--threads", "1"] + extra)
    r = _child.python(*args, cwd=bench_dir.parent, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    head = _table_head(out)
    for col in ("median", "iqr", "best", "xnumpy", "xtorch"):
        assert col in head, head
    assert ("GF/s" in head and "%peak" in head) == (script in FLOP_SCRIPTS), head
    assert "peak, 1 thread: 1 thread × " in out and "GFLOP/s" in out
    assert "each library in its own block" in out and "never call by call" in out
    rows = [ln for ln in out.splitlines() if ln.count("|") >= 1 and " nnlite " in ln]
    assert rows, out
    if "--threads" in extra:
        assert "peak, 2 threads: 2 threads × " in out
        assert head.count("median") == 2 and "1 thread" in out and "2 threads" in out
    if "--no-torch" in extra:
        assert "left out (--no-torch)" in out


# ----------------------------------------------------------------------------- the GPU scripts

def _bench_cuda():
    import sys
    sys.path.insert(0, str(REPO / "benchmarks"))   # bench_cuda imports _common by name
    try:
        return load_script("benchmarks/bench_cuda.py", "bench_cuda")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_bench_cuda_without_a_gpu_says_no_gpu(bench_dir):
    """No GPU (no driver, no device, no CuPy): one line "no GPU: <reason>", exit 77, never a
    traceback. (Run from a copy of benchmarks/ with _child's nnlite: the one under test.)"""
    bench = _bench_cuda()
    if bench.why_no_gpu() is None:
        pytest.skip("this machine has a usable GPU: bench_cuda.py would run")
    r = _child.python(bench_dir / "bench_cuda.py", "--quick", cwd=bench_dir.parent, timeout=120)
    assert r.returncode == bench.NO_GPU_EXIT == 77, r.stdout + r.stderr
    assert r.stdout.startswith("no GPU: ") and len(r.stdout.strip()) > len("no GPU: "), r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    r = _child.python(bench_dir / "bench_cuda.py", "--parts", "sgemm,nonsense",
                      cwd=bench_dir.parent, timeout=120)
    assert r.returncode == 2 and "nonsense" in r.stderr and "Traceback" not in r.stderr


def test_bench_cuda_reads_the_ladder_binaries(tmp_path):
    """A ladder binary's TIME line becomes a row's statistics; a failing, silent or missing
    binary becomes a failed or missing row."""
    bench = _bench_cuda()
    good = tmp_path / "06_good"
    good.write_text("#!/bin/sh\necho 'OK     06_good | M=8 K=8 N=8 | C max abs diff 0'\n"
                    "echo 'TIME   06_good | M=8 K=8 N=8 | best 1.5000 ms | median 2.0000 ms | "
                    "q1 1.7500 ms | q3 2.5000 ms | worst 3.0000 ms | 9 runs | 1.0 GFLOP/s'\n")
    bad = tmp_path / "06_bad"
    bad.write_text("#!/bin/sh\necho 'NOT OK 06_bad | M=8 K=8 N=8 | C max abs diff 0.3'\nexit 1\n")
    quiet = tmp_path / "06_quiet"
    quiet.write_text("#!/bin/sh\nexit 0\n")
    for f in (good, bad, quiet):
        f.chmod(0o755)
    found, why = bench.run_ladder(str(good), [8, 8, 8], 0.01)
    assert why is None and len(found) == 1
    size, st = found[0]
    assert size == "M=8 K=8 N=8"
    assert (st.median, st.q1, st.q3, st.best, st.worst, st.n) == pytest.approx(
        (2e-3, 1.75e-3, 2.5e-3, 1.5e-3, 3e-3, 9))
    found, why = bench.run_ladder(str(bad), [8, 8, 8], 0.01)
    assert found == [] and why.startswith("failed: exit 1") and "NOT OK" in why
    assert bench.run_ladder(str(quiet), [], 0.01)[1] == "failed: no TIME line in its output"
    assert bench.run_ladder(str(tmp_path / "nope"), [], 0.01)[1].startswith("missing: ")
    # the real harness prints what the parser reads
    harness = (REPO / "dev" / "cuda" / "harness.cuh").read_text()
    assert '"TIME   %s | %s | best %.4f ms | median %.4f ms | q1 %.4f ms | q3 %.4f ms | "' in harness


def test_bench_cuda_table_says_missing_and_compares_to_the_baseline():
    bench = _bench_cuda()

    class Args:
        pass
    res = bench.Results(Args())
    res.add("sgemm", "sgemm 1024³", "cuBLAS", common.Stats.of([1e-3, 1e-3, 2e-3]),
            flops=2 * 1024 ** 3, base="cuBLAS")
    res.add("sgemm", "sgemm 1024³", "nnlite", status="missing", base="cuBLAS",
            note="nnlite.ops.cuda_gemm (ImportError: no module)")
    res.add("sgemm", "sgemm 1024³", "ladder 06_warptiling", common.Stats.of([2e-3, 2e-3]),
            flops=2 * 1024 ** 3, base="cuBLAS")
    res.add("gpt", "baby GPT iteration", "nnlite", status="failed", note="ValueError: x",
            base="torch")
    lines = bench.table(res.rows)
    assert "median" in lines[0] and "% of base" in lines[0]
    cublas = next(ln for ln in lines if "cuBLAS" in ln)
    assert "2147.5" in cublas and cublas.rstrip().endswith("-")     # 2 GFLOP in 1 ms
    assert next(ln for ln in lines if "06_warptiling" in ln).rstrip().endswith("50 %")
    assert any("missing: nnlite.ops.cuda_gemm" in ln for ln in lines)
    assert any("failed: ValueError: x" in ln for ln in lines)


def test_cuda_gpu_check_dry_run_lists_every_stage_within_8_minutes():
    import subprocess
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "MISSING" not in out
    stages = re.findall(r"^\[dry-run\] stage (\S+) \(timeout (\d+)s\): (.*)$", out, re.M)
    names = [s[0] for s in stages]
    assert names == ["gpu", "build", "ladder-build", "gpu-tests", "memcheck", "racecheck",
                     "ladder-sanitize", "ladder", "bench"], names
    cmd = {name: c for name, _, c in stages}
    assert "build_ext --inplace" in cmd["build"]
    assert "-m cuda" in cmd["gpu-tests"]
    assert "--tool memcheck" in cmd["memcheck"] and "tests/test_cuda_*.py" in cmd["memcheck"]
    assert "--tool racecheck" in cmd["racecheck"] and "-m cuda" in cmd["racecheck"]
    assert "memcheck racecheck" in cmd["ladder-sanitize"]
    for step in (REPO / "dev" / "cuda").glob("*/[0-9]*.cu"):
        assert f"dev/cuda/build/{step.parent.name}/{step.stem}" in cmd["ladder-sanitize"], step
    assert "bench_cuda.py" in cmd["bench"]
    assert sum(int(s[1]) for s in stages) <= 470      # + starts and the summary: 8 minutes


def test_cuda_gpu_check_dry_run_fails_when_its_files_are_missing(tmp_path):
    import subprocess
    (tmp_path / "benchmarks").mkdir()
    script = tmp_path / "benchmarks" / "gpu_check.sh"
    script.write_text((REPO / "benchmarks" / "gpu_check.sh").read_text())
    r = subprocess.run(["bash", str(script), "--dry-run"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "MISSING benchmarks/bench_cuda.py" in r.stdout, r.stdout
    r = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "unknown argument" in r.stderr
