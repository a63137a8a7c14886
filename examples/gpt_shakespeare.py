"""A character-level GPT on Tiny Shakespeare (nanoGPT's shakespeare-char, on the CPU).

Default: the ``baby`` preset, nanoGPT's CPU "baby GPT" (4 layers, 4 heads, n_embd 128, block
64, batch 12, 2000 iterations, lr 1e-3 → 1e-4 cosine); nanoGPT reports val loss ~1.88. It
trains, evaluates train/val loss every ``--eval-interval`` iterations (a line ``step 250:
train loss 2.0132, val loss 2.0821``), checkpoints to ``--out-dir`` after each evaluation,
then prints a sample and where the time went (train, evaluation, checkpoints). The last
evaluation, the run's result, averages ``--eval-iters`` random batches (nanoGPT's estimate);
those before it only show progress and use the first ``--quick-eval-iters`` of theirs (default
an eighth): 9 full estimates were a third of the baby run. The evaluation runs forward only,
with no backward caches kept (``model.evaluate``).

    python examples/gpt_shakespeare.py                          # baby, ~2 min of CPU per 1000 it
    python examples/gpt_shakespeare.py --config course-base     # the course notes' first run
    python examples/gpt_shakespeare.py --resume                 # continue an interrupted run
    python examples/gpt_shakespeare.py --sample --prompt "ROMEO:" --max-new-tokens 300

Presets (every value can be overridden by its flag):

=============  =======  ======  ======  =====  =====  ==========  =======  ====  ===========
config         n_layer  n_head  n_embd  block  batch  lr          dropout  iter  reported
=============  =======  ======  ======  =====  =====  ==========  =======  ====  ===========
baby           4        4       128     64     12     1e-3→1e-4   0.0      2000  val 1.88 [1]
course-base    4        4       64      32     16     1e-3→1e-4   0.0      5000  val 1.8286 [2]
course-best    8        8       128     256    32     3e-3→3e-4   0.2      5000  val 1.4798 [2]
=============  =======  ======  ======  =====  =====  ==========  =======  ====  ===========

[1] nanoGPT's README (its CPU run, 2000 iterations). [2] The course notes' PyTorch mini-GPT
(Karpathy's "Let's build GPT" ``gpt.py``, constant lr, AdamW defaults); here the same
model sizes are trained with the recipe below, so the numbers are a reference, not a target.

Training, as nanoGPT's ``train.py``: AdamW (betas 0.9/0.99, weight decay 0.1 on matrices
only), linear warm-up then cosine decay to ``--min-lr`` over ``--max-iters``, gradient
clipping at global norm 1.0, all through ``model.fit`` on a ``RandomWindowSampler``; the
evaluation and checkpoints are a callback. A checkpoint is a model file (``model.save``:
weights, optimizer state, schedule, ``fit``'s epoch and seed) and ``ckpt.json`` (settings,
tokenizer, iteration, sampler and ``nl.random`` states, losses so far), written atomically, the
JSON last; ``--resume`` continues (``fit(initial_epoch=model.epoch)``: one ``fit`` epoch per
``--eval-interval``) so that the run is the one an uninterrupted run would have been, loss for
loss. Training flags given with ``--resume`` override the checkpoint's settings (``--max-iters
4000`` trains on; the schedule follows the new values), those of the model and the seed cannot.

``--device cuda`` trains (or samples) on an NVIDIA GPU (``pip install '.[cuda]' in nnlite's checkout``): the
model and its optimizer state move there with ``model.to("cuda")``, each batch as ``fit`` takes
it; checkpoints hold host arrays, so a run may resume on either device.
"""
import argparse
import glob
import json
import math
import numbers
import os
import re
import sys
import time

import numpy as np

try:
    import nnlite as nl
except ImportError:             # run from a checkout without installing: use the repo's nnlite
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import nnlite as nl

PRESETS = {
    # nanoGPT README, "baby GPT" on a CPU: --block_size=64 --batch_size=12 --n_layer=4
    # --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
    "baby": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12,
             "dropout": 0.0, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
             "max_iters": 2000, "eval_interval": 250, "eval_iters": 200},
    # the course notes' two runs (seed 003): model sizes, batch, lr, dropout and iterations
    "course-base": {"n_layer": 4, "n_head": 4, "n_embd": 64, "block_size": 32, "batch_size": 16,
                    "dropout": 0.0, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
                    "max_iters": 5000, "eval_interval": 500, "eval_iters": 200},
    "course-best": {"n_layer": 8, "n_head": 8, "n_embd": 128, "block_size": 256,
                    "batch_size": 32, "dropout": 0.2, "lr": 3e-3, "min_lr": 3e-4,
                    "warmup_iters": 100, "max_iters": 5000, "eval_interval": 500,
                    "eval_iters": 200},
}
COMMON = {"weight_decay": 0.1, "grad_clip": 1.0, "seed": 1337}   # nanoGPT's
HYPER = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout", "lr", "min_lr",
         "warmup_iters", "max_iters", "weight_decay", "grad_clip", "eval_interval", "eval_iters",
         "seed")
CKPT = "ckpt.json"
# what each setting must be: (type, lowest, highest); the flags and a resumed ckpt.json alike
LIMITS = {"n_layer": (int, 1, 1024), "n_head": (int, 1, 1024), "n_embd": (int, 1, 1 << 16),
          "block_size": (int, 1, 1 << 16), "batch_size": (int, 1, 1 << 16),
          "dropout": (float, 0.0, 1.0), "lr": (float, 0.0, 10.0), "min_lr": (float, 0.0, 10.0),
          "warmup_iters": (int, 0, 1 << 40), "max_iters": (int, 1, 1 << 40),
          "weight_decay": (float, 0.0, 10.0), "grad_clip": (float, 0.0, 1e30),
          "eval_interval": (int, 1, 1 << 40), "eval_iters": (int, 1, 1 << 40),
          "seed": (int, 0, 2 ** 63 - 1)}
MAX_TOKENS_PER_BATCH = 1 << 22      # batch_size * block_size: 4M tokens (the presets: < 10k)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(PRESETS), default="baby",
                   help="preset of the model and training settings below (the table in the "
                        "script's docstring; default: %(default)s)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 quiet, 1 live progress bars, 2 the same lines without the live "
                        "bars, for logs (default: %(default)s)")
    g = p.add_argument_group(
        "model and training", "Default: the --config preset's value (weight decay, gradient "
        "clipping and seed: the same for every preset). With --resume, the checkpoint's; a "
        "flag given then overrides it, unless it would change the model or its random streams.")
    g.add_argument("--n-layer", type=int, metavar="N", help="transformer blocks")
    g.add_argument("--n-head", type=int, metavar="N", help="attention heads per block")
    g.add_argument("--n-embd", type=int, metavar="N",
                   help="embedding width, a multiple of --n-head")
    g.add_argument("--block-size", type=int, metavar="N", help="context length, in characters")
    g.add_argument("--batch-size", type=int, metavar="N", help="sequences per training batch")
    g.add_argument("--dropout", type=float, metavar="P", help="dropout rate, in [0, 1)")
    g.add_argument("--lr", type=float, help="peak learning rate (after the warm-up)")
    g.add_argument("--min-lr", type=float, metavar="LR",
                   help="learning rate at the end of the cosine decay")
    g.add_argument("--warmup-iters", type=int, metavar="N",
                   help="iterations of linear learning-rate warm-up")
    g.add_argument("--max-iters", type=int, metavar="N",
                   help="train up to this iteration; the cosine decay ends there")
    g.add_argument("--weight-decay", type=float, metavar="WD",
                   help=f"AdamW weight decay, on matrices only (default: "
                        f"{COMMON['weight_decay']})")
    g.add_argument("--grad-clip", type=float, metavar="NORM",
                   help=f"clip gradients to this global norm, 0 = off (default: "
                        f"{COMMON['grad_clip']})")
    g.add_argument("--eval-interval", type=int, metavar="N",
                   help="estimate the losses and checkpoint every N iterations")
    g.add_argument("--eval-iters", type=int, metavar="N",
                   help="batches per loss estimate of the last evaluation (the run's result)")
    g.add_argument("--quick-eval-iters", type=int, metavar="N",
                   help="batches per loss estimate of the evaluations before the last, which "
                        "only show progress (default: --eval-iters / 8, at least 1); the "
                        "samplers still advance by --eval-iters, so the last estimate is over "
                        "the same windows whatever this is")
    g.add_argument("--eval-batch-size", type=int, metavar="N",
                   help="sequences per evaluation forward pass, a multiple of --batch-size "
                        "(consecutive batches merged; the same windows, the same estimate; "
                        "default: --batch-size)")
    g.add_argument("--seed", type=int, metavar="N",
                   help=f"seed of the weights, batches, dropout and sampling (default: "
                        f"{COMMON['seed']})")
    g = p.add_argument_group("files")
    g.add_argument("--out-dir", metavar="DIR",
                   help="checkpoints go here (default: out-<config>, e.g. out-baby)")
    g.add_argument("--data-dir", metavar="DIR", help="folder with tinyshakespeare/input.txt "
                   "(default: $NNLITE_DATA, the cache, a download, then the bundled copy)")
    g.add_argument("--text-file", metavar="FILE",
                   help="train on this UTF-8 text file instead of Tiny Shakespeare")
    g.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out-dir, with its settings "
                        "(but those given as flags, see above)")
    g.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after this iteration (a multiple of --eval-interval), as if "
                        "interrupted; --resume continues")
    g.add_argument("--plot", action="store_true",
                   help="save the loss curve to OUT_DIR/loss.png (needs matplotlib)")
    g = p.add_argument_group("sampling")
    g.add_argument("--sample", action="store_true",
                   help="only load the checkpoint from --out-dir and print generated text")
    g.add_argument("--prompt", default="\n", metavar="TEXT",
                   help="text to continue (default: a newline)")
    g.add_argument("--max-new-tokens", type=int, default=500, metavar="N",
                   help="characters to generate after training or with --sample, 0 = none "
                        "(default: %(default)s)")
    g.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="sampling temperature, 0 = greedy (default: %(default)s)")
    g.add_argument("--top-k", type=int, default=200, metavar="K",
                   help="sample among the K likeliest characters (default: %(default)s)")
    nl.devices.add_argument(p)
    args = p.parse_args(argv)
    args.device = nl.devices.for_script(args.device, p.prog)
    # the settings given on the command line: with --resume they override the checkpoint's
    args.given = [k for k in HYPER if getattr(args, k) is not None]
    hp = {**COMMON, **PRESETS[args.config]}
    for k in HYPER:                         # a flag given wins over the preset
        if getattr(args, k) is None:
            setattr(args, k, hp[k])
    if args.out_dir is None:
        args.out_dir = f"out-{args.config}"
    return args


def check_hyper(hp, source):
    """``hp`` (dict) holds exactly the settings of :data:`HYPER`, each of the right type and in
    range; ValueError naming ``source`` and the setting otherwise."""
    if not isinstance(hp, dict):
        raise ValueError(  # noqa: TRY004  (a bad file or flag: main reports ValueErrors)
            f"{source}: settings must be a JSON object, got {type(hp).__name__}")
    missing, extra = set(HYPER) - set(hp), set(hp) - set(HYPER)
    if missing or extra:
        raise ValueError(f"{source}: settings missing {sorted(missing) or 'none'}, unexpected "
                         f"{sorted(extra) or 'none'}")
    for k in HYPER:
        kind, low, high = LIMITS[k]
        v = hp[k]
        ok = (isinstance(v, numbers.Integral) if kind is int else
              isinstance(v, numbers.Real) and math.isfinite(v)) and not isinstance(v, bool)
        if not ok or not low <= v <= high or (k == "dropout" and v >= 1.0):
            what = "an int" if kind is int else "a number"
            raise ValueError(f"{source}: {k} must be {what} in [{low}, {high}"
                             f"{')' if k == 'dropout' else ']'}, got {v!r}")
    if hp["batch_size"] * hp["block_size"] > MAX_TOKENS_PER_BATCH:
        raise ValueError(f"{source}: batch_size * block_size = "
                         f"{hp['batch_size'] * hp['block_size']:,} tokens per batch is more "
                         f"than {MAX_TOKENS_PER_BATCH:,}")
    if hp["n_embd"] % hp["n_head"]:
        raise ValueError(f"{source}: n_embd {hp['n_embd']} is not divisible by n_head "
                         f"{hp['n_head']}")


# -- checkpoints ---------------------------------------------------------------------------
def _plain(obj):
    """JSON-able copy (numpy scalars and arrays become Python numbers and lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def write_json_atomic(path, obj):
    """Write to a temporary file in the same folder, flush it to disk, then rename over
    ``path`` (``nl.io.atomic_write``): a reader sees the old file or the new one, never half
    of one, and no temporary file stays behind (one a killed run left goes at the next
    write)."""
    data = json.dumps(_plain(obj), indent=1).encode("utf-8")
    nl.io.atomic_write(path, lambda f: f.write(data))


def save_checkpoint(run):
    """The model file first (its own atomic write), then ``ckpt.json`` naming it: the JSON is
    the commit point, so a crash in between leaves the previous checkpoint intact."""
    it = run.model.optimizer.iterations
    model_file = f"model-{it:06d}.nnl"
    run.model.save(os.path.join(run.out_dir, model_file), include_optimizer=True)
    state = {"format": "nnlite-gpt-checkpoint", "version": 1, "model_file": model_file,
             "iteration": it, "args": {k: getattr(run.args, k) for k in HYPER},
             "tokenizer": run.tok.get_config(),
             "samplers": {k: s.state_dict() for k, s in run.samplers.items()},
             "random_state": nl.random.get_rng().bit_generator.state,
             "best_val_loss": run.best_val_loss, "evals": run.evals}
    write_json_atomic(os.path.join(run.out_dir, CKPT), state)
    for old in glob.glob(os.path.join(run.out_dir, "model-*.nnl")):    # superseded files
        if os.path.basename(old) != model_file:
            os.remove(old)
    for tmp in glob.glob(os.path.join(run.out_dir, ".model-*.nnl.*.tmp")):  # of killed runs
        name = re.match(r"\.(model-\d+\.nnl)\.", os.path.basename(tmp))
        if name:                                # (only those whose writer is gone)
            nl.io.safetensors.remove_stale_temp_files(os.path.join(run.out_dir, name[1]))


def check_checkpoint(state, path):
    """``state`` (``ckpt.json``, parsed) is what :func:`save_checkpoint` writes; ValueError
    naming ``path`` and the entry otherwise. The model file must be a plain
    ``model-NNNNNN.nnl`` beside it (no other folder), the settings those of :data:`HYPER`."""
    def need(key, kind, what):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise ValueError(  # noqa: TRY004  (a bad file: main reports ValueErrors)
                f"{path}: {key} must be {what}, got {state.get(key)!r:.80}")
        return state[key]

    if not isinstance(state, dict) or state.get("format") != "nnlite-gpt-checkpoint" \
            or state.get("version") != 1:
        raise ValueError(f"{path}: not a checkpoint of this example (format "
                         f"'nnlite-gpt-checkpoint', version 1)")
    name = need("model_file", str, "a file name")
    if not re.fullmatch(r"model-\d{6,}\.nnl", name):
        raise ValueError(f"{path}: model_file must be a file model-NNNNNN.nnl beside it, got "
                         f"{name!r:.80}")
    if need("iteration", int, "an int >= 0") < 0:
        raise ValueError(f"{path}: iteration must be >= 0, got {state['iteration']}")
    check_hyper(need("args", dict, "a JSON object of settings"), f"{path}: args")
    for key, kind, what in (("tokenizer", dict, "a JSON object"),
                            ("samplers", dict, "a JSON object"),
                            ("random_state", dict, "a JSON object"),
                            ("best_val_loss", (int, float), "a number"),
                            ("evals", list, "a list")):
        need(key, kind, what)
    if set(state["samplers"]) != {"train", "eval_train", "eval_val"}:
        raise ValueError(f"{path}: samplers must be train, eval_train and eval_val, got "
                         f"{sorted(state['samplers'])}")
    for e in state["evals"]:
        if not isinstance(e, dict) or set(e) != {"iter", "train_loss", "val_loss"}:
            raise ValueError(f"{path}: each of evals must be {{iter, train_loss, val_loss}}, "
                             f"got {e!r:.80}")


def load_checkpoint(out_dir):
    """``(state dict, model)`` from ``out_dir``, checked (:func:`check_checkpoint`, and the
    model must be the one its settings describe); FileNotFoundError saying what to do,
    ValueError naming the file and what is wrong."""
    path = os.path.join(out_dir, CKPT)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint in {out_dir!r} ({CKPT} missing): train first, "
                                f"or point --out-dir at a training run's folder")
    with open(path, encoding="utf-8") as f:
        try:
            state = json.load(f)
        except (ValueError, RecursionError) as e:      # (JSONDecodeError is a ValueError)
            raise ValueError(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
    check_checkpoint(state, path)
    model = nl.load_model(os.path.join(out_dir, state["model_file"]))
    hp, cfg = state["args"], getattr(model, "config", None)
    try:
        tok = nl.data.CharTokenizer.from_config(state["tokenizer"])
    except Exception as e:                              # noqa: BLE001
        raise ValueError(f"{path}: tokenizer: {type(e).__name__}: {e}") from None
    want = {k: hp[k] for k in ("n_layer", "n_head", "n_embd", "block_size")}
    want["vocab_size"] = tok.vocab_size
    got = {k: getattr(cfg, k, None) for k in want}
    if not isinstance(model, nl.models.GPT) or got != want:
        raise ValueError(f"{path}: its settings {want} do not describe the model in "
                         f"{state['model_file']} ({got})")
    if model.optimizer is None or model.optimizer.iterations != state["iteration"]:
        raise ValueError(f"{path}: iteration {state['iteration']} does not match the model "
                         f"file's optimizer")
    return state, model


def restore_samplers(samplers, state, path):
    """Continue where the checkpoint ``state`` (from :func:`load_checkpoint`) left off: each
    sampler's position and the ``nl.random`` state; ValueError naming ``path`` otherwise."""
    try:
        for k, s in samplers.items():
            s.load_state_dict(state["samplers"][k])
        nl.random.get_rng().bit_generator.state = state["random_state"]
    except (ValueError, TypeError, KeyError, OverflowError) as e:   # (numbers out of range)
        raise ValueError(f"{path}: samplers or random_state: {type(e).__name__}: {e}") from None


# -- progress, evaluation + checkpointing, as callbacks ----------------------------------------
class IterationProgress(nl.callbacks.Callback):
    """fit's progress, counted in iterations: a line ``Iterations 251-500 of 2000`` per
    evaluation interval, then a bar of its iterations. (fit's own would say ``Epoch 2/8``,
    and ``Epoch 1/6`` again after ``--resume``: its epochs are this run's intervals.)"""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_begin(self, epoch, logs=None):
        r, it = self.run, self.model.optimizer.iterations
        end = min(it + r.args.eval_interval, r.last_iter)
        if r.args.verbose:
            print(f"Iterations {it + 1}-{end} of {r.args.max_iters}")
        self.bar, self.done = nl.training.Progbar(end - it, r.args.verbose, unit="iter"), 0

    def on_batch_end(self, batch, logs=None):
        self.done = batch + 1
        self.bar.update(self.done, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(self.done, logs, finalize=True)


def counted(batches, steps, bar, offset):
    """The first ``steps`` of ``batches``, each reported to ``bar`` (as step ``offset + i``)."""
    for i, batch in zip(range(steps), batches):     # (zip stops before drawing one more)
        bar.update(offset + i)
        yield batch


def merged(batches, k):
    """``batches`` (pairs ``(xb, yb)``) concatenated ``k`` at a time: the same windows in
    fewer, larger forward passes (a last group may be smaller)."""
    if k == 1:
        yield from batches
        return
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == k:
            yield tuple(np.concatenate(parts) for parts in zip(*group))
            group = []
    if group:
        yield tuple(np.concatenate(parts) for parts in zip(*group))


def estimate(model, sampler, n, keep, merge, bar, offset):
    """The mean loss over the first ``keep`` of ``n`` batches drawn from ``sampler``; all
    ``n`` are drawn (windows cost microseconds), so the sampler ends where a full estimate
    leaves it and the next estimate sees the same windows whatever ``keep`` is."""
    batches = iter(sampler)
    loss = model.evaluate(merged(counted(batches, keep, bar, offset), merge),
                          steps=-(-keep // merge))["loss"]
    for _ in counted(batches, n - keep, bar, offset + keep):
        pass
    return loss


class EvalCheckpoint(nl.callbacks.Callback):
    """Every ``eval_interval`` iterations (at the end of each ``fit`` epoch): estimate the
    train and val loss, print nanoGPT's line, add ``val_loss``/``train_eval_loss`` to the
    logs, save a checkpoint. Also evaluates at iteration 0 and stops ``fit`` at
    ``max_iters`` (or ``--stop-after``)."""

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.eval_seconds = 0.0
        self.checkpoint_seconds = 0.0

    def _evaluate(self):
        t0 = time.perf_counter()
        r, it, n = self.run, self.model.optimizer.iterations, self.run.args.eval_iters
        # Before the last evaluation, a quick estimate on the first of the n batches: it only
        # shows progress (a full one at every interval was a third of the baby run's time)
        quick = r.args.quick_eval_iters or max(n // 8, 1)
        keep = n if it >= r.args.max_iters else min(n, quick)
        merge = (r.args.eval_batch_size or r.args.batch_size) // r.args.batch_size
        # a live bar on a terminal while the 2 x eval_iters batches run, erased after: the
        # line below says what it found
        bar = nl.training.Progbar(2 * n, r.args.verbose, unit="batch", label="evaluating")
        train = estimate(self.model, r.samplers["eval_train"], n, keep, merge, bar, 0)
        val = estimate(self.model, r.samplers["eval_val"], n, keep, merge, bar, n)
        bar.clear()
        r.evals.append({"iter": it, "train_loss": train, "val_loss": val})
        r.best_val_loss = min(r.best_val_loss, val)
        if r.args.verbose:
            print(f"step {it}: train loss {train:.4f}, val loss {val:.4f}", flush=True)
        self.eval_seconds += time.perf_counter() - t0
        return train, val

    def on_train_begin(self, logs=None):
        if not self.run.evals:                  # a fresh run: the loss before training
            self._evaluate()

    def on_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations >= self.run.last_iter:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        train, val = self._evaluate()
        logs.update(train_eval_loss=train, val_loss=val)
        t0 = time.perf_counter()
        save_checkpoint(self.run)
        self.checkpoint_seconds += time.perf_counter() - t0


class Run:
    """What a training run holds: settings, tokenizer, samplers, model, losses so far."""

    def __init__(self, args):
        self.args, self.out_dir = args, args.out_dir
        self.evals, self.best_val_loss = [], math.inf


def load_text(args):
    if args.text_file:
        with open(args.text_file, encoding="utf-8") as f:
            return f.read()
    return nl.datasets.load_tiny_shakespeare(args.data_dir)


def make_optimizer(args):
    schedule = nl.optim.CosineDecay(args.lr, total_steps=args.max_iters,
                                    warmup_steps=min(args.warmup_iters, args.max_iters - 1),
                                    min_lr=args.min_lr)
    return nl.optim.AdamW(lr=schedule, beta1=0.9, beta2=0.99, weight_decay=args.weight_decay,
                          clipnorm=args.grad_clip or None, decay_filter="matrices")


# what a flag given with --resume cannot change, and why
FIXED_ON_RESUME = {**dict.fromkeys(("n_layer", "n_head", "n_embd", "block_size", "dropout"),
                                   "the checkpoint's model was built with"),
                   "seed": "the run's random streams continue from the checkpoint, seeded with"}


def resume_settings(args, state, path):
    """Set ``args`` to the checkpoint's settings, except those given on the command line
    (``args.given``) that a run in progress can change: the training schedule, batches and
    evaluation. Returns ``{setting: (checkpoint's, new)}`` of those changed; ValueError when a
    flag asks for what cannot be (another model, another seed, a ``max_iters`` already
    passed)."""
    saved, changed = state["args"], {}
    for k in HYPER:
        new = getattr(args, k)
        if k in args.given and new != saved[k]:
            if k in FIXED_ON_RESUME:
                raise ValueError(f"--{k.replace('_', '-')} {new} cannot apply to a resumed run: "
                                 f"{FIXED_ON_RESUME[k]} {k} {saved[k]} ({path}); train a new "
                                 f"one in another --out-dir")
            changed[k] = (saved[k], new)
        else:
            setattr(args, k, saved[k])
    check_hyper({k: getattr(args, k) for k in HYPER}, "arguments")
    if "max_iters" in changed and args.max_iters <= state["iteration"]:
        raise ValueError(f"--max-iters {args.max_iters}: the run in {args.out_dir} is at "
                         f"iteration {state['iteration']} already; give more to train further")
    return changed


def train(args):
    run = Run(args)
    os.makedirs(args.out_dir, exist_ok=True)
    state = model = None
    changed = {}
    if args.resume:
        state, model = load_checkpoint(args.out_dir)
        changed = resume_settings(args, state, os.path.join(args.out_dir, CKPT))
        if changed.keys() & {"lr", "min_lr", "warmup_iters", "max_iters", "weight_decay",
                             "grad_clip"}:
            # the optimizer keeps its state (moments, step count); its schedule, decay and
            # clipping become those of the new settings
            fresh = make_optimizer(args)
            for attr in ("lr", "weight_decay", "clipnorm"):   # (lr: the schedule)
                setattr(model.optimizer, attr, getattr(fresh, attr))
        run.tok = nl.data.CharTokenizer.from_config(state["tokenizer"])
        run.evals, run.best_val_loss = state["evals"], state["best_val_loss"]
    else:
        check_hyper({k: getattr(args, k) for k in HYPER}, "arguments")
    text = load_text(args)
    if state is None:
        run.tok = nl.data.CharTokenizer.from_text(text)
    train_ids, val_ids = nl.data.train_val_split(run.tok.encode(text), 0.9)

    nl.random.seed(args.seed)                   # weights, dropout masks
    B, T = args.batch_size, args.block_size
    run.samplers = {"train": nl.data.RandomWindowSampler(train_ids, T, B, seed=args.seed),
                    "eval_train": nl.data.RandomWindowSampler(train_ids, T, B, seed=args.seed + 1),
                    "eval_val": nl.data.RandomWindowSampler(val_ids, T, B, seed=args.seed + 2)}
    if state is None:
        model = nl.models.GPT(run.tok.vocab_size, T, args.n_layer, args.n_head, args.n_embd,
                              dropout=args.dropout)
        model.compile(optimizer=make_optimizer(args), loss="cross_entropy")
        if args.verbose:
            print(f"{len(text):,} characters, vocabulary {run.tok.vocab_size}; "
                  f"{len(train_ids):,} train / {len(val_ids):,} val tokens")
            print(f"{model!r}")
    else:
        restore_samplers(run.samplers, state, os.path.join(args.out_dir, CKPT))
        if args.verbose:
            given = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
            print(f"resuming {args.out_dir} at iteration {state['iteration']} (settings from "
                  f"the checkpoint{'; from the command line: ' + given if given else ''})")
    run.model = model.to(args.device)   # "cuda": weights and AdamW's state on the GPU

    start = model.optimizer.iterations
    run.last_iter = args.max_iters
    if args.stop_after is not None:
        if args.stop_after % args.eval_interval:
            raise ValueError(f"--stop-after {args.stop_after} must be a multiple of "
                             f"--eval-interval {args.eval_interval} (checkpoints are taken there)")
        run.last_iter = min(run.last_iter, args.stop_after)
    if args.quick_eval_iters is not None and args.quick_eval_iters < 1:
        raise ValueError(f"--quick-eval-iters must be >= 1, got {args.quick_eval_iters}")
    if args.eval_batch_size is not None and (args.eval_batch_size < 1 or
                                             args.eval_batch_size % args.batch_size):
        raise ValueError(f"--eval-batch-size {args.eval_batch_size} must be a positive "
                         f"multiple of --batch-size {args.batch_size}")
    epochs = -(-(run.last_iter - start) // args.eval_interval)
    if epochs <= 0 and args.verbose:
        print(f"nothing to train: the run is at iteration {start} of --max-iters "
              f"{args.max_iters}{'' if start < args.max_iters else ' (give more to continue)'}")
    cb = EvalCheckpoint(run)
    t0 = time.perf_counter()
    # fit's epochs go on from the checkpoint's (model.epoch; 0 in a new run): epoch e's Dropout
    # masks come from (the run's seed, e), as in an uninterrupted run
    if epochs > 0:             # (the progress first: its line ends before the evaluation's)
        model.fit(run.samplers["train"], steps_per_epoch=args.eval_interval,
                  epochs=model.epoch + epochs, initial_epoch=model.epoch,
                  callbacks=[IterationProgress(run), cb], verbose=0)
    seconds = time.perf_counter() - t0
    train_seconds = seconds - cb.eval_seconds - cb.checkpoint_seconds
    done = model.optimizer.iterations - start
    last = run.evals[-1] if run.evals else {}
    result = {"train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
              "best_val_loss": run.best_val_loss, "iterations": model.optimizer.iterations,
              "seconds": seconds,
              "ms_per_iter": 1e3 * train_seconds / max(done, 1),
              "train_seconds": train_seconds, "eval_seconds": cb.eval_seconds,
              "checkpoint_seconds": cb.checkpoint_seconds, "evals": run.evals}
    if args.verbose and done:
        print(f"{done} iterations in {seconds:.1f}s ({result['ms_per_iter']:.1f} ms/iter): "
              f"train {train_seconds:.1f}s, evaluation {cb.eval_seconds:.1f}s "
              f"({100 * cb.eval_seconds / max(seconds, 1e-9):.0f} %), checkpoints "
              f"{cb.checkpoint_seconds:.1f}s")
    if args.plot:
        plot(run.evals, os.path.join(args.out_dir, "loss.png"))
    if model.optimizer.iterations >= args.max_iters and args.max_new_tokens > 0:
        result["sample"] = sample_text(model, run.tok, args)
        print(result["sample"])
    return result


# -- sampling and plotting -----------------------------------------------------------------
def sample_text(model, tok, args):
    prompt = tok.encode(args.prompt)            # unknown characters: ValueError naming them
    ids = model.generate(prompt, args.max_new_tokens, temperature=args.temperature,
                         top_k=args.top_k, seed=args.seed)
    return tok.decode(ids)


def sample(args):
    state, model = load_checkpoint(args.out_dir)
    tok = nl.data.CharTokenizer.from_config(state["tokenizer"])
    if "seed" not in args.given:            # the run's own, unless one is given
        args.seed = state["args"]["seed"]
    text = sample_text(model.to(args.device), tok, args)
    print(text)
    return {"text": text, "iteration": state["iteration"]}


def plot(evals, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot: matplotlib is not installed (pip install matplotlib); no plot")
        return None
    its = [e["iter"] for e in evals]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(its, [e["train_loss"] for e in evals], label="train")
    ax.plot(its, [e["val_loss"] for e in evals], label="val")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"loss curve saved to {path}")
    return path


# The usual entry point, as in the other examples: each example is a script that stands alone.
def main(argv=None):
    args = parse_args(argv)
    return sample(args) if args.sample else train(args)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"{os.path.basename(__file__)}: error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted; the last checkpoint is kept: continue with --resume")
