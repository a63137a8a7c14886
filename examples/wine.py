"""Wine classification (178 samples, 13 features, 3 cultivars) with a 13-32-3 ReLU MLP and
cross-entropy, as in the course notes. Uses scikit-learn's bundled copy of the UCI wine data
(``pip install scikit-learn``, or ``pip install ".[examples]"`` in the nnlite checkout).

Run: ``python examples/wine.py``
"""
import argparse
import sys

import numpy as np

import nnlite as nl


def load_wine_split(test_fraction=0.25, seed=0):
    try:
        from sklearn.datasets import load_wine
    except ImportError:
        sys.exit("examples/wine.py needs scikit-learn for the wine data: "
                 "pip install scikit-learn (or, in the nnlite checkout, "
                 "pip install \".[examples]\")")
    data = load_wine()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):                       # stratified: each class split alike
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:round(len(idx) * test_fraction)]] = True
    x_train, y_train, x_test, y_test = x[~test], y[~test], x[test], y[test]
    mean, std = x_train.mean(0), x_train.std(0)  # statistics of the training part only
    return ((x_train - mean) / std, y_train), ((x_test - mean) / std, y_test), data.target_names


def main(argv=None):
    p = argparse.ArgumentParser(description="MLP on the wine data")
    p.add_argument("--hidden", type=int, default=32, metavar="N",
                   help="ReLU units in the hidden layer (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=60, metavar="N",
                   help="passes over the training samples (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-2,
                   help="Adam's learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the split, the weights and the shuffling (default: %(default)s)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0,
                   help="0 quiet, 1 progress bar, 2 a line per epoch (default: %(default)s)")
    args = p.parse_args(argv)

    (x, y), (x_test, y_test), names = load_wine_split(seed=args.seed)
    nl.random.seed(args.seed)
    model = nl.Sequential([nl.Linear(13, args.hidden), nl.ReLU(), nl.Linear(args.hidden, 3)])
    model.compile(optimizer=nl.optim.Adam(lr=args.lr), loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=args.epochs, verbose=args.verbose,
                        seed=args.seed)
    result = model.evaluate(x_test, y_test)
    print(f"wine: {len(x)} training / {len(x_test)} test samples, classes {[str(n) for n in names]}")
    print(f"train loss {history.history['loss'][-1]:.4f}  test loss {result['loss']:.4f}  "
          f"test accuracy {result['accuracy']:.4f}")
    return result


if __name__ == "__main__":
    main()
