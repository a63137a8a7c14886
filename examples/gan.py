"""A generative adversarial network on MNIST: two MLPs, two optimisers, alternating steps.

The course notes (card 26): the generator makes images from noise, the discriminator tells
them from real ones, and both improve against each other. This is the fully connected GAN of
Goodfellow et al. (2014) with the settings of DCGAN (Radford et al., 2016) that make it train
reliably: LeakyReLU(0.2) in the discriminator, a tanh output for images scaled to [-1, 1],
Adam with lr 2e-4 and beta1 0.5, and the non-saturating generator loss (maximise log D(G(z))
rather than minimise log(1 - D(G(z)))).

    generator      z (64) -> 256 -> 512 -> 784, ReLU, tanh
    discriminator  784 -> 512 -> 256 -> 1 (a logit), LeakyReLU(0.2)

Each step trains the discriminator on a batch of real images (target 1) and as many fakes
(target 0), then the generator through the frozen discriminator (target 1 for its fakes),
with :func:`nnlite.train_step` (see ``nnlite/training/step.py``). A convolutional variant
(DCGAN) can follow once nnlite has ``Conv2D``/``ConvTranspose2D``/``BatchNorm``.

``--out-dir`` gets ``samples_epoch_NNN.png`` after every epoch: the generator's images for one
fixed batch of noise, so you can watch it learn. ``--sample`` trains on the bundled
1000-image sample, offline (blurry blobs, not digits: too few images and steps).
``python examples/gan.py --help`` lists the flags.
"""
import argparse
import os
import sys
import time

import numpy as np

import nnlite as nl


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sample", action="store_true",
                   help="use the bundled 1000-image MNIST sample (offline, quick)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST .gz files "
                   "(default: $NNLITE_DATA, then the user cache, then a download)")
    p.add_argument("--epochs", type=int, default=20, metavar="N",
                   help="passes over the training images (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="real images per step, and as many fakes (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-4,
                   help="Adam's learning rate, both models (default: %(default)s)")
    p.add_argument("--noise-dim", type=int, default=64, metavar="N",
                   help="size of the generator's input noise (default: %(default)s)")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="use only the first N training images (default: all)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the weights, the shuffling and the noise (default: %(default)s)")
    p.add_argument("--out-dir", default="gan_out", metavar="DIR",
                   help="folder for the sample grids (default: %(default)s)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 quiet, 1 progress bar, 2 a line per epoch (default: %(default)s)")
    return p.parse_args(argv)


def load(args):
    if args.sample:
        (x, _), _ = nl.datasets.load_mnist_sample()
    else:
        (x, _), _ = nl.datasets.load_mnist(args.data_dir, allow_sample=True)
    if args.train_size:
        x = x[:args.train_size]
    return x.reshape(len(x), -1).astype(np.float32) / 127.5 - 1     # [-1, 1], as tanh


def build(noise_dim):
    generator = nl.Sequential([nl.Linear(noise_dim, 256), nl.ReLU(),
                               nl.Linear(256, 512), nl.ReLU(),
                               nl.Linear(512, 784), nl.Tanh()])
    discriminator = nl.Sequential([nl.Linear(784, 512), nl.LeakyReLU(0.2),
                                   nl.Linear(512, 256), nl.LeakyReLU(0.2),
                                   nl.Linear(256, 1)])             # a logit: real or fake
    return generator, discriminator


class GAN:
    """The two models, their optimisers and the two steps.

    ``step(real)`` trains D once, then G once, and returns the losses and D's mean
    probabilities ``D(x)`` on real and ``D(G(z))`` on fake images.
    """

    def __init__(self, generator, discriminator, lr, noise_dim, rng):
        self.G, self.D, self.noise_dim, self.rng = generator, discriminator, noise_dim, rng
        self.opt_g = nl.optim.Adam(lr=lr, beta1=0.5)
        self.opt_d = nl.optim.Adam(lr=lr, beta1=0.5)
        self.bce = nl.losses.BinaryCrossEntropy()

    def noise(self, n):
        return self.rng.standard_normal((n, self.noise_dim)).astype(np.float32)

    def d_step(self, real):
        """Discriminator: real images toward 1, fakes toward 0 (one batch of both)."""
        n = len(real)
        fake = self.G.forward(self.noise(n), training=False)
        x = np.concatenate([real, fake])
        target = np.concatenate([np.ones((n, 1)), np.zeros((n, 1))]).astype(np.float32)
        probs = {}

        def loss_grad(logits):
            p = 0.5 * (1 + np.tanh(0.5 * logits))         # sigmoid, without overflow
            probs["real"], probs["fake"] = float(p[:n].mean()), float(p[n:].mean())
            return self.bce(logits, target), self.bce.backward()

        return nl.train_step(self.D, self.opt_d, x, loss_grad), probs

    def g_step(self, n):
        """Generator, non-saturating loss -log D(G(z)): its fakes toward 1, through D,
        which stays as it is (frozen)."""
        def loss_grad(fake):
            with nl.frozen(self.D):
                logits = self.D.forward(fake, training=True)
                loss = self.bce(logits, np.ones_like(logits))
                return loss, self.D.backward(self.bce.backward())    # d loss / d fake

        return nl.train_step(self.G, self.opt_g, self.noise(n), loss_grad)

    def step(self, real):
        d_loss, probs = self.d_step(real)
        g_loss = self.g_step(len(real))
        return {"d_loss": d_loss, "g_loss": g_loss, "D(x)": probs["real"],
                "D(G(z))": probs["fake"]}


def main(argv=None):
    args = parse_args(argv)
    x = load(args)
    nl.random.seed(args.seed)
    gan = GAN(*build(args.noise_dim), args.lr, args.noise_dim, np.random.default_rng(args.seed))
    fixed = np.random.default_rng(args.seed + 1).standard_normal((64, args.noise_dim))
    loader = nl.data.DataLoader(x, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                seed=args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    print(f"GAN: G {args.noise_dim}-256-512-784, D 784-512-256-1, {len(x)} images")
    history, paths, t0 = [], [], time.perf_counter()
    for epoch in range(args.epochs):
        if args.verbose:
            print(f"Epoch {epoch + 1}/{args.epochs}")
        bar = nl.training.Progbar(len(loader), verbose=args.verbose)
        sums, logs = None, {}
        for step, (real,) in enumerate(loader):
            out = gan.step(real)
            sums = {k: (sums[k] if sums else 0.0) + v for k, v in out.items()}
            logs = {k: v / (step + 1) for k, v in sums.items()}
            bar.update(step + 1, logs)
        bar.update(len(loader), logs, finalize=True)
        history.append(logs)
        images = gan.G.forward(fixed.astype(np.float32), training=False)
        paths.append(os.path.join(args.out_dir, f"samples_epoch_{epoch + 1:03d}.png"))
        nl.utils.save_image_grid(images.reshape(-1, 28, 28), paths[-1], nrow=8, scale=(-1, 1))
    seconds = time.perf_counter() - t0
    print(f"{seconds:.1f}s training; samples: {paths[-1] if paths else 'none'}")
    return {"history": history, "seconds": seconds, "pictures": paths}


if __name__ == "__main__":
    main()
    sys.exit(0)
