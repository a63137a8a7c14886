"""The low-level training step, for loops ``fit`` cannot express (a GAN, a VAE, any model
trained against another model's output).

``fit`` trains one model on ``(x, y)`` with one loss. A GAN alternates two models and two
optimisers, and the generator's loss is computed *through* the discriminator; a VAE's loss
needs the encoder's two heads. Both are a few lines with three pieces:

* :func:`train_step` ``(model, optimizer, x, loss_grad)``: one update of ``model``, whose
  loss and its gradient with respect to the model's output come from ``loss_grad(out) ->
  (loss, dloss_dout)``;
* ``model.backward(grad)``: the gradient of a model's input from that of its output (any
  Layer or Sequential), to chain models by hand;
* :func:`frozen` ``(model)`` (or ``model.trainable = False``): ``model`` is left out of every
  optimizer step while frozen; gradients still flow through it.

A GAN's two steps (``examples/gan.py``)::

    bce = nl.losses.BinaryCrossEntropy()

    def d_loss(logits):                                  # real images first, then fakes
        return bce(logits, targets), bce.backward()

    def g_loss(fake):                                    # the non-saturating loss
        with nl.frozen(D):                               # D is not updated here
            logits = D.forward(fake, training=True)
            loss = bce(logits, np.ones_like(logits))
            return loss, D.backward(bce.backward())      # d loss / d fake

    nl.train_step(D, opt_d, np.concatenate([real, G.predict(z)]), d_loss)
    nl.train_step(G, opt_g, z, g_loss)                   # updates G only
"""
import contextlib
import math

from .. import devices
from .. import optim as _optim
from .trainer import _training


def _walk(layer, frozen=False):
    """``(layer, frozen)`` for ``layer`` and everything under it: a layer is frozen when it or
    a layer it belongs to has ``trainable = False``."""
    frozen = frozen or not getattr(layer, "trainable", True)
    yield layer, frozen
    for sub in getattr(layer, "sublayers", list)():
        yield from _walk(sub, frozen)


def trainable_pairs(*models):
    """``[(param, grad), ...]`` of the parameters of ``models`` that are not frozen, in the
    models' ``params`` order: what ``optimizer.step`` takes. One optimizer over several models
    (a VAE's encoder and decoder): ``opt.step(trainable_pairs(encoder, decoder))``.

    A model that is not built yet (``Dense(units)``) has no parameters to give: build it
    first (``model.build(input_shape)``, or run it once).
    """
    out = []
    for model in models:
        skip = {id(a) for layer, frozen in _walk(model) if frozen
                for a in layer.params.values()} if any(f for _, f in _walk(model)) else set()
        params, grads = model.params, model.grads
        out += [(params[k], grads[k]) for k in params if id(params[k]) not in skip]
    return out


@contextlib.contextmanager
def frozen(*models):
    """``with nl.frozen(D): ...``: ``trainable = False`` on ``models`` inside the block (as
    they were afterwards). A frozen model's parameters are left out of :func:`train_step`'s and
    :func:`trainable_pairs`' updates, so nothing changes them; ``forward`` and ``backward``
    work as usual (``backward`` still returns the input gradient, and still adds into its
    ``grads``, which the model's own next step zeroes first). That last part is work a frozen
    model need not do (PyTorch's ``requires_grad_(False)`` skips it): the layers do not yet
    know they are frozen."""
    saved = [(m, m.__dict__.get("trainable")) for m in models]
    for m in models:
        m.trainable = False
    try:
        yield models[0] if len(models) == 1 else models
    finally:
        for m, old in saved:
            if old is None:
                del m.trainable           # back to the class default (True)
            else:
                m.trainable = old


def train_step(model, optimizer, x, loss_grad):
    r"""One optimisation step of ``model`` on the batch ``x``, with a loss given by its gradient.

    #. ``model.zero_grad()``;
    #. ``out = model.forward(x, training=True)`` (every layer in train mode for the step);
    #. ``loss, dout = loss_grad(out)``: the loss :math:`L` and :math:`\partial L / \partial
       \text{out}` (same shape as ``out``); for a plain loss ``lambda out: (bce(out, t),
       bce.backward())``, for a GAN's generator the gradient brought back through the
       discriminator;
    #. a NaN/inf loss raises before anything changes;
    #. ``model.backward(dout)`` (no input gradient below the first trainable layer: nobody
       uses it);
    #. ``optimizer.step(trainable_pairs(model))``: the parameters of ``model`` not frozen;
       clipping by ``clipnorm`` and the finiteness check of the gradient happen there.

    Parameters
    ----------
    model : Sequential or Layer
    optimizer : Optimizer
        One per model: its state follows the parameters' order.
    x : ndarray
        The model's input batch (moved to the model's device, ``model.device``, when it is
        elsewhere: a numpy batch for a model on a GPU).
    loss_grad : callable ``out -> (loss, dloss_dout)``

    Returns
    -------
    float
        The loss, before the update.

    Raises
    ------
    FloatingPointError
        If the loss or the gradient's global norm is NaN or inf; the parameters are left as
        they were.
    """
    if not isinstance(optimizer, _optim.Optimizer):
        raise TypeError(f"train_step(model, optimizer, x, loss_grad): optimizer must be an "
                        f"nl.optim optimizer, got {type(optimizer).__name__}")
    if not callable(loss_grad):
        raise TypeError(f"train_step: loss_grad must be a callable out -> (loss, dloss_dout), "
                        f"got {type(loss_grad).__name__}")
    x = devices.to_device(x, getattr(model, "device", "cpu"))
    if not getattr(model, "built", True):
        model.build(x.shape[1:])
    pairs = trainable_pairs(model)
    if not pairs:
        raise ValueError(f"train_step: {type(model).__name__} has no trainable parameters "
                         f"(frozen, or nothing to train): nothing to update")
    # a Sequential as fit trains it (train mode, no unused input gradient); a bare layer as is
    with _training(model) if hasattr(model, "layers") else contextlib.nullcontext():
        model.zero_grad()
        out = model.forward(x, training=True)
        result = loss_grad(out)
        try:
            loss, dout = result
        except (TypeError, ValueError):
            raise TypeError(f"train_step: loss_grad must return (loss, dloss_dout), got "
                            f"{type(result).__name__}") from None
        loss = float(loss)
        if getattr(dout, "shape", None) != out.shape:
            raise ValueError(f"train_step: loss_grad's gradient has shape "
                             f"{getattr(dout, 'shape', type(dout).__name__)}, the model's "
                             f"output {out.shape}; they must match")
        if not math.isfinite(loss):
            raise FloatingPointError(f"train_step: loss became {loss}; try a lower learning rate "
                                     f"(optimizer: {optimizer!r})")
        model.backward(dout)
        try:
            optimizer.step(pairs)
        except _optim.NonFiniteGradient as e:
            raise FloatingPointError(f"train_step: gradient norm became {e.norm} with a finite "
                                     f"loss {loss:.6g}; the parameters are unchanged") from None
    return loss
