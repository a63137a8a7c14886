"""nl.ops.profile: per-op and per-layer timers that cost nothing outside their block."""
import numpy as np
import pytest

import nnlite as nl
from nnlite import ops


def _mlp():
    nl.random.seed(0)
    m = nl.Sequential([nl.Linear(7, 65), nl.ReLU(), nl.Linear(65, 3)])
    m.compile(nl.optim.Adam(1e-3), "cross_entropy")
    return m


def test_profile_counts_calls_and_gemm_flops():
    m = _mlp()
    x = np.random.default_rng(0).random((5, 7), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1])
    with ops.profile(m) as prof:
        m.train_step(x, y)
    calls, seconds, flops = prof.ops["gemm"]
    assert calls == 2 and seconds > 0
    assert flops == 2 * 5 * 7 * 65 + 2 * 5 * 65 * 3               # 2MNK per forward GEMM
    # backward: dW of both (gemm_tn), dx of the second only (the first needs no input grad)
    assert prof.ops["gemm_tn"][0] == 2 and prof.ops["gemm_tn"][2] == 2 * (7 * 5 * 65 + 65 * 5 * 3)
    assert prof.ops["gemm_nt"][0] == 1 and prof.ops["gemm_nt"][2] == 2 * 5 * 3 * 65
    assert prof.ops["adam_update_many"][0] == 1                     # every parameter, one call
    assert 0 < prof.kernel_seconds <= prof.wall
    assert prof.groups()["GEMM"][0] == 5
    layer_calls = {path: (t["forward"][0], t["backward"][0]) for (path, _), t in prof.layers.items()}
    assert layer_calls == {"model.0": (1, 1), "model.1": (1, 1), "model.2": (1, 1)}
    text = prof.table()
    assert "gemm_tn" in text and "not a kernel" in text and "model.2" in text


def test_profile_restores_everything():
    m = _mlp()
    before = {op: getattr(ops, op) for op in ops.OPS}
    with ops.profile(m):
        assert ops.gemm is not before["gemm"]                       # timed inside
        assert "forward" in vars(m.layers[0])
    assert all(getattr(ops, op) is before[op] for op in ops.OPS)    # the kernels themselves
    assert all("forward" not in vars(layer) and "backward" not in vars(layer)
               for layer in m.layers)


def test_profile_restores_after_an_error():
    before = ops.gemm
    with pytest.raises(ValueError), ops.profile():
        ops.gemm(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))
    assert ops.gemm is before


def test_profile_gpt_layers_and_attention_flops():
    nl.random.seed(0)
    m = nl.models.GPT(11, 8, 1, 2, 8)
    ids = np.random.default_rng(0).integers(0, 11, (3, 8))
    with ops.profile(m) as prof:
        m.forward(ids)
    paths = [p for p, _ in prof.layers]
    assert paths[:4] == ["wte", "wpe", "drop", "h.0"] and "h.0.attn" in paths
    assert "h.0.mlp.fc" in paths
    # causal: half of 4·B·nh·T·S·d
    assert prof.ops["attention"][2] == 4 * 3 * 2 * 8 * 8 * 4 / 2
    assert dict(prof.layers)[("h.0.mlp.fc", 2)]["forward"][0] == 1
