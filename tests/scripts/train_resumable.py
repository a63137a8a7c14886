"""A small training run to be killed: tests/test_crash_resume.py SIGKILLs it at random moments,
then runs it again with ``--resume`` and compares the losses with an uninterrupted run's.

    python tests/scripts/train_resumable.py --ckpt out/ckpt.nnl            # from scratch
    python tests/scripts/train_resumable.py --ckpt out/ckpt.nnl --resume   # continue (or start)

An MLP with Dropout on synthetic data, Adam with a warm-up + cosine schedule and gradient
clipping, shuffled batches; ``ModelCheckpoint`` overwrites ``--ckpt`` after every epoch (many
small epochs: most of the run is spent saving, so kills land inside saves too). Resuming is
the documented recipe: ``model = nl.load_model(ckpt)``, then
``model.fit(..., initial_epoch=model.epoch)``; the seed is the run's, from the file.

Prints, flushed, one line each:

* ``start`` once nnlite is imported;
* ``epoch <e> <loss> <accuracy>`` at the end of epoch ``e`` (0-based; ``repr`` of the floats,
  so equal lines mean equal bits);
* ``saved <e> <n>`` after the checkpoint of epoch ``e`` is written, ``n`` the number of
  ``*.tmp`` files then in its folder (a killed save's temporary is removed by the next save);
* ``weights <sha256>`` at the end: a digest of the final parameters.
"""
import argparse
import hashlib
import os

import numpy as np

import nnlite as nl

print("start", flush=True)


def data(n=256, d=16, classes=4):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, classes))
    return x, np.argmax(x @ w + 0.5 * rng.standard_normal((n, classes)), axis=1)


def new_model(seed):
    nl.random.seed(seed)                    # the weights; fit draws the run's seed from it
    model = nl.Sequential([nl.Linear(16, 256), nl.ReLU(), nl.Dropout(0.2),
                           nl.Linear(256, 256), nl.ReLU(), nl.Linear(256, 4)])
    model.compile(nl.optim.Adam(lr=nl.optim.CosineDecay(3e-3, 80, warmup_steps=8),
                                clipnorm=1.0),
                  loss="cross_entropy", metrics=["accuracy"])
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="the checkpoint file, overwritten each epoch")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--resume", action="store_true",
                   help="continue from --ckpt (from scratch when there is none yet)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.resume and os.path.exists(args.ckpt):
        model = nl.load_model(args.ckpt)    # weights, optimizer state, epoch, the run's seed
    else:
        model = new_model(args.seed)
    folder = os.path.dirname(os.path.abspath(args.ckpt))

    def saved(epoch, logs):
        tmp = [f for f in os.listdir(folder) if f.endswith(".tmp")]
        print(f"saved {epoch} {len(tmp)}", flush=True)

    x, y = data()
    model.fit(x, y, batch_size=64, epochs=args.epochs, initial_epoch=model.epoch, verbose=0,
              callbacks=[nl.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: print(
                             f"epoch {e} {logs['loss']!r} {logs['accuracy']!r}", flush=True)),
                         nl.callbacks.ModelCheckpoint(args.ckpt),
                         nl.callbacks.LambdaCallback(on_epoch_end=saved)])
    digest = hashlib.sha256()
    for k, v in sorted(model.params.items()):
        digest.update(k.encode() + v.tobytes())
    print(f"weights {digest.hexdigest()}", flush=True)


if __name__ == "__main__":
    main()
