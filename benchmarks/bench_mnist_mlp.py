"""MNIST-MLP training speed: nnlite vs PyTorch (CPU) vs a hand-written numpy MLP, one run.

The same 784-256-128-10 ReLU MLP, Adam (lr 1e-3), batch 64, cross-entropy, one epoch over
the 60 000 training images, the same number of threads for everyone. Reported: seconds per
epoch (best of --repeats) and the ratio to PyTorch. Data loading is outside the timing.

    python benchmarks/bench_mnist_mlp.py --threads 2        # torch optional: pip install torch==2.13.0

Thread counts must be set before numpy/torch start their pools, so this script re-executes
itself with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set.
"""
import argparse
import time

import _common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--only", default="nnlite,torch,numpy", help="comma-separated subset")
    _common.add_twins_arg(p)
    return p.parse_args()


ARGS = parse_args()
_common.reexec_with_threads(ARGS.threads)  # numpy and torch then start with that many threads

import numpy as np  # noqa: E402

_common.repo_nnlite(only_if_missing=True, allow_twins=ARGS.allow_twins)
import nnlite as nl  # noqa: E402


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_nnlite(x, y, args):
    nl.ops.set_num_threads(args.threads)
    nl.random.seed(0)
    model = nl.Sequential([nl.Flatten(), nl.Linear(784, 256), nl.ReLU(), nl.Linear(256, 128),
                           nl.ReLU(), nl.Linear(128, 10)])
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy", metrics=["accuracy"])
    return best_time(lambda: model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                                       verbose=0, seed=0), args.repeats)


def bench_torch(x, y, args):
    torch = _common.import_torch(args.threads, optional=False)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n, bs = len(x), args.batch_size

    def run():
        for _ in range(args.epochs):
            perm = torch.randperm(n)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
    return best_time(run, args.repeats), torch.__version__


def bench_numpy(x, y, args):
    """The same MLP by hand in numpy (OpenBLAS matmuls), float32, Adam: the baseline any
    library should beat."""
    rng = np.random.default_rng(0)
    sizes = [784, 256, 128, 10]
    W = [rng.uniform(-1, 1, (a, b)).astype(np.float32) * np.float32(np.sqrt(6 / a))
         for a, b in zip(sizes[:-1], sizes[1:])]
    b = [np.zeros(s, np.float32) for s in sizes[1:]]
    params = W + b
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    x2 = x.reshape(len(x), -1)
    n, bs = len(x), args.batch_size
    t = [0]

    def run():
        for _ in range(args.epochs):
            perm = rng.permutation(n)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                h0 = x2[idx]
                h1 = np.maximum(h0 @ W[0] + b[0], 0)
                h2 = np.maximum(h1 @ W[1] + b[1], 0)
                z = h2 @ W[2] + b[2]
                e = np.exp(z - z.max(1, keepdims=True))
                d = e / e.sum(1, keepdims=True)
                d[np.arange(len(idx)), y[idx]] -= 1
                d /= len(idx)
                g = [None] * 6
                g[2], g[5] = h2.T @ d, d.sum(0)
                d = (d @ W[2].T) * (h2 > 0)
                g[1], g[4] = h1.T @ d, d.sum(0)
                d = (d @ W[1].T) * (h1 > 0)
                g[0], g[3] = h0.T @ d, d.sum(0)
                t[0] += 1
                c1, c2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
                for p, gp, mp, vp in zip(params, g, m, v):
                    mp *= 0.9
                    mp += 0.1 * gp
                    vp *= 0.999
                    vp += 0.001 * gp * gp
                    p -= 1e-3 * (mp / c1) / (np.sqrt(vp / c2) + 1e-8)
    return best_time(run, args.repeats)


def main(args):
    (x, y), _ = nl.datasets.load_mnist(args.data_dir)
    x = (x.astype(np.float32) / 255).reshape(len(x), 28, 28)
    only = set(args.only.split(","))
    print(f"MNIST MLP 784-256-128-10, Adam, batch {args.batch_size}, {len(x)} images/epoch, "
          f"{args.threads} thread(s), best of {args.repeats}")
    print(f"nnlite {nl.__version__} (SIMD {nl.ops.simd_path()}), numpy {np.__version__}")
    rows = {}
    if "nnlite" in only:
        rows["nnlite"] = bench_nnlite(x, y, args)
    if "torch" in only:
        try:
            rows["torch"], tv = bench_torch(x, y, args)
            print(f"torch {tv}")
        except ImportError:
            print("torch not installed (pip install torch==2.13.0): skipped")
    if "numpy" in only:
        rows["numpy MLP"] = bench_numpy(x, y, args)
    ref = rows.get("torch")
    print(f"\n{'implementation':<16}{'s/epoch':>10}{'vs torch':>10}")
    for name, s in rows.items():
        per_epoch = s / args.epochs
        ratio = f"{s / ref:.2f}x" if ref else "-"
        print(f"{name:<16}{per_epoch:>10.3f}{ratio:>10}")
    return rows


if __name__ == "__main__":
    main(ARGS)
