"""The low-level training step (nl.train_step, nl.frozen, trainable_pairs) and the VAE and
GAN examples built on it: a GAN step changes only the model it trains, the VAE's written-out
-ELBO has the gradient finite differences give and decreases on the bundled sample, and both
examples run briefly offline and leave their PNGs."""
import numpy as np
import pytest
from _scripts import load_script

import nnlite as nl


def mlp(sizes, seed):
    nl.random.seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nl.Linear(a, b), nl.Tanh()]
    return nl.Sequential(layers[:-1])


# -- train_step / frozen ---------------------------------------------------------------------
def test_train_step_matches_the_compiled_step():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 5)).astype(np.float32), rng.random((8, 2)).astype(np.float32)
    a, b = mlp([5, 4, 2], 1), mlp([5, 4, 2], 1)
    a.compile(optimizer=nl.optim.Adam(lr=0.01), loss="mse")
    want = a.train_step(x, y)
    mse, opt = nl.losses.MSE(), nl.optim.Adam(lr=0.01)
    got = nl.train_step(b, opt, x, lambda out: (mse(out, y), mse.backward()))
    assert got == pytest.approx(want)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


def gan_pair():
    G, D = mlp([3, 6, 4], 2), mlp([4, 5, 1], 3)
    return G, D


def test_generator_step_changes_only_the_generator():
    G, D = gan_pair()
    bce, opt = nl.losses.BinaryCrossEntropy(), nl.optim.Adam(lr=0.1)
    d_before, g_before = D.get_weights(), G.get_weights()
    z = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)

    def g_loss(fake):
        with nl.frozen(D):
            assert D.trainable is False
            logits = D.forward(fake)
            loss = bce(logits, np.ones_like(logits))
            return loss, D.backward(bce.backward())

    nl.train_step(G, opt, z, g_loss)
    assert D.trainable is True and "trainable" not in vars(D)     # put back
    for before, after in zip(d_before, D.get_weights()):
        np.testing.assert_array_equal(before, after)            # bit-identical
    assert all(not np.array_equal(p, q) for p, q in zip(g_before, G.get_weights()))


def test_discriminator_step_changes_only_the_discriminator():
    G, D = gan_pair()
    bce, opt = nl.losses.BinaryCrossEntropy(), nl.optim.Adam(lr=0.1)
    d_before, g_before = D.get_weights(), G.get_weights()
    rng = np.random.default_rng(1)
    fake = G.forward(rng.standard_normal((4, 3)).astype(np.float32), training=False)
    x = np.concatenate([rng.standard_normal((4, 4)).astype(np.float32), fake])
    t = np.repeat(np.array([[1.0], [0.0]], np.float32), 4, axis=0)
    nl.train_step(D, opt, x, lambda logits: (bce(logits, t), bce.backward()))
    for before, after in zip(g_before, G.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert all(not np.array_equal(p, q) for p, q in zip(d_before, D.get_weights()))


def test_generator_gradient_through_the_frozen_discriminator_is_right():
    """d loss / d G's weights, brought back through D, against finite differences (float64)."""
    G, D = gan_pair()
    G.astype(np.float64)
    D.astype(np.float64)
    z = np.random.default_rng(4).standard_normal((5, 3))
    bce = nl.losses.BinaryCrossEntropy()

    def loss():
        logits = D.forward(G.forward(z))
        return bce(logits, np.ones_like(logits))

    G.zero_grad()
    with nl.frozen(D):
        logits = D.forward(G.forward(z))
        bce(logits, np.ones_like(logits))
        G.backward(D.backward(bce.backward()))
    for key in ("0.W", "2.b"):
        p, g = G.params[key], G.grads[key]
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = loss()
            p[i] = old - 1e-6
            num[i] = (up - loss()) / 2e-6
            p[i] = old
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_trainable_false_on_a_layer_or_a_model():
    m = mlp([3, 4, 2], 0)
    assert len(nl.training.trainable_pairs(m)) == 4
    m.layers[0].trainable = False
    pairs = nl.training.trainable_pairs(m)
    assert len(pairs) == 2 and pairs[0][0] is m.layers[2].params["W"]
    m.layers[0].trainable = True
    with nl.frozen(m):
        assert nl.training.trainable_pairs(m) == []
        with pytest.raises(ValueError, match="no trainable parameters"):
            nl.train_step(m, nl.optim.SGD(lr=0.1), np.zeros((1, 3), np.float32),
                          lambda out: (0.0, out * 0))
    assert len(nl.training.trainable_pairs(m)) == 4


def test_train_step_errors():
    m, opt = mlp([3, 2], 0), nl.optim.SGD(lr=0.1)
    x = np.ones((2, 3), np.float32)
    w = m.get_weights()
    with pytest.raises(TypeError, match="optimizer must be"):
        nl.train_step(m, "adam", x, lambda out: (0.0, out))
    with pytest.raises(TypeError, match=r"return \(loss, dloss_dout\)"):
        nl.train_step(m, opt, x, lambda out: 1.0)
    with pytest.raises(ValueError, match=r"gradient has shape \(2, 1\).*output \(2, 2\)"):
        nl.train_step(m, opt, x, lambda out: (0.0, np.zeros((2, 1), np.float32)))
    with pytest.raises(FloatingPointError, match="loss became nan"):
        nl.train_step(m, opt, x, lambda out: (float("nan"), out))
    with pytest.raises(FloatingPointError, match="gradient norm became"):
        nl.train_step(m, opt, x, lambda out: (1.0, np.full_like(out, np.inf)))
    for a, b in zip(w, m.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- the VAE ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae():
    return load_script("examples/vae.py", "example_vae_test")


def test_vae_elbo_gradient_matches_finite_differences(vae):
    """The whole written-out step (reparameterisation, -ELBO, backward through decoder and
    encoder) in float64 with fixed noise, against central differences of the loss."""
    nl.random.seed(0)
    enc, dec = vae.build(latent_dim=2, hidden=5)
    enc.astype(np.float64)
    dec.astype(np.float64)
    rng = np.random.default_rng(0)
    x = rng.random((3, 784))
    noise_seed = 11

    def loss():
        return vae.vae_step(enc, dec, None, x, np.random.default_rng(noise_seed),
                            update=False)[0]

    class Capture:           # an "optimizer" that only keeps the gradients of the step
        def step(self, pairs):
            self.grads = [g.copy() for _, g in pairs]

    cap = Capture()
    vae.vae_step(enc, dec, cap, x, np.random.default_rng(noise_seed))
    pairs = nl.training.trainable_pairs(enc, dec)
    for idx in (0, 1, 3, 4, 6, 7):                  # W and b of every Linear, sampled entries
        p, g = pairs[idx][0], cap.grads[idx]
        picks = np.random.default_rng(idx).choice(p.size, size=min(p.size, 12), replace=False)
        for flat in picks:
            i = np.unravel_index(flat, p.shape)
            old = p[i]
            p[i] = old + 1e-5
            up = loss()
            p[i] = old - 1e-5
            down = loss()
            p[i] = old
            assert g[i] == pytest.approx((up - down) / 2e-5, rel=1e-4, abs=1e-6), (idx, i)


def test_vae_loss_decreases_on_the_bundled_sample(vae):
    (x, _), _ = nl.datasets.load_mnist_sample()
    x = x[:256].reshape(256, -1).astype(np.float32) / 255
    nl.random.seed(0)
    enc, dec = vae.build(latent_dim=8, hidden=64)
    opt, rng = nl.optim.Adam(lr=1e-3), np.random.default_rng(0)
    before = vae.test_elbo(enc, dec, x, 0)[0]
    for _ in range(3):
        for lo in range(0, 256, 32):
            vae.vae_step(enc, dec, opt, x[lo:lo + 32], rng)
    after = vae.test_elbo(enc, dec, x, 0)[0]
    assert before > 500 and after < before - 100, (before, after)


def test_vae_example_runs_offline_and_leaves_its_pictures(vae, tmp_path, capsys):
    out = tmp_path / "vae"
    r = vae.main(["--sample", "--epochs", "2", "--train-size", "300", "--hidden", "64",
                  "--latent-dim", "2", "--out-dir", str(out), "--verbose", "2"])
    text = capsys.readouterr().out
    assert "epoch 2: test -ELBO" in text and len(r["test_elbo"]) == 2
    assert r["test_elbo"][1] < r["test_elbo"][0]
    names = sorted(p.name for p in out.iterdir())
    assert {"reconstructions.png", "samples.png", "latent_manifold.png"} <= set(names)
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the GAN ---------------------------------------------------------------------------------
def test_gan_example_step_changes_each_model_in_its_turn(tmp_path):
    gan = load_script("examples/gan.py", "example_gan_test")
    nl.random.seed(0)
    model = gan.GAN(*gan.build(8), 2e-4, 8, np.random.default_rng(0))
    real = np.random.default_rng(1).uniform(-1, 1, (16, 784)).astype(np.float32)
    g0, d0 = model.G.get_weights(), model.D.get_weights()
    model.d_step(real)
    assert all(np.array_equal(a, b) for a, b in zip(g0, model.G.get_weights()))
    d1 = model.D.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(d0, d1))
    model.g_step(16)
    assert all(np.array_equal(a, b) for a, b in zip(d1, model.D.get_weights()))
    assert all(not np.array_equal(a, b) for a, b in zip(g0, model.G.get_weights()))


def test_gan_example_runs_offline_and_saves_a_grid_per_epoch(tmp_path, capsys):
    gan = load_script("examples/gan.py", "example_gan_run")
    out = tmp_path / "gan"
    r = gan.main(["--sample", "--epochs", "2", "--train-size", "256", "--out-dir", str(out),
                  "--verbose", "2"])
    assert sorted(p.name for p in out.iterdir()) == ["samples_epoch_001.png",
                                                     "samples_epoch_002.png"]
    assert len(r["history"]) == 2 and {"d_loss", "g_loss", "D(x)", "D(G(z))"} <= set(
        r["history"][0])
    assert all(np.isfinite(v) for h in r["history"] for v in h.values())
    assert "Epoch 2/2" in capsys.readouterr().out
