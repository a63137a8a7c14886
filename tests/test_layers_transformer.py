"""Transformer layers (Embedding, PositionalEmbedding, LayerNorm, MultiHeadAttention, Residual):
gradient checks in float64, attention vs plain numpy, causality, errors, configs, a small GPT
saved, loaded and trained."""
import json
import re

import numpy as np
import pytest

import nnlite as nl
from nnlite.layers import Layer
from nnlite.testing import check_layer_gradients, numerical_gradient

B, T, C, H, V = 2, 5, 8, 2, 11      # batch, time, channels, heads, vocabulary


def _x(rng, *shape):
    return rng.standard_normal(shape)


def _ids(rng, *shape, vocab=V):
    return rng.integers(0, vocab, size=shape)


def tiny_gpt(vocab=V, block_size=8, dim=C, n_head=H, seed=0):
    """Embedding → PositionalEmbedding → attention block → MLP block → LayerNorm → Linear."""
    r = np.random.default_rng(seed)
    return nl.Sequential([
        nl.Embedding(vocab, dim, rng=r),
        nl.PositionalEmbedding(block_size, dim, rng=r),
        nl.Residual(nl.Sequential([nl.LayerNorm(dim), nl.MultiHeadAttention(dim, n_head, rng=r)])),
        nl.Residual(nl.Sequential([nl.LayerNorm(dim), nl.Linear(dim, 4 * dim, rng=r), nl.GELU(),
                                   nl.Linear(4 * dim, dim, rng=r)])),
        nl.LayerNorm(dim),
        nl.Linear(dim, vocab, init="glorot_uniform", rng=r),
    ])


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("causal", [True, False])
def test_attention_gradients(rng, causal):
    layer = nl.MultiHeadAttention(C, H, causal=causal, rng=1)
    for k in ("b_qkv", "b_o"):            # nonzero biases, so their paths are exercised
        layer.params[k][:] = rng.standard_normal(layer.params[k].shape)
    check_layer_gradients(layer, _x(rng, B, T, C), rng=rng)


@pytest.mark.parametrize("shape", [(3, 6), (2, 3, 6)])
def test_layernorm_gradients(rng, shape):
    layer = nl.LayerNorm(6)
    layer.params["gamma"][:] = 1 + 0.5 * rng.standard_normal(6)
    layer.params["beta"][:] = rng.standard_normal(6)
    check_layer_gradients(layer, _x(rng, *shape), rng=rng)


def test_layernorm_backward_adds_the_residual(rng):
    """LayerNorm.backward(g, residual=r): dx + r, the kernel adding r as it writes dx (one
    rounding fewer than dx + r: an FMA); dγ, dβ as without; r of the input's shape."""
    layer = nl.LayerNorm(C)
    x, g, r = (_x(rng, B, T, C).astype(np.float32) for _ in range(3))
    layer.forward(x)
    dx = layer.backward(g)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    np.testing.assert_allclose(layer.backward(g, residual=r), dx + r, rtol=1e-6, atol=1e-6)
    for k, v in layer.grads.items():
        np.testing.assert_array_equal(v, grads[k])
    with pytest.raises(ValueError, match=r"LayerNorm\(8\): residual must have the input's "
                                         r"shape \(2, 5, 8\), got \(2, 5, 7\)"):
        layer.backward(g, residual=r[..., :7])


def test_positional_embedding_gradients(rng):
    check_layer_gradients(nl.PositionalEmbedding(7, 4, rng=1), _x(rng, B, T, 4), rng=rng)


def test_residual_gradients(rng):
    check_layer_gradients(nl.Residual(nl.Linear(C, C, rng=1)), _x(rng, B, T, C), rng=rng)
    block = nl.Residual(nl.Sequential([nl.LayerNorm(C), nl.Linear(C, 2 * C, rng=1), nl.GELU(),
                                       nl.Linear(2 * C, C, rng=2)]))
    errs = check_layer_gradients(block, _x(rng, B, T, C), rng=rng)
    assert set(errs) == {"x", "0.0.gamma", "0.0.beta", "0.1.W", "0.1.b", "0.3.W", "0.3.b"}
    attn = nl.Residual(nl.Sequential([nl.LayerNorm(C), nl.MultiHeadAttention(C, H, rng=1)]))
    check_layer_gradients(attn, _x(rng, B, T, C), rng=rng)


def test_embedding_gradient_of_W(rng):
    layer = nl.Embedding(V, 4, rng=1).astype(np.float64)
    ids = _ids(rng, 3, 6)
    ids[0, :3] = 2                       # repeated ids must add up
    dy = _x(rng, 3, 6, 4)
    layer.forward(ids)
    assert layer.backward(dy) is None    # ids have no gradient
    num = numerical_gradient(lambda _: float((layer.forward(ids) * dy).sum()), layer.params["W"])
    np.testing.assert_allclose(layer.grads["W"], num, rtol=1e-6, atol=1e-8)
    layer.forward(ids)
    layer.backward(dy)                   # accumulates
    np.testing.assert_allclose(layer.grads["W"], 2 * num, rtol=1e-6, atol=1e-8)


def test_backward_does_not_write_into_grad(rng):
    x = _x(rng, B, T, C).astype(np.float32)
    block = nl.Residual(nl.Sequential([nl.LayerNorm(C), nl.MultiHeadAttention(C, H, rng=0)]))
    for layer in [nl.PositionalEmbedding(T, C, rng=0), nl.LayerNorm(C),
                  nl.MultiHeadAttention(C, H, dropout=0.3, rng=0), block]:
        layer.forward(x)
        g = _x(rng, B, T, C).astype(np.float32)
        g0 = g.copy()
        layer.backward(g)
        np.testing.assert_array_equal(g, g0, err_msg=repr(layer))


# ----------------------------------------------------------------------------- forward values

def _attention_numpy(x, p, n_head, causal):
    """The textbook computation, head by head."""
    Bx, Tx, Cx = x.shape
    hs = Cx // n_head
    qkv = x @ p["W_qkv"] + p["b_qkv"]
    q, k, v = qkv[..., :Cx], qkv[..., Cx:2 * Cx], qkv[..., 2 * Cx:]
    heads = []
    for h in range(n_head):
        sl = slice(h * hs, (h + 1) * hs)
        s = q[..., sl] @ np.swapaxes(k[..., sl], 1, 2) / np.sqrt(hs)      # (B, T, T)
        if causal:
            s = np.where(np.tril(np.ones((Tx, Tx), bool)), s, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        heads.append((e / e.sum(-1, keepdims=True)) @ v[..., sl])
    return np.concatenate(heads, -1) @ p["W_o"] + p["b_o"]


@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_numpy(rng, causal):
    layer = nl.MultiHeadAttention(C, H, causal=causal, rng=3)
    layer.params["b_qkv"][:] = rng.standard_normal(3 * C)
    x = _x(rng, B, T, C).astype(np.float32)
    want = _attention_numpy(x.astype(np.float64), {k: v.astype(np.float64)
                                                   for k, v in layer.params.items()}, H, causal)
    got = layer.forward(x)
    assert got.shape == (B, T, C) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)



def _attention_with_copies(layer, x, g):
    """(y, dx, grads) computed as the layer did before its heads became views: q, k, v, the
    kernel's output and its gradients copied between (B, nh, T, hs) and (B, T, nh, hs)."""
    ops, p = nl.ops, layer.params
    Bx, Tx, Cx = x.shape
    nh, hs = layer.n_head, Cx // layer.n_head
    x2 = x.reshape(Bx * Tx, Cx)
    qkv = ops.gemm(x2, p["W_qkv"])
    ops.bias_act(qkv, p["b_qkv"], out=qkv)
    q, k, v = np.ascontiguousarray(qkv.reshape(Bx, Tx, 3, nh, hs).transpose(2, 0, 3, 1, 4))
    out, lse = ops.attention(q, k, v, causal=layer.causal, return_lse=True)
    a2 = out.transpose(0, 2, 1, 3).reshape(Bx * Tx, Cx)
    y = ops.gemm(a2, p["W_o"])
    ops.bias_act(y, p["b_o"], out=y)
    g2 = g.reshape(Bx * Tx, Cx)
    da = ops.gemm_nt(g2, p["W_o"])
    dout = np.ascontiguousarray(da.reshape(Bx, Tx, nh, hs).transpose(0, 2, 1, 3))
    dq, dk, dv = ops.attention_backward(q, k, v, out, dout, lse=lse, causal=layer.causal)
    dqkv = np.stack([d.transpose(0, 2, 1, 3) for d in (dq, dk, dv)], 2).reshape(Bx * Tx, 3 * Cx)
    grads = {"W_qkv": ops.gemm_tn(x2, dqkv), "b_qkv": ops.bias_grad(dqkv),
             "W_o": ops.gemm_tn(a2, g2), "b_o": ops.bias_grad(g2)}
    return y.reshape(x.shape), ops.gemm_nt(dqkv, p["W_qkv"]).reshape(x.shape), grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_views_give_the_results_of_copies(rng, causal, dtype):
    """The heads are views (the kernel reads q, k, v out of the projection and writes its output
    and dq, dk, dv straight into their merged layouts): the numbers are those of contiguous
    copies, bit for bit with the compiled kernels (numpy's matmul, under the twins, may sum in
    another order for another layout)."""
    layer = nl.MultiHeadAttention(16, 4, causal=causal, rng=2, dtype=dtype)
    for k in ("b_qkv", "b_o"):
        layer.params[k][:] = rng.standard_normal(layer.params[k].shape)
    x = _x(rng, 3, 67, 16).astype(dtype)
    g = _x(rng, 3, 67, 16).astype(dtype)
    y = layer.forward(x)
    assert np.shares_memory(layer._out, layer._a2)                  # written in place
    dx = layer.backward(g)
    want_y, want_dx, want_grads = _attention_with_copies(layer, x, g)
    if nl.ops.compiled_kernels()["attention"] == "compiled":
        check = np.testing.assert_array_equal
    else:
        tol = 1e-5 if dtype == np.float32 else 1e-12
        def check(a, b):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    check(y, want_y)
    check(dx, want_dx)
    for name, w in want_grads.items():
        check(layer.grads[name], w)
    y_eval = layer.forward(x, training=False)
    check(y_eval, want_y)
    assert layer._qkv is None and layer._out is None and layer._a2 is None  # no cache

def test_attention_is_causal(rng):
    layer = nl.MultiHeadAttention(C, H, rng=0)
    x = _x(rng, 1, 6, C)
    y = layer.forward(x)
    x2 = x.copy()
    x2[0, 4] += 10.0                     # change token 4: outputs 0..3 must not move
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y2[0, :4], y[0, :4])
    assert not np.allclose(y2[0, 4:], y[0, 4:])
    # and the whole GPT: logits at t depend on ids 0..t only
    model = tiny_gpt()
    ids = _ids(rng, 1, 8)
    ids2 = ids.copy()
    ids2[0, 5] = (ids[0, 5] + 1) % V
    a, b = model.predict(ids), model.predict(ids2)
    np.testing.assert_array_equal(a[0, :5], b[0, :5])
    assert not np.allclose(a[0, 5:], b[0, 5:])


def test_non_causal_attention_sees_the_future(rng):
    layer = nl.MultiHeadAttention(C, H, causal=False, rng=0)
    x = _x(rng, 1, 4, C)
    y = layer.forward(x)
    x[0, 3] += 10.0
    assert not np.allclose(layer.forward(x)[0, 0], y[0, 0])


def test_layernorm_values(rng):
    x = _x(rng, 3, 4, 6) * 5 + 2
    y = nl.LayerNorm(6, eps=1e-5).astype(np.float64).forward(x)
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


def test_embeddings_values(rng):
    emb = nl.Embedding(V, 4, rng=0)
    ids = _ids(rng, B, T)
    y = emb.forward(ids)
    np.testing.assert_array_equal(y, emb.params["W"][ids])
    assert y.shape == (B, T, 4) and y.dtype == np.float32
    assert abs(emb.params["W"].std() - 0.02) < 0.01        # GPT-2 init
    pos = nl.PositionalEmbedding(7, 4, rng=0)
    np.testing.assert_allclose(pos.forward(y), y + pos.params["P"][:T])
    g = _x(rng, B, T, 4).astype(np.float32)
    assert pos.backward(g) is g          # passed through, untouched
    np.testing.assert_allclose(pos.grads["P"][:T], g.sum(0), rtol=1e-6)
    assert not pos.grads["P"][T:].any()


def test_attention_dropout(rng):
    layer = nl.MultiHeadAttention(C, H, dropout=0.5, rng=0)
    x = _x(rng, B, T, C)
    y_eval = layer.forward(x, training=False)
    y1, y2 = layer.forward(x), layer.forward(x)
    assert not np.allclose(y1, y2)                           # a new mask per call
    assert np.all((y2 == 0) | np.isclose(y2, 2 * y_eval, rtol=1e-5, atol=1e-6))
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), y_eval)


def test_residual_nesting_train_eval_zero_grad(rng):
    inner = nl.Sequential([nl.Linear(4, 4, rng=0), nl.Dropout(0.5, rng=0)])
    res = nl.Residual(inner)
    assert list(res.params) == ["0.0.W", "0.0.b"]
    assert res.params["0.0.W"] is inner.layers[0].params["W"]
    assert res.num_params() == 20
    x = _x(rng, 3, 4)
    res.forward(x)
    res.backward(np.ones((3, 4)))
    assert inner.layers[0].grads["W"].any()
    res.zero_grad()
    assert not inner.layers[0].grads["W"].any()
    res.eval()
    assert not res.training and not inner.training
    np.testing.assert_allclose(res.forward(x, training=True), res.forward(x, training=True))
    res.train()
    assert res.training and inner.training
    res.needs_input_grad = False
    res.forward(x)
    assert res.backward(np.ones((3, 4))) is None


def test_gpt_params_keys_and_summary(rng):
    model = tiny_gpt()
    keys = list(model.params)
    assert "2.0.1.W_qkv" in keys and "3.0.3.b" in keys and "0.W" in keys and "1.P" in keys
    assert len(keys) == len(model.grads) == 2 + 6 + 6 + 2 + 2
    lines = []
    model.build((8,))
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "embedding (Embedding)" in text and "multi" not in text   # nested: only top level
    assert "residual_1 (Residual)" in text and "(None, 8, 11)" in text
    assert f"Total params: {model.num_params():,}" in text


# ----------------------------------------------------------------------------- errors

def test_bad_inputs_give_clear_errors(rng):
    emb = nl.Embedding(V, 4)
    with pytest.raises(TypeError, match=re.escape(f"Embedding({V} → 4): expected integer ids, "
                                                  "got dtype float64")):
        emb.forward(np.zeros((2, 3)))
    ids = _ids(rng, 2, 3)
    ids[1, 2], ids[0, 0] = V, -1
    with pytest.raises(ValueError, match=re.escape(f"Embedding({V} → 4): ids must lie in "
                                                   f"[0, {V}) (vocabulary size {V}), got 2 "
                                                   f"out of range: -1, {V}")):
        emb.forward(ids)
    with pytest.raises(ValueError, match="sequence length 300 exceeds block_size 256"):
        nl.PositionalEmbedding(256, 4).forward(np.zeros((1, 300, 4)))
    with pytest.raises(ValueError, match=re.escape("PositionalEmbedding(256, 4): expected "
                                                   "input of shape (batch, T, 4), got (3, 4)")):
        nl.PositionalEmbedding(256, 4).forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dim 10 is not divisible by n_head 3"):
        nl.MultiHeadAttention(10, 3)
    mha = nl.MultiHeadAttention(C, H, name="attn")
    with pytest.raises(ValueError, match=re.escape(f"MultiHeadAttention(dim={C}, n_head={H}) "
                                                   f"'attn': expected input with last "
                                                   f"dimension {C}, got shape (2, 5, 6)")):
        mha.forward(np.zeros((2, 5, 6)))
    with pytest.raises(ValueError, match=re.escape("expected input of shape (batch, T, 8), got "
                                                   "(5, 8)")):
        mha.forward(np.zeros((5, 8)))
    with pytest.raises(ValueError, match=re.escape("LayerNorm(8): expected input with last "
                                                   "dimension 8, got shape (2, 7)")):
        nl.LayerNorm(8).forward(np.zeros((2, 7)))
    with pytest.raises(ValueError, match=re.escape("Residual(Linear): the inner layer maps "
                                                   "input of shape (2, 4) to (2, 3)")):
        nl.Residual(nl.Linear(4, 3)).forward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="Residual expects a Layer instance"):
        nl.Residual(nl.Linear)
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        nl.MultiHeadAttention(C, H).backward(np.zeros((2, 5, C)))
    with pytest.raises(ValueError, match=re.escape("sequence length 9 exceeds block_size 8")):
        tiny_gpt().build((9,))


# ----------------------------------------------------------------------------- configs, save/load

@pytest.mark.parametrize("layer", [
    nl.Embedding(V, 4, name="wte"), nl.PositionalEmbedding(16, 4),
    nl.LayerNorm(8, eps=1e-6), nl.MultiHeadAttention(8, 2, causal=False, dropout=0.1),
    nl.Residual(nl.Sequential([nl.LayerNorm(8), nl.MultiHeadAttention(8, 4)]), name="blk"),
    nl.Residual(nl.Linear(3, 3, bias=False)),
])
def test_config_round_trip(layer):
    cfg = json.loads(json.dumps(layer.get_config()))
    clone = Layer.registry[type(layer).__name__].from_config(cfg)
    assert clone.get_config() == layer.get_config()
    assert repr(clone) == repr(layer)
    assert {k: v.shape for k, v in clone.params.items()} == \
        {k: v.shape for k, v in layer.params.items()}


def test_gpt_save_load_round_trip(tmp_path, rng):
    model = tiny_gpt()
    model.compile(optimizer=nl.optim.Adam(lr=1e-3), loss="cross_entropy")
    ids = _ids(rng, 4, 8)
    model.fit(ids, np.roll(ids, -1, axis=1), batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "gpt.nnl"
    model.save(path)
    loaded = nl.load_model(path)
    assert list(loaded.params) == list(model.params)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


def test_gpt_fit_lowers_the_loss(rng):
    nl.random.seed(0)
    # next token of a fixed random sequence: learnable from (token, position)
    seq = _ids(rng, 64)
    starts = rng.integers(0, 64 - 9, size=64)
    x = np.stack([seq[s:s + 8] for s in starts])
    y = np.stack([seq[s + 1:s + 9] for s in starts])
    model = tiny_gpt(dim=16)
    model.compile(optimizer=nl.optim.Adam(lr=1e-2), loss="cross_entropy", metrics=["accuracy"])
    before = model.evaluate(x, y)["loss"]
    hist = model.fit(x, y, batch_size=16, epochs=8, verbose=0, seed=0)
    after = model.evaluate(x, y)["loss"]
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert after < 0.7 * before, (before, after)
