"""The examples run and reproduce (shortened) what the README states, and MNIST trains to
≥ 95 % on a subset through the public API."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from _offline import needs_data

import nnlite as nl
from nnlite.datasets import _download

REPO = Path(__file__).resolve().parents[1]
DATA = os.environ.get("NNLITE_DATA") or str(REPO.parent / "shared" / "data")
needs_mnist = needs_data("MNIST", "mnist/train-images-idx3-ubyte.gz")


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_perceptron_learns_and_or_not_xor(capsys):
    acc = load_example("perceptron").main([])
    assert acc["AND"] == 1.0 and acc["OR"] == 1.0
    assert acc["XOR"] < 1.0          # no line separates XOR: a single perceptron must fail
    assert "NOT learned" in capsys.readouterr().out


def test_regression_fits_the_sine(tmp_path):
    r = load_example("regression").main([])
    # noise variance is 1: the network must follow the sine, which a straight line cannot
    assert r["mse"] < 1.3 < r["line_mse"]


def test_wine_classifies():
    pytest.importorskip("sklearn", reason="the wine data ships with scikit-learn")
    r = load_example("wine").main(["--epochs", "40"])
    assert r["accuracy"] >= 0.9


@needs_mnist
def test_mnist_mlp_reaches_95_percent_on_a_subset():
    nl.random.seed(0)
    (x, y), (xt, yt) = nl.datasets.load_mnist(DATA)
    x, y = x[:20000].astype(np.float32) / 255, y[:20000]
    model = nl.Sequential([nl.Flatten(), nl.Linear(784, 256), nl.ReLU(), nl.Linear(256, 128),
                           nl.ReLU(), nl.Linear(128, 10)])
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, seed=0)
    result = model.evaluate(xt.astype(np.float32) / 255, yt)
    assert result["accuracy"] >= 0.95, result


@needs_mnist
def test_mnist_example_default_mode_short(tmp_path, capsys):
    path = tmp_path / "m.nnl"
    r = load_example("mnist_mlp").main(["--data-dir", DATA, "--epochs", "2", "--train-size",
                                        "6000", "--verbose", "0", "--save", str(path)])
    assert r["accuracy"] > 0.9
    again = nl.load_model(str(path))
    assert again.evaluate(*_test_set())["accuracy"] == pytest.approx(r["accuracy"])
    assert "Total params: 235,146" in capsys.readouterr().out


def _test_set():
    _, (xt, yt) = nl.datasets.load_mnist(DATA)
    return xt.astype(np.float32) / 255, yt


@needs_mnist
def test_mnist_example_course_mode_short(capsys):
    r = load_example("mnist_mlp").main(["--course", "--data-dir", DATA, "--epochs", "3",
                                        "--verbose", "0"])
    assert r["accuracy"] > 0.75      # 3 of the notes' 40 epochs on 1000 images
    assert "course notes: 0.8592" in capsys.readouterr().out


def test_mnist_example_offline_falls_back_to_the_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NNLITE_DATA", str(tmp_path / "nothing-here"))

    def no_network(url, timeout=None):
        raise OSError(f"no network: {url}")
    monkeypatch.setattr(_download, "_urlopen", no_network)
    with pytest.warns(UserWarning, match="sample"):
        r = load_example("mnist_mlp").main(["--epochs", "2", "--verbose", "0"])
    assert r["accuracy"] > 0.6       # 900 training images


def test_mnist_cnn_learns_on_the_bundled_sample(tmp_path, capsys):
    """Offline: 3 epochs on 900 sample images; ~0.71 measured, chance is 0.1."""
    path = tmp_path / "cnn.nnl"
    r = load_example("mnist_cnn").main(["--sample", "--epochs", "3", "--verbose", "0",
                                        "--save", str(path)])
    assert r["accuracy"] >= 0.6, r
    assert "MNIST test loss" in capsys.readouterr().out
    again = nl.load_model(str(path))      # conv, BatchNorm running statistics, pooling
    (_, _), (xt, yt) = nl.datasets.load_mnist_sample()
    assert again.evaluate(xt[:, None].astype(np.float32) / 255, yt)["accuracy"] == \
        pytest.approx(r["accuracy"])


def test_mnist_cnn_augments_training_batches_only(monkeypatch):
    """--fashion mirrors each training batch (fit's transform); digits are cropped, never
    mirrored; --no-augment turns it off; the test images are never transformed."""
    mod = load_example("mnist_cnn")
    assert repr(mod.augmentation(mod.parse_args(["--fashion"]))) == \
        "Compose([RandomHorizontalFlip(p=0.5)])"
    assert repr(mod.augmentation(mod.parse_args(["--augment"]))) == "Compose([RandomCrop(padding=2)])"
    assert mod.augmentation(mod.parse_args([])) is None
    assert mod.augmentation(mod.parse_args(["--fashion", "--no-augment"])) is None
    seen = []
    real_fit = nl.Sequential.fit
    def spy(self, *a, transform=None, **kw):
        seen.append(transform)
        return real_fit(self, *a, transform=transform, **kw)
    monkeypatch.setattr(nl.Sequential, "fit", spy)
    r = mod.main(["--sample", "--augment", "--epochs", "1", "--train-size", "256",
                  "--verbose", "0"])
    assert repr(seen) == "[Compose([RandomCrop(padding=2)])]" and 0 <= r["accuracy"] <= 1


@pytest.mark.slow
@needs_mnist
def test_mnist_example_full_reaches_98_percent():
    r = load_example("mnist_mlp").main(["--data-dir", DATA, "--verbose", "0"])
    assert r["accuracy"] >= 0.98
