"""LayerNorm / embedding / many-tensor AdamW: nnlite vs its numpy twin vs PyTorch, GPT-baby sizes.

    python benchmarks/bench_nn.py                        # float32, 1 and 2 threads
    python benchmarks/bench_nn.py --threads 2 --simd avx2 --repeat 3

Sizes: B·T = 12·64 = 768 rows × C = 128 features, vocab 65, and AdamW over a 4-layer C = 128
GPT's ~0.8M parameters (52 tensors: matrices, biases, LayerNorm gains); ``--quick``: tiny.
The 'numpy' rows are nnlite's numpy twins; the 'nl-loop' row is nnlite's per-parameter
compiled ``adam_update`` loop (what ``adam_update_many`` replaces). PyTorch rows: F.layer_norm
(+ autograd backward), F.embedding (+ backward into a dense grad), torch.optim.AdamW foreach
and fused. Timing and table: see benchmarks/_common.py (each library in its own block with a
pause before it, median / IQR / best, one child per thread count). Memory-bound kernels: no
GFLOP/s or % of peak columns.
"""
import argparse
import sys

import _common

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sizes", default="12,64,128,65,4", help=argparse.SUPPRESS)  # B,T,C,V,L
args = _common.parse(parser, budget=0.3, repeat=7, quick={"sizes": "2,8,16,11,1"})
if _common.run_parent(args):
    sys.exit(0)

import numpy as np  # a child from here on: its thread variables are set

RUN = _common.start_child(args)
from nnlite import ops
from nnlite.ops import reference as ref

torch = RUN.torch
F = torch.nn.functional if torch is not None else None

B, T, C, V, N_LAYER = (int(s) for s in args.sizes.split(","))


def gpt_shapes():
    """Parameter shapes of a nanoGPT-style model, n_layer=4, n_embd=128, vocab 65, block 64."""
    shapes = [(V, C), (T, C)]
    for _ in range(N_LAYER):
        shapes += [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,),
                   (C,), (C,), (C, 4 * C), (4 * C,), (4 * C, C), (C,)]
    return shapes + [(C,), (C,)]


def cases(rng):
    x = rng.standard_normal((B * T, C)).astype(np.float32)
    gamma = (1 + 0.1 * rng.standard_normal(C)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(C)).astype(np.float32)
    g = rng.standard_normal((B * T, C)).astype(np.float32)
    _, mean, rstd = ops.layernorm(x, gamma, beta)
    ids = rng.integers(0, V, (B, T))
    table = rng.standard_normal((V, C)).astype(np.float32)
    gemb = rng.standard_normal((B, T, C)).astype(np.float32)
    dtable = np.zeros_like(table)

    shapes = gpt_shapes()
    n_params = sum(int(np.prod(s)) for s in shapes)
    def state():
        ps = [rng.standard_normal(s).astype(np.float32) * 0.02 for s in shapes]
        return ps, [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    wds = [0.1 if len(s) >= 2 else 0.0 for s in shapes]
    nn_st, np_st = state(), state()

    def ln_fb(mod):
        def f():
            _, mu, rs = mod.layernorm(x, gamma, beta)
            mod.layernorm_backward(g, x, gamma, mu, rs)
        return f

    def emb_fb(mod):
        def f():
            mod.embedding(ids, table)
            dtable[...] = 0
            mod.embedding_backward(ids, gemb, dtable)
        return f

    t = {}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(gamma.copy()).requires_grad_()
        tb = torch.from_numpy(beta.copy()).requires_grad_()
        tg = torch.from_numpy(g)
        tids = torch.from_numpy(ids)
        ttab = torch.from_numpy(table.copy()).requires_grad_()
        tgemb = torch.from_numpy(gemb)

        def t_ln_fwd():
            with torch.no_grad():
                return F.layer_norm(tx, (C,), tw, tb)

        def t_ln_fb():
            tx.grad = tw.grad = tb.grad = None
            F.layer_norm(tx, (C,), tw, tb).backward(tg)

        def t_emb():
            with torch.no_grad():
                return F.embedding(tids, ttab)

        def t_emb_fb():
            ttab.grad = None
            F.embedding(tids, ttab).backward(tgemb)

        def t_adamw(**kw):
            ps = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in nn_st[0]]
            for p, gr in zip(ps, grads):
                p.grad = torch.from_numpy(gr)
            groups = [{"params": [p for p, w in zip(ps, wds) if w], "weight_decay": 0.1},
                      {"params": [p for p, w in zip(ps, wds) if not w], "weight_decay": 0.0}]
            opt = torch.optim.AdamW(groups, lr=1e-3, **kw)
            return opt.step

        t = dict(ln_fwd=t_ln_fwd, ln_fb=t_ln_fb, emb=t_emb, emb_fb=t_emb_fb,
                 adamw_foreach=t_adamw(foreach=True))
        try:
            f = t_adamw(fused=True)
            f()
            t["adamw_fused"] = f
        except Exception:            # fused AdamW on CPU needs a recent torch
            t["adamw_fused"] = None

    step = [0]

    def nn_adam():
        step[0] += 1
        ops.adam_update_many(*nn_st[:1], grads, *nn_st[1:], lr=1e-3, weight_decays=wds,
                             step=step[0])

    def nn_adam_loop():      # the old path: one compiled call per parameter
        for p, gr, m, v, w in zip(nn_st[0], grads, nn_st[1], nn_st[2], wds):
            ops.adam_update(p, gr, m, v, lr=1e-3, weight_decay=w, step=5, decoupled=True)

    return n_params, [
        ("layernorm fwd", lambda: ops.layernorm(x, gamma, beta),
         lambda: ref.layernorm(x, gamma, beta), t.get("ln_fwd")),
        ("layernorm bwd", lambda: ops.layernorm_backward(g, x, gamma, mean, rstd),
         lambda: ref.layernorm_backward(g, x, gamma, mean, rstd), None),
        ("layernorm fwd+bwd", ln_fb(ops), ln_fb(ref), t.get("ln_fb")),
        ("embedding fwd", lambda: ops.embedding(ids, table), lambda: ref.embedding(ids, table),
         t.get("emb")),
        ("embedding bwd", lambda: ops.embedding_backward(ids, gemb, dtable),
         lambda: ref.embedding_backward(ids, gemb, dtable), None),
        ("embedding fwd+bwd", emb_fb(ops), emb_fb(ref), t.get("emb_fb")),
        ("adamw many (foreach)", nn_adam,
         lambda: ref.adam_update_many(np_st[0], grads, np_st[1], np_st[2], lr=1e-3,
                                      weight_decays=wds, step=5), t.get("adamw_foreach")),
        ("adamw many (fused)", nn_adam, nn_adam_loop, t.get("adamw_fused")),
    ]


def main():
    rng = np.random.default_rng(0)
    n_params, rows = cases(rng)
    RUN.note(f"rows B·T = {B}·{T} = {B * T}, C = {C}, vocab {V}, AdamW over {n_params:,} params "
             f"in {len(gpt_shapes())} tensors; 'numpy' = nnlite's numpy twin, 'nl-loop' = "
             "nnlite's per-parameter compiled adam_update loop")
    for name, f_nn, f_np, f_t in rows:
        other = "nl-loop" if name == "adamw many (fused)" else "numpy"
        RUN.time(name, {"nnlite": f_nn, other: f_np, "torch": f_t})
    RUN.finish()


if __name__ == "__main__":
    main()
