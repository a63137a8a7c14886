"""Layers: gradient checks in float64, forward values vs plain numpy, configs, errors."""
import json
import re

import numpy as np
import pytest

import nnlite as nl
from nnlite.layers import Layer
from nnlite.testing import check_layer_gradients

GELU_K = np.sqrt(2 / np.pi)


def _x(rng, *shape):
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(rng, shape, bias):
    layer = nl.Linear(shape[-1], 6, bias=bias, rng=1)
    check_layer_gradients(layer, _x(rng, *shape), rng=rng)


@pytest.mark.parametrize("make", [nl.ReLU, lambda: nl.LeakyReLU(0.2), nl.Tanh, nl.Sigmoid,
                                  nl.GELU, nl.Softmax, nl.Identity, nl.Flatten])
@pytest.mark.parametrize("shape", [(1, 7), (7, 3), (2, 3, 4)])
def test_parameter_free_gradients(rng, make, shape):
    x = _x(rng, *shape)
    x[np.abs(x) < 1e-3] = 0.5           # keep away from ReLU's kink
    check_layer_gradients(make(), x, rng=rng)


def test_gradients_accumulate_and_input_grad_can_be_skipped(rng):
    layer = nl.Linear(4, 3, rng=0).astype(np.float64)
    x, dy = _x(rng, 5, 4), _x(rng, 5, 3)
    layer.forward(x)
    layer.backward(dy)
    once = layer.grads["W"].copy()
    layer.needs_input_grad = False
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.grads["W"], 2 * once)
    np.testing.assert_allclose(layer.grads["b"], 2 * dy.sum(0))


def test_backward_does_not_write_into_grad(rng):
    x = _x(rng, 4, 5)
    for layer in [nl.Linear(5, 5, rng=0), nl.ReLU(), nl.Softmax(), nl.Dropout(0.5, rng=0)]:
        layer.forward(x)
        g = _x(rng, 4, 5).astype(np.float32)
        g0 = g.copy()
        layer.backward(g)
        np.testing.assert_array_equal(g, g0)


# ----------------------------------------------------------------------------- fused activation
# Linear(act=...): y = act(xW + b), the activation computed with the bias (ops.bias_act) and its
# gradient with the bias gradient (ops.act_backward_bias_grad); the same as Linear → activation

FUSED = [("relu", 0.01, nl.ReLU), ("leaky_relu", 0.2, lambda: nl.LeakyReLU(0.2)),
         ("leaky_relu", -0.5, lambda: nl.LeakyReLU(-0.5)), ("tanh", 0.01, nl.Tanh),
         ("sigmoid", 0.01, nl.Sigmoid), ("gelu", 0.01, nl.GELU)]


@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act,alpha,_", FUSED)
def test_linear_fused_act_gradients(rng, shape, bias, act, alpha, _):
    layer = nl.Linear(shape[-1], 6, bias=bias, rng=1, act=act, alpha=alpha)
    layer.params.get("b", np.zeros(1))[:] = rng.standard_normal(6 if bias else 1)
    check_layer_gradients(layer, _x(rng, *shape), rng=rng)
    assert layer.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act,alpha,make", FUSED)
def test_linear_fused_act_is_linear_then_activation(rng, dtype, bias, act, alpha, make):
    fused = nl.Linear(5, 70, bias=bias, rng=3, dtype=dtype, act=act, alpha=alpha)
    plain = nl.Linear(5, 70, bias=bias, rng=3, dtype=dtype)
    if bias:
        fused.params["b"][:] = plain.params["b"][:] = rng.standard_normal(70)
    f = make()
    x = rng.standard_normal((2, 130, 5)).astype(dtype)      # 260 rows: several row chunks
    g = rng.standard_normal((2, 130, 70)).astype(dtype)
    y = fused.forward(x)
    want = f.forward(plain.forward(x))
    np.testing.assert_array_equal(y, want)                  # the same kernels, the same bits
    np.testing.assert_array_equal(fused.forward(x, training=False), want)    # inference: one pass
    fused.forward(x)
    dx = fused.backward(g)
    want_dx = plain.backward(f.backward(g))
    # dz is the same (same kernel), so are dx and dW; db is summed in another order
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(fused.grads["W"], plain.grads["W"])
    if bias:
        np.testing.assert_allclose(fused.grads["b"], plain.grads["b"],
                                   rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-4 if dtype == np.float32 else 1e-12)
    fused.backward(g)                                       # gradients accumulate
    np.testing.assert_allclose(fused.grads["W"], 2 * plain.grads["W"], rtol=1e-6)


def test_linear_fused_act_inference_keeps_no_cache_and_config_round_trips(rng):
    layer = nl.Linear(4, 3, act="gelu", rng=0)
    layer.forward(rng.standard_normal((2, 4)), training=False)
    assert layer._a is None and layer._x2 is None
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.ones((2, 3), np.float32))
    cfg = json.loads(json.dumps(layer.get_config()))
    assert cfg["act"] == "gelu" and "alpha" not in cfg
    clone = Layer.registry["Linear"].from_config(cfg)
    assert clone.act == "gelu" and repr(clone) == repr(layer)
    leaky = nl.Linear(4, 3, act="leaky_relu", alpha=0.3)
    assert Layer.registry["Linear"].from_config(leaky.get_config()).alpha == 0.3
    assert "act" not in nl.Linear(4, 3).get_config()            # the plain layer: as before
    assert nl.Linear(4, 3, act="none").act is None
    with pytest.raises(ValueError, match=r"Linear\(4 → 3\): unknown activation 'swish'"):
        nl.Linear(4, 3, act="swish")


def test_activation_fused_into_linear_passes_through(rng):
    fc, gelu = nl.Linear(4, 6, rng=0), nl.GELU()
    ref_y = gelu.forward(fc.forward(x := rng.standard_normal((3, 4))))
    assert gelu.fuse_into(fc) is gelu and gelu.fused and fc.act == "gelu"
    y = gelu.forward(fc.forward(x))
    np.testing.assert_array_equal(y, ref_y)
    g = rng.standard_normal((3, 6)).astype(np.float32)
    assert gelu.backward(g) is g
    with pytest.raises(RuntimeError, match="backward"):
        nl.GELU().fuse_into(nl.Linear(4, 6)).backward(g)


# ----------------------------------------------------------------------------- forward values

def test_linear_forward_matches_numpy(rng):
    layer = nl.Linear(5, 3, rng=0)
    x = _x(rng, 2, 4, 5)
    W, b = layer.params["W"], layer.params["b"]
    b += 0.5
    y = layer(x)
    assert y.shape == (2, 4, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y, x.astype(np.float32) @ W + b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_bias_ops_give_numpys_bits(rng, dtype):
    """The bias goes through ops.bias_act / ops.bias_grad: the same bits as y += b and
    db += g.sum(axis=0), which the layer did before."""
    layer = nl.Linear(70, 33, rng=0, dtype=dtype)
    layer.params["b"][:] = rng.standard_normal(33)
    x = rng.standard_normal((65, 70)).astype(dtype)
    y = layer.forward(x)
    want = nl.ops.gemm(x, layer.params["W"])
    want += layer.params["b"]
    np.testing.assert_array_equal(y, want)
    g = rng.standard_normal((65, 33)).astype(dtype)
    layer.grads["b"][:] = rng.standard_normal(33)
    db = layer.grads["b"].copy()
    layer.backward(g)
    db += g.sum(axis=0)
    np.testing.assert_array_equal(layer.grads["b"], db)


def test_activation_values(rng):
    x = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(nl.ReLU()(x), np.maximum(x, 0))
    np.testing.assert_allclose(nl.LeakyReLU(0.1)(x), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(nl.Tanh()(x), np.tanh(x))
    np.testing.assert_allclose(nl.Sigmoid()(x), 1 / (1 + np.exp(-x)))
    gelu = 0.5 * x * (1 + np.tanh(GELU_K * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(nl.GELU()(x), gelu, rtol=1e-6)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(nl.Softmax()(x), e / e.sum(), rtol=1e-6)
    np.testing.assert_array_equal(nl.Activation("linear")(x), x)


def test_sigmoid_and_softmax_extreme_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow is fine
        assert np.all(np.isfinite(nl.Sigmoid()(x)))
        np.testing.assert_allclose(nl.Softmax()(x), [[0, 0, 1]], atol=1e-7)


def test_activation_by_name():
    for name, cls in [("relu", nl.ReLU), ("leaky_relu", nl.LeakyReLU), ("tanh", nl.Tanh),
                      ("sigmoid", nl.Sigmoid), ("gelu", nl.GELU), ("softmax", nl.Softmax),
                      ("linear", nl.Identity)]:
        assert type(nl.Activation(name)) is cls
    assert nl.Activation("leaky_relu", negative_slope=0.3).alpha == 0.3
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        nl.Activation("swishy")


def test_flatten(rng):
    x = _x(rng, 3, 2, 4)
    f = nl.Flatten()
    y = f(x)
    np.testing.assert_array_equal(y, x.reshape(3, 8))
    assert f.backward(np.ones((3, 8))).shape == (3, 2, 4)
    assert f.output_shape((None, 28, 28)) == (None, 784)
    assert nl.Linear(784, 10).output_shape((None, 784)) == (None, 10)
    assert nl.Linear(4, 10).output_shape((2, 7, 4)) == (2, 7, 10)


def test_dtypes(rng):
    layer = nl.Linear(3, 2, rng=0)
    assert layer(np.ones((2, 3), dtype=np.int64)).dtype == np.float32       # int → layer dtype
    assert layer(np.ones((2, 3), dtype=np.float64)).dtype == np.float32     # the layer decides
    assert nl.ReLU()(np.ones(3, dtype=np.uint8)).dtype == np.float32
    assert nl.ReLU()(np.ones(3)).dtype == np.float64                        # no params: kept
    assert layer.astype(np.float64)(np.ones((2, 3), np.float32)).dtype == np.float64


def test_init_options():
    W = nl.Linear(1000, 50, rng=0).params["W"]
    assert np.abs(W).max() <= np.sqrt(6 / 1000) and abs(W.std() - np.sqrt(2 / 1000)) < 2e-3
    W = nl.Linear(1000, 50, init="glorot_uniform", rng=0).params["W"]
    assert np.abs(W).max() <= np.sqrt(6 / 1050)
    np.testing.assert_array_equal(nl.Linear(4, 3, rng=7).params["W"],
                                  nl.Linear(4, 3, rng=7).params["W"])
    for name in ["he_normal", "glorot_normal", "zeros"]:
        assert nl.init.get(name)(3, 2, rng=0).shape == (3, 2)
    with pytest.raises(ValueError, match="unknown initialiser"):
        nl.Linear(3, 2, init="nope")


# ----------------------------------------------------------------------------- dropout

def test_dropout_statistics_and_gradient(rng):
    d = nl.Dropout(0.3, rng=0)
    x = np.ones((200, 500), dtype=np.float32)
    y = d(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02                      # inverted: E[y] = x
    g = _x(rng, 200, 500).astype(np.float32)
    np.testing.assert_allclose(d.backward(g), g * y, rtol=1e-6)   # same mask, same scale


def test_dropout_eval_is_identity(rng):
    x = _x(rng, 4, 5)
    d = nl.Dropout(0.5)
    assert d(x, training=False) is x
    g = _x(rng, 4, 5)
    np.testing.assert_array_equal(d.backward(g), g)
    d.eval()
    np.testing.assert_array_equal(d(x), x)


@pytest.mark.parametrize("make", [lambda: nl.Dropout(0.3),
                                  lambda: nl.MultiHeadAttention(8, 2, dropout=0.3, rng=0)])
def test_dropout_finite_difference_gradient(rng, monkeypatch, make):
    """With the seed held fixed, a forward is a deterministic function of x (the mask is made
    from the seed), so the layers' backward, which makes the mask again, is checked by finite
    differences like any other layer's."""
    from nnlite.layers import attention, dropout
    for mod in (dropout, attention):
        monkeypatch.setattr(mod, "dropout_seed", lambda rng=None: 12345)
    layer = make()
    x = rng.standard_normal((2, 5, 8))
    y = layer.forward(x)
    assert (y == 0).any() and (y != 0).any()            # some dropped, some kept
    check_layer_gradients(layer, x, rng=rng)


def test_dropout_follows_library_seed():
    x = np.ones((10, 10))
    nl.random.seed(3)
    a = nl.Dropout(0.5)(x)
    nl.random.seed(3)
    np.testing.assert_array_equal(a, nl.Dropout(0.5)(x))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        nl.Dropout(1.0)


# ----------------------------------------------------------------------------- configs

@pytest.mark.parametrize("layer", [
    nl.Flatten(), nl.Linear(4, 3, bias=False, init="glorot_uniform", name="fc"), nl.FC(2, 2),
    nl.ReLU(), nl.LeakyReLU(0.2), nl.Tanh(), nl.Sigmoid(), nl.GELU(name="g"), nl.Softmax(),
    nl.Identity(), nl.Dropout(0.25)])
def test_config_round_trip(layer):
    cfg = json.loads(json.dumps(layer.get_config()))       # JSON-able
    clone = Layer.registry[type(layer).__name__].from_config(cfg)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert repr(clone) == repr(layer)
    for k, p in layer.params.items():
        assert clone.params[k].shape == p.shape and clone.params[k].dtype == p.dtype


def test_repr():
    assert repr(nl.Linear(784, 256)) == ("Linear(in_features=784, out_features=256, bias=True, "
                                         "init='he_uniform', dtype='float32')")
    assert repr(nl.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"


# ----------------------------------------------------------------------------- errors

def test_linear_wrong_feature_count():
    msg = "Linear(784 → 256): expected input with last dimension 784, got shape (32, 100)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        nl.Linear(784, 256)(np.zeros((32, 100)))
    with pytest.raises(ValueError, match=re.escape("Linear(784 → 256) 'fc1'")):
        nl.Linear(784, 256, name="fc1")(np.zeros((32, 100)))
    with pytest.raises(ValueError, match="last dimension 784"):
        nl.Linear(784, 256).output_shape((None, 100))


def test_linear_wrong_rank():
    with pytest.raises(ValueError, match=re.escape(
            r"Linear(784 → 10): expected input of shape (batch, ..., 784) with at least 2 "
            r"dimensions, got shape (784,)")):
        nl.Linear(784, 10)(np.zeros(784))


@pytest.mark.parametrize("layer", [nl.Linear(3, 2), nl.ReLU(), nl.Flatten(), nl.Softmax(),
                                   nl.Dropout(0.1), nl.GELU()])
def test_non_numeric_input(layer):
    name = type(layer).__name__
    msg = rf"{name}.*numeric array, got dtype <U1 with shape \(2, 3\)"
    with pytest.raises(TypeError, match=msg):
        layer(np.array([["a", "b", "c"]] * 2))
    with pytest.raises(TypeError, match=rf"{name}.*numeric array, got dtype object"):
        layer(np.array([[None, 1, 2]] * 2, dtype=object))


@pytest.mark.parametrize("layer", [nl.Linear(3, 2), nl.ReLU(), nl.Flatten(), nl.Softmax(),
                                   nl.Dropout(0.1), nl.Tanh(), nl.Identity()])
def test_backward_before_forward(layer):
    msg = rf"{type(layer).__name__}.*backward\(\) called before forward\(\)"
    with pytest.raises(RuntimeError, match=msg):
        layer.backward(np.zeros((2, 2)))


def test_backward_wrong_grad_shape():
    layer = nl.Linear(3, 2)
    layer(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=re.escape(
            "Linear(3 → 2): backward() got a gradient of shape (4, 3), expected (4, 2)")):
        layer.backward(np.zeros((4, 3)))


def test_gradient_check_reports_a_wrong_backward(rng):
    class Broken(nl.ReLU):
        def backward(self, grad_out):
            return 2 * super().backward(grad_out)

    with pytest.raises(AssertionError, match=r"gradient check failed for Broken.*\n  x: .*rel err"):
        check_layer_gradients(Broken(), _x(rng, 3, 4), rng=rng)


def test_linear_non_contiguous_input_and_grad(rng):
    layer = nl.Linear(5, 3, rng=0).astype(np.float64)
    x = _x(rng, 5, 4).T                         # (4, 5), a transposed view
    g = _x(rng, 3, 4).T
    y = layer(x)
    np.testing.assert_allclose(y, x @ layer.params["W"], rtol=1e-12)
    dx = layer.backward(g)
    np.testing.assert_allclose(dx, g @ layer.params["W"].T, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], x.T @ g, rtol=1e-12)
