"""Is nnlite's GPT training the same computation as PyTorch's? One run answers it.

Builds nnlite's GPT and the same network in torch.nn, copies nnlite's weights into torch, then
(1) compares the loss and every parameter gradient on one batch, and (2) trains both for
--steps steps on the same batches with the same recipe (AdamW betas 0.9/0.99, weight decay 0.1
on matrices, clipping at 1.0, warm-up + cosine) and prints both losses side by side.

    python benchmarks/check_gpt_vs_torch.py --n-layer 2 --steps 300     # needs torch==2.13.0
"""
import argparse
import math

import _common

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_common.add_gpt_args(p, n_layer=2)
p.add_argument("--steps", type=int, default=300)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--data-dir", default=None)
args = p.parse_args()
_common.set_threads(args.threads)           # before numpy loads OpenBLAS

import numpy as np  # noqa: E402

_common.repo_nnlite(only_if_missing=True, allow_twins=args.allow_twins)
import nnlite as nl  # noqa: E402

torch = _common.import_torch(args.threads, optional=False)
tnn, F = torch.nn, torch.nn.functional
nl.ops.set_num_threads(args.threads)
C, nh, L, T, B = args.n_embd, args.n_head, args.n_layer, args.block_size, args.batch_size

text = nl.datasets.load_tiny_shakespeare(args.data_dir)
tok = nl.data.CharTokenizer.from_text(text)
train, _ = nl.data.train_val_split(tok.encode(text), 0.9)
V = tok.vocab_size


nl.random.seed(0)
ours, tm = nl.models.GPT(V, T, L, nh, C), _common.torch_gpt(torch, V, T, L, nh, C)
rng = np.random.default_rng(0)
for k, v in ours.params.items():            # non-zero biases, so their gradients are tested too
    if v.ndim == 1 and not k.endswith("gamma"):
        v[...] = rng.normal(0, 0.02, v.shape)
# nnlite's weights in torch, by the library's map (PyTorch's names, Linear weights transposed)
tm.load_state_dict({k: torch.from_numpy(v) for k, v in nl.io.torch_state_dict(ours).items()})
tparams = dict(tm.named_parameters())
pairs = [(tparams[k.torch], k.nnlite, k.transpose) for k in nl.io.torch_keys(ours)]
assert len(pairs) == len(tparams), "the key map misses parameters"

# (1) one batch: loss and gradients
sampler = nl.data.RandomWindowSampler(train, T, B, seed=5)
x, y = sampler.get_batch()
ours.compile(optimizer="sgd", loss="cross_entropy")
ours.zero_grad()
loss = ours.loss.forward(ours.forward(x), y)
ours.backward(ours.loss.backward())
tloss = F.cross_entropy(tm(torch.from_numpy(x)).view(-1, V), torch.from_numpy(y).view(-1))
tloss.backward()
worst = max(np.abs(t.grad.numpy() - (ours.grads[k].T if tr else ours.grads[k])).max()
            / (np.abs(t.grad.numpy()).max() + 1e-12) for t, k, tr in pairs)
print(f"one batch: loss nnlite {loss:.6f} torch {tloss.item():.6f}; "
      f"largest relative gradient difference over {len(pairs)} parameters {worst:.1e}")

# (2) training on the same batches with the same recipe
schedule = nl.optim.CosineDecay(1e-3, total_steps=2000, warmup_steps=100, min_lr=1e-4)
ours.compile(optimizer=nl.optim.AdamW(lr=schedule, beta1=0.9, beta2=0.99, weight_decay=0.1,
                                      clipnorm=1.0, decay_filter="matrices"),
             loss="cross_entropy")
opt = torch.optim.AdamW([{"params": [q for q in tm.parameters() if q.dim() >= 2], "weight_decay": 0.1},
                         {"params": [q for q in tm.parameters() if q.dim() < 2], "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99))
sampler = nl.data.RandomWindowSampler(train, T, B, seed=7)
worst = 0.0
for it in range(args.steps):
    x, y = sampler.get_batch()
    lo = ours.train_step(x, y)
    for g in opt.param_groups:
        g["lr"] = schedule(it)
    tl = F.cross_entropy(tm(torch.from_numpy(x)).view(-1, V), torch.from_numpy(y).view(-1))
    opt.zero_grad()
    tl.backward()
    torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
    opt.step()
    worst = max(worst, abs(lo - tl.item()))
    if it % max(1, args.steps // 10) == 0 or it == args.steps - 1:
        print(f"step {it:4d}: loss nnlite {lo:.5f}  torch {tl.item():.5f}")
print(f"largest loss difference over {args.steps} steps: {worst:.1e}")
assert math.isfinite(worst)
