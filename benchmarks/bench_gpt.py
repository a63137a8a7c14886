"""GPT training speed: nnlite vs PyTorch (CPU), the same model, one run.

nanoGPT's CPU "baby GPT" (the ``baby`` preset of ``examples/gpt_shakespeare.py``): 4 layers,
4 heads, n_embd 128, block 64, batch 12, vocabulary 65; AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on matrices), gradient clipping at 1.0, the same number of threads for both.
Reported: milliseconds per training iteration (forward + backward + clip + optimizer step on
a random batch; batches drawn outside the timing), the median of ``--iters`` after
``--warmup`` untimed ones, and the ratio nnlite / torch. The two run interleaved, one step
each in turn, so a machine shared with other work slows both alike.

    python benchmarks/bench_gpt.py --threads 2             # torch: pip install torch==2.13.0
    python benchmarks/bench_gpt.py --profile               # + cProfile of nnlite's steps

PyTorch's model is nanoGPT's block written with ``torch.nn`` and
``F.scaled_dot_product_attention(is_causal=True)`` (no weight tying, biases everywhere, as
nnlite's GPT). Thread counts must be set before numpy/torch start their pools, so this script
re-executes itself with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set.
"""
import argparse
import statistics
import time

import _common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=50, help="timed iterations (median reported)")
    p.add_argument("--warmup", type=int, default=10)
    _common.add_gpt_args(p, n_layer=4)
    p.add_argument("--vocab-size", type=int, default=65)
    p.add_argument("--only", default="nnlite,torch", help="comma-separated subset")
    p.add_argument("--profile", action="store_true",
                   help="profile nnlite's timed steps with cProfile (top functions by own time)")
    return p.parse_args()


ARGS = parse_args()
_common.reexec_with_threads(ARGS.threads)  # numpy and torch then start with that many threads

import numpy as np  # noqa: E402

_common.repo_nnlite(only_if_missing=True, allow_twins=ARGS.allow_twins)
import nnlite as nl  # noqa: E402


def batches(args, n):
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.block_size)
    return [(rng.integers(0, args.vocab_size, shape), rng.integers(0, args.vocab_size, shape))
            for _ in range(n)]


def time_interleaved(steps, data, warmup):
    """``{name: median ms}`` of each ``steps[name](x, y)``, the implementations taking turns
    on every batch, after ``warmup`` untimed turns."""
    times = {name: [] for name in steps}
    for i, (x, y) in enumerate(data):
        for name, (step, convert) in steps.items():
            xb, yb = convert(x), convert(y)
            t0 = time.perf_counter()
            step(xb, yb)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def make_optimizer(lr=1e-3):
    # nanoGPT's shakespeare-char settings
    kwargs = dict(lr=lr, beta1=0.9, beta2=0.99, weight_decay=0.1, clipnorm=1.0)
    try:
        return nl.optim.AdamW(**kwargs, decay_filter="matrices")
    except TypeError:                   # an nnlite without decay_filter: decay everything
        return nl.optim.AdamW(**kwargs)


def nnlite_step(args):
    nl.ops.set_num_threads(args.threads)
    nl.random.seed(0)
    model = nl.models.GPT(args.vocab_size, args.block_size, args.n_layer, args.n_head,
                          args.n_embd)
    model.compile(make_optimizer(), "cross_entropy")
    return model.train_step


def profile_nnlite(args, data):
    import cProfile
    import pstats
    step = nnlite_step(args)
    for x, y in data[:args.warmup]:
        step(x, y)
    prof = cProfile.Profile()
    prof.enable()
    for x, y in data[args.warmup:]:
        step(x, y)
    prof.disable()
    print(f"\ncProfile of {len(data) - args.warmup} nnlite steps (own time, top 25):")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def torch_step(args):
    torch = _common.import_torch(args.threads, optional=False)
    F = torch.nn.functional
    torch.manual_seed(0)
    model = _common.torch_gpt(torch, args.vocab_size, args.block_size, args.n_layer,
                              args.n_head, args.n_embd)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))

    def step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step, torch.from_numpy, torch.__version__


def main(args):
    only = set(args.only.split(","))
    data = batches(args, args.warmup + args.iters)
    print(f"GPT n_layer {args.n_layer}, n_head {args.n_head}, n_embd {args.n_embd}, block "
          f"{args.block_size}, batch {args.batch_size}, vocab {args.vocab_size}; AdamW + clip 1.0; "
          f"{args.threads} thread(s); median of {args.iters} after {args.warmup} warm-up")
    print(f"nnlite {nl.__version__} (SIMD {nl.ops.simd_path()}), numpy {np.__version__}")
    steps = {}
    if "torch" in only:
        try:
            step, convert, tv = torch_step(args)
            steps["torch"] = (step, convert)
            print(f"torch {tv}")
        except ImportError:
            print("torch not installed (pip install torch==2.13.0): skipped")
    if "nnlite" in only:
        steps["nnlite"] = (nnlite_step(args), lambda a: a)
    rows = time_interleaved(steps, data, args.warmup)
    if args.profile:
        profile_nnlite(args, data)
    ref = rows.get("torch")
    print(f"\n{'implementation':<16}{'ms/iter':>10}{'vs torch':>10}")
    for name, ms in rows.items():
        ratio = f"{ms / ref:.2f}x" if ref else "-"
        print(f"{name:<16}{ms:>10.2f}{ratio:>10}")
    return rows


if __name__ == "__main__":
    main(ARGS)
