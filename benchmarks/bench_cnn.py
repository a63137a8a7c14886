"""MNIST-CNN training speed: nnlite vs PyTorch (CPU), the model of examples/mnist_cnn.py.

Two measurements, the same threads and batch for both libraries:

* the training "epoch": ``--batches`` Adam steps on batches of ``--batch-size`` random MNIST
  shaped images (N, 1, 28, 28) (data loading and shuffling outside the timing), the median
  of ``--repeats`` runs (at least), and its ratio nnlite / torch (target: ≤ 0.8);
* each convolution of the model alone, forward + backward (input gradient except for the
  first, which needs none, weight gradient), at the model's shapes: median time and GFLOP/s
  (useful flops: 2·N·O·Ho·Wo·C·K² per product; 3 products, 2 for the first), ratio torch /
  nnlite (target: ≥ 1.0).

    python benchmarks/bench_cnn.py --threads 2          # torch: pip install torch==2.13.0

Each library is timed in its own block, after a 0.3 s pause (the other's threads stop
spinning), for at least --repeats calls and 0.5 s. Timings on a shared machine are noisy:
compare the two columns of one run, not runs.
"""
import argparse
import statistics
import time

import _common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for both (default: 2)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    p.add_argument("--batches", type=int, default=20,
                   help="training steps per timed run (default: 20)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported "
                   "(default: 5)")
    p.add_argument("--only", default="epoch,layers", help="epoch and/or layers (default: both)")
    _common.add_twins_arg(p)
    return p.parse_args()


ARGS = parse_args()
_common.set_threads(ARGS.threads)          # before numpy starts its pool

import numpy as np  # noqa: E402

_common.repo_nnlite(only_if_missing=True, allow_twins=ARGS.allow_twins)
import nnlite as nl  # noqa: E402

# (C, O, H): the example's three 3×3 "same" convolutions, no bias (BatchNorm follows)
CONVS = [(1, 32, 28), (32, 64, 14), (64, 64, 7)]


PAUSE = 0.3       # s of sleep before each block: the other library's threads stop spinning
MIN_SECONDS = 0.5  # each block samples at least this long (and at least --repeats times)


def median_time(fn, repeats):
    """Median seconds of fn() over at least `repeats` calls and MIN_SECONDS, after a pause and a
    warm-up call. Without the pause, nnlite's 7x7 convolution, timed right after torch's 14x14
    block, twice took 15.7-15.8 ms instead of 5-7: torch's OpenMP threads may still spin then,
    and late threads make nnlite's kernels run alone for a while ("On a busy machine" in the
    README). Not proven; the pause is what issue 13's benchmarks do anyway."""
    time.sleep(PAUSE)
    fn()                                        # warm-up: buffers, thread pools, caches
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < MIN_SECONDS:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def nnlite_model():
    def block(c_in, c_out):
        return [nl.Conv2D(c_in, c_out, 3, padding=1, bias=False),   # ReLU fused: the same math
                nl.BatchNorm2d(c_out, activation="relu"), nl.MaxPool2D(2)]
    return nl.Sequential([*block(1, 32), *block(32, 64), *block(64, 64), nl.Flatten(),
                          nl.Linear(576, 128), nl.ReLU(), nl.Dropout(0.3), nl.Linear(128, 10)])


def torch_model(torch):
    nn = torch.nn
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 64), nn.Flatten(),
                         nn.Linear(576, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))


def batches(args):
    rng = np.random.default_rng(0)
    x = rng.random((args.batches, args.batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, (args.batches, args.batch_size))
    return x, y


def epoch_nnlite(args):
    nl.ops.set_num_threads(args.threads)
    nl.random.seed(0)
    model = nnlite_model()
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
    x, y = batches(args)
    def run():
        for xb, yb in zip(x, y):
            model.train_step(xb, yb)
    return median_time(run, args.repeats)


def epoch_torch(torch, args):
    torch.manual_seed(0)
    model = torch_model(torch).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = batches(args)
    xs = [torch.from_numpy(xb) for xb in x]
    ys = [torch.from_numpy(yb) for yb in y]
    def run():
        for xb, yb in zip(xs, ys):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    return median_time(run, args.repeats)


def conv_nnlite(x, w, g, input_grad):
    def run():
        nl.ops.conv2d(x, w, None, 1, 1)
        nl.ops.conv2d_backward(g, x, w, 1, 1, input_grad=input_grad)
    return run


def conv_torch(torch, x, w, g, input_grad):
    xt = torch.from_numpy(x).requires_grad_(input_grad)
    wt = torch.from_numpy(w).requires_grad_(True)
    gt = torch.from_numpy(g)
    def run():
        wt.grad = None
        if input_grad:
            xt.grad = None
        torch.nn.functional.conv2d(xt, wt, None, 1, 1).backward(gt)
    return run


def main():
    args = ARGS
    torch = _common.import_torch(args.threads)
    print(f"threads {args.threads}, batch {args.batch_size}, SIMD {nl.ops.simd_path()}, "
          f"torch {torch.__version__ if torch else 'not installed'}; medians of {args.repeats}")
    if "epoch" in args.only:
        t_nl = epoch_nnlite(args)
        line = f"CNN training, {args.batches} steps: nnlite {t_nl:.3f} s"
        if torch:
            t_t = epoch_torch(torch, args)
            line += f"   torch {t_t:.3f} s   nnlite/torch {t_nl / t_t:.2f}x (target <= 0.8)"
        print(line)
        per_epoch = 60000 / (args.batches * args.batch_size)     # a full MNIST epoch
        print(f"  per epoch of 60 000 images: nnlite {t_nl * per_epoch:.1f} s"
              + (f", torch {t_t * per_epoch:.1f} s" if torch else ""))
    if "layers" in args.only:
        rng = np.random.default_rng(0)
        print(f"{'conv (N, C, H, W) -> O, 3x3':34s} {'nnlite ms':>10s} {'GFLOP/s':>8s}"
              f" {'torch ms':>10s} {'GFLOP/s':>8s} {'torch/nnlite':>12s}")
        for i, (C, O, H) in enumerate(CONVS):
            N = args.batch_size
            x = rng.standard_normal((N, C, H, H), dtype=np.float32)
            w = rng.standard_normal((O, C, 3, 3), dtype=np.float32) * 0.1
            g = rng.standard_normal((N, O, H, H), dtype=np.float32)
            input_grad = i > 0                  # the first conv's input needs no gradient
            flops = 2 * N * O * H * H * C * 9 * (3 if input_grad else 2)
            t_nl = median_time(conv_nnlite(x, w, g, input_grad), args.repeats)
            row = f"({N}, {C}, {H}, {H}) -> {O}"
            row = f"{row:34s} {t_nl * 1e3:10.2f} {flops / t_nl / 1e9:8.1f}"
            if torch:
                t_t = median_time(conv_torch(torch, x, w, g, input_grad), args.repeats)
                row += f" {t_t * 1e3:10.2f} {flops / t_t / 1e9:8.1f} {t_t / t_nl:11.2f}x"
            print(row)


if __name__ == "__main__":
    main()
