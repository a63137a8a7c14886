"""VAE and GAN training speed (and the VAE's test -ELBO): nnlite vs PyTorch (CPU).

The models of ``examples/vae.py`` (784-400-(20+20) / 20-400-784, batch 128, Adam 1e-3, the
-ELBO written out) and ``examples/gan.py`` (G 64-256-512-784, D 784-512-256-1, batch 64 real
+ 64 fake, two Adams lr 2e-4 beta1 0.5, non-saturating loss), the same in torch, the same
threads and batches. Timed: ``--batches`` training steps ("an epoch" of fixed length, best of
``--repeats``), data already in memory. nnlite's side runs the examples' own step functions.

``--elbo-epochs N`` also trains both VAEs N full epochs on MNIST and prints the test -ELBO
(nats per image, one z per test image from a fixed seed) after each, for the README's
"within 2 nats of PyTorch" check.

    python benchmarks/bench_generative.py --threads 2
    python benchmarks/bench_generative.py --threads 2 --elbo-epochs 10
"""
import argparse
import importlib.util
import os
import sys
import time

import _common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for both (default: 2)")
    p.add_argument("--batches", type=int, default=100,
                   help="training steps per timed run (default: 100)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default: 3)")
    p.add_argument("--elbo-epochs", type=int, default=0,
                   help="also train both VAEs this many epochs, print the test -ELBO (default: 0)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $NNLITE_DATA, ...)")
    p.add_argument("--only", default="vae,gan", help="comma-separated subset (default: vae,gan)")
    _common.add_twins_arg(p)
    return p.parse_args()


ARGS = parse_args()
_common.set_threads(ARGS.threads)         # before numpy and torch start their pools

import numpy as np

_common.repo_nnlite(only_if_missing=True, allow_twins=ARGS.allow_twins)
import nnlite as nl


def example(name):
    path = os.path.join(_common.REPO, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def batches(x, size, n, seed=0):
    """``n`` batches of ``size`` rows, cycling through a permutation of ``x``."""
    order = np.random.default_rng(seed).permutation(len(x))
    per = len(x) // size
    return [x[order[(i % per) * size:(i % per + 1) * size]] for i in range(n)]


# -- VAE -----------------------------------------------------------------------------------
def nnlite_vae(seed=0):
    vae = example("vae")
    nl.random.seed(seed)
    enc, dec = vae.build(20, 400)
    opt, rng = nl.optim.Adam(lr=1e-3), np.random.default_rng(seed)
    return (lambda xb: vae.vae_step(enc, dec, opt, xb, rng),
            lambda x: vae.test_elbo(enc, dec, x, seed)[0])


def torch_vae(torch, seed=0):
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 40))
    dec = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)

    def neg_elbo(x, eps):
        mu, log_var = enc(x).chunk(2, dim=1)
        logits = dec(mu + torch.exp(0.5 * log_var) * eps)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = -0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum() / len(x)
        return rec + kl

    def step(xb):
        x = torch.from_numpy(xb)
        loss = neg_elbo(x, torch.randn(len(x), 20))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def test(x, batch_size=1000):
        rng, total = np.random.default_rng(seed), 0.0
        with torch.no_grad():
            for lo in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[lo:lo + batch_size])
                eps = torch.from_numpy(rng.standard_normal((len(xb), 20)).astype(np.float32))
                total += neg_elbo(xb, eps).item() * len(xb)
        return total / len(x)

    return step, test


# -- GAN -----------------------------------------------------------------------------------
def nnlite_gan(seed=0):
    gan = example("gan")
    nl.random.seed(seed)
    model = gan.GAN(*gan.build(64), 2e-4, 64, np.random.default_rng(seed))
    return model.step


def torch_gan(torch, seed=0):
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
                      nn.Linear(512, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256),
                      nn.LeakyReLU(0.2), nn.Linear(256, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(real):
        n = len(real)
        with torch.no_grad():
            fake = G(torch.randn(n, 64))
        x = torch.cat([torch.from_numpy(real), fake])
        t = torch.cat([torch.ones(n, 1), torch.zeros(n, 1)])
        d_loss = F.binary_cross_entropy_with_logits(D(x), t)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)                     # frozen for the generator's step
        logits = D(G(torch.randn(n, 64)))
        g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones(n, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        return d_loss.item(), g_loss.item()

    return step


def timed(step, data, repeats):
    def run():
        for xb in data:
            step(xb)
    step(data[0])                                  # warm-up (first-call allocations)
    return best(run, repeats)


def main():
    torch = _common.import_torch(ARGS.threads)
    nl.ops.set_num_threads(ARGS.threads)
    (x, _), (x_test, _) = nl.datasets.load_mnist(ARGS.data_dir, allow_sample=True)
    x01 = x.reshape(len(x), -1).astype(np.float32) / 255
    x_test01 = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    only = set(ARGS.only.split(","))
    print(f"threads {ARGS.threads}, {ARGS.batches} steps per timed run, best of "
          f"{ARGS.repeats}; torch {torch.__version__ if torch else 'not installed'}")
    print(f"{'model':<6} {'batch':>5} {'nnlite s':>9} {'torch s':>9} {'nnlite/torch':>13}")
    rows = []
    if "vae" in only:
        data = batches(x01, 128, ARGS.batches)
        t_nl = timed(nnlite_vae()[0], data, ARGS.repeats)
        t_t = timed(torch_vae(torch)[0], data, ARGS.repeats) if torch else float("nan")
        rows.append(("vae", 128, t_nl, t_t))
    if "gan" in only:
        data = batches(x01 * 2 - 1, 64, ARGS.batches)
        t_nl = timed(nnlite_gan(), data, ARGS.repeats)
        t_t = timed(torch_gan(torch), data, ARGS.repeats) if torch else float("nan")
        rows.append(("gan", 64, t_nl, t_t))
    for name, bs, a, b in rows:
        print(f"{name:<6} {bs:>5} {a:>9.3f} {b:>9.3f} {a / b:>13.2f}")
    if ARGS.elbo_epochs:
        print(f"\nVAE test -ELBO (nats per image) after each of {ARGS.elbo_epochs} epochs, "
              f"batch 128, Adam 1e-3, {len(x)} training / {len(x_test)} test images:")
        sides = [("nnlite", nnlite_vae())] + ([("torch", torch_vae(torch))] if torch else [])
        curves = {}
        for name, (step, test) in sides:
            curves[name] = []
            for epoch in range(ARGS.elbo_epochs):
                for xb in batches(x01, 128, len(x01) // 128, seed=epoch):
                    step(xb)
                curves[name].append(test(x_test01))
                print(f"  {name:<6} epoch {epoch + 1:2d}: {curves[name][-1]:.2f}", flush=True)
        if torch:
            print(f"final: nnlite {curves['nnlite'][-1]:.2f}, torch {curves['torch'][-1]:.2f}, "
                  f"difference {curves['nnlite'][-1] - curves['torch'][-1]:+.2f} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
