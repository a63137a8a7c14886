"""Causal attention, forward and forward+backward: nnlite's flash-style kernel vs PyTorch.

    python benchmarks/bench_attention.py                     # float32, 2 threads, default shapes
    python benchmarks/bench_attention.py --threads 1 --simd avx2
    python benchmarks/bench_attention.py --shapes 12x4x64x32 --no-memory

Times: torch is ``scaled_dot_product_attention(q, k, v, is_causal=True)`` (forward under
no_grad; forward+backward with requires_grad inputs and ``out.backward(grad)``); nnlite is
``ops.attention(..., return_lse=True)`` then ``ops.attention_backward(..., lse=lse)``. Each entry
is the mean over an inner loop of ~30 ms, best of --repeat rounds, libraries interleaved with a
short sleep (the machine is small and shared: the best round is the least disturbed one).
Ratio = nnlite time / torch time, so < 1 means nnlite is faster.

Memory: peak RSS growth of one causal attention forward (the high-water mark, VmHWM, reset
just before the call via /proc/self/clear_refs, minus the RSS then; ``resource.getrusage``
max-RSS deltas where that is unavailable), each measured in a fresh subprocess, for nnlite, the numpy twin (which
builds the (B, H, T, T) scores like any naive implementation) and torch. The inputs are made
before the "before" reading, so the delta is the output plus whatever the op allocates inside.
"""
import argparse
import os
import subprocess
import sys
import time

import _common


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="12x4x64x32,32x8x256x16",
                   help="comma-separated BxHxTxD for the timings")
    _common.add_run_args(p, repeat=7)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--mem-shapes", default="1x8x32,4x8x32", help="BxHxD for the memory table")
    p.add_argument("--mem-T", default="256,1024", help="sequence lengths for the memory table")
    p.add_argument("--_mem", nargs=5, metavar=("LIB", "B", "H", "T", "D"), help=argparse.SUPPRESS)
    return p.parse_args()


args = parse()
_common.set_threads(args.threads)  # before numpy starts its thread pool

import numpy as np  # noqa: E402

_common.repo_nnlite(allow_twins=args.allow_twins)


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
        torch = _common.import_torch(args.threads, optional=False)
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


if args._mem:
    mem_child(*args._mem)
    sys.exit(0)

from nnlite import ops  # noqa: E402

torch = None if args.no_torch else _common.import_torch(args.threads)
F = torch.nn.functional if torch is not None else None
if args.threads:
    ops.set_num_threads(args.threads)
if args.simd:
    ops.set_simd_path(args.simd)


def bench(fns, repeat):
    """{name: best-of-rounds mean time}, the functions interleaved round by round."""
    for fn in fns.values():
        fn()  # warm up
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            time.sleep(0.02)
            # ~30 ms loops, no warm-up of their own: the loop above did it
            best[name] = min(best[name], _common.timeit(fn, budget=0.03, max_n=1 << 14,
                                                        warmup=False))
    return best


def time_table():
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"causal attention, {dt}, {args.threads} thread(s), nnlite SIMD path "
          f"{ops.simd_path()}, {ops.compiled_kernels()['attention']}; times in ms "
          f"(best of {args.repeat}); ratio = nnlite / torch (< 1: nnlite faster)")
    head = f"{'B x H x T x D':>16} | {'nnlite fwd':>10} {'fwd+bwd':>9} |"
    if torch is not None:
        head += f" {'torch fwd':>9} {'fwd+bwd':>9} | {'fwd ratio':>9} {'f+b ratio':>9}"
    print(head)
    print("-" * len(head))
    for spec in args.shapes.split(","):
        shape = tuple(int(s) for s in spec.lower().split("x"))
        q, k, v, g = (rng.standard_normal(shape).astype(dt) for _ in range(4))

        def nn_fwd():
            return ops.attention(q, k, v, causal=True)

        def nn_fwd_bwd():
            out, lse = ops.attention(q, k, v, causal=True, return_lse=True)
            return ops.attention_backward(q, k, v, out, g, lse=lse, causal=True)

        fns = {"nn_fwd": nn_fwd, "nn_fb": nn_fwd_bwd}
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

            fns.update(t_fwd=t_fwd, t_fb=t_fwd_bwd)
            # same answer as torch (the table is only worth something if they agree)
            t_fwd_bwd()
            grads = nn_fwd_bwd()
            err = max(float(np.abs(a - b.grad.numpy()).max()) for a, b in zip(grads, (tq, tk, tv)))
            assert err < (1e-3 if dt == np.float32 else 1e-9), f"{shape}: grads differ by {err}"
        t = {k: v * 1e3 for k, v in bench(fns, args.repeat).items()}
        row = f"{'x'.join(map(str, shape)):>16} | {t['nn_fwd']:10.3f} {t['nn_fb']:9.3f} |"
        if torch is not None:
            row += (f" {t['t_fwd']:9.3f} {t['t_fb']:9.3f} | {t['nn_fwd'] / t['t_fwd']:8.2f}x"
                    f" {t['nn_fb'] / t['t_fb']:8.2f}x")
        print(row, flush=True)


def mem_table():
    libs = ["nnlite", "twin"] + (["torch"] if torch is not None else [])
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
                cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                       "--_mem", lib, str(B), str(H), str(T), str(D)]
                r = subprocess.run(cmd, capture_output=True, text=True)
                vals.append(r.stdout.strip().splitlines()[-1] if r.returncode == 0 else "error")
            out_mib = B * H * T * D * 4 / 2**20
            tt_mib = B * H * T * T * 4 / 2**20
            print(f"{f'{B}x{H}x{T}x{D}':>16} | {out_mib:7.2f} {tt_mib:8.2f} | "
                  + " ".join(f"{v:>8}" for v in vals), flush=True)


time_table()
if not args.no_memory:
    mem_table()
