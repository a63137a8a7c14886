"""Where one training step's time goes: the baby GPT's iteration and the MNIST MLP's step.

For each model: ``--steps`` training steps (after ``--warmup`` untimed ones) inside
``nl.ops.profile(model)`` (nnlite/ops/_profile.py), printed per step as three tables: each
kernel (calls, ms, % of wall, GFLOP/s where the FLOPs are known), the same summed by kind
(GEMM, attention, LayerNorm, bias / activation, optimizer, ... and "not a kernel": wall − Σ
kernels, i.e. Python, numpy's own array work and allocation) and each layer's forward and
backward (inclusive). Then, for the same steps without timers:

* the memory a step allocates on top of what was live before it (tracemalloc's peak), the
  allocation that preallocated buffers remove;
* cProfile's top functions by own time (``--cprofile N``; 0 skips it), the Python side.

    python benchmarks/profile_step.py --threads 2
    python benchmarks/profile_step.py --only gpt --steps 50

The models are those of bench_gpt.py (n_layer 4, n_head 4, n_embd 128, block 64, batch 12,
vocabulary 65, AdamW + clip 1.0) and bench_mnist_mlp.py (784-256-128-10 ReLU, Adam, batch
64), on random data.
"""
import argparse
import time

import _common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30, help="profiled steps (figures per step)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--only", default="gpt,mlp", help="comma-separated subset of gpt,mlp")
    p.add_argument("--cprofile", type=int, default=15, metavar="N",
                   help="print cProfile's top N functions by own time (0: skip)")
    _common.add_twins_arg(p)
    return p.parse_args()


ARGS = parse_args()
_common.set_threads(ARGS.threads)   # before numpy loads its BLAS

import numpy as np  # noqa: E402

_common.repo_nnlite(only_if_missing=True, allow_twins=ARGS.allow_twins)
import nnlite as nl  # noqa: E402


def gpt_case():
    nl.random.seed(0)
    model = nl.models.GPT(65, 64, 4, 4, 128)
    model.compile(nl.optim.AdamW(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1,
                                 clipnorm=1.0, decay_filter="matrices"), "cross_entropy")
    rng = np.random.default_rng(0)
    data = [(rng.integers(0, 65, (12, 64)), rng.integers(0, 65, (12, 64))) for _ in range(8)]
    return "baby GPT iteration (B 12, T 64, C 128, 4 layers)", model, data


def mlp_case():
    nl.random.seed(0)
    model = nl.Sequential([nl.Linear(784, 256), nl.ReLU(), nl.Linear(256, 128), nl.ReLU(),
                           nl.Linear(128, 10)])
    model.compile(nl.optim.Adam(lr=1e-3), "cross_entropy")
    rng = np.random.default_rng(0)
    data = [(rng.random((64, 784), dtype=np.float32), rng.integers(0, 10, 64))
            for _ in range(8)]
    return "MNIST MLP step (784-256-128-10, batch 64)", model, data


def run_steps(model, data, n):
    for i in range(n):
        x, y = data[i % len(data)]
        model.train_step(x, y)


def count_allocations(model, data, n):
    """Per step, the peak of traced memory above what was live before the step (tracemalloc,
    which sees numpy's array buffers): the activations, caches and temporaries a step makes
    and holds at once; preallocated buffers reused across steps do not count."""
    import tracemalloc
    tracemalloc.start()
    try:
        made = 0
        for i in range(n):
            x, y = data[i % len(data)]
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            model.train_step(x, y)
            _, peak = tracemalloc.get_traced_memory()
            made += peak - base
    finally:
        tracemalloc.stop()
    return made / n


def main(args):
    nl.ops.set_num_threads(args.threads)
    print(f"nnlite {nl.__version__} (SIMD {nl.ops.simd_path()}), {args.threads} thread(s), "
          f"{args.steps} profiled steps after {args.warmup} warm-up; figures per step")
    cases = {"gpt": gpt_case, "mlp": mlp_case}
    for key in args.only.split(","):
        title, model, data = cases[key]()
        run_steps(model, data, args.warmup)
        t0 = time.perf_counter()
        run_steps(model, data, args.steps)
        plain = (time.perf_counter() - t0) / args.steps
        with nl.ops.profile(model) as prof:
            run_steps(model, data, args.steps)
        print(f"\n=== {title}: {1e3 * plain:.2f} ms/step without timers ===")
        print(prof.table(per=args.steps))
        peak_made = count_allocations(model, data, min(args.steps, 10))
        print(f"\nnumpy arrays live at a step's peak beyond those before it: "
              f"{peak_made / 2**20:.2f} MiB (tracemalloc; activations, caches, gradients "
              f"made per step)")
        if args.cprofile:
            import cProfile
            import pstats
            cp = cProfile.Profile()
            cp.enable()
            run_steps(model, data, args.steps)
            cp.disable()
            print(f"\ncProfile, {args.steps} steps, top {args.cprofile} by own time:")
            pstats.Stats(cp).sort_stats("tottime").print_stats(args.cprofile)


if __name__ == "__main__":
    main(ARGS)
