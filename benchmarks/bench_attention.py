"""Causal attention, forward and forward+backward: nnlite's flash-style kernel vs its numpy
twin vs PyTorch.

    python benchmarks/bench_attention.py                     # float32, 1 and 2 threads
    python benchmarks/bench_attention.py --threads 2 --simd avx2
    python benchmarks/bench_attention.py --shapes 12x4x64x32 --no-memory

Times: torch is ``scaled_dot_product_attention(q, k, v, is_causal=True)`` (forward under
no_grad; forward+backward with requires_grad inputs and ``out.backward(grad)``); nnlite is
``ops.attention(..., return_lse=True)`` then ``ops.attention_backward(..., lse=lse)``; numpy
is nnlite's twin (nnlite/ops/reference.py), which builds the (B, H, T, T) scores. Timing and
table: see benchmarks/_common.py (each library in its own block with a pause before it,
median / IQR / best, one child interpreter per thread count).

FLOPs (for GF/s and % of peak), counting the useful work of the causal product only: the
T(T+1)/2 (query, key) pairs a causal mask keeps, D multiply-adds each, per matrix product;
forward 2 products (S = QKᵀ, O = PV): 2·2·D·B·H·T(T+1)/2; forward+backward 2 + 4 more
(dV = PᵀdO, dP = dO Vᵀ, dQ = dS K, dK = dSᵀQ): 6·2·D·B·H·T(T+1)/2. The exp and softmax work
and the backward's recomputation of S are not counted.

Memory: peak RSS growth of one causal attention forward (the high-water mark, VmHWM, reset
just before the call via /proc/self/clear_refs, minus the RSS then; ``resource.getrusage``
max-RSS deltas where that is unavailable), each measured in a fresh subprocess, for nnlite, the
numpy twin (which builds the (B, H, T, T) scores like any naive implementation) and torch. The
inputs are made before the "before" reading, so the delta is the output plus whatever the op
allocates inside.
"""
import argparse
import os
import subprocess
import sys

import _common


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="12x4x64x32,32x8x256x16",
                   help="comma-separated BxHxTxD for the timings")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--mem-shapes", default="1x8x32,4x8x32", help="BxHxD for the memory table")
    p.add_argument("--mem-T", default="256,1024", help="sequence lengths for the memory table")
    p.add_argument("--_mem", nargs=5, metavar=("LIB", "B", "H", "T", "D"), help=argparse.SUPPRESS)
    return p


args = _common.parse(parser(), budget=0.5, repeat=7,
                     quick={"shapes": "2x2x16x8", "mem_shapes": "1x2x8", "mem_T": "32"})
# the parent runs the children (the timing table) here, then the memory table further down
if args._mem is None and _common.run_parent(args) is not None and args.no_memory:
    sys.exit(0)

import numpy as np  # a child (or the parent, for the memory table) from here on


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak():
    """Start a fresh peak-RSS window; returns the baseline (MiB).

    Linux: writing 5 to /proc/self/clear_refs resets the high-water mark (VmHWM) to the current
    RSS, so the later reading is this op's peak, not an earlier one (imports, input creation).
    Elsewhere: getrusage's max-RSS, which only shows growth beyond the earlier peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS") / 1024
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_rss_mib():
    try:
        return _status_kib("VmHWM") / 1024
    except (OSError, KeyError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mem_child(lib, B, H, T, D):
    """Print the peak-RSS growth (MiB) of one causal attention forward, in this process."""
    shape = (int(B), int(H), int(T), int(D))
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
    if lib == "torch":
        torch = _common.import_torch(args.threads[-1], optional=False)
        F = torch.nn.functional
        tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
        with torch.no_grad():  # warm up on a tiny problem: code paths, thread pool
            F.scaled_dot_product_attention(tq[:1, :1, :8], tk[:1, :1, :8], tv[:1, :1, :8],
                                           is_causal=True)
        before = reset_peak()
        with torch.no_grad():
            out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    else:
        from nnlite import ops
        from nnlite.ops import reference as ref
        fn = ops.attention if lib == "nnlite" else ref.attention
        fn(q[:1, :1, :8], k[:1, :1, :8], v[:1, :1, :8])
        before = reset_peak()
        out = fn(q, k, v, causal=True)
    after = peak_rss_mib()
    assert out.shape == shape
    print(f"{after - before:.3f}")


def mem_table():
    libs = ["nnlite", "twin"] + ([] if args.no_torch or _common.import_torch(1) is None
                                 else ["torch"])
    print()
    print("peak RSS growth of one causal forward (MiB, fresh subprocess each; float32). "
          "'twin' = numpy reference, a naive (B, H, T, T) implementation;")
    print("'out' = the output array alone, the least any implementation needs; "
          "'T x T' = one float32 (B, H, T, T) array")
    head = f"{'B x H x T x D':>16} | {'out':>7} {'T x T':>8} | " + " ".join(f"{n:>8}" for n in libs)
    print(head)
    print("-" * len(head))
    for spec in args.mem_shapes.split(","):
        B, H, D = (int(s) for s in spec.lower().split("x"))
        for T in (int(s) for s in args.mem_T.split(",")):
            vals = []
            for lib in libs:
                cmd = [sys.executable, os.path.abspath(__file__), "--threads",
                       str(args.threads[-1]), "--_mem", lib, str(B), str(H), str(T), str(D)]
                r = subprocess.run(cmd, capture_output=True, text=True)
                vals.append(r.stdout.strip().splitlines()[-1] if r.returncode == 0 else "error")
            out_mib = B * H * T * D * 4 / 2**20
            tt_mib = B * H * T * T * 4 / 2**20
            print(f"{f'{B}x{H}x{T}x{D}':>16} | {out_mib:7.2f} {tt_mib:8.2f} | "
                  + " ".join(f"{v:>8}" for v in vals), flush=True)


if args._mem:
    _common.repo_nnlite(allow_twins=args.allow_twins)
    mem_child(*args._mem)
    sys.exit(0)
if args._child is None:         # the parent, after the timing table: the memory table
    mem_table()
    sys.exit(0)

RUN = _common.start_child(args)
from nnlite import ops
from nnlite.ops import reference as ref

torch = RUN.torch
F = torch.nn.functional if torch is not None else None


def causal_flops(B, H, T, D, products):
    """FLOPs of ``products`` causal (T, T)·(T, D) products: 2·D per kept (query, key) pair."""
    return products * 2.0 * D * B * H * T * (T + 1) / 2


def time_table():
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    RUN.note(f"causal attention, {dt}, {ops.compiled_kernels()['attention']}; case B x H x T x "
             "D; FLOPs: forward 2 causal products, forward+backward 6 (see the docstring); "
             "'numpy' = nnlite's numpy twin")
    for spec in args.shapes.split(","):
        shape = tuple(int(s) for s in spec.lower().split("x"))
        q, k, v, g = (rng.standard_normal(shape).astype(dt) for _ in range(4))

        def fwd_bwd(mod):
            def f():
                out, lse = mod.attention(q, k, v, causal=True, return_lse=True)
                return mod.attention_backward(q, k, v, out, g, lse=lse, causal=True)
            return f

        fwd = {"nnlite": lambda: ops.attention(q, k, v, causal=True),
               "numpy": lambda: ref.attention(q, k, v, causal=True), "torch": None}
        fb = {"nnlite": fwd_bwd(ops), "numpy": fwd_bwd(ref), "torch": None}
        if torch is not None:
            tq, tk, tv = (torch.from_numpy(x).requires_grad_(True) for x in (q, k, v))
            tg = torch.from_numpy(g)

            def t_fwd():
                with torch.no_grad():
                    return F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)

            def t_fwd_bwd():
                for x in (tq, tk, tv):
                    x.grad = None
                F.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tg)

            fwd["torch"], fb["torch"] = t_fwd, t_fwd_bwd
            # same answer as torch (the table is only worth something if they agree)
            t_fwd_bwd()
            grads = fb["nnlite"]()
            err = max(float(np.abs(a - b.grad.numpy()).max()) for a, b in zip(grads, (tq, tk, tv)))
            assert err < (1e-3 if dt == np.float32 else 1e-9), f"{shape}: grads differ by {err}"
        label = "x".join(map(str, shape))
        RUN.time(f"fwd {label}", fwd, flops=causal_flops(*shape, 2))
        RUN.time(f"fwd+bwd {label}", fb, flops=causal_flops(*shape, 6))
    RUN.finish()


time_table()
