"""What the examples show a user: their ``--help``, their progress lines, EarlyStopping's line
in the MNIST example, and the GPT example's ``--resume`` with flags that override the
checkpoint."""
import re

import numpy as np
from _scripts import load_script

import nnlite as nl


def test_mnist_example_says_when_early_stopping_stops(monkeypatch, capsys):
    # random labels: the validation loss rises after an epoch or two and EarlyStopping stops
    rng = np.random.default_rng(0)
    data = [(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))
            for n in (400, 50)]
    monkeypatch.setattr(nl.datasets, "load_mnist", lambda *a, **k: data)
    load_script("examples/mnist_mlp.py").main(["--epochs", "30", "--verbose", "2"])
    out = capsys.readouterr().out
    assert "Epoch 30/30" not in out
    assert re.search(r"\nEarlyStopping: stopped at epoch (\d+) \(val_loss did not improve for 3 "
                     r"epochs; best \d\.\d{4} at epoch \d+\)\nEarlyStopping: restored the "
                     r"weights of epoch \d+\n", out), out
