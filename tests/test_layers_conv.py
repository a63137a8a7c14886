"""Convolutional layers: gradient checks in float64, BatchNorm's running statistics and modes,
save/load round trips, summary shapes and parameter counts, errors naming layer and shapes."""
import numpy as np
import pytest

import nnlite as nl
from nnlite.testing import check_layer_gradients


def _x(rng, *shape):
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("make, shape", [
    (lambda: nl.Conv2D(3, 4, 3, rng=0), (2, 3, 6, 5)),
    (lambda: nl.Conv2D(1, 2, 5, stride=2, padding=2, bias=False, rng=0), (1, 1, 7, 8)),
    (lambda: nl.Conv2D(4, 6, 3, padding=(1, 0), dilation=2, groups=2, rng=0), (2, 4, 7, 6)),
    (lambda: nl.Conv2D(3, 3, 3, padding="same", groups=3, rng=0), (2, 3, 5, 5)),  # depthwise
    (lambda: nl.Conv2D(4, 2, 1, rng=0), (2, 4, 3, 3)),
    (lambda: nl.ConvTranspose2D(3, 2, 3, stride=2, padding=1, output_padding=1, rng=0),
     (2, 3, 4, 3)),
    (lambda: nl.ConvTranspose2D(4, 2, 2, stride=2, groups=2, rng=0), (1, 4, 3, 3)),
    (lambda: nl.MaxPool2D(2), (2, 3, 6, 7)),
    (lambda: nl.MaxPool2D(3, stride=2, padding=1), (1, 2, 7, 7)),
    (lambda: nl.AvgPool2D(3, stride=2, padding=1), (2, 2, 7, 6)),
    (lambda: nl.AvgPool2D((2, 3)), (2, 1, 4, 6)),
    (nl.GlobalAvgPool2D, (3, 4, 5, 2)),
    (lambda: nl.BatchNorm2d(3), (4, 3, 3, 5)),
    (lambda: nl.BatchNorm1d(5), (6, 5)),
    (lambda: nl.BatchNorm1d(2), (3, 2, 7)),
    (lambda: nl.Reshape((2, -1)), (3, 12)),
    (lambda: nl.Upsample(2), (2, 3, 3, 4)),
    (lambda: nl.Upsample((1, 3)), (1, 2, 2, 2)),
])
def test_gradients(rng, make, shape):
    check_layer_gradients(make(), _x(rng, *shape), rng=rng)


def test_batchnorm_gradients_in_eval_mode(rng):
    bn = nl.BatchNorm2d(3)
    bn._buffers["running_mean"][:] = [0.1, -0.2, 0.3]
    bn._buffers["running_var"][:] = [0.5, 2.0, 1.5]
    check_layer_gradients(bn, _x(rng, 2, 3, 4, 4), rng=rng, training=False)


def test_conv_transpose_is_the_adjoint_of_conv(rng):
    """⟨conv(x), y⟩ = ⟨x, convT(y)⟩ with the same weights and settings."""
    conv = nl.Conv2D(3, 4, 3, stride=2, padding=1, bias=False, rng=0).astype(np.float64)
    convT = nl.ConvTranspose2D(4, 3, 3, stride=2, padding=1, bias=False).astype(np.float64)
    convT.params["W"][...] = conv.params["W"]
    x, y = _x(rng, 2, 3, 7, 7), _x(rng, 2, 4, 4, 4)
    assert convT.forward(y).shape == x.shape
    assert np.isclose((conv.forward(x) * y).sum(), (x * convT.forward(y)).sum(), rtol=1e-12)


def test_layers_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = _x(rng, 2, 4, 9, 8)
    conv = nl.Conv2D(4, 6, 3, stride=2, padding=1, groups=2, rng=0).astype(np.float64)
    conv.params["b"][:] = rng.standard_normal(6)
    tconv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    tconv.weight.data = torch.tensor(conv.params["W"])
    tconv.bias.data = torch.tensor(conv.params["b"])
    np.testing.assert_allclose(conv.forward(x), tconv(torch.tensor(x)).detach(), rtol=1e-10)
    ct = nl.ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=1, rng=0)
    ct = ct.astype(np.float64)
    tct = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1).double()
    tct.weight.data = torch.tensor(ct.params["W"])
    tct.bias.data = torch.zeros(2, dtype=torch.float64)
    np.testing.assert_allclose(ct.forward(x), tct(torch.tensor(x)).detach(), rtol=1e-10,
                               atol=1e-12)


# ----------------------------------------------------------------------------- BatchNorm modes

def test_batchnorm_running_statistics_follow_pytorch(rng):
    torch = pytest.importorskip("torch")
    bn, tbn = nl.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for _ in range(3):
        x = (_x(rng, 4, 3, 5, 5) * 2 + 1).astype(np.float32)
        y = bn(x)
        ty = tbn(torch.tensor(x))
        np.testing.assert_allclose(y, ty.detach(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_mean"], tbn.running_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var, rtol=1e-5)
    bn.eval()
    tbn.eval()
    x = _x(rng, 2, 3, 5, 5).astype(np.float32)
    np.testing.assert_allclose(bn(x), tbn(torch.tensor(x)).detach(), rtol=1e-4, atol=1e-5)


def test_batchnorm_eval_uses_running_statistics_in_predict(rng):
    model = nl.Sequential([nl.Flatten(), nl.Linear(4, 3, rng=0), nl.BatchNorm1d(3)])
    model.compile(optimizer="sgd", loss="mse")
    x = _x(rng, 16, 4).astype(np.float32)
    model.fit(x, _x(rng, 16, 3).astype(np.float32), epochs=2, batch_size=8, verbose=0)
    bn = model.layers[2]
    assert not np.allclose(bn.buffers["running_mean"], 0)
    h = model.layers[1].forward(model.layers[0].forward(x))
    want = ((h - bn.buffers["running_mean"]) / np.sqrt(bn.buffers["running_var"] + bn.eps)
            * bn.params["gamma"] + bn.params["beta"])
    np.testing.assert_allclose(model.predict(x, batch_size=16), want, rtol=1e-4, atol=1e-5)


def test_batchnorm_training_needs_two_values():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\).*more than one value per channel"):
        nl.BatchNorm1d(3).forward(np.ones((1, 3)))
    assert nl.BatchNorm1d(3).forward(np.ones((1, 3)), training=False).shape == (1, 3)


# ----------------------------------------------------------------------------- models

def small_cnn():
    return nl.Sequential([
        nl.Reshape((1, 12, 12)),
        nl.Conv2D(1, 4, 3, padding="same", rng=0), nl.BatchNorm2d(4), nl.ReLU(),
        nl.MaxPool2D(2),
        nl.Conv2D(4, 6, 3, rng=1), nl.BatchNorm2d(6), nl.ReLU(),
        nl.AvgPool2D(2),
        nl.ConvTranspose2D(6, 2, 2, stride=2, rng=2), nl.Upsample(2),
        nl.GlobalAvgPool2D(), nl.BatchNorm1d(2), nl.Linear(2, 3, rng=3),
    ], input_shape=(144,))


def test_save_load_round_trip(tmp_path, rng):
    model = small_cnn()
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    x = rng.random((20, 144)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    model.save(tmp_path / "cnn.nnl")
    loaded = nl.load_model(tmp_path / "cnn.nnl")
    for k, v in model.buffers.items():           # the running statistics come back
        np.testing.assert_array_equal(loaded.buffers[k], v)
    assert len(model.buffers) == 6
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.save_weights(tmp_path / "w.safetensors")
    fresh = small_cnn()
    fresh.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_summary_shapes_and_counts():
    lines = []
    small_cnn().summary(print_fn=lines.append)
    text = "\n".join(lines)
    for shape, count in [("(None, 1, 12, 12)", "0"), ("(None, 4, 12, 12)", "40"),
                         ("(None, 4, 6, 6)", "0"), ("(None, 6, 4, 4)", "222"),
                         ("(None, 6, 2, 2)", "0"), ("(None, 2, 4, 4)", "50"),
                         ("(None, 2, 8, 8)", "0"), ("(None, 2)", "0"), ("(None, 3)", "9")]:
        assert any(shape in line and line.rstrip().endswith(count) for line in lines), \
            (shape, count, text)
    assert "(BatchNorm2d)" in text and "Non-trainable params: 24 " in text


@pytest.mark.parametrize("layer", [nl.Conv2D(3, 4, (3, 2), stride=2, padding=1, dilation=2,
                                             groups=1, bias=False),
                                   nl.ConvTranspose2D(2, 4, 3, output_padding=0, groups=2),
                                   nl.MaxPool2D(3, 2, 1), nl.AvgPool2D(2), nl.GlobalAvgPool2D(),
                                   nl.BatchNorm1d(4, momentum=0.2), nl.BatchNorm2d(3, eps=1e-3),
                                   nl.BatchNorm2d(3, activation="relu"),
                                   nl.BatchNorm1d(2, activation="relu"), nl.Reshape((1, 28, 28)), nl.Upsample((2, 3))])
def test_config_round_trip(layer):
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert {k: v.shape for k, v in again.params.items()} == \
        {k: v.shape for k, v in layer.params.items()}


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("layer, x, match", [
    (nl.Conv2D(3, 4, 3), np.zeros((2, 1, 8, 8)),
     r"Conv2D\(3 → 4, 3x3\): expected 3 input channels, got input of shape \(2, 1, 8, 8\)"),
    (nl.Conv2D(3, 4, 3), np.zeros((2, 8, 8, 3)), r"channels last\?"),
    (nl.Conv2D(3, 4, 5), np.zeros((2, 3, 4, 4)),
     r"Conv2D\(3 → 4, 5x5\): input \(2, 3, 4, 4\) is smaller than the kernel"),
    (nl.Conv2D(1, 4, 3), np.zeros((2, 28, 28)), r"4-D, got shape \(2, 28, 28\)"),
    (nl.MaxPool2D(3), np.zeros((1, 1, 2, 2)), r"MaxPool2D\(3x3\): input \(1, 1, 2, 2\) is smaller"),
    (nl.AvgPool2D(2), np.zeros((4, 4)), r"AvgPool2D\(2x2\): .*4-D, got shape \(4, 4\)"),
    (nl.BatchNorm2d(3), np.zeros((2, 4, 5, 5)),
     r"BatchNorm2d\(3\): expected input of shape \(batch, 3, height, width\), got \(2, 4, 5, 5\)"),
    (nl.BatchNorm1d(3), np.zeros((2, 3, 4, 4)), r"BatchNorm1d\(3\): expected input of shape"),
    (nl.Reshape((5, 5)), np.zeros((2, 24)), r"cannot reshape samples of shape \(24,\)"),
    (nl.Upsample(2), np.zeros((2, 3, 4)), r"Upsample\(x2, x2\): .*got shape \(2, 3, 4\)"),
])
def test_errors_name_layer_and_shapes(layer, x, match):
    with pytest.raises(ValueError, match=match):
        layer.forward(x)


@pytest.mark.parametrize("make, match", [
    (lambda: nl.Conv2D(3, 4, 3, groups=2), r"multiples of groups 2"),
    (lambda: nl.Conv2D(3, 4, 2, padding="same"), r"padding='same' needs"),
    (lambda: nl.Conv2D(3, 4, 0), r"kernel_size must be an int >= 1"),
    (lambda: nl.ConvTranspose2D(3, 4, 3, stride=2, output_padding=2), r"output_padding"),
    (lambda: nl.MaxPool2D(2, padding=2), r"at most half the kernel"),
    (lambda: nl.BatchNorm2d(3, momentum=2), r"momentum must be in \[0, 1\]"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_torch_interop_round_trip(rng):
    """export_torch/import_torch: Conv2d, ConvTranspose2d and BatchNorm (with its running
    statistics) load into the same torch.nn model and compute the same outputs."""
    torch = pytest.importorskip("torch")
    model = nl.Sequential([nl.Conv2D(2, 4, 3, padding=1, rng=0), nl.BatchNorm2d(4), nl.ReLU(),
                           nl.ConvTranspose2D(4, 3, 2, stride=2, rng=1), nl.GlobalAvgPool2D(),
                           nl.BatchNorm1d(3)])
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    model.forward(x)                         # move the running statistics off their start
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 3, 2, stride=2),
                                 torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1),
                                                     torch.nn.Flatten()),
                                 torch.nn.BatchNorm1d(3))
    state = {k: torch.from_numpy(v) for k, v in nl.io.torch_state_dict(model).items()}
    missing, unexpected = tmodel.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    tmodel.eval()
    model.eval()
    np.testing.assert_allclose(model(x), tmodel(torch.from_numpy(x)).detach(), rtol=1e-4,
                               atol=1e-5)
    fresh = nl.Sequential([nl.Conv2D(2, 4, 3, padding=1), nl.BatchNorm2d(4), nl.ReLU(),
                           nl.ConvTranspose2D(4, 3, 2, stride=2), nl.GlobalAvgPool2D(),
                           nl.BatchNorm1d(3)])
    nl.io.import_torch(fresh, tmodel)        # num_batches_tracked is ignored
    fresh.eval()
    np.testing.assert_array_equal(fresh(x), model(x))


# ----------------------------------------------------------------------------- fused ReLU

def _away_from_the_kink(bn, x, margin=1e-4):
    """x, after checking that no pre-activation γx̂ + β of ``bn`` is within ``margin`` of 0 (the
    central differences of the gradient check, steps of 1e-6, would straddle ReLU's kink
    there)."""
    axes = (0, *range(2, x.ndim))
    z = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + bn.eps)
    assert np.abs(z).min() > margin          # γ = 1, β = 0 at the start
    return x


@pytest.mark.parametrize("make, shape", [
    (lambda: nl.BatchNorm2d(3, activation="relu"), (4, 3, 3, 5)),
    (lambda: nl.BatchNorm1d(5, activation="relu"), (6, 5)),
    (lambda: nl.BatchNorm1d(2, activation="relu"), (3, 2, 7)),
])
def test_fused_relu_gradients(rng, make, shape):
    bn = make()
    check_layer_gradients(bn, _away_from_the_kink(bn, _x(rng, *shape)), rng=rng)


def test_fused_relu_gradients_in_eval_mode(rng):
    bn = nl.BatchNorm2d(3, activation="relu")
    bn._buffers["running_mean"][:] = [0.1, -0.2, 0.3]
    bn._buffers["running_var"][:] = [0.5, 2.0, 1.5]
    x = _x(rng, 2, 3, 4, 4)
    z = (x - bn._buffers["running_mean"].reshape(1, -1, 1, 1)) / np.sqrt(
        bn._buffers["running_var"].reshape(1, -1, 1, 1) + bn.eps)
    assert np.abs(z).min() > 1e-3
    check_layer_gradients(bn, x, rng=rng, training=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, shape", [(nl.BatchNorm2d, (4, 3, 7, 9)),
                                         (nl.BatchNorm1d, (9, 5))])
def test_fused_relu_is_batchnorm_then_relu_exactly(rng, dtype, kind, shape):
    """activation="relu" computes what BatchNorm then ReLU computes, bit for bit: outputs, input
    gradients, parameter gradients and running statistics, in training and in eval mode."""
    C = shape[1]
    fused, bn, relu = kind(C, activation="relu", dtype=dtype), kind(C, dtype=dtype), nl.ReLU()
    for layer in (fused, bn):
        layer.params["gamma"][:] = 1 + 0.3 * rng.standard_normal(C)
        layer.params["beta"][:] = 0.3 * rng.standard_normal(C)
        layer.params["gamma"][:] = fused.params["gamma"]    # the same values in both
        layer.params["beta"][:] = fused.params["beta"]
    for training in (True, False):
        x = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        y = fused.forward(x, training=training)
        np.testing.assert_array_equal(y, relu.forward(bn.forward(x, training=training)))
        np.testing.assert_array_equal(fused.backward(g), bn.backward(relu.backward(g)))
        for k in ("gamma", "beta"):
            np.testing.assert_array_equal(fused.grads[k], bn.grads[k])
        for k in ("running_mean", "running_var"):
            np.testing.assert_array_equal(fused.buffers[k], bn.buffers[k])


def test_fused_relu_config_summary_and_repr():
    bn = nl.BatchNorm2d(4, eps=1e-3, activation="relu")
    assert bn.get_config()["activation"] == "relu"
    assert "activation" not in nl.BatchNorm2d(4).get_config()      # the plain layer as before
    again = nl.BatchNorm2d.from_config(bn.get_config())
    assert again.activation == "relu" and again.get_config() == bn.get_config()
    assert bn._describe() == "BatchNorm2d(4, relu)"
    model = nl.Sequential([nl.Conv2D(1, 4, 3, rng=0), bn, nl.MaxPool2D(2)],
                          input_shape=(1, 8, 8))
    lines = []
    model.summary(print_fn=lines.append)
    assert any("batch_norm2d (BatchNorm2d+relu)" in line and "(None, 4, 6, 6)" in line
               for line in lines), "\n".join(lines)


def test_fused_relu_save_load_round_trip(tmp_path, rng):
    def cnn():
        return nl.Sequential([nl.Reshape((1, 8, 8)), nl.Conv2D(1, 4, 3, rng=0),
                              nl.BatchNorm2d(4, activation="relu"), nl.MaxPool2D(2),
                              nl.Flatten(), nl.Linear(36, 3, rng=1)], input_shape=(64,))
    model = cnn()
    model.compile(optimizer="adam", loss="cross_entropy")
    x = rng.random((20, 64)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, 20), epochs=1, batch_size=10, verbose=0)
    model.save(tmp_path / "cnn.nnl")
    loaded = nl.load_model(tmp_path / "cnn.nnl")
    assert loaded.layers[2].activation == "relu"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.save_weights(tmp_path / "w.safetensors")
    fresh = cnn()
    fresh.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


@pytest.mark.parametrize("activation", ["gelu", "ReLU", "linear"])
def test_fused_relu_bad_activation(activation):
    with pytest.raises(ValueError, match=r"BatchNorm2d: activation must be None or 'relu' \(a "
                                         r"fused ReLU\), got '"):
        nl.BatchNorm2d(3, activation=activation)


def test_fused_relu_torch_keys(rng):
    """BatchNorm2d(activation="relu") is nn.Sequential(nn.BatchNorm2d, nn.ReLU) in torch: its
    keys under "0."; the state loads there and the outputs agree."""
    torch = pytest.importorskip("torch")
    model = nl.Sequential([nl.Conv2D(2, 4, 3, padding=1, rng=0),
                           nl.BatchNorm2d(4, activation="relu")])
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    model.forward(x)
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1),
                                 torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.ReLU()))
    state = {k: torch.from_numpy(v) for k, v in nl.io.torch_state_dict(model).items()}
    assert "1.0.running_var" in state
    missing, unexpected = tmodel.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    tmodel.eval()
    model.eval()
    np.testing.assert_allclose(model(x), tmodel(torch.from_numpy(x)).detach(), rtol=1e-4,
                               atol=1e-5)
