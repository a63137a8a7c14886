"""Sweep the GEMM's blocking on this machine: which settings of csrc/cpu/gemm.cpp's plan are
fastest here, at the sizes you name.

Every setting is a block of calls of its own, with a pause before it (worker threads that spin
after a call would otherwise slow the next block), and the settings take turns round after
round, so a slow spell of the machine hits them all alike. Each round's figure is the median
call; the table gives the median round and the range of rounds, in GFLOP/s. On one thread the
clock is the thread's CPU time (time.thread_time), which a busy machine disturbs less than the
wall clock; with more threads it is the wall clock (``--cpu-time`` switches to the process's
CPU time, i.e. GFLOP per CPU-second: what spinning at barriers or waiting for a descheduled
team-mate costs).

Settings are ``key=value`` lists for nnlite.ops._gemm._set_tuning (gemm.h, GemmOverride):
kc, mc, nc (block sizes; 0 automatic), pack_a (0/1), pack_b (0/1), prefetch_c (0 never, 1
before accumulating, 2 always), prefetch_b (the next block's operands while computing: 0 no,
1 into L1, 2 into L2), team (1: one team shares the packed blocks, with barriers),
uarch (the plan's per-core rules: 0 generic, 1 Intel AVX-512).
"auto" is the shipped plan. ``--phases`` splits each setting's time into packing B, packing A,
the micro-kernels and waiting (barriers, and threads done before the slowest), timed inside
the GEMM.

    python benchmarks/tune_gemm.py --size 1024 2048 --threads 2 auto team=1 kc=384 "kc=384 mc=96"
"""
import argparse
import sys
import time

import _common


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("settings", nargs="*", default=["auto"],
                   help='settings to compare, each "key=value key=value" or auto '
                        '(default: auto)')
    p.add_argument("--size", nargs="+", default=["1024"],
                   help="products to time: N for N^3, or MxKxN (default: 1024)")
    p.add_argument("--threads", type=int, default=1, help="threads (default: 1)")
    p.add_argument("--rounds", type=int, default=7, help="rounds per setting (default: 7)")
    p.add_argument("--flop", type=float, default=1e9,
                   help="floating-point operations per block (sets the calls per round; "
                        "default: 1e9)")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds of sleep before each block (default: 0.2)")
    p.add_argument("--cpu-time", action="store_true",
                   help="with threads > 1, time by the process's CPU time, not the wall clock")
    p.add_argument("--float64", action="store_true", help="time float64 (default: float32)")
    p.add_argument("--phases", action="store_true",
                   help="also split each setting's time (summed over threads) into packing B, "
                        "packing A, micro-kernels and waiting, timed inside the GEMM in one "
                        "more block of calls")
    return p.parse_args()


KEYS = ("kc", "mc", "nc", "pack_a", "pack_b", "prefetch_c", "prefetch_b", "team", "uarch")


def setting(text):
    """``"kc=384 mc=96"`` -> ``{"kc": 384, "mc": 96}``; ``"auto"`` -> ``{}``."""
    if text.strip() == "auto":
        return {}
    out = {}
    for item in text.replace(",", " ").split():
        key, _, value = item.partition("=")
        if key not in KEYS or not value:
            sys.exit(f"tune_gemm.py: bad setting {item!r} (key=value with key "
                     f"{', '.join(KEYS)})")
        out[key] = int(value)
    return out


def shape(text):
    dims = [int(d) for d in text.lower().split("x")]
    if len(dims) == 1:
        return dims * 3
    if len(dims) != 3:
        sys.exit(f"tune_gemm.py: bad size {text!r} (N or MxKxN)")
    return dims


def phase_split(_gemm, ops, kw, a, b, calls):
    """Percentages of the time inside the GEMM, summed over threads, per phase."""
    _gemm._set_tuning(**kw, phases=True)
    _gemm._phases()                                       # restart the counters
    for _ in range(calls):
        ops.gemm(a, b)
    ph = _gemm._phases()
    _gemm._set_tuning(**kw)
    total = sum(ph.values()) or 1.0
    return " ".join(f"{k} {100 * v / total:4.1f}%" for k, v in ph.items())


def main():
    args = parse()
    _common.set_threads(args.threads)
    _common.repo_nnlite()   # (the plan being tuned is the compiled GEMM's: no twins)
    import numpy as np

    from nnlite import ops
    from nnlite.ops import _gemm
    ops.set_num_threads(args.threads)
    if args.threads == 1:
        clock, what = time.thread_time, "thread CPU time"
    elif args.cpu_time:
        clock, what = time.process_time, "process CPU time (GFLOP per CPU-second)"
    else:
        clock, what = time.perf_counter, "wall clock"
    settings = [(s, setting(s)) for s in args.settings]
    dtype = np.float64 if args.float64 else np.float32
    rng = np.random.default_rng(0)
    print(f"nnlite GEMM, {np.dtype(dtype).name}, {args.threads} thread(s), SIMD "
          f"{ops.simd_path()}, timed by {what}; median round [range], GFLOP/s")
    try:
        for text in args.size:
            m, k, n = shape(text)
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            flop = 2.0 * m * n * k
            calls = max(3, int(args.flop / flop))
            rounds = {name: [] for name, _ in settings}
            for _ in range(args.rounds):
                for name, kw in settings:
                    _gemm._set_tuning(**kw)
                    ops.gemm(a, b)                       # warm the buffers with this plan
                    time.sleep(args.pause)
                    times = []
                    for _ in range(calls):
                        t0 = clock()
                        ops.gemm(a, b)
                        times.append(clock() - t0)
                    rounds[name].append(flop / sorted(times)[len(times) // 2] / 1e9)
            for name, kw in settings:
                r = sorted(rounds[name])
                line = f"  {m}x{k}x{n:<6} {name:28s} {r[len(r) // 2]:7.1f}  [{r[0]:.1f}-{r[-1]:.1f}]"
                if args.phases:
                    line += "  " + phase_split(_gemm, ops, kw, a, b, calls)
                print(line, flush=True)
    finally:
        _gemm._set_tuning()


if __name__ == "__main__":
    main()
