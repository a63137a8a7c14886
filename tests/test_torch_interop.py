"""nl.io.export_torch / import_torch: PyTorch's names and layouts, both ways.

The tests that need torch compare outputs against ``torch.nn`` modules built the same way
(``torch.nn.Sequential``; a minimal nanoGPT written here). Without torch they skip, unless
``NNLITE_REQUIRE_TORCH=1`` (set in CI), where a missing torch fails them. The rest need no torch.
"""
import os

import numpy as np
import pytest

import nnlite as nl
from nnlite.io import export_torch, import_torch, torch_keys, torch_state_dict
from nnlite.models.gpt_blocks import Block

TORCH_VERSION = "2.13.0"            # the version the bench/test extras pin


@pytest.fixture(scope="module")
def torch():
    if os.environ.get("NNLITE_REQUIRE_TORCH") == "1":
        try:
            import torch
        except ImportError as e:
            pytest.fail(f"NNLITE_REQUIRE_TORCH=1 but torch cannot be imported ({e}); install "
                        f"torch=={TORCH_VERSION} (pip install '.[bench]')")
    else:
        torch = pytest.importorskip("torch", reason=f"torch=={TORCH_VERSION} not installed "
                                    f"(NNLITE_REQUIRE_TORCH=1 turns this skip into a failure)")
    torch.manual_seed(0)
    return torch


def randomize(model, seed=0):
    """Every parameter random (biases and LayerNorm too), so no mapping error hides."""
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v[...] = rng.normal(0, 0.5, v.shape)
    return model


def randomize_torch(torch, module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module.eval()


def to_torch_dict(torch, arrays):
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def close(a, b, tol=2e-5):
    b = b.detach().numpy() if hasattr(b, "detach") else b
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))


# -- the models: nnlite and the same in torch.nn -------------------------------------------
def mlp():
    # the square Linear(16, 16): loaded without the transpose it would run, and be wrong
    return nl.Sequential([nl.Flatten(), nl.Linear(12, 16), nl.ReLU(), nl.Dropout(0.3),
                          nl.LayerNorm(16), nl.Linear(16, 16), nl.Tanh(),
                          nl.Sequential([nl.Linear(16, 7, bias=False), nl.GELU()]),
                          nl.Linear(7, 5)])


def torch_mlp(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Flatten(), tnn.Linear(12, 16), tnn.ReLU(), tnn.Dropout(0.3),
                          tnn.LayerNorm(16), tnn.Linear(16, 16), tnn.Tanh(),
                          tnn.Sequential(tnn.Linear(16, 7, bias=False),
                                         tnn.GELU(approximate="tanh")),
                          tnn.Linear(7, 5))


def embedder():
    return nl.Sequential([nl.Embedding(10, 8), nl.LayerNorm(8), nl.Linear(8, 8), nl.Sigmoid(),
                          nl.MultiHeadAttention(8, 2, causal=True), nl.Linear(8, 3)])


def torch_embedder(torch):
    tnn = torch.nn

    class SelfAttention(tnn.MultiheadAttention):        # its keys: in_proj_weight, out_proj.*
        def forward(self, x):
            mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
            return super().forward(x, x, x, attn_mask=mask, need_weights=False)[0]

    return tnn.Sequential(tnn.Embedding(10, 8), tnn.LayerNorm(8), tnn.Linear(8, 8),
                          tnn.Sigmoid(), SelfAttention(8, 2, batch_first=True), tnn.Linear(8, 3))


def nanogpt(torch, V, T, L, nh, C, head_bias=True, tied=False):
    """nanoGPT's model.py, reduced to what a state dict and a forward need: the same module
    names, a fused c_attn, GELU as nnlite's (tanh; nanoGPT's nn.GELU() is the exact one)."""
    tnn, F = torch.nn, torch.nn.functional

    class CausalSelfAttention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = tnn.Linear(C, 3 * C), tnn.Linear(C, C)

        def forward(self, x):
            B, t, _ = x.size()
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (z.view(B, t, nh, C // nh).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, t, C))

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.gelu = tnn.Linear(C, 4 * C), tnn.GELU(approximate="tanh")
            self.c_proj = tnn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class TBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = tnn.LayerNorm(C), CausalSelfAttention()
            self.ln_2, self.mlp = tnn.LayerNorm(C), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict({
                "wte": tnn.Embedding(V, C), "wpe": tnn.Embedding(T, C),
                "h": tnn.ModuleList([TBlock() for _ in range(L)]), "ln_f": tnn.LayerNorm(C)})
            self.lm_head = tnn.Linear(C, V, bias=head_bias)
            if tied:
                self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx):
            tr = self.transformer
            x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
            for block in tr.h:
                x = block(x)
            return self.lm_head(tr.ln_f(x))

    return GPT(), TBlock


# -- needs torch: outputs equal both ways --------------------------------------------------
@pytest.mark.parametrize("build, torch_build, make_x", [
    (mlp, torch_mlp, lambda r: r.normal(size=(4, 3, 4)).astype(np.float32)),
    (embedder, torch_embedder, lambda r: r.integers(0, 10, size=(3, 6))),
], ids=["mlp", "embedding+attention"])
def test_sequential_export_then_torch_loads(torch, tmp_path, build, torch_build, make_x):
    from safetensors.torch import load_file
    model, tm = randomize(build()), torch_build(torch).eval()
    export_torch(model, tmp_path / "m.safetensors")
    tm.load_state_dict(load_file(tmp_path / "m.safetensors"), strict=True)
    x = make_x(np.random.default_rng(1))
    with torch.no_grad():
        close(model.forward(x, training=False), tm(torch.from_numpy(x)))


@pytest.mark.parametrize("build, torch_build, make_x", [
    (mlp, torch_mlp, lambda r: r.normal(size=(4, 3, 4)).astype(np.float32)),
    (embedder, torch_embedder, lambda r: r.integers(0, 10, size=(3, 6))),
], ids=["mlp", "embedding+attention"])
@pytest.mark.parametrize("via", ["state_dict", "module", "file"])
def test_sequential_import_from_torch(torch, tmp_path, build, torch_build, make_x, via):
    model, tm = build(), randomize_torch(torch, torch_build(torch))
    if via == "file":
        from safetensors.torch import save_file
        save_file(tm.state_dict(), tmp_path / "t.safetensors")
        source = tmp_path / "t.safetensors"
    else:
        source = tm.state_dict() if via == "state_dict" else tm
    assert import_torch(model, source) == ([], [])
    x = make_x(np.random.default_rng(2))
    with torch.no_grad():
        close(model.forward(x, training=False), tm(torch.from_numpy(x)))


def test_square_linear_would_be_wrong_untransposed(torch):
    """The test above would catch a missing transpose: a square W and W.T differ."""
    lin = randomize(nl.Sequential([nl.Linear(16, 16)]))
    t = torch.nn.Sequential(torch.nn.Linear(16, 16))
    x = np.random.default_rng(3).normal(size=(5, 16)).astype(np.float32)
    naive = {"0.weight": torch.from_numpy(lin.params["0.W"].copy()),
             "0.bias": torch.from_numpy(lin.params["0.b"].copy())}
    t.load_state_dict(naive)                            # accepted: same shape
    with torch.no_grad():
        assert not np.allclose(lin.forward(x), t(torch.from_numpy(x)).numpy(), atol=1e-3)
    t.load_state_dict(to_torch_dict(torch, torch_state_dict(lin)))
    with torch.no_grad():
        close(lin.forward(x), t(torch.from_numpy(x)))


def gpt_pair(torch, **kw):
    V, T, L, nh, C = 13, 8, 2, 2, 16
    model = nl.models.GPT(V, T, L, nh, C)
    tm, TBlock = nanogpt(torch, V, T, L, nh, C, **kw)
    return model, tm.eval(), TBlock


@pytest.mark.parametrize("T", [8, 5])
def test_gpt_export_then_nanogpt_loads(torch, tmp_path, T):
    from safetensors.torch import load_file
    model, tm, _ = gpt_pair(torch)
    randomize(model, seed=4)
    for v in model.params.values():
        v *= 0.3                            # deep random nets saturate: keep logits moderate
    export_torch(model, tmp_path / "gpt.safetensors")
    sd = load_file(tmp_path / "gpt.safetensors")
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (48, 16)
    tm.load_state_dict(sd, strict=True)
    ids = np.random.default_rng(5).integers(0, 13, size=(2, T))
    with torch.no_grad():
        close(model.forward(ids, training=False), tm(torch.from_numpy(ids)))


def test_gpt_import_from_nanogpt(torch):
    model, tm, _ = gpt_pair(torch)
    with torch.no_grad():
        for p in tm.parameters():
            p.normal_(0, 0.15)
    assert import_torch(model, tm.state_dict()) == ([], [])
    ids = np.random.default_rng(6).integers(0, 13, size=(3, 8))
    with torch.no_grad():
        close(model.forward(ids, training=False), tm(torch.from_numpy(ids)))
    # and back: the exported dict is the one torch holds
    for k, v in torch_state_dict(model).items():
        np.testing.assert_array_equal(v, tm.state_dict()[k].numpy())


def test_gpt_import_nanogpt_tied_head_without_bias(torch):
    """nanoGPT proper: lm_head bias-free and tied to wte. strict=False loads it; the model's
    zero lm_head.b stands for the missing bias."""
    model, tm, _ = gpt_pair(torch, head_bias=False, tied=True)
    randomize_torch(torch, tm)
    with pytest.raises(ValueError, match=r"missing 'lm_head.bias' \(nnlite 'lm_head.b'\).*"
                                         r"strict=False"):
        import_torch(model, tm)
    assert import_torch(model, tm, strict=False) == (["lm_head.bias"], [])
    ids = np.random.default_rng(7).integers(0, 13, size=(2, 8))
    with torch.no_grad():
        close(model.forward(ids, training=False), tm(torch.from_numpy(ids)))


def test_block_in_a_sequential_is_nanogpts_block(torch):
    ours = randomize(nl.Sequential([Block(16, 4), nl.LayerNorm(16)]), seed=8)
    _, TBlock = nanogpt(torch, 5, 4, 1, 4, 16)
    tm = torch.nn.Sequential(TBlock(), torch.nn.LayerNorm(16)).eval()
    tm.load_state_dict(to_torch_dict(torch, torch_state_dict(ours)))
    x = np.random.default_rng(9).normal(size=(2, 6, 16)).astype(np.float32)
    with torch.no_grad():
        close(ours.forward(x, training=False), tm(torch.from_numpy(x)))


# -- no torch needed: names, layouts, the file, errors -------------------------------------
def test_sequential_keys_keep_torch_indices():
    keys = torch_keys(mlp())
    assert [k.torch for k in keys] == ["1.weight", "1.bias", "4.weight", "4.bias", "5.weight",
                                       "5.bias", "7.0.weight", "8.weight", "8.bias"]
    assert [k.nnlite for k in keys][:3] == ["1.W", "1.b", "4.gamma"]
    assert [k.transpose for k in keys] == [True, False, False, False, True, False, True,
                                           True, False]


def test_gpt_keys_and_layouts():
    model = nl.models.GPT(13, 8, 2, 2, 16)
    sd = torch_state_dict(model)
    assert list(sd)[:4] == ["transformer.wte.weight", "transformer.wpe.weight",
                            "transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias"]
    assert list(sd)[-4:] == ["transformer.ln_f.weight", "transformer.ln_f.bias",
                             "lm_head.weight", "lm_head.bias"]
    shapes = {k: v.shape for k, v in sd.items()}
    assert shapes["transformer.h.1.attn.c_attn.weight"] == (48, 16)
    assert shapes["transformer.h.1.mlp.c_fc.weight"] == (64, 16)
    assert shapes["transformer.h.1.mlp.c_proj.weight"] == (16, 64)
    assert shapes["lm_head.weight"] == (13, 16)
    assert len(sd) == len(model.params) == 2 + 2 * 12 + 4
    np.testing.assert_array_equal(sd["transformer.h.0.attn.c_attn.weight"],
                                  model.params["h.0.attn.qkv.W"].T)
    assert all(v.flags.c_contiguous for v in sd.values())


def test_export_is_a_plain_safetensors_state_dict(tmp_path):
    import safetensors
    from safetensors.numpy import load_file
    model = randomize(mlp())
    export_torch(model, tmp_path / "m.safetensors")
    loaded = load_file(tmp_path / "m.safetensors")             # the reference reader
    expect = torch_state_dict(model)
    assert sorted(loaded) == sorted(expect)
    for k in expect:
        np.testing.assert_array_equal(loaded[k], expect[k])
    with safetensors.safe_open(tmp_path / "m.safetensors", "np") as f:
        assert f.metadata() == {"format": "pt"}


def test_round_trip_through_the_file(tmp_path):
    a, b = randomize(mlp(), seed=1), randomize(mlp(), seed=2)
    export_torch(a, tmp_path / "a.safetensors")
    import_torch(b, tmp_path / "a.safetensors")
    for k, v in a.params.items():
        np.testing.assert_array_equal(b.params[k], v)
    x = np.random.default_rng(0).normal(size=(2, 12)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x, training=False), b.forward(x, training=False))


def test_import_writes_into_the_layers_arrays():
    model = mlp()
    W = model.layers[5].params["W"]
    sd = torch_state_dict(randomize(mlp(), seed=3))
    import_torch(model, {k: v.astype(np.float64) for k, v in sd.items()})   # cast on copy
    assert model.layers[5].params["W"] is W
    np.testing.assert_allclose(W, sd["5.weight"].T)
    assert W.dtype == np.float32


def test_missing_and_unexpected_keys_are_named():
    model = mlp()
    sd = torch_state_dict(model)
    del sd["5.weight"]
    sd["9.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"missing '5.weight' \(nnlite '5.W'\); unexpected "
                                         r"\['9.weight'\]"):
        import_torch(model, sd)
    before = model.state_dict()
    res = import_torch(model, sd, strict=False)
    assert res.missing_keys == ["5.weight"] and res.unexpected_keys == ["9.weight"]
    np.testing.assert_array_equal(model.params["5.W"], before["5.W"])


def test_shape_mismatch_names_the_key_and_both_shapes():
    model = mlp()
    sd = torch_state_dict(model)
    sd["1.weight"] = np.zeros((12, 16), np.float32)      # nnlite's layout, not torch's
    before = {k: v.copy() for k, v in model.params.items()}
    sd["4.weight"] = sd["4.weight"] + 1
    with pytest.raises(ValueError, match=r"'1.weight' has shape \(12, 16\), the model needs "
                                         r"\(16, 12\) \(nnlite '1.W' \(12, 16\) transposed\)"):
        import_torch(model, sd)
    for k, v in model.params.items():                   # nothing written, not even 4.weight
        np.testing.assert_array_equal(v, before[k])


def test_nnlite_keys_get_a_hint(tmp_path):
    model = mlp()
    model.save_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="nnlite's own keys.*load_weights"):
        import_torch(model, tmp_path / "w.safetensors")


@pytest.mark.parametrize("layer, name", [
    (nl.PositionalEmbedding(8, 4), "PositionalEmbedding"),
    (nl.Residual(nl.Linear(4, 4)), "Residual"),
])
def test_layers_without_a_counterpart_are_named(layer, name):
    model = nl.Sequential([nl.Linear(4, 4), nl.Sequential([nl.ReLU(), layer])])
    with pytest.raises(ValueError, match=rf"^{name}.* at layer '1.1' has no PyTorch counterpart"):
        export_torch(model, "never-written.safetensors")
    assert not os.path.exists("never-written.safetensors")


def test_bad_sources():
    model = mlp()
    with pytest.raises(TypeError, match="safetensors path, a state dict or a torch.nn.Module"):
        import_torch(model, [1, 2])
    sd = torch_state_dict(model)
    sd["1.bias"] = np.array(["x"] * 16)
    with pytest.raises(TypeError, match="'1.bias' has dtype"):
        import_torch(model, sd)
    with pytest.raises(nl.io.CheckpointError):
        import_torch(model, os.devnull)


def test_dense_with_an_activation_is_a_linear_then_the_activation(torch):
    """Its activation is not dropped: torch holds it as nn.Sequential(nn.Linear, nn.ReLU)."""
    nl.random.seed(0)
    model = nl.Sequential([nl.Dense(6, activation="relu", input_dim=4), nl.Dense(3)])
    with pytest.raises(ValueError, match=r"Dense.* at layer '1' is not built yet.*model.build"):
        torch_keys(model)
    model.build((4,))
    assert [k.torch for k in torch_keys(model)] == ["0.0.weight", "0.0.bias",
                                                         "1.weight", "1.bias"]
    net = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU()),
                              torch.nn.Linear(6, 3))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in torch_state_dict(model).items()})
    randomize(model)                  # and back: import_torch fills the Dense from the net
    import_torch(model, net)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), model.predict(x),
                               rtol=1e-5, atol=1e-6)
