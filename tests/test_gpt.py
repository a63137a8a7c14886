"""GPT (nnlite.models.GPT), fit on batch iterables, and examples/gpt_shakespeare.py:
overfitting, sampling, checkpoints and exact resumption."""
import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from _scripts import load_script

import nnlite as nl
from nnlite.models.gpt import GPTConfig
from nnlite.models.gpt_blocks import MLP, Block
from nnlite.testing import check_layer_gradients

REPO = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
        "resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy.")[:200]


def load_example():
    return load_script("examples/gpt_shakespeare.py", "example_gpt_shakespeare")


def tiny_gpt(vocab=20, block=8, dropout=0.0, seed=0):
    return nl.models.GPT(vocab, block, n_layer=2, n_head=2, n_embd=16, dropout=dropout, rng=seed)


# -- the model -------------------------------------------------------------------------------
def test_gpt_is_a_sequential_of_residual_blocks():
    m = tiny_gpt()
    assert isinstance(m, nl.Sequential)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Embedding", "PositionalEmbedding", "Dropout"] + ["Block"] * 2 + \
        ["LayerNorm", "Linear"]
    assert "h.0.attn.qkv.W" in m.params and "h.0.mlp.proj.W" in m.params
    out = m.forward(np.zeros((3, 5), np.int64), training=False)
    assert out.shape == (3, 5, 20) and out.dtype == np.float32


def test_gpt2_initialisation():
    m = nl.models.GPT(50, 16, n_layer=8, n_head=4, n_embd=64, rng=0)
    p = m.params
    assert abs(p["h.0.attn.qkv.W"].std() - 0.02) < 0.002
    assert abs(p["wte.W"].std() - 0.02) < 0.002
    proj = 0.02 / np.sqrt(2 * 8)                 # residual projections scaled down
    assert abs(p["h.0.attn.proj.W"].std() - proj) < 0.1 * proj
    assert abs(p["h.0.mlp.proj.W"].std() - proj) < 0.1 * proj
    assert not p["h.0.attn.qkv.b"].any() and (p["h.0.ln_1.gamma"] == 1).all()
    head = p["lm_head.W"]                         # N(0, 1/C): unit-variance logits
    assert head.shape == (64, 50) and abs(head.std() - 1 / 8) < 0.01
    # initial loss between ln(V) (uniform) and ln(V) + σ²/2 (N(0, σ² = 1) logits, large V)
    m.compile("adam", "cross_entropy")
    ids = np.random.default_rng(0).integers(0, 50, (4, 16))
    assert np.log(50) < m.evaluate(ids, ids)["loss"] < np.log(50) + 0.5
    # same rng, same weights
    q = nl.models.GPT(50, 16, n_layer=8, n_head=4, n_embd=64, rng=0).params
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_gpt_bad_hyper_parameters():
    with pytest.raises(ValueError, match="n_embd 30 is not divisible by n_head 4"):
        nl.models.GPT(10, 8, 1, 4, 30)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        nl.models.GPT(10, 0, 1, 1, 8)


# -- named modules, GPTConfig, weights drawn once ----------------------------------------------
ONE_LAYER_KEYS = ["wte.W", "wpe.P",
                  "h.0.ln_1.gamma", "h.0.ln_1.beta", "h.0.attn.qkv.W", "h.0.attn.qkv.b",
                  "h.0.attn.proj.W", "h.0.attn.proj.b", "h.0.ln_2.gamma", "h.0.ln_2.beta",
                  "h.0.mlp.fc.W", "h.0.mlp.fc.b", "h.0.mlp.proj.W", "h.0.mlp.proj.b",
                  "ln_f.gamma", "ln_f.beta", "lm_head.W", "lm_head.b"]


def test_parameter_keys_name_the_modules():
    m = nl.models.GPT(20, 8, n_layer=1, n_head=2, n_embd=16, rng=0)
    assert list(m.params) == list(m.grads) == ONE_LAYER_KEYS
    assert [name for name, _ in m.modules()] == ["wte", "wpe", "drop", "h.0", "ln_f", "lm_head"]
    assert m.layers == [layer for _, layer in m.modules()]
    # the keys are views of the modules' own arrays: an optimizer writes into the layers
    assert m.params["h.0.attn.qkv.W"] is m.h[0].attn.params["W_qkv"]
    assert m.params["h.0.mlp.fc.W"] is m.h[0].mlp.fc.params["W"]
    assert m.params["lm_head.W"].shape == (16, 20) and m.params["h.0.mlp.fc.W"].shape == (16, 64)
    deep = nl.models.GPT(20, 8, n_layer=3, n_head=2, n_embd=16, rng=0)
    assert len(deep.params) == 2 + 3 * 12 + 4 and "h.2.mlp.proj.b" in deep.params
    # errors and the summary say where a module sits
    with pytest.raises(ValueError, match="'h.0.attn': expected input with last dimension 16"):
        m.h[0].attn.forward(np.zeros((1, 2, 8)))
    lines = []
    m.summary(print_fn=lines.append)
    assert any(line.strip().startswith("h.0 (Block)") for line in lines)


def test_gpt_config():
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
    a = nl.models.GPT(cfg, rng=0)
    b = nl.models.GPT(20, 8, 2, 2, 16, dropout=0.1, rng=0)        # the keyword form: the same
    assert a.config == b.config == cfg and a.n_layer == 2 and a.dropout == 0.1
    assert all(np.array_equal(v, b.params[k]) for k, v in a.params.items())
    assert nl.models.GPT.from_config(a.get_config()).config == cfg
    assert a.get_config() == {"vocab_size": 20, "block_size": 8, "n_layer": 2, "n_head": 2,
                              "n_embd": 16, "dropout": 0.1}       # the saved architecture JSON
    assert GPTConfig(np.int64(5), 4, 1, 1, 4).vocab_size.__class__ is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_layer = 3
    with pytest.raises(TypeError, match="GPTConfig alone or the hyper-parameters"):
        nl.models.GPT(cfg, dropout=0.2)
    for bad, match in [({"vocab_size": 0}, "vocab_size must be a positive int, got 0"),
                       ({"n_layer": 1.5}, "n_layer must be a positive int, got 1.5"),
                       ({"n_head": True}, "n_head must be a positive int, got True"),
                       ({"n_head": 3}, "n_embd 16 is not divisible by n_head 3"),
                       ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
                       ({"dropout": "0.1"}, r"dropout must be a number in \[0, 1\), got '0.1'")]:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(cfg, **bad)


def test_each_weight_is_drawn_once_in_parameter_order():
    L, C = 3, 16
    before = nl.random.get_rng().bit_generator.state
    rng = np.random.default_rng(0)
    m = nl.models.GPT(20, 8, n_layer=L, n_head=2, n_embd=C, rng=rng)
    assert nl.random.get_rng().bit_generator.state == before     # the layers drew nothing
    replay = np.random.default_rng(0)
    for k, W in m.params.items():
        if W.ndim == 1:
            assert (W == (1 if k.endswith("gamma") else 0)).all(), k
            continue
        std = 1 / np.sqrt(C) if k == "lm_head.W" else \
            0.02 / np.sqrt(2 * L) if k.endswith(".proj.W") else 0.02
        np.testing.assert_array_equal(W, (replay.standard_normal(W.shape) * std)
                                      .astype(np.float32), err_msg=k)
    assert rng.random() == replay.random()                       # and nothing else


def test_load_model_draws_no_weights(tmp_path):
    m = nl.models.GPT(65, 64, n_layer=2, n_head=4, n_embd=128, rng=0)
    m.save(tmp_path / "m.nnl")
    state = nl.random.get_rng().bit_generator.state
    r = nl.load_model(tmp_path / "m.nnl")
    assert nl.random.get_rng().bit_generator.state == state
    assert all(np.array_equal(v, r.params[k]) for k, v in m.params.items())
    with nl.init.skip_init():                                    # what load_model builds
        z = nl.models.GPT(65, 1024, n_layer=4, n_head=8, n_embd=512)   # 13M weights
        assert nl.init.skipping()
    assert not nl.init.skipping() and nl.random.get_rng().bit_generator.state == state
    assert not any(W.any() for k, W in z.params.items() if W.ndim == 2)
    assert nl.models.GPT(20, 8, 1, 2, 16, rng=0).params["wte.W"].any()   # drawn again after


def test_block_gradients():
    rng = np.random.default_rng(0)
    block = Block(8, 2, rng=1)
    for p in block.params.values():             # non-trivial LayerNorms and biases
        if p.ndim == 1:
            p[...] += 0.3 * rng.standard_normal(p.shape)
    check_layer_gradients(block, rng.standard_normal((2, 5, 8)), rng=rng)
    with pytest.raises(ValueError, match=r"Block\(n_embd=8, n_head=2\): backward\(\) got a "
                                         r"gradient of shape \(2, 5, 7\)"):
        block.backward(np.zeros((2, 5, 7)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_fc_computes_the_gelu(dtype):
    """The MLP's fc computes the GELU with its bias (Linear(act="gelu")), its gelu passes
    through: the same values and gradients as fc → GELU → proj unfused, the same keys."""
    rng = np.random.default_rng(0)
    mlp = MLP(8, rng=1).astype(dtype)
    assert mlp.fc.act == "gelu" and mlp.gelu.fused
    assert list(mlp.params) == ["fc.W", "fc.b", "proj.W", "proj.b"]
    for p in mlp.params.values():
        if p.ndim == 1:
            p[...] = rng.standard_normal(p.shape)
    fc = nl.Linear(8, 32, dtype=dtype)                       # the same layers, unfused
    proj = nl.Linear(32, 8, dtype=dtype)
    for layer, part in ((fc, mlp.fc), (proj, mlp.proj)):
        for k, v in part.params.items():
            layer.params[k][...] = v
    gelu = nl.GELU()
    x = rng.standard_normal((3, 50, 8)).astype(dtype)       # 150 rows: two row chunks
    g = rng.standard_normal((3, 50, 8)).astype(dtype)
    y = mlp.forward(x)
    np.testing.assert_array_equal(y, proj.forward(gelu.forward(fc.forward(x))))
    np.testing.assert_array_equal(mlp.forward(x, training=False), y)
    mlp.forward(x)
    dx = mlp.backward(g)
    want = fc.backward(gelu.backward(proj.backward(g)))
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_array_equal(dx, want)
    for k, v in mlp.grads.items():
        layer, key = (fc, k[3:]) if k.startswith("fc.") else (proj, k[5:])
        np.testing.assert_allclose(v, layer.grads[key], **tol, err_msg=k)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_residual_is_added_by_the_output_projections(dtype, dropout):
    """MLP.forward(x, residual=r) and MultiHeadAttention.forward(x, residual=r): the GEMM of
    the output projection adds r as it writes (no dropout), else after the dropout: the bits
    of forward(x) + r either way, in training and inference; the backward is the same."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 8)).astype(dtype)
    r = rng.standard_normal((3, 7, 8)).astype(dtype)
    g = rng.standard_normal((3, 7, 8)).astype(dtype)
    for make in (lambda: MLP(8, dropout, rng=1), lambda: nl.MultiHeadAttention(8, 2, dropout,
                                                                               rng=1)):
        fused, plain = make().astype(dtype), make().astype(dtype)   # the same draws
        for p in (fused, plain):
            for k, v in p.params.items():
                if v.ndim == 1:
                    v[...] = np.random.default_rng(len(k)).standard_normal(v.shape)
        for training in (True, False):
            y = fused.forward(x, training=training, residual=r)
            want = plain.forward(x, training=training)
            want += r
            np.testing.assert_array_equal(y, want)
        fused.forward(x, residual=r)
        plain.forward(x)
        np.testing.assert_array_equal(fused.backward(g), plain.backward(g))
        for k in fused.grads:
            np.testing.assert_array_equal(fused.grads[k], plain.grads[k], err_msg=k)
        with pytest.raises(ValueError, match=r"residual must have the input's shape|"
                                             r"residual must have the output's shape"):
            fused.forward(x, residual=r[:, :3])


def test_linear_residual():
    """Linear.forward(x, residual=r) = xW + b + r, added by the GEMM (the bits of y += r);
    not with a fused activation, and r of the output's shape, or a clear error."""
    rng = np.random.default_rng(0)
    layer = nl.Linear(6, 5, rng=0)
    layer.params["b"][:] = rng.standard_normal(5)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    r = rng.standard_normal((2, 3, 5)).astype(np.float32)
    want = layer.forward(x)
    want += r
    np.testing.assert_array_equal(layer.forward(x, residual=r), want)
    with pytest.raises(ValueError, match=r"Linear\(6 → 5\).*residual must have the output's "
                                         r"shape \(2, 3, 5\), got \(2, 3, 4\)"):
        layer.forward(x, residual=r[..., :4])
    with pytest.raises(ValueError, match=r"residual= needs a layer without an activation"):
        nl.Linear(6, 5, act="relu").forward(x, residual=r)


def test_mlp_gradients():
    rng = np.random.default_rng(0)
    mlp = MLP(8, rng=1)
    for p in mlp.params.values():
        if p.ndim == 1:
            p[...] += 0.3 * rng.standard_normal(p.shape)
    check_layer_gradients(mlp, rng.standard_normal((2, 5, 8)), rng=rng)


# -- checkpoints written before the modules had names ------------------------------------------
def old_keys(n_layer):
    """The keys of a GPT file before named modules, by hand: a Sequential of Embedding,
    PositionalEmbedding, Dropout, per block Residual(Sequential([LayerNorm,
    MultiHeadAttention])) and Residual(Sequential([LayerNorm, Linear, GELU, Linear, Dropout])),
    then LayerNorm and Linear; in the order of today's keys."""
    keys = ["0.W", "1.P"]
    for i in range(n_layer):
        a, f = f"{3 + 2 * i}.0.", f"{4 + 2 * i}.0."
        keys += [a + "0.gamma", a + "0.beta", a + "1.W_qkv", a + "1.b_qkv", a + "1.W_o",
                 a + "1.b_o", f + "0.gamma", f + "0.beta", f + "1.W", f + "1.b", f + "3.W",
                 f + "3.b"]
    n = 3 + 2 * n_layer
    return keys + [f"{n}.gamma", f"{n}.beta", f"{n + 1}.W", f"{n + 1}.b"]


def test_checkpoints_with_the_old_keys_load(tmp_path):
    nl.random.seed(0)
    m = tiny_gpt(dropout=0.1)
    m.compile(nl.optim.AdamW(1e-3, decay_filter="matrices", clipnorm=1.0), "cross_entropy")
    ids = np.random.default_rng(0).integers(0, 20, (4, 9))
    for _ in range(3):
        m.train_step(ids[:, :-1], ids[:, 1:])
    m.save(tmp_path / "new.nnl")
    # the same file as the old code wrote it: the weights under the old keys, the optimizer
    # state (kept per parameter index) as it is, a fresh checksum
    tensors, meta = nl.io.safetensors.read_file(tmp_path / "new.nnl")
    rename = dict(zip(m.params, old_keys(2)))
    assert rename["h.1.attn.proj.W"] == "5.0.1.W_o" and rename["lm_head.b"] == "8.b"
    tensors = {rename.get(k, k): v for k, v in tensors.items()}
    meta["sha256"] = nl.io.model_file.checksum(tensors, meta)
    nl.io.save_file(tensors, tmp_path / "old.nnl", metadata=meta)

    r = nl.load_model(tmp_path / "old.nnl")
    assert list(r.params) == list(m.params) and r.optimizer.iterations == 3
    assert all(np.array_equal(v, r.params[k]) for k, v in m.params.items())
    nl.random.seed(1)
    a = m.train_step(ids[:, :-1], ids[:, 1:])
    nl.random.seed(1)
    assert r.train_step(ids[:, :-1], ids[:, 1:]) == a            # the optimizer state too
    # plain weight files (save_weights) and set_weights take the old keys as well
    nl.io.save_file({rename[k]: v for k, v in m.params.items()}, tmp_path / "old.safetensors")
    w = tiny_gpt(seed=5)
    w.load_weights(tmp_path / "old.safetensors")
    assert all(np.array_equal(v, w.params[k]) for k, v in m.params.items())
    assert list(m.upgrade_keys(m.params)) == list(m.params)            # new keys: unchanged


def test_overfits_a_200_character_text():
    tok = nl.data.CharTokenizer.from_text(TEXT)
    ids = tok.encode(TEXT)
    nl.random.seed(0)
    block = 64          # long windows: only the first few positions of each lack context
    model = nl.models.GPT(tok.vocab_size, block, n_layer=2, n_head=2, n_embd=32)
    model.compile(nl.optim.AdamW(lr=3e-3, weight_decay=0.0), "cross_entropy")
    sampler = nl.data.RandomWindowSampler(ids, block, 16, seed=0)
    hist = model.fit(sampler, steps_per_epoch=50, epochs=8, verbose=0)
    windows = np.lib.stride_tricks.sliding_window_view(ids, block + 1)[::8]
    loss = model.evaluate(windows[:, :-1], windows[:, 1:])["loss"]
    assert loss < 0.1, (loss, hist.history["loss"])
    # and it recites: greedy decoding from a prompt that occurs once in the text
    out = model.generate(ids[:20], 8, temperature=0)
    assert tok.decode(out) == TEXT[:28]


# -- generate ------------------------------------------------------------------------------
def test_generate_is_reproducible_with_a_seed():
    m = tiny_gpt()
    a = m.generate([1, 2, 3], 30, seed=1)
    assert a.dtype == np.int64 and a.shape == (33,) and (a[:3] == [1, 2, 3]).all()
    assert np.array_equal(a, m.generate([1, 2, 3], 30, seed=1))
    assert not np.array_equal(a, m.generate([1, 2, 3], 30, seed=2))
    nl.random.seed(5)                          # no seed: nl.random's generator
    b = m.generate([1, 2, 3], 30)
    nl.random.seed(5)
    assert np.array_equal(b, m.generate([1, 2, 3], 30))
    # top_k=1 and temperature 0 are both greedy
    assert np.array_equal(m.generate([1], 20, top_k=1, seed=0), m.generate([1], 20, temperature=0))
    assert (m.generate([1], 50, top_k=3, temperature=2.0, seed=0) >= 0).all()


def test_generate_batch_of_prompts():
    m = tiny_gpt()
    out = m.generate(np.array([[1, 2], [3, 4]]), 5, seed=0)
    assert out.shape == (2, 7)


def test_generate_crops_the_context_to_block_size():
    m = tiny_gpt(block=8)
    prompt = np.arange(20) % 20                  # longer than block_size: must not fail
    out = m.generate(prompt, 10, seed=3)
    assert out.shape == (30,) and np.array_equal(out[:20], prompt)
    # only the last block_size tokens matter
    short = m.generate(prompt[-8:], 10, seed=3)
    assert np.array_equal(out[20:], short[8:])


def test_generate_errors():
    m = tiny_gpt()
    with pytest.raises(ValueError, match="at least one token"):
        m.generate([], 5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 20\).*\[20, 99\]"):
        m.generate([1, 20, 99], 5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        m.generate([1], 5, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        m.generate([1], 5, top_k=0)
    with pytest.raises(TypeError, match="integers"):
        m.generate([1.5], 5)


def test_unknown_prompt_character_is_a_tokenizer_error():
    tok = nl.data.CharTokenizer.from_text(TEXT)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("Zebra €")


# -- checkpoints ---------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    nl.random.seed(0)
    m = tiny_gpt(dropout=0.1)
    m.compile(nl.optim.AdamW(nl.optim.CosineDecay(1e-3, 100, 10), decay_filter="matrices",
                             clipnorm=1.0), "cross_entropy")
    ids = np.random.default_rng(0).integers(0, 20, (4, 9))
    for _ in range(3):
        m.train_step(ids[:, :-1], ids[:, 1:])
    m.save(tmp_path / "m.nnl")
    r = nl.load_model(tmp_path / "m.nnl")
    assert type(r) is nl.models.GPT and r.get_config() == m.get_config()
    np.testing.assert_array_equal(r.forward(ids[:, :8], training=False),
                                  m.forward(ids[:, :8], training=False))
    assert r.optimizer.iterations == 3 and r.optimizer.get_config() == m.optimizer.get_config()
    # the next step is the same step
    nl.random.seed(1)
    a = m.train_step(ids[:, :-1], ids[:, 1:])
    nl.random.seed(1)
    b = r.train_step(ids[:, :-1], ids[:, 1:])
    assert a == b
    assert all(np.array_equal(v, r.params[k]) for k, v in m.params.items())


TINY = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--max-iters", "24", "--eval-interval", "6", "--eval-iters", "3",
        "--warmup-iters", "4", "--dropout", "0.1", "--verbose", "0"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text((TEXT + "\n") * 30, encoding="utf-8")
    return str(path)


def test_example_resume_is_exact(tmp_path, text_file):
    ex = load_example()
    args = TINY + ["--text-file", text_file, "--max-new-tokens", "0"]
    straight = ex.main(args + ["--out-dir", str(tmp_path / "a")])
    half = ex.main(args + ["--out-dir", str(tmp_path / "b"), "--stop-after", "12"])
    assert half["iterations"] == 12 and [e["iter"] for e in half["evals"]] == [0, 6, 12]
    resumed = ex.main(["--resume", "--out-dir", str(tmp_path / "b"), "--text-file", text_file,
                       "--verbose", "0", "--max-new-tokens", "0"])
    assert resumed["iterations"] == straight["iterations"] == 24
    assert resumed["evals"] == straight["evals"]            # identical losses, to the bit
    a = json.loads((tmp_path / "a" / "ckpt.json").read_text())
    b = json.loads((tmp_path / "b" / "ckpt.json").read_text())
    ma = nl.load_model(tmp_path / "a" / a["model_file"])
    mb = nl.load_model(tmp_path / "b" / b["model_file"])
    assert all(np.array_equal(v, mb.params[k]) for k, v in ma.params.items())
    assert a["samplers"] == b["samplers"] and a["random_state"] == b["random_state"]
    # one model file per folder: superseded ones are removed, no temporary files left
    assert sorted(os.listdir(tmp_path / "b")) == ["ckpt.json", "model-000024.nnl"]
    with pytest.raises(ValueError, match="multiple of --eval-interval"):
        ex.main(args + ["--out-dir", str(tmp_path / "c"), "--stop-after", "5"])


def test_example_trains_samples_and_restores_the_tokenizer(tmp_path, text_file, capsys):
    ex = load_example()
    out = str(tmp_path / "run")
    r = ex.main(TINY + ["--text-file", text_file, "--out-dir", out, "--max-new-tokens", "20"])
    assert r["val_loss"] < r["evals"][0]["val_loss"] and r["ms_per_iter"] > 0
    assert len(r["sample"]) == 1 + 20                       # prompt "\n" + 20 characters
    state = json.loads((Path(out) / "ckpt.json").read_text())
    tok = nl.data.CharTokenizer.from_config(state["tokenizer"])
    assert tok == nl.data.CharTokenizer.from_text((TEXT + "\n") * 30)
    assert state["iteration"] == 24 and state["best_val_loss"] == min(
        e["val_loss"] for e in r["evals"])
    s = ex.main(["--sample", "--out-dir", out, "--prompt", "First", "--max-new-tokens", "30"])
    assert s["text"].startswith("First") and len(s["text"]) == 35
    assert s["text"] == ex.main(["--sample", "--out-dir", out, "--prompt", "First",
                                 "--max-new-tokens", "30"])["text"]          # seeded
    with pytest.raises(ValueError, match="'€' at position 3 is not in the vocabulary"):
        ex.main(["--sample", "--out-dir", out, "--prompt", "Fir€"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ex.main(["--sample", "--out-dir", str(tmp_path / "nothing")])


def test_example_presets_and_flags():
    ex = load_example()
    a = ex.parse_args([])
    assert (a.n_layer, a.n_head, a.n_embd, a.block_size, a.batch_size, a.max_iters, a.lr,
            a.min_lr, a.dropout, a.eval_interval, a.eval_iters) == \
        (4, 4, 128, 64, 12, 2000, 1e-3, 1e-4, 0.0, 250, 200)
    b = ex.parse_args(["--config", "course-best", "--lr", "1e-4"])
    assert (b.n_layer, b.n_head, b.n_embd, b.block_size, b.batch_size, b.dropout, b.lr) == \
        (8, 8, 128, 256, 32, 0.2, 1e-4)
    c = ex.parse_args(["--config", "course-base"])
    assert (c.n_layer, c.n_embd, c.block_size, c.batch_size, c.max_iters) == (4, 64, 32, 16, 5000)


# -- fit on iterables ------------------------------------------------------------------------
def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)).astype(np.float32) + 3 * np.eye(3, 4, dtype=np.float32)[y]
    return x, y


def _mlp():
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(4, 16), nl.ReLU(), nl.Linear(16, 3)])
    m.compile(nl.optim.Adam(1e-2), "cross_entropy", metrics=["accuracy"])
    return m


def test_fit_on_a_generator_with_steps_per_epoch():
    x, y = _blobs()

    def batches():                       # endless: steps_per_epoch bounds each epoch
        rng = np.random.default_rng(0)
        while True:
            idx = rng.integers(0, len(x), 16)
            yield x[idx], y[idx]

    m = _mlp()
    h = m.fit(batches(), steps_per_epoch=5, epochs=4, validation_data=batches(),
              validation_steps=2, verbose=0)
    assert m.optimizer.iterations == 20 and len(h.history["loss"]) == 4
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert m.evaluate(batches(), steps=3)["accuracy"] > 0.8


def test_fit_on_a_dataloader_is_one_pass_per_epoch():
    x, y = _blobs()
    m = _mlp()
    loader = nl.data.DataLoader((x, y), batch_size=16, shuffle=True, seed=0)
    h = m.fit(loader, epochs=3, validation_data=nl.data.DataLoader((x, y), batch_size=32),
              verbose=0)
    assert m.optimizer.iterations == 12 and len(h.history["val_loss"]) == 3
    # steps_per_epoch longer than the loader: it restarts
    m.fit(loader, steps_per_epoch=6, epochs=1, verbose=0)
    assert m.optimizer.iterations == 18


def test_fit_on_iterables_errors_and_exhaustion():
    x, y = _blobs()
    m = _mlp()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        m.fit(iter([(x, y)]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="needs targets y"):
        m.fit(x, verbose=0)
    with pytest.raises(TypeError, match=r"must yield \(xb, yb\) batches"):
        m.fit(iter([x, x]), steps_per_epoch=1, verbose=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        h = m.fit((b for b in [(x, y)] * 3), steps_per_epoch=2, epochs=5, verbose=0)
    assert len(h.history["loss"]) == 2 and any("ran out" in str(e.message) for e in w)


def test_train_step_returns_the_loss_and_refuses_nan():
    x, y = _blobs()
    m = _mlp()
    before = m.state_dict()
    loss = m.train_step(x, y)
    assert isinstance(loss, float) and loss > 0 and m.optimizer.iterations == 1
    assert not np.array_equal(before["0.W"], m.params["0.W"])
    bad = x.copy()
    bad[0, 0] = np.nan
    w = m.state_dict()
    with pytest.raises(FloatingPointError, match="loss became nan; try a lower"):
        m.train_step(bad, y)
    assert all(np.array_equal(w[k], v) for k, v in m.params.items())


# -- the README run, partly ----------------------------------------------------------------
@pytest.mark.slow
def test_baby_config_learns(tmp_path):
    """The first 500 of the ``baby`` preset's 2000 iterations (same schedule): ~1 min."""
    ex = load_example()
    data = os.environ.get("NNLITE_DATA") or str(REPO.parent / "shared" / "data")
    r = ex.main(["--config", "baby", "--stop-after", "500", "--eval-iters", "50",
                 "--out-dir", str(tmp_path), "--data-dir", data, "--verbose", "0"])
    assert r["iterations"] == 500
    assert r["val_loss"] < 2.4, r["evals"]       # the full run: 2.26 at 500 (1.86 at 2000)


def test_example_plot_flag(tmp_path, text_file, capsys):
    """--plot draws the loss curve with matplotlib, or says how to get it; never fails the run."""
    ex = load_example()
    out = tmp_path / "run"
    ex.main(TINY + ["--text-file", text_file, "--out-dir", str(out), "--max-new-tokens", "0",
                    "--plot"])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in capsys.readouterr().out
    else:
        assert (out / "loss.png").stat().st_size > 1000
