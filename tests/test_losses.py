"""Losses: gradient checks, values by hand, label forms, extreme logits, errors."""
import re

import numpy as np
import pytest

from nnlite import losses
from nnlite.testing import check_loss_gradients


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (2, 3, 4)])
def test_regression_loss_gradients(rng, shape):
    p, t = rng.standard_normal(shape), rng.standard_normal(shape)
    check_loss_gradients(losses.MSE(), p, t)
    check_loss_gradients(losses.L1(), p, t)


@pytest.mark.parametrize("shape", [(1, 2), (7, 5), (2, 3, 4)])
def test_cross_entropy_gradients(rng, shape):
    z = rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], shape[:-1])
    check_loss_gradients(losses.CrossEntropy(), z, labels)
    soft = rng.random(shape)
    soft /= soft.sum(-1, keepdims=True)
    check_loss_gradients(losses.CrossEntropy(), z, soft)


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (5,)])
def test_bce_gradients(rng, shape):
    check_loss_gradients(losses.BinaryCrossEntropy(), 3 * rng.standard_normal(shape),
                         rng.random(shape))


# ----------------------------------------------------------------------------- values

def test_mse_and_l1_values():
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[1.5, 2.0], [1.0, 5.0]])
    mse, l1 = losses.MSE(), losses.L1()
    assert mse(p, t) == pytest.approx((0.25 + 0 + 4 + 1) / 4)
    np.testing.assert_allclose(mse.backward(), 2 * (p - t) / 4)
    assert l1(p, t) == pytest.approx((0.5 + 0 + 2 + 1) / 4)
    np.testing.assert_allclose(l1.backward(), [[-0.25, 0.0], [0.25, -0.25]])   # 0 at a tie
    # (N,) targets against (N, 1) predictions
    assert mse(np.ones((3, 1)), np.zeros(3)) == pytest.approx(1.0)


def test_cross_entropy_value_and_grad(rng):
    z = rng.standard_normal((6, 4))
    t = np.array([0, 3, 1, 1, 2, 0])
    ce = losses.CrossEntropy()
    want = -_log_softmax(z)[np.arange(6), t].mean()
    assert ce(z, t) == pytest.approx(want, rel=1e-12)
    p = np.exp(_log_softmax(z))
    np.testing.assert_allclose(ce.backward(), (p - np.eye(4)[t]) / 6, rtol=1e-10)


def test_one_hot_equals_integer_labels(rng):
    z = rng.standard_normal((8, 5)).astype(np.float32)
    t = rng.integers(0, 5, 8)
    a, b = losses.CrossEntropy(), losses.CrossEntropy()
    assert a(z, t) == pytest.approx(b(z, np.eye(5, dtype=np.float32)[t]), rel=1e-6)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-5, atol=1e-7)
    assert a.backward().dtype == np.float32


def test_cross_entropy_sequence_logits(rng):
    B, T, V = 2, 3, 7
    z = rng.standard_normal((B, T, V))
    t = rng.integers(0, V, (B, T))
    ce = losses.CrossEntropy()
    assert ce(z, t) == pytest.approx(losses.CrossEntropy()(z.reshape(-1, V), t.reshape(-1)))
    assert ce.backward().shape == (B, T, V)


def test_bce_value():
    z = np.array([[-2.0], [0.0], [3.0]])
    t = np.array([0.0, 1.0, 1.0])                        # (N,) against (N, 1)
    s = 1 / (1 + np.exp(-z[:, 0]))
    want = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean()
    bce = losses.BinaryCrossEntropy()
    assert bce(z, t) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(bce.backward()[:, 0], (s - t) / 3, rtol=1e-12)


def test_extreme_logits_stay_finite():
    z = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
    ce = losses.CrossEntropy()
    assert ce(z, np.array([0, 1])) == pytest.approx(0.0, abs=1e-6)
    assert ce(z, np.array([1, 0])) == pytest.approx((2000 + 2e4) / 2, rel=1e-5)
    assert np.all(np.isfinite(ce.backward()))
    assert ce(z, np.eye(3, dtype=np.float32)[[1, 0]]) == pytest.approx((2000 + 2e4) / 2, rel=1e-5)
    bce = losses.BCE()
    zb = np.array([1000.0, -1000.0], dtype=np.float32)
    assert bce(zb, np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-6)
    assert bce(zb, np.array([0.0, 1.0])) == pytest.approx(1000.0, rel=1e-6)
    assert np.all(np.isfinite(bce.backward()))


def test_nan_predictions_do_not_crash():
    assert np.isnan(losses.MSE()(np.array([np.nan, 1.0]), np.zeros(2)))
    assert np.isnan(losses.CrossEntropy()(np.array([[np.nan, 0.0]]), np.array([0])))


# ----------------------------------------------------------------------------- lookup, errors

@pytest.mark.parametrize("name,cls", [
    ("mse", losses.MSE), ("mean_squared_error", losses.MSE), ("l1", losses.L1),
    ("mae", losses.L1), ("cross_entropy", losses.CrossEntropy),
    ("categorical_crossentropy", losses.CrossEntropy),
    ("sparse_categorical_crossentropy", losses.CrossEntropy),
    ("bce", losses.BinaryCrossEntropy), ("binary_crossentropy", losses.BinaryCrossEntropy)])
def test_get_by_name(name, cls):
    assert type(losses.get(name)) is cls


def test_get_passes_objects_and_rejects_unknown():
    ce = losses.CrossEntropy()
    assert losses.get(ce) is ce
    assert type(losses.get(losses.MSE)) is losses.MSE
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    assert repr(ce) == "CrossEntropy()" and losses.MSE.from_config(ce.get_config())


def test_labels_out_of_range():
    msg = "CrossEntropy: labels must lie in [0, 3) for 3 classes (logits (4, 3)), " \
          "got out-of-range values [-1, 3, 5]"
    with pytest.raises(ValueError, match=re.escape(msg)):
        losses.CrossEntropy()(np.zeros((4, 3)), np.array([0, 3, -1, 5]))


def test_non_integer_labels():
    with pytest.raises(TypeError, match="CrossEntropy: integer labels"):
        losses.CrossEntropy()(np.zeros((2, 3)), np.array([0.5, 1.0]))


@pytest.mark.parametrize("loss,p,t,msg", [
    (losses.MSE(), (4, 2), (4, 3),
     "MSE: predictions have shape (4, 2) but targets have shape (4, 3)"),
    (losses.L1(), (4,), (5,), "L1: predictions have shape (4,) but targets have shape (5,)"),
    (losses.BCE(), (4, 2), (4,), "BinaryCrossEntropy: predictions have shape (4, 2) but targets "
                                 "have shape (4,)")])
def test_shape_mismatch(loss, p, t, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        loss(np.zeros(p), np.zeros(t))


def test_cross_entropy_shape_mismatch():
    with pytest.raises(ValueError, match=re.escape(
            "CrossEntropy: logits have shape (2, 3, 5), so targets must be integer labels of "
            "shape (2, 3) or probabilities of shape (2, 3, 5); got targets of shape (2, 5)")):
        losses.CrossEntropy()(np.zeros((2, 3, 5)), np.zeros((2, 5), dtype=int))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="MSE: backward\\(\\) called before forward"):
        losses.MSE().backward()
