"""MNIST with a multi-layer perceptron, two ways.

Default (the README's main example): the full 60 000 training images, a 784-256-128-10 ReLU
MLP trained with Adam and a cosine learning-rate schedule through the Keras-like
``Sequential`` API; about 98 % test accuracy in at most 10 epochs.

``--course``: the course notes' experiment, written as the explicit low-level loop so every
step is visible (forward through each layer, loss, backward in reverse, optimizer step):
the first 1000 training images, 784-20-10 ReLU + softmax, MSE on one-hot targets,
per-sample SGD with lr 0.1 for 40 epochs. The notes report test accuracy 0.8592.

``--device cuda`` trains on an NVIDIA GPU (``pip install '.[cuda]' in nnlite's checkout``): ``model.to("cuda")``,
then the same ``fit``. Run ``python examples/mnist_mlp.py --help`` for the flags. With no MNIST files and no network
the bundled 1000 + 1000-image sample is used (with a notice; expect ~90 %, not 98 %).
"""
import argparse
import sys
import time

import numpy as np

import nnlite as nl


def parse_args(argv=None):
    # (defaults written once, in the help: some depend on --course, which argparse can't show)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--course", action="store_true",
                   help="reproduce the course notes (784-20-10, MSE, per-sample SGD)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST .gz files "
                   "(default: $NNLITE_DATA, then the user cache, then a download)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="passes over the training images (default: 10; --course: 40)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="images per step (default: %(default)s; --course: 1)")
    p.add_argument("--lr", type=float,
                   help="learning rate (default: 1e-3 for Adam; --course: 0.1 for SGD)")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="use only the first N training images (default: all; --course: 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the weights and the shuffling (default: %(default)s)")
    p.add_argument("--save", metavar="FILE", help="save the trained model to this .nnl file")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 quiet, 1 progress bar, 2 a line per epoch (default: %(default)s)")
    nl.devices.add_argument(p)
    args = p.parse_args(argv)
    if args.course and args.device != "cpu":
        p.error("--course runs on the CPU (one image per step: a GPU would only wait); "
                "drop --device or --course")
    args.device = nl.devices.for_script(args.device, p.prog)
    return args


def load(args):
    (x, y), (x_test, y_test) = nl.datasets.load_mnist(args.data_dir, allow_sample=True)
    if args.train_size:
        x, y = x[:args.train_size], y[:args.train_size]
    # scale once to float32 in [0, 1]; the model would cast anyway, this avoids a float64 copy
    return (x.astype(np.float32) / 255, y), (x_test.astype(np.float32) / 255, y_test)


def course(args):
    """The course notes' loop, one sample at a time, with nnlite's layers."""
    (x, y), (x_test, y_test) = load(args)
    n = args.train_size or 1000
    x, y = x[:n], y[:n]
    epochs, lr = args.epochs or 40, args.lr or 0.1
    rng = np.random.default_rng(args.seed)

    network = [nl.Flatten(), nl.Linear(28 * 28, 20), nl.ReLU(), nl.Linear(20, 10), nl.Softmax()]
    for layer in network:  # the notes' initialisation: N(0, 1) / sqrt(fan_in + fan_out)
        if isinstance(layer, nl.Linear):
            fan_in, fan_out = layer.params["W"].shape
            layer.params["W"][...] = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in + fan_out)
            layer.params["b"][...] = rng.standard_normal(fan_out) / np.sqrt(fan_in + fan_out)
    loss_fn = nl.losses.MSE()
    optimizer = nl.optim.SGD(lr=lr)
    params = [(layer.params[k], layer.grads[k]) for layer in network for k in layer.params]
    onehot = np.eye(10, dtype=np.float32)

    t0 = time.perf_counter()
    for epoch in range(epochs):
        total = 0.0
        for i in range(n):
            out = x[i:i + 1]                       # a batch of one, as in the notes
            for layer in network:                  # forward
                out = layer.forward(out, training=True)
            total += loss_fn.forward(out, onehot[y[i:i + 1]])
            grad = loss_fn.backward()              # d loss / d output
            for layer in reversed(network):        # backward
                grad = layer.backward(grad)
            optimizer.step(params)                 # w -= lr * dw
            for layer in network:
                layer.zero_grad()
        if args.verbose:
            print(f"epoch {epoch + 1:2d}/{epochs}  mse {total / n:.4f}  "
                  f"({time.perf_counter() - t0:.1f}s)")

    out = x_test
    for layer in network:
        out = layer.forward(out, training=False)
    accuracy = float((out.argmax(axis=1) == y_test).mean())
    mse = float(((out - onehot[y_test]) ** 2).mean())
    print(f"test accuracy {accuracy:.4f}  test mse {mse:.4f}  (course notes: 0.8592, 0.0214)")
    return {"accuracy": accuracy, "mse": mse}


def full(args):
    """The Keras-like way: Sequential, compile, fit, evaluate."""
    (x, y), (x_test, y_test) = load(args)
    epochs, lr = args.epochs or 10, args.lr or 1e-3
    nl.random.seed(args.seed)
    model = nl.Sequential(input_shape=(28, 28), layers=[
        nl.Flatten(),
        nl.Linear(784, 256), nl.ReLU(),
        nl.Linear(256, 128), nl.ReLU(),
        nl.Linear(128, 10),
    ])
    steps = epochs * int(np.ceil(0.9 * len(x) / args.batch_size))
    schedule = nl.optim.CosineDecay(lr, total_steps=steps, min_lr=lr / 20)
    model.compile(optimizer=nl.optim.Adam(lr=schedule), loss="cross_entropy", metrics=["accuracy"])
    model.to(args.device)           # "cuda": weights and Adam's state on the GPU; fit moves batches
    model.summary()
    callbacks = [nl.callbacks.EarlyStopping(monitor="val_loss", patience=3,
                                            restore_best_weights=True, verbose=args.verbose)]
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=epochs, validation_split=0.1,
              callbacks=callbacks, verbose=args.verbose, seed=args.seed)
    seconds = time.perf_counter() - t0
    result = model.evaluate(x_test, y_test)
    print(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.4f}  "
          f"({len(x)} training images, {seconds:.1f}s training)")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return result


# The usual entry point, as in the other examples: each example is a script that stands alone.
def main(argv=None):
    args = parse_args(argv)
    return course(args) if args.course else full(args)


if __name__ == "__main__":
    main()
    sys.exit(0)
