"""The perceptron, from the course notes: a Linear layer with a step activation, trained
with Rosenblatt's rule. It learns AND and OR (linearly separable) and cannot learn XOR.

    y = step(x·w + b),   w ← w + lr·(t - y)·x,   b ← b + lr·(t - y)

Run: ``python examples/perceptron.py``
"""
import argparse

import numpy as np

import nnlite as nl

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
TARGETS = {
    "AND": np.array([0, 0, 0, 1], dtype=np.float32),
    "OR": np.array([0, 1, 1, 1], dtype=np.float32),
    "XOR": np.array([0, 1, 1, 0], dtype=np.float32),
}


def step(z):
    return (z >= 0).astype(np.float32)


def train_perceptron(x, t, lr=0.1, epochs=20, seed=0):
    """Train one perceptron; returns (layer, errors per epoch)."""
    layer = nl.Linear(2, 1, rng=np.random.default_rng(seed))
    errors = []
    for _ in range(epochs):
        n_wrong = 0
        for xi, ti in zip(x, t):
            y = step(layer.forward(xi[None, :], training=False))[0, 0]
            # the perceptron rule is not gradient descent: the step has no useful derivative
            layer.params["W"][:, 0] += lr * (ti - y) * xi
            layer.params["b"][0] += lr * (ti - y)
            n_wrong += int(y != ti)
        errors.append(n_wrong)
    return layer, errors


def main(argv=None):
    p = argparse.ArgumentParser(description="Perceptron on AND, OR and XOR")
    p.add_argument("--epochs", type=int, default=20, metavar="N",
                   help="passes over the four inputs (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.1,
                   help="learning rate of the perceptron rule (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the initial weights (default: %(default)s)")
    args = p.parse_args(argv)
    results = {}
    for name, t in TARGETS.items():
        layer, errors = train_perceptron(X, t, args.lr, args.epochs, args.seed)
        pred = step(layer.forward(X, training=False))[:, 0]
        acc = float((pred == t).mean())
        results[name] = acc
        verdict = "learned" if acc == 1.0 else "NOT learned (not linearly separable)"
        print(f"{name:>3}: predictions {pred.astype(int).tolist()} targets {t.astype(int).tolist()}"
              f"  accuracy {acc:.2f}  errors/epoch {errors[:6]}...{errors[-1]}  -> {verdict}")
    return results


if __name__ == "__main__":
    main()
