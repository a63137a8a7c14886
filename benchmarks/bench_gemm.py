"""GEMM throughput: nnlite vs numpy (OpenBLAS) vs PyTorch (if installed), in one run.

    python benchmarks/bench_gemm.py                       # float32, 1 and 2 threads
    python benchmarks/bench_gemm.py --big                 # + 4096³
    python benchmarks/bench_gemm.py --dtype float64 --threads 2
    python benchmarks/bench_gemm.py --sizes 512,1024 --no-mlp --no-gpt
    python benchmarks/bench_gemm.py --check               # also verify every result
    python benchmarks/bench_gemm.py --quick               # tiny sizes: does it run?

Cases, each C = op(A) @ op(B) with C of shape (M, N) and inner size K, FLOPs = 2·M·N·K:

* squares M = N = K = 256, 512, 1024, 2048 (4096 with ``--big``);
* the MNIST MLP's layers (784→256→128→10, the narrow N = 10 included) at batch 128 and 256:
  forward ``gemm`` X (B, in) @ W (in, out), and both backward GEMMs, ``gemm_nt``
  dX = dY (B, out) @ Wᵀ and ``gemm_tn`` dW = Xᵀ (in, B) @ dY;
* the baby GPT's linear layers (examples/gpt_shakespeare.py ``baby``: batch 12 × block 64 =
  768 tokens, n_embd 128, vocabulary 65): attention c_attn 128→384, c_proj 128→128, MLP c_fc
  128→512 and c_proj 512→128, lm_head 128→65, forward and both backward GEMMs.

Timing and table: see benchmarks/_common.py (own blocks with pauses, median / IQR / best, one
child per thread count, "% of peak" against nnlite's FMA probe). nnlite runs ``ops.gemm``,
``gemm_nt``, ``gemm_tn``; numpy ``a @ b``, ``a @ b.T``, ``a.T @ b``; torch ``torch.mm`` on
the same buffers (``torch.from_numpy``).
"""
import argparse
import sys

import _common

MLP = [(784, 256), (256, 128), (128, 10)]                 # (in, out) of the MNIST MLP's layers
GPT = [("c_attn", 128, 384), ("attn.c_proj", 128, 128), ("c_fc", 128, 512),
       ("mlp.c_proj", 512, 128), ("lm_head", 128, 65)]    # baby GPT: n_embd 128, vocab 65
GPT_TOKENS = 12 * 64                                       # batch 12 x block 64


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512,1024,2048",
                   help="comma-separated square sizes (M=N=K); empty for none")
    p.add_argument("--big", action="store_true", help="add the 4096³ square")
    p.add_argument("--no-mlp", action="store_true", help="skip the MNIST MLP's shapes")
    p.add_argument("--mlp-batches", default="128,256", help="batch sizes of the MLP shapes")
    p.add_argument("--no-gpt", action="store_true", help="skip the baby GPT's shapes")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--check", action="store_true", help="verify nnlite's results vs float64")
    return p


ARGS = _common.parse(parser(), budget=0.3, repeat=7,
                     quick={"sizes": "64", "mlp_batches": "8", "big": False})
if _common.run_parent(ARGS):
    sys.exit(0)

import numpy as np  # a child from here on: its thread variables are set

RUN = _common.start_child(ARGS)
from nnlite import ops

torch = RUN.torch


def cases(args):
    """(label, op, M, K, N) of every case."""
    out = []
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()] + ([4096] if args.big else [])
    out += [(f"square {s}", "gemm", s, s, s) for s in sizes]
    if not args.no_mlp:
        for b in (int(x) for x in args.mlp_batches.split(",") if x.strip()):
            for i, o in MLP[-1:] if args.quick else MLP:
                out += [(f"mlp B{b} {i}->{o} fwd", "gemm", b, i, o),
                        (f"mlp B{b} {i}->{o} dX", "gemm_nt", b, o, i),
                        (f"mlp B{b} {i}->{o} dW", "gemm_tn", i, b, o)]
    if not args.no_gpt:
        t = 16 if args.quick else GPT_TOKENS
        for name, i, o in GPT[:1] if args.quick else GPT:
            out += [(f"gpt {name} {i}->{o} fwd", "gemm", t, i, o),
                    (f"gpt {name} {i}->{o} dX", "gemm_nt", t, o, i),
                    (f"gpt {name} {i}->{o} dW", "gemm_tn", i, t, o)]
    return out


def operands(op, m, k, n, dtype, rng):
    """Inputs laid out as a Linear layer has them: X (M,K), W (K,N), dY (M,N)."""
    if op == "gemm":
        return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    if op == "gemm_nt":  # dX (M,N) = dY (M,K) @ W (N,K).T
        return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    # gemm_tn: dW (M,N) = X (K,M).T @ dY (K,N)
    return rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


NUMPY = {"gemm": lambda a, b: a @ b, "gemm_nt": lambda a, b: a @ b.T,
         "gemm_tn": lambda a, b: a.T @ b}


def torch_fn(op, a, b):
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    mm = torch.mm
    return {"gemm": lambda: mm(ta, tb), "gemm_nt": lambda: mm(ta, tb.t()),
            "gemm_tn": lambda: mm(ta.t(), tb)}[op]


def check(op, a, b, k, dtype):
    """nnlite's error in units of sqrt(K)·eps·max|C| (a correct GEMM stays below ~1)."""
    ref = NUMPY[op](a.astype(np.float64), b.astype(np.float64))
    got = getattr(ops, op)(a, b)
    assert got.shape == ref.shape and got.dtype == dtype, (got.shape, got.dtype)
    eps = np.finfo(dtype).eps
    return float(np.abs(got - ref).max() / (np.sqrt(k) * eps * max(1.0, np.abs(ref).max())))


def main(args):
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    RUN.note(f"GEMM C = op(A) @ op(B), {dtype}; FLOPs = 2·M·N·K per call; case labels: "
             "'square S' = S³, 'mlp B<batch> in->out', 'gpt <layer> in->out' (768 tokens); "
             "fwd = X @ W, dX = dY @ Wᵀ (gemm_nt), dW = Xᵀ @ dY (gemm_tn)"
             + ("; float64: %peak is of half the float32 peak (half the lanes per register)"
                if dtype == np.float64 else ""))
    bad = []
    for label, op, m, k, n in cases(args):
        a, b = operands(op, m, k, n, dtype, rng)
        nn_op, np_op = getattr(ops, op), NUMPY[op]
        fns = {"nnlite": lambda f=nn_op, a=a, b=b: f(a, b),
               "numpy": lambda f=np_op, a=a, b=b: f(a, b),
               "torch": torch_fn(op, a, b) if torch is not None else None}
        RUN.time(f"{label} ({m}x{k}x{n})", fns, flops=2.0 * m * n * k,
                 peak_factor=0.5 if dtype == np.float64 else 1.0)
        if args.check:
            err = check(op, a, b, k, dtype)
            if err >= 4.0:
                bad.append(f"{label}: error {err:.2f} sqrt(K)·eps")
    if args.check:
        RUN.note("--check: " + ("every result within 4 sqrt(K)·eps of float64"
                                if not bad else "WRONG: " + "; ".join(bad)))
    RUN.finish()
    if bad:
        sys.exit("some results were wrong: " + "; ".join(bad))


if __name__ == "__main__":
    main(ARGS)
