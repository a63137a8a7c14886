"""GEMM throughput: nnlite vs numpy (OpenBLAS) vs PyTorch (if installed), in one run.

    python benchmarks/bench_gemm.py                       # float32, 2 threads, default shapes
    python benchmarks/bench_gemm.py --dtype float64 --threads 1
    python benchmarks/bench_gemm.py --sizes 512,1024 --no-mlp
    python benchmarks/bench_gemm.py --check               # also verify every result

Thread counts: --threads sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS before
numpy is imported (this script imports it only after parsing the arguments), then
nnlite.ops.set_num_threads and torch.set_num_threads (default: 2 threads).

Timing: each (shape, library) pair is timed as the mean over an inner loop long enough to
swamp the timer (~20 ms), best of --repeat rounds. The libraries are interleaved round by
round, with a short sleep between them: OpenBLAS and OpenMP worker threads spin for a while
after each call, and on a 2-core machine a spinning pool of one library would otherwise steal
the cores of the next one. Ratios > 1 mean nnlite is faster.
"""
import argparse
import sys
import time

import _common

MLP_SHAPES = [  # (op, M, K, N) of one training step of a 784-256-128-10 MLP, batch 64
    ("gemm", 64, 784, 256), ("gemm", 64, 256, 128), ("gemm", 64, 128, 10),
    ("gemm_nt", 64, 256, 784), ("gemm_nt", 64, 128, 256), ("gemm_nt", 64, 10, 128),
    ("gemm_tn", 784, 64, 256), ("gemm_tn", 256, 64, 128), ("gemm_tn", 128, 64, 10),
]


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512,1024,2048",
                   help="comma-separated square sizes (M=N=K); empty for none")
    p.add_argument("--no-mlp", action="store_true", help="skip the MLP training-step shapes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeat", type=int, default=7, help="rounds; the best one counts")
    p.add_argument("--check", action="store_true", help="verify nnlite's results vs float64")
    p.add_argument("--simd", default=None, help="force nnlite's SIMD path (scalar|avx2|avx512)")
    p.add_argument("--no-torch", action="store_true",
                   help="leave PyTorch out (its own OpenMP pool adds noise on small machines)")
    _common.add_twins_arg(p)
    return p.parse_args()


args = parse()
_common.set_threads(args.threads)  # before numpy starts its thread pool

import numpy as np  # noqa: E402

_common.repo_nnlite(allow_twins=args.allow_twins)
import nnlite.ops as ops  # noqa: E402

torch = None if args.no_torch else _common.import_torch(args.threads)


def operands(op, m, k, n, dtype, rng):
    """Inputs laid out as a Linear layer has them: X (M,K), W (K,N), dY (M,N)."""
    if op == "gemm":
        return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    if op == "gemm_nt":  # dX (M,N) = dY (M,K) @ W (N,K).T
        return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    # gemm_tn: dW (M,N) = X (K,M).T @ dY (K,N)
    return rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


def numpy_fn(op):
    return {"gemm": lambda a, b: a @ b, "gemm_nt": lambda a, b: a @ b.T,
            "gemm_tn": lambda a, b: a.T @ b}[op]


def torch_fn(op):
    return {"gemm": torch.mm, "gemm_nt": lambda a, b: torch.mm(a, b.t()),
            "gemm_tn": lambda a, b: torch.mm(a.t(), b)}[op]


def time_inner(fn, a, b, inner):
    t = time.perf_counter()
    for _ in range(inner):
        fn(a, b)
    return (time.perf_counter() - t) / inner


def bench_case(op, m, k, n, dtype, rng):
    a, b = operands(op, m, k, n, dtype, rng)
    libs = [("nnlite", getattr(ops, op), a, b), ("numpy", numpy_fn(op), a, b)]
    if torch is not None:
        libs.append(("torch", torch_fn(op), torch.from_numpy(a), torch.from_numpy(b)))
    inner = {}
    for name, fn, x, y in libs:  # warm up (buffers, thread pools) and size the inner loop
        fn(x, y)
        t1 = time_inner(fn, x, y, 1)
        inner[name] = max(1, min(2000, int(0.02 / max(t1, 1e-7))))
    best = {name: float("inf") for name, *_ in libs}
    for _ in range(args.repeat):
        for name, fn, x, y in libs:
            time.sleep(0.1)  # let the previous library's spinning threads go to sleep
            best[name] = min(best[name], time_inner(fn, x, y, inner[name]))
    err = None
    if args.check:
        ref = numpy_fn(op)(a.astype(np.float64), b.astype(np.float64))
        got = getattr(ops, op)(a, b)
        eps = np.finfo(dtype).eps
        err = float(np.abs(got - ref).max() / (np.sqrt(k) * eps * max(1.0, np.abs(ref).max())))
        assert got.shape == ref.shape and got.dtype == dtype, (got.shape, got.dtype)
    return best, err


def main():
    dtype = np.dtype(args.dtype)
    if args.simd:
        ops.set_simd_path(args.simd)
    ops.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cases = [("gemm", s, s, s) for s in (int(x) for x in args.sizes.split(",") if x.strip())]
    if not args.no_mlp:
        cases += MLP_SHAPES
    print(f"nnlite gemm benchmark: {dtype}, {args.threads} thread(s), nnlite simd={ops.simd_path()}"
          f", gemm={ops.compiled_kernels()['gemm']}, torch={'yes' if torch else 'no'}")
    cols = "op        M     K     N   nnlite GF/s  numpy GF/s  nnlite us   numpy us  nl/np"
    if torch is not None:
        cols += "  torch GF/s  nl/torch"
    if args.check:
        cols += "  err/(sqrtK eps)"
    print(cols)
    failed = False
    for op, m, k, n in cases:
        best, err = bench_case(op, m, k, n, dtype, rng)
        fl = 2.0 * m * n * k / 1e9
        line = (f"{op:8s}{m:6d}{k:6d}{n:6d}{fl / best['nnlite']:13.1f}{fl / best['numpy']:12.1f}"
                f"{best['nnlite'] * 1e6:11.1f}{best['numpy'] * 1e6:11.1f}"
                f"{best['numpy'] / best['nnlite']:7.2f}")
        if torch is not None:
            line += f"{fl / best['torch']:12.1f}{best['torch'] / best['nnlite']:10.2f}"
        if args.check:
            ok = err < 4.0
            failed |= not ok
            line += f"  {err:8.3f} {'ok' if ok else 'FAIL'}"
        print(line, flush=True)
    if failed:
        sys.exit("some results were wrong")


if __name__ == "__main__":
    main()
