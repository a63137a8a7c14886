"""Fuzz target: the GPT example's checkpoint reader, ``load_checkpoint`` (examples/
gpt_shakespeare.py: ``ckpt.json`` checked by ``check_checkpoint``, then the model file it names
loaded and matched against it), then what ``--resume`` does with it: ``resume_settings`` (the
flags given against the checkpoint's settings) and ``restore_samplers`` (the samplers' and
``nl.random``'s states). See _target.py for the rules and run.py to run it.

Input: the bytes of ``ckpt.json``, beside the model file of a real 2-iteration run made at
start-up (``model-000002.nnl``). Documented errors: ValueError naming the run (the
docstrings' "ValueError naming the file and what is wrong"; ``--max-iters`` names the
``--out-dir``), and FileNotFoundError when the JSON names a model file that is not there.
Nothing else may escape.
"""
import copy
import json
import os
import sys

import numpy as np

import _target

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "examples"))
with _target.instrumented("nnlite", "gpt_shakespeare"):
    import gpt_shakespeare as gpt
    import nnlite as nl
sys.path.pop(0)

ALLOWED = (ValueError, FileNotFoundError)
MAX_LEN = 1 << 14
DICT = ['"format"', '"nnlite-gpt-checkpoint"', '"version"', '"model_file"',
        '"model-000002.nnl"', '"iteration"', '"args"', '"tokenizer"', '"samplers"',
        '"random_state"', '"best_val_loss"', '"evals"', '"train"', '"eval_train"',
        '"eval_val"', '"bit_generator"', '"PCG64"', '"state"', '"inc"', '"has_uint32"',
        '"uinteger"', '"batches_drawn"', '"chars"', '"n_layer"', '"n_head"', '"n_embd"',
        '"block_size"', '"iter"', '"train_loss"', '"val_loss"', "NaN", "Infinity",
        "-Infinity", "1e400", "true", "null", "[]", "{}", "340282366920938463463374607431768211457"]


def error_ok(exc, work):
    if isinstance(exc, FileNotFoundError):
        return True
    return os.path.join(work, "run") in str(exc)


_RUN = {}


def setup(work):
    """A real checkpoint: 2 iterations of a tiny GPT on a tiny text."""
    out = os.path.join(work, "run")
    text = os.path.join(work, "text.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("to be or not to be, that is the question.\n" * 20)
    gpt.main(["--n-layer", "1", "--n-head", "1", "--n-embd", "8", "--block-size", "8",
              "--batch-size", "2", "--max-iters", "2", "--eval-interval", "2",
              "--eval-iters", "1", "--warmup-iters", "0", "--out-dir", out, "--text-file",
              text, "--verbose", "0", "--max-new-tokens", "0"])
    with open(os.path.join(out, gpt.CKPT), "rb") as f:
        _RUN["ckpt"] = f.read()
    ids = np.arange(40) % 7
    _RUN["samplers"] = {k: nl.data.RandomWindowSampler(ids, 8, 2, seed=i)
                        for i, k in enumerate(("train", "eval_train", "eval_val"))}
    # --resume with flags that a run in progress may change
    _RUN["args"] = gpt.parse_args(["--resume", "--out-dir", out, "--max-iters", "6",
                                   "--lr", "0.002", "--eval-iters", "2"])


def seeds(work):
    ckpt = _RUN["ckpt"]
    state = json.loads(ckpt)
    more = dict(state, evals=state["evals"] * 3, best_val_loss=1e308)
    return {"ckpt": ckpt, "ckpt_compact": json.dumps(state).encode(),
            "ckpt_more": json.dumps(more).encode()}


def regressions(work):
    return {}


def run(data, work):
    out = os.path.join(work, "run")
    path = _target.write(os.path.join(out, gpt.CKPT), data)
    state, model = gpt.load_checkpoint(out)
    assert isinstance(model, nl.models.GPT)
    gpt.resume_settings(copy.copy(_RUN["args"]), state, path)
    gpt.restore_samplers(_RUN["samplers"], state, path)


if __name__ == "__main__":
    sys.exit(_target.main(sys.modules[__name__]))
