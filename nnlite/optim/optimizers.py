r"""Optimizers: ``opt.step([(param, grad), ...])`` updates each param in place.

Every update is one fused, in-place kernel call (``ops.sgd_update`` / ``rmsprop_update`` per
parameter; Adam/AdamW update *all* parameters in one ``ops.adam_update_many`` call), with the
same formulas as ``torch.optim`` so runs can be compared.
Optimizers with weight decay take ``decay_filter``: ``None`` decays every parameter (PyTorch),
``"matrices"`` only those with ndim >= 2 (nanoGPT: no decay on biases and LayerNorm gains), or a
callable ``f(param) -> bool``.
Per-parameter state (momentum, Adam moments) is a list ordered like the pairs passed to
``step``, so it saves as plain arrays (``state_dict``) and loads back in the same order.
"""
import math
from typing import ClassVar

from .. import devices, ops
from .._configurable import Configurable
from . import schedules as _schedules
from .clip import clip_grad_norm, global_norm


class NonFiniteGradient(FloatingPointError):
    """Raised by :meth:`Optimizer.step` when the gradient holds a NaN or inf: nothing was
    updated. ``norm`` is the global norm (NaN or inf)."""

    def __init__(self, message, norm):
        super().__init__(message)
        self.norm = norm


def _check_decay_filter(owner, decay_filter):
    if decay_filter is None or decay_filter == "matrices" or callable(decay_filter):
        return decay_filter
    raise ValueError(f"{owner}: decay_filter must be None (decay every parameter), 'matrices' "
                     f"(only parameters with ndim >= 2) or a callable f(param) -> bool, "
                     f"got {decay_filter!r}")


def _learning_rate(owner, lr, learning_rate, default):
    """``lr``, or ``learning_rate`` (Keras' name for it), or ``default``; not both."""
    if lr is not None and learning_rate is not None:
        raise TypeError(f"{owner}: give the learning rate once: lr={lr!r} and "
                        f"learning_rate={learning_rate!r} are the same argument")
    return lr if lr is not None else learning_rate if learning_rate is not None else default


def _check_pairs(opt, params_and_grads):
    """``params_and_grads`` as a list of (param, grad) pairs; a TypeError naming the nnlite
    way for anything else (``model.params``, a dict, a layer, bare arrays)."""
    what = None
    if isinstance(params_and_grads, dict):
        what = "a dict (model.params?)"
    elif hasattr(params_and_grads, "params"):
        what = f"a {type(params_and_grads).__name__}"
    else:
        pairs = list(params_and_grads)
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                what = f"{type(pair).__name__} at position {i}"
                break
        else:
            return pairs
    raise TypeError(f"{type(opt).__name__}.step() takes a list of (param, grad) pairs, got "
                    f"{what}: pass [(model.params[k], model.grads[k]) for k in model.params], "
                    f"or let model.fit / model.train_step take the step")


class Optimizer(Configurable):
    """Base class.

    Parameters
    ----------
    lr : float or callable
        The learning rate, or a schedule ``lr(step) -> float`` (see :mod:`.schedules`),
        called with the number of steps taken so far (0 on the first step).
    clipnorm : float, optional
        When set, gradients are clipped to this global norm before each step
        (:func:`clip_grad_norm`).

    Every step first takes the gradients' global norm (kept in ``last_grad_norm``, before
    clipping): a NaN or inf one raises :class:`NonFiniteGradient` and nothing is updated, so
    one overflow in a backward pass cannot turn the weights into NaN.
    """

    registry: ClassVar[dict] = {}
    state_keys = ()         # names of the per-parameter state arrays

    def __init__(self, lr, clipnorm=None):
        if not callable(lr) and float(lr) < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        if clipnorm is not None and clipnorm <= 0:
            raise ValueError(f"{type(self).__name__}: clipnorm must be > 0, got {clipnorm}")
        self.lr = lr
        self.clipnorm = clipnorm
        self.iterations = 0         # steps taken
        self.state = []             # one dict of arrays per parameter, in step() order
        self.last_grad_norm = None

    @property
    def learning_rate(self):
        """Keras' name for ``lr`` (read and set)."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value):
        self.lr = value

    def get_lr(self):
        """The learning rate the next step will use."""
        return float(self.lr(self.iterations)) if callable(self.lr) else float(self.lr)

    def step(self, params_and_grads):
        """Update every ``param`` in place from its ``grad``.

        Parameters
        ----------
        params_and_grads : list of (ndarray, ndarray)
            The same parameters, in the same order, at every call.

        Raises
        ------
        NonFiniteGradient
            (a ``FloatingPointError``) if a gradient holds NaN or inf; nothing is updated.
        """
        pairs = _check_pairs(self, params_and_grads)
        grads = [g for _, g in pairs]
        norm = global_norm(grads) if self.clipnorm is None else \
            clip_grad_norm(grads, self.clipnorm)            # (clips only a finite norm)
        self.last_grad_norm = norm
        if not math.isfinite(norm):
            raise NonFiniteGradient(
                f"{type(self).__name__}: the gradient's global norm is {norm} (a NaN or inf "
                f"entry); step {self.iterations + 1} not taken, the parameters are unchanged",
                norm)
        if not self.state:
            self.state = [{k: ops.array_module(p).zeros_like(p) for k in self.state_keys}
                          for p, _ in pairs]             # on the parameter's own backend
        elif len(self.state) != len(pairs):
            raise ValueError(f"{type(self).__name__}: step() got {len(pairs)} parameters but "
                             f"its state holds {len(self.state)}; one optimizer per model, "
                             f"parameters always in the same order")
        lr = self.get_lr()
        for i, (p, _) in enumerate(pairs):
            for k, a in list(self.state[i].items()):
                if type(a) is not type(p):      # loaded from a file, or the model moved
                    a = self.state[i][k] = devices.to_device(a, devices.device_of(p))
                if a.shape != p.shape or a.dtype != p.dtype:
                    raise ValueError(f"{type(self).__name__}: parameter {i} has shape {p.shape} "
                                     f"({p.dtype}) but its state {k!r} has {a.shape} ({a.dtype})")
        self._update_all(pairs, lr)
        self.iterations += 1

    def _update_all(self, pairs, lr):
        """Update every parameter; one kernel call per parameter unless a subclass fuses them."""
        for (p, g), st in zip(pairs, self.state):
            self._update(p, g, st, lr)

    def _update(self, p, g, state, lr):
        raise NotImplementedError

    # -- weight decay (subclasses that have it set self.weight_decay and self.decay_filter) --
    def _decay(self, p):
        """The weight decay for parameter ``p``: ``weight_decay`` unless ``decay_filter`` excludes it."""
        f = getattr(self, "decay_filter", None)
        if not self.weight_decay or f is None:
            return self.weight_decay
        keep = p.ndim >= 2 if f == "matrices" else bool(f(p))
        return self.weight_decay if keep else 0.0

    def _decay_config(self):
        f = getattr(self, "decay_filter", None)
        return {} if f is None else {"decay_filter": f}

    # -- saving ----------------------------------------------------------------------------
    def to(self, device):
        """Move the state arrays (momentum, Adam's moments) to ``device``, in place; returns
        self. ``model.to(device)`` calls it for the compiled optimizer."""
        dev = devices.resolve(device)
        for st in self.state:
            for k, a in st.items():
                st[k] = devices.to_device(a, dev)
        return self

    def state_dict(self):
        """A flat dict: ``"iterations"`` and ``"state.<i>.<key>"`` arrays (copies, on the
        parameters' device; ``save`` writes host copies).

        Flat so ``np.savez(path, **opt.state_dict())`` stores it as is.
        """
        d = {"iterations": int(self.iterations)}
        for i, st in enumerate(self.state):
            for k, a in st.items():
                d[f"state.{i}.{k}"] = a.copy()
        return d

    def load_state_dict(self, d):
        self.iterations = int(d["iterations"])
        state = {}
        for key, a in d.items():
            if key.startswith("state."):
                _, i, k = key.split(".", 2)
                # own copy, where it is: step() moves it to its parameter's device
                state.setdefault(int(i), {})[k] = ops.array_module(a).array(a, copy=True)
        n = len(state)
        if sorted(state) != list(range(n)):
            raise ValueError(f"{type(self).__name__}: state indices {sorted(state)} "
                             f"are not 0..{n - 1}")
        self.state = [state[i] for i in range(n)]   # empty: recreated by the next step()

    def get_config(self):
        lr = _schedules.serialize(self.lr) if isinstance(self.lr, _schedules.Schedule) else self.lr
        cfg = {"lr": lr}
        if self.clipnorm is not None:
            cfg["clipnorm"] = self.clipnorm
        return cfg

    @classmethod
    def from_config(cls, config):
        cfg = dict(config)
        if isinstance(cfg.get("lr"), dict):
            cfg["lr"] = _schedules.deserialize(cfg["lr"])
        return cls(**cfg)


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional momentum, Nesterov and L2 weight decay.

    .. math::

        g \leftarrow g + \lambda p, \qquad v \leftarrow \mu v + g, \qquad
        p \leftarrow p - \eta\,(g + \mu v \text{ if nesterov else } v)

    (plain :math:`p \leftarrow p - \eta g` when :math:`\mu = 0`; PyTorch's formulation).

    Parameters
    ----------
    lr : float or schedule, default 0.01
        (``learning_rate=``: the same, Keras' name; give one of them.)
    momentum : float, default 0.0
    nesterov : bool, default False
    weight_decay : float, default 0.0
    clipnorm : float, optional
    decay_filter : None, "matrices" or callable, optional
        Which parameters ``weight_decay`` applies to: all (None), those with ndim >= 2
        ("matrices"), or those for which ``decay_filter(param)`` is true.
    """

    def __init__(self, lr=None, momentum=0.0, nesterov=False, weight_decay=0.0, clipnorm=None,
                 decay_filter=None, learning_rate=None):
        super().__init__(_learning_rate("SGD", lr, learning_rate, 0.01), clipnorm)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.decay_filter = _check_decay_filter("SGD", decay_filter)
        self.state_keys = ("velocity",) if self.momentum else ()

    def _update(self, p, g, state, lr):
        ops.sgd_update(p, g, state.get("velocity"), lr=lr, momentum=self.momentum,
                       nesterov=self.nesterov, weight_decay=self._decay(p))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, **self._decay_config()}


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with L2 weight decay added to the gradient.

    .. math::

        g \leftarrow g + \lambda p, \quad
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2

        p \leftarrow p - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    Parameters
    ----------
    lr : float or schedule, default 1e-3
        (``learning_rate=``: the same, Keras' name; give one of them.)
    beta1, beta2 : float, default 0.9, 0.999
    eps : float, default 1e-8
    weight_decay : float, default 0.0
    clipnorm : float, optional
    decay_filter : None, "matrices" or callable, optional
        Which parameters ``weight_decay`` applies to: all (None), those with ndim >= 2
        ("matrices", as nanoGPT), or those for which ``decay_filter(param)`` is true.

    All parameters are updated in one ``ops.adam_update_many`` call per step (one OpenMP
    region over every element; clipping, when set, happens before).
    """

    state_keys = ("m", "v")
    decoupled = False

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 clipnorm=None, decay_filter=None, learning_rate=None):
        super().__init__(_learning_rate(type(self).__name__, lr, learning_rate, 1e-3), clipnorm)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)
        self.decay_filter = _check_decay_filter(type(self).__name__, decay_filter)

    def _update_all(self, pairs, lr):
        ops.adam_update_many([p for p, _ in pairs], [g for _, g in pairs],
                             [st["m"] for st in self.state], [st["v"] for st in self.state],
                             lr=lr, beta1=self.beta1, beta2=self.beta2, eps=self.eps,
                             weight_decays=[self._decay(p) for p, _ in pairs],
                             step=self.iterations + 1, decoupled=self.decoupled)

    def get_config(self):
        return {**super().get_config(), "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps, "weight_decay": self.weight_decay, **self._decay_config()}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    The decay shrinks the weights directly instead of entering the moments:

    .. math:: p \leftarrow p\,(1 - \eta\lambda), \quad\text{then the Adam step with } g

    Same parameters as :class:`Adam`, but ``weight_decay`` defaults to 0.01.
    """

    decoupled = True

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 clipnorm=None, decay_filter=None, learning_rate=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, clipnorm, decay_filter,
                         learning_rate)


class RMSprop(Optimizer):
    r"""RMSprop (Hinton), PyTorch's defaults and formulation.

    .. math::

        g \leftarrow g + \lambda p, \qquad s \leftarrow \alpha s + (1-\alpha) g^2, \qquad
        p \leftarrow p - \eta\,\frac{g}{\sqrt{s} + \epsilon}

    Parameters
    ----------
    lr : float or schedule, default 1e-2
        (``learning_rate=``: the same, Keras' name; give one of them.)
    alpha : float, default 0.99
    eps : float, default 1e-8
    weight_decay : float, default 0.0
    clipnorm : float, optional
    decay_filter : None, "matrices" or callable, optional
        Which parameters ``weight_decay`` applies to (see :class:`SGD`).
    """

    state_keys = ("sq",)

    def __init__(self, lr=None, alpha=0.99, eps=1e-8, weight_decay=0.0, clipnorm=None,
                 decay_filter=None, learning_rate=None):
        super().__init__(_learning_rate("RMSprop", lr, learning_rate, 1e-2), clipnorm)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.decay_filter = _check_decay_filter("RMSprop", decay_filter)

    def _update(self, p, g, state, lr):
        ops.rmsprop_update(p, g, state["sq"], lr=lr, alpha=self.alpha, eps=self.eps,
                           weight_decay=self._decay(p))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, **self._decay_config()}


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(name_or_obj):
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop"; default settings),
    an Optimizer class, or an instance (returned as is)."""
    if isinstance(name_or_obj, Optimizer):
        return name_or_obj
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Optimizer):
        return name_or_obj()
    if isinstance(name_or_obj, str):
        cls = _BY_NAME.get(name_or_obj.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {name_or_obj!r}; expected one of "
                             f"{sorted(_BY_NAME)} or an Optimizer instance")
        return cls()
    raise TypeError(f"optimizer must be a name or an Optimizer, got {type(name_or_obj).__name__}")
