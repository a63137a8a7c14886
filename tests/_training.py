"""Small training fixtures shared by the tests of fit's habits and of what it prints."""
import numpy as np

import nnlite as nl


def blobs(n=120, d=4, k=3, seed=0):
    """(x, y): ``n`` points in ``d`` dimensions from ``k`` well-separated Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


class Score(nl.callbacks.Callback):
    """Puts a scripted 'score' into the epoch logs."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
