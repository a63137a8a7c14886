"""Optimizers vs hand-written steps, schedules, clipping, state_dict, a tiny regression."""
import json
import math

import numpy as np
import pytest

import nnlite as nl
from nnlite import optim
from nnlite.losses import MSE


def _problem(rng):
    p = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(3)]   # one gradient per step
    return p, grads


def _run(opt, p, grads):
    p = p.copy()
    for g in grads:
        opt.step([(p, g.copy())])
    return p


# ----------------------------------------------------------------------------- hand-computed steps

@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.0, False, 0.1),
                                                  (0.9, False, 0.0), (0.9, True, 0.05)])
def test_sgd_three_steps(rng, momentum, nesterov, wd):
    p0, grads = _problem(rng)
    lr, p, v = 0.1, p0.copy(), np.zeros_like(p0)
    for g in grads:
        g = g + wd * p
        if momentum:
            v = momentum * v + g
            g = g + momentum * v if nesterov else v
        p = p - lr * g
    got = _run(optim.SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=wd), p0, grads)
    np.testing.assert_allclose(got, p, rtol=1e-10)


@pytest.mark.parametrize("cls,wd", [(optim.Adam, 0.0), (optim.Adam, 0.1), (optim.AdamW, 0.1)])
def test_adam_three_steps(rng, cls, wd):
    p0, grads = _problem(rng)
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        if cls is optim.AdamW:
            p = p * (1 - lr * wd)                 # decoupled: shrink the weights directly
        else:
            g = g + wd * p                        # L2: into the gradient
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    got = _run(cls(lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd), p0, grads)
    np.testing.assert_allclose(got, p, rtol=1e-10)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_rmsprop_three_steps(rng, wd):
    p0, grads = _problem(rng)
    lr, alpha, eps = 0.01, 0.9, 1e-6
    p, s = p0.copy(), np.zeros_like(p0)
    for g in grads:
        g = g + wd * p
        s = alpha * s + (1 - alpha) * g * g
        p = p - lr * g / (np.sqrt(s) + eps)
    got = _run(optim.RMSprop(lr, alpha=alpha, eps=eps, weight_decay=wd), p0, grads)
    np.testing.assert_allclose(got, p, rtol=1e-10)


def test_defaults():
    assert optim.SGD().lr == 0.01
    a = optim.Adam()
    assert (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay) == (1e-3, 0.9, 0.999, 1e-8, 0.0)
    assert optim.AdamW().weight_decay == 0.01
    r = optim.RMSprop()
    assert (r.lr, r.alpha, r.eps) == (1e-2, 0.99, 1e-8)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optim.SGD(nesterov=True)


def test_float32_params_stay_float32(rng):
    p = rng.standard_normal(5).astype(np.float32)
    for opt in [optim.SGD(momentum=0.9), optim.Adam(), optim.AdamW(), optim.RMSprop()]:
        q = p.copy()
        opt.step([(q, np.ones(5, np.float32))])
        assert q.dtype == np.float32 and not np.array_equal(q, p)


def test_schedule_as_lr(rng):
    p0, grads = _problem(rng)
    sched = optim.StepDecay(0.1, step_size=1, gamma=0.5)
    want = p0 - 0.1 * grads[0] - 0.05 * grads[1] - 0.025 * grads[2]
    opt = optim.SGD(sched)
    np.testing.assert_allclose(_run(opt, p0, grads), want, rtol=1e-10)
    assert opt.iterations == 3 and opt.get_lr() == pytest.approx(0.0125)


# ----------------------------------------------------------------------------- schedules

def test_schedule_values():
    s = optim.StepDecay(1.0, step_size=10, gamma=0.1)
    assert [s(0), s(9), s(10), s(25)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    e = optim.ExponentialDecay(2.0, gamma=0.5)
    assert [e(0), e(1), e(3)] == pytest.approx([2.0, 1.0, 0.25])
    c = optim.CosineDecay(1.0, total_steps=110, warmup_steps=10, min_lr=0.1)
    assert c(0) == pytest.approx(1 / 11)             # warm-up starts above 0
    assert c(9) == pytest.approx(10 / 11)
    assert c(10) == pytest.approx(1.0)
    assert c(60) == pytest.approx(0.1 + 0.5 * 0.9)   # half way: cos(π/2) = 0
    assert c(110) == pytest.approx(0.1) and c(500) == pytest.approx(0.1)
    assert c(35) == pytest.approx(0.1 + 0.5 * (1 + math.cos(math.pi * 0.25)) * 0.9)
    assert optim.CosineDecay(1.0, 10)(0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        optim.CosineDecay(1.0, 10, warmup_steps=10)


def test_schedule_configs_round_trip():
    for s in [optim.StepDecay(0.1, 5, 0.5), optim.ExponentialDecay(0.1, 0.9),
              optim.CosineDecay(0.1, 100, 10, 0.01)]:
        clone = type(s).from_config(json.loads(json.dumps(s.get_config())))
        assert [clone(t) for t in (0, 7, 50)] == [s(t) for t in (0, 7, 50)]
    opt = optim.Adam(optim.CosineDecay(0.1, 100, 10), clipnorm=1.0)
    clone = optim.Adam.from_config(json.loads(json.dumps(opt.get_config())))
    assert repr(clone) == repr(opt) and clone.get_lr() == opt.get_lr()


# ----------------------------------------------------------------------------- clipping

def test_clip_grad_norm():
    g1, g2 = np.array([3.0, 0.0]), np.array([[0.0], [4.0]])
    norm = optim.clip_grad_norm([g1, g2], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(g1, [3 / 5, 0], rtol=1e-6)
    np.testing.assert_allclose(g2, [[0], [4 / 5]], rtol=1e-6)
    g = np.array([0.3, 0.4], dtype=np.float32)
    assert optim.clip_grad_norm([g], 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(g, np.array([0.3, 0.4], dtype=np.float32))   # untouched


def test_optimizer_clipnorm():
    p, g = np.zeros(2), np.array([30.0, 40.0])
    opt = optim.SGD(1.0, clipnorm=5.0)
    opt.step([(p, g)])
    np.testing.assert_allclose(p, [-3.0, -4.0], rtol=1e-6)
    assert opt.last_grad_norm == pytest.approx(50.0)


# ----------------------------------------------------------------------------- state

@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.9), optim.Adam,
                                  optim.AdamW, optim.RMSprop, optim.SGD])
def test_state_dict_round_trip(rng, make, tmp_path):
    p0, grads = _problem(rng)
    full = _run(make(), p0, grads)                   # three steps without interruption
    opt = make()
    p = _run(opt, p0, grads[:2])
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    with np.load(tmp_path / "opt.npz") as f:
        d = dict(f)
    fresh = make()
    fresh.load_state_dict(d)
    assert fresh.iterations == 2
    fresh.step([(p, grads[2].copy())])
    np.testing.assert_allclose(p, full, rtol=1e-10)


def test_state_mismatch_is_reported():
    opt = optim.Adam()
    opt.step([(np.zeros(2), np.ones(2))])
    with pytest.raises(ValueError, match="step\\(\\) got 2 parameters but its state holds 1"):
        opt.step([(np.zeros(2), np.ones(2)), (np.zeros(3), np.ones(3))])
    with pytest.raises(ValueError, match="parameter 0 has shape \\(3,\\)"):
        opt.step([(np.zeros(3), np.ones(3))])


def test_get():
    for name, cls in [("sgd", optim.SGD), ("adam", optim.Adam), ("AdamW", optim.AdamW),
                      ("rmsprop", optim.RMSprop)]:
        assert type(optim.get(name)) is cls
    a = optim.Adam()
    assert optim.get(a) is a
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        optim.get("lbfgs")


# ----------------------------------------------------------------------------- a tiny problem

@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.9),
                                  lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
                                  lambda: optim.Adam(0.05),
                                  lambda: optim.AdamW(0.05, weight_decay=1e-4),
                                  lambda: optim.RMSprop(0.01),
                                  lambda: optim.Adam(optim.CosineDecay(0.05, 300, 20), clipnorm=5.0)])
def test_solves_linear_regression(rng, make):
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    layer, loss, opt = nl.Linear(3, 1, init="glorot_uniform", rng=0), MSE(), make()
    for _ in range(300):
        layer.zero_grad()
        loss(layer(X), y)
        layer.backward(loss.backward())
        opt.step([(layer.params[k], layer.grads[k]) for k in layer.params])
    assert loss(layer(X), y) < 1e-3
    np.testing.assert_allclose(layer.params["b"], [0.3], atol=0.03)


# ----------------------------------------------------------------------------- fused Adam, decay_filter

def _adam_by_hand(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps), m, v


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
@pytest.mark.parametrize("decay_filter", [None, "matrices", lambda p: p.size > 4])
def test_adam_many_params_decay_filter(rng, cls, decay_filter):
    """A matrix, a bias and a LayerNorm-like gain, three steps, hand-computed per parameter."""
    shapes = [(3, 4), (4,), (2, 2, 2), (5,)]
    p0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.99, 1e-6, 0.1
    if decay_filter is None:
        decayed = [True, True, True, True]
    elif decay_filter == "matrices":
        decayed = [True, False, True, False]
    else:
        decayed = [True, False, True, True]
    want = []
    for i, p in enumerate(p0):
        m, v = np.zeros_like(p), np.zeros_like(p)
        for t, gs in enumerate(grads, start=1):
            p, m, v = _adam_by_hand(p, gs[i], m, v, t, lr, b1, b2, eps,
                                    wd if decayed[i] else 0.0, cls is optim.AdamW)
        want.append(p)
    opt = cls(lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, decay_filter=decay_filter)
    got = [p.copy() for p in p0]
    for gs in grads:
        opt.step([(p, g.copy()) for p, g in zip(got, gs)])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_adam_step_is_one_fused_call(rng, monkeypatch):
    calls = []
    real = optim.optimizers.ops.adam_update_many

    def spy(params, *args, **kwargs):
        calls.append((len(params), kwargs["weight_decays"]))
        return real(params, *args, **kwargs)

    monkeypatch.setattr(optim.optimizers.ops, "adam_update_many", spy)
    opt = optim.AdamW(weight_decay=0.1, decay_filter="matrices")
    ps = [rng.standard_normal((3, 4)).astype(np.float32), np.zeros(4, np.float32)]
    opt.step([(p, np.ones_like(p)) for p in ps])
    assert calls == [(2, [0.1, 0.0])]


def test_adam_fused_matches_per_parameter_kernel(rng):
    """float32, mixed shapes, clipping: the fused step equals ops.adam_update per parameter."""
    from nnlite import ops
    shapes = [(64, 32), (32,), (7,), (5, 3, 3)]
    ps = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ref = [p.copy() for p in ps]
    st = [(np.zeros_like(p), np.zeros_like(p)) for p in ps]
    opt = optim.AdamW(0.01, weight_decay=0.05, decay_filter="matrices", clipnorm=1.0)
    for t in range(1, 4):
        gs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        opt.step([(p, g.copy()) for p, g in zip(ps, gs)])
        optim.clip_grad_norm(gs, 1.0)
        for p, g, (m, v) in zip(ref, gs, st):
            ops.adam_update(p, g, m, v, lr=0.01, weight_decay=0.05 if p.ndim >= 2 else 0.0,
                            step=t, decoupled=True)
    for a, b in zip(ps, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [optim.SGD, optim.RMSprop])
def test_decay_filter_per_parameter_optimizers(cls):
    """SGD / RMSprop: a (2, 2) matrix is decayed, a (2,) bias is not (zero gradients, lr 0.5)."""
    w, b = np.ones((2, 2)), np.ones(2)
    opt = cls(0.5, weight_decay=0.1, decay_filter="matrices")
    opt.step([(w, np.zeros((2, 2))), (b, np.zeros(2))])
    np.testing.assert_array_equal(b, np.ones(2))       # gradient 0, no decay: unchanged
    if cls is optim.SGD:
        np.testing.assert_allclose(w, 1 - 0.5 * 0.1)   # p - lr·λp
    else:                                               # g = λp = 0.1, s = 0.01·g², p - lr·g/√s
        np.testing.assert_allclose(w, 1 - 0.5 * 0.1 / (np.sqrt(0.01 * 0.01) + 1e-8))


def test_decay_filter_config_and_errors():
    opt = optim.AdamW(weight_decay=0.1, decay_filter="matrices")
    cfg = opt.get_config()
    assert cfg["decay_filter"] == "matrices"
    clone = optim.AdamW.from_config(json.loads(json.dumps(cfg)))
    assert clone.decay_filter == "matrices" and repr(clone) == repr(opt)
    assert "decay_filter" not in optim.Adam().get_config()    # default: decay everything
    f = lambda p: p.ndim == 2  # noqa: E731
    assert optim.SGD(decay_filter=f).get_config()["decay_filter"] is f
    assert optim.RMSprop.from_config(optim.RMSprop(decay_filter=f).get_config()).decay_filter is f
    for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop):
        with pytest.raises(ValueError, match="decay_filter must be None"):
            cls(decay_filter="biases")
