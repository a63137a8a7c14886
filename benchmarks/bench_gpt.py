"""GPT training speed: nnlite vs PyTorch (CPU), the same model, one run.

nanoGPT's CPU "baby GPT" (the ``baby`` preset of ``examples/gpt_shakespeare.py``): 4 layers,
4 heads, n_embd 128, block 64, batch 12, vocabulary 65; AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on matrices), gradient clipping at 1.0, the same number of threads for both.
Timed: one training iteration (forward + backward + clip + optimizer step) per call, on
random batches drawn beforehand.

FLOPs per iteration (GF/s and % of peak), nanoGPT's estimate (PaLM, appendix B) with the
causal half of attention: tokens B·T times 6·N + 6·L·C·(T + 1), N = L·12·C² + C·V the
weights of the matrix products (4 per block: c_attn 3C², attn.c_proj C², c_fc 4C²,
mlp.c_proj 4C²; lm_head C·V), 6 = 2 forward + 4 backward per weight and token; attention
QKᵀ and PV over the (T + 1)/2 keys a token sees on average, forward and backward. The
element-wise work (LayerNorm, GELU, softmax, AdamW) is not counted.

    python benchmarks/bench_gpt.py                         # 1 and 2 threads; torch optional
    python benchmarks/bench_gpt.py --profile --threads 2   # + cProfile of nnlite's steps

PyTorch's model is nanoGPT's block written with ``torch.nn`` and
``F.scaled_dot_product_attention(is_causal=True)`` (no weight tying, biases everywhere, as
nnlite's GPT). Timing and table: see benchmarks/_common.py (each library in its own block
with a pause before it, never step by step in turn; median / IQR / best; one child
interpreter per thread count). This script takes the installed nnlite when there is one.
"""
import argparse
import sys

import _common


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_gpt_args(p, n_layer=4, twins=False)  # _common.parse adds --allow-twins
    p.add_argument("--vocab-size", type=int, default=65)
    p.add_argument("--batches", type=int, default=20, help="distinct random batches cycled")
    p.add_argument("--only", default="nnlite,torch", help="comma-separated subset")
    p.add_argument("--profile", action="store_true",
                   help="profile nnlite's steps with cProfile (top functions by own time)")
    return p


ARGS = _common.parse(parser(), budget=2.0, repeat=7,
                     quick={"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 8,
                            "batch_size": 2, "batches": 2})
if _common.run_parent(ARGS, only_if_missing=True):
    sys.exit(0)

import numpy as np  # a child from here on: its thread variables are set

RUN = _common.start_child(ARGS, only_if_missing=True,
                          torch_wanted="torch" in ARGS.only.split(","))
import nnlite as nl

torch = RUN.torch


def step_flops(a):
    """FLOPs of one training iteration (see the docstring)."""
    L, C, T, V = a.n_layer, a.n_embd, a.block_size, a.vocab_size
    n_weights = L * 12 * C * C + C * V
    return a.batch_size * T * (6.0 * n_weights + 6.0 * L * C * (T + 1))


def batches(args):
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.block_size)
    return [(rng.integers(0, args.vocab_size, shape), rng.integers(0, args.vocab_size, shape))
            for _ in range(args.batches)]


def cycle(items):
    i = [0]

    def next_item():
        i[0] = (i[0] + 1) % len(items)
        return items[i[0]]
    return next_item


def make_optimizer(lr=1e-3):
    # nanoGPT's shakespeare-char settings
    kwargs = dict(lr=lr, beta1=0.9, beta2=0.99, weight_decay=0.1, clipnorm=1.0)
    try:
        return nl.optim.AdamW(**kwargs, decay_filter="matrices")
    except TypeError:                   # an nnlite without decay_filter: decay everything
        return nl.optim.AdamW(**kwargs)


def nnlite_step(args, data):
    nl.random.seed(0)
    model = nl.models.GPT(args.vocab_size, args.block_size, args.n_layer, args.n_head,
                          args.n_embd)
    model.compile(make_optimizer(), "cross_entropy")
    nxt = cycle(data)

    def step():
        return model.train_step(*nxt())
    return step


def profile_nnlite(args, data, steps=50):
    import cProfile
    import pstats
    step = nnlite_step(args, data)
    for _ in range(5):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    print(f"\ncProfile of {steps} nnlite steps, {RUN.threads} thread(s) (own time, top 25):")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def torch_step(args, data):
    F = torch.nn.functional
    torch.manual_seed(0)
    model = _common.torch_gpt(torch, args.vocab_size, args.block_size, args.n_layer,
                              args.n_head, args.n_embd)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))

    nxt = cycle([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data])

    def step():
        x, y = nxt()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step


def main(args):
    only = set(args.only.split(","))
    data = batches(args)
    RUN.note(f"GPT n_layer {args.n_layer}, n_head {args.n_head}, n_embd {args.n_embd}, block "
             f"{args.block_size}, batch {args.batch_size}, vocab {args.vocab_size}; AdamW + "
             f"clip 1.0; one training iteration per call over {len(data)} random batches; "
             f"FLOPs per iteration = B·T·(6N + 6·L·C·(T+1)) = {step_flops(args) / 1e9:.3f} G "
             "(see the docstring)")
    fns = {"nnlite": nnlite_step(args, data) if "nnlite" in only else None,
           "torch": torch_step(args, data) if torch is not None else None}
    RUN.time("train iteration", fns, flops=step_flops(args))
    if args.profile:
        profile_nnlite(args, data)
    RUN.finish()


if __name__ == "__main__":
    main(ARGS)
