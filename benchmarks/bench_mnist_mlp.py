"""MNIST-MLP training speed: nnlite vs PyTorch (CPU) vs a hand-written numpy MLP, one run.

The same 784-256-128-10 ReLU MLP, Adam (lr 1e-3), cross-entropy, batch 64, the same number of
threads for everyone. Timed: one training step (forward, loss, backward, Adam update) on a
batch of MNIST training images; the batches are cut beforehand, so data handling is outside
the timing. An epoch of 60 000 images is 938 such steps.

FLOPs per step (GF/s and % of peak), the GEMMs a step needs, with Σ = Σ_layers in·out =
784·256 + 256·128 + 128·10 = 234 752 and Σ' the same sum without the first layer (its input
needs no gradient) = 34 048: forward 2·B·Σ, weight gradients 2·B·Σ, input gradients 2·B·Σ';
in all 2·B·(2Σ + Σ') = 64.5 MFLOP at B = 64. The element-wise work (ReLU, softmax, Adam)
is not counted.

    python benchmarks/bench_mnist_mlp.py                   # 1 and 2 threads; torch optional
    python benchmarks/bench_mnist_mlp.py --quick           # random data, batch 8: does it run?

Timing and table: see benchmarks/_common.py (each library in its own block with a pause
before it, median / IQR / best, one child interpreter per thread count). This script takes
the installed nnlite when there is one (else this checkout's).
"""
import argparse
import sys

import _common

SIZES = [784, 256, 128, 10]


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=200, help="distinct batches cycled through")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--random-data", action="store_true",
                   help="random images of MNIST's shape instead of MNIST")
    p.add_argument("--only", default="nnlite,torch,numpy", help="comma-separated subset")
    return p


ARGS = _common.parse(parser(), budget=1.0, repeat=7,
                     quick={"batch_size": 8, "batches": 4, "random_data": True})
if _common.run_parent(ARGS, only_if_missing=True):
    sys.exit(0)

import numpy as np  # a child from here on: its thread variables are set

RUN = _common.start_child(ARGS, only_if_missing=True,
                          torch_wanted="torch" in ARGS.only.split(","))
import nnlite as nl

torch = RUN.torch


def step_flops(b):
    """GEMM FLOPs of one training step at batch ``b`` (see the docstring)."""
    s = sum(i * o for i, o in zip(SIZES[:-1], SIZES[1:]))
    s_after_first = s - SIZES[0] * SIZES[1]
    return 2.0 * b * (2 * s + s_after_first)


def cycle(batches):
    """A function returning the next batch each call, round and round."""
    i = [0]

    def next_batch():
        i[0] = (i[0] + 1) % len(batches)
        return batches[i[0]]
    return next_batch


def nnlite_step(batches):
    nl.random.seed(0)
    model = nl.Sequential([nl.Flatten(), nl.Linear(784, 256), nl.ReLU(), nl.Linear(256, 128),
                           nl.ReLU(), nl.Linear(128, 10)])
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
    nxt = cycle(batches)

    def step():
        x, y = nxt()
        return model.train_step(x, y)
    return step


def torch_step(batches):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    nxt = cycle([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches])

    def step():
        x, y = nxt()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return step


def numpy_step(batches):
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
    nxt = cycle([(x.reshape(len(x), -1), y) for x, y in batches])
    t = [0]

    def step():
        h0, yb = nxt()
        h1 = np.maximum(h0 @ W[0] + b[0], 0)
        h2 = np.maximum(h1 @ W[1] + b[1], 0)
        z = h2 @ W[2] + b[2]
        e = np.exp(z - z.max(1, keepdims=True))
        d = e / e.sum(1, keepdims=True)
        d[np.arange(len(yb)), yb] -= 1
        d /= len(yb)
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
    return step


def main(args):
    only = set(args.only.split(","))
    b = args.batch_size
    if args.random_data:
        rng = np.random.default_rng(0)
        x = rng.random((b * args.batches, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, b * args.batches)
        source = "random images of MNIST's shape"
    else:
        (x, y), _ = nl.datasets.load_mnist(args.data_dir)
        x = (x.astype(np.float32) / 255).reshape(len(x), 28, 28)
        source = f"MNIST training images ({len(x)} loaded)"
    perm = np.random.default_rng(0).permutation(len(x))[:b * args.batches]
    batches = [(np.ascontiguousarray(x[perm[i:i + b]]), np.ascontiguousarray(y[perm[i:i + b]]))
               for i in range(0, len(perm) - b + 1, b)]
    RUN.note(f"MNIST MLP 784-256-128-10, Adam, batch {b}, one training step per call over "
             f"{len(batches)} distinct batches of {source}; FLOPs per step = 2·B·(2Σ + Σ') = "
             f"{step_flops(b) / 1e6:.1f} M (GEMMs only; see the docstring); an epoch is "
             f"{-(-60000 // b)} steps; 'numpy' = a hand-written numpy MLP")
    fns = {"nnlite": nnlite_step(batches) if "nnlite" in only else None,
           "numpy": numpy_step(batches) if "numpy" in only else None,
           "torch": torch_step(batches) if torch is not None else None}
    RUN.time(f"train step B{b}", fns, flops=step_flops(b))
    RUN.finish()


if __name__ == "__main__":
    main(ARGS)
