"""A variational auto-encoder on MNIST (or Fashion-MNIST), its loss written out.

The course notes (card 26) describe the VAE: the encoder maps an image to a distribution in
the latent space, a mean and a standard deviation, not to one point. This is the model of
PyTorch's ``examples/vae`` (Kingma & Welling, 2014), as MLPs: encoder 784-400-(20 + 20),
decoder 20-400-784, ReLU, Adam lr 1e-3, batches of 128, 10 epochs. (A convolutional variant
can follow once nnlite has ``Conv2D``/``ConvTranspose2D``.)

The loss is the negative evidence lower bound (ELBO) per image, in nats::

    encoder(x) -> mu, log_var                     q(z|x) = N(mu, exp(log_var))
    z = mu + exp(log_var / 2) * eps, eps ~ N(0, I)     the reparameterisation trick
    decoder(z) -> logits                          p(x|z) = Bernoulli(sigmoid(logits))
    -ELBO = sum_pixels BCE(logits, x)             reconstruction, -log p(x|z)
            + KL(q(z|x) || N(0, I))               = -1/2 sum(1 + log_var - mu^2 - exp(log_var))

and the step is written by hand (:func:`elbo_and_grads`, then ``backward`` through the
decoder and the encoder), so every gradient is visible. The test -ELBO, an upper bound on
-log p(x) in nats, is printed per epoch.

Pictures in ``--out-dir``: ``reconstructions.png`` (rows of test inputs, each above its
reconstruction), ``samples.png`` (decoded z ~ N(0, I)); with ``--latent-dim 2`` also
``latent_manifold.png`` (the decoder over a grid of z) and ``latent_scatter.png`` (test means
coloured by class, needs matplotlib). ``--sample`` trains on the bundled 1000-image sample,
offline. ``python examples/vae.py --help`` lists the flags.
"""
import argparse
import os
import sys
import time

import numpy as np

import nnlite as nl


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fashion", action="store_true", help="train on Fashion-MNIST instead")
    p.add_argument("--sample", action="store_true",
                   help="use the bundled 1000 + 1000-image MNIST sample (offline, quick)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST .gz files "
                   "(default: $NNLITE_DATA, then the user cache, then a download)")
    p.add_argument("--epochs", type=int, default=10, metavar="N",
                   help="passes over the training images (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, metavar="N",
                   help="images per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate "
                   "(default: %(default)s)")
    p.add_argument("--latent-dim", type=int, default=20, metavar="N",
                   help="size of z; 2 also draws the latent space (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=400, metavar="N",
                   help="units of the hidden layer of encoder and decoder (default: %(default)s)")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="use only the first N training images (default: all)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the weights, the shuffling and the noise (default: %(default)s)")
    p.add_argument("--out-dir", default="vae_out", metavar="DIR",
                   help="folder for the pictures (default: %(default)s)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 quiet, 1 progress bar, 2 a line per epoch (default: %(default)s)")
    return p.parse_args(argv)


def load(args):
    if args.sample:
        (x, y), (x_test, y_test) = nl.datasets.load_mnist_sample()
    elif args.fashion:
        (x, y), (x_test, y_test) = nl.datasets.load_fashion_mnist(args.data_dir)
    else:
        (x, y), (x_test, y_test) = nl.datasets.load_mnist(args.data_dir, allow_sample=True)
    if args.train_size:
        x, y = x[:args.train_size], y[:args.train_size]
    # flat rows in [0, 1]: the Bernoulli likelihood's targets
    return ((x.reshape(len(x), -1).astype(np.float32) / 255, y),
            (x_test.reshape(len(x_test), -1).astype(np.float32) / 255, y_test))


def build(latent_dim, hidden):
    encoder = nl.Sequential([nl.Linear(784, hidden), nl.ReLU(),
                             nl.Linear(hidden, 2 * latent_dim)])       # -> [mu | log_var]
    decoder = nl.Sequential([nl.Linear(latent_dim, hidden), nl.ReLU(),
                             nl.Linear(hidden, 784)])                  # -> logits
    encoder.layers[0].needs_input_grad = False     # nothing uses d loss / d image
    return encoder, decoder


def sigmoid(z):
    """1 / (1 + exp(-z)), written as (1 + tanh(z / 2)) / 2: no exp to overflow."""
    return 0.5 * (1 + np.tanh(0.5 * z))


def elbo_and_grads(x, logits, mu, log_var, eps):
    """The negative ELBO per image (the batch mean) and its gradients.

    Parameters
    ----------
    x : (N, 784) targets in [0, 1];  logits : (N, 784) decoder output;
    mu, log_var, eps : (N, K) the encoder's heads and the noise that made z.

    Returns
    -------
    (loss, reconstruction, kl), (d_logits, d_mu_kl, d_log_var_kl, d_z_factor)
        ``loss = reconstruction + kl`` per image. The gradients of the batch mean: with
        respect to the logits; of the KL term with respect to mu and log_var; and
        ``dz/dlog_var = eps * exp(log_var / 2) / 2``, to chain the decoder's dz.
    """
    n = len(x)
    # BCE from logits, summed over pixels: max(l, 0) - l x + log(1 + exp(-|l|)) (no overflow)
    rec = (np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum() / n
    var = np.exp(log_var)
    kl = -0.5 * (1 + log_var - mu ** 2 - var).sum() / n
    d_logits = (sigmoid(logits) - x) / n
    d_mu_kl = mu / n
    d_log_var_kl = 0.5 * (var - 1) / n
    dz_dlog_var = 0.5 * eps * np.exp(0.5 * log_var)
    return (float(rec + kl), float(rec), float(kl)), (d_logits, d_mu_kl, d_log_var_kl, dz_dlog_var)


def vae_step(encoder, decoder, optimizer, x, rng, update=True):
    """Forward, -ELBO, backward (and an Adam step when ``update``); returns (loss, rec, kl)."""
    k = decoder.layers[0].params["W"].shape[0]
    encoder.zero_grad()
    decoder.zero_grad()
    h = encoder.forward(x, training=update)
    mu, log_var = h[:, :k], h[:, k:]
    eps = rng.standard_normal(mu.shape).astype(h.dtype)
    z = mu + np.exp(0.5 * log_var) * eps                        # reparameterisation
    logits = decoder.forward(z, training=update)
    terms, (d_logits, d_mu_kl, d_log_var_kl, dz_dlog_var) = elbo_and_grads(
        x, logits, mu, log_var, eps)
    if update:
        dz = decoder.backward(d_logits)                         # d loss / d z
        dh = np.concatenate([dz + d_mu_kl,                      # dz/dmu = 1
                             dz * dz_dlog_var + d_log_var_kl], axis=1)
        encoder.backward(dh.astype(h.dtype, copy=False))
        optimizer.step(nl.training.trainable_pairs(encoder, decoder))
    return terms


def test_elbo(encoder, decoder, x, seed, batch_size=1000):
    """The mean -ELBO over ``x`` (one z per image, a fixed noise seed: comparable runs)."""
    rng, total = np.random.default_rng(seed), np.zeros(3)
    for lo in range(0, len(x), batch_size):
        xb = x[lo:lo + batch_size]
        total += np.array(vae_step(encoder, decoder, None, xb, rng, update=False)) * len(xb)
    return total / len(x)


def decode(decoder, z):
    logits = decoder.forward(z.astype(np.float32), training=False)
    return sigmoid(logits).reshape(-1, 28, 28)


def pictures(args, encoder, decoder, x_test, y_test):
    os.makedirs(args.out_dir, exist_ok=True)
    k = args.latent_dim
    x8 = x_test[:32]
    h = encoder.forward(x8, training=False)
    rec = decode(decoder, h[:, :k])                             # the mean, no noise
    rows = [a for i in range(0, 32, 8) for a in (x8[i:i + 8].reshape(-1, 28, 28), rec[i:i + 8])]
    paths = [os.path.join(args.out_dir, "reconstructions.png"),
             os.path.join(args.out_dir, "samples.png")]
    nl.utils.save_image_grid(np.concatenate(rows), paths[0], nrow=8, scale=(0, 1))
    z = np.random.default_rng(args.seed + 1).standard_normal((64, k))
    nl.utils.save_image_grid(decode(decoder, z), paths[1], nrow=8, scale=(0, 1))
    if k == 2:
        g = np.linspace(-2.5, 2.5, 20)          # the decoder over a grid of the prior's bulk
        zz = np.stack(np.meshgrid(g, g[::-1]), axis=-1).reshape(-1, 2)
        paths.append(os.path.join(args.out_dir, "latent_manifold.png"))
        nl.utils.save_image_grid(decode(decoder, zz), paths[-1], nrow=20, pad=0, scale=(0, 1))
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("latent_scatter.png skipped: the scatter plot needs matplotlib "
                  "(pip install matplotlib)")
        else:
            mu = encoder.forward(x_test, training=False)[:, :2]
            fig, ax = plt.subplots(figsize=(6, 5))
            pts = ax.scatter(mu[:, 0], mu[:, 1], c=y_test, cmap="tab10", s=2)
            fig.colorbar(pts, ax=ax, label="class")
            ax.set_xlabel("z[0] (mean)")
            ax.set_ylabel("z[1] (mean)")
            paths.append(os.path.join(args.out_dir, "latent_scatter.png"))
            fig.savefig(paths[-1], dpi=120)
            plt.close(fig)
    return paths


def main(argv=None):
    args = parse_args(argv)
    (x, _), (x_test, y_test) = load(args)
    nl.random.seed(args.seed)
    encoder, decoder = build(args.latent_dim, args.hidden)
    optimizer = nl.optim.Adam(lr=args.lr)       # one optimizer over both models' parameters
    loader = nl.data.DataLoader(x, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    print(f"VAE 784-{args.hidden}-({args.latent_dim}+{args.latent_dim}) / "
          f"{args.latent_dim}-{args.hidden}-784 on {len(x)} images")
    history, t0 = [], time.perf_counter()
    for epoch in range(args.epochs):
        if args.verbose:
            print(f"Epoch {epoch + 1}/{args.epochs}")
        bar = nl.training.Progbar(len(loader), verbose=args.verbose)
        sums, seen = np.zeros(3), 0
        for step, (xb,) in enumerate(loader):
            sums += np.array(vae_step(encoder, decoder, optimizer, xb, rng)) * len(xb)
            seen += len(xb)
            logs = dict(zip(("loss", "rec", "kl"), sums / seen))
            bar.update(step + 1, logs)
        test = test_elbo(encoder, decoder, x_test, args.seed)
        logs.update(test_elbo=test[0], test_rec=test[1], test_kl=test[2])
        bar.update(len(loader), logs, finalize=True)
        history.append(float(test[0]))
        print(f"epoch {epoch + 1}: test -ELBO {test[0]:.2f} nats "
              f"(reconstruction {test[1]:.2f} + KL {test[2]:.2f})")
    seconds = time.perf_counter() - t0
    paths = pictures(args, encoder, decoder, x_test, y_test)
    print(f"{seconds:.1f}s training; pictures: {', '.join(paths)}")
    return {"test_elbo": history, "train_loss": float(logs["loss"]), "seconds": seconds,
            "pictures": paths}


if __name__ == "__main__":
    main()
    sys.exit(0)
