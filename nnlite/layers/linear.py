"""Linear (fully connected) layer: y = xW + b (or act(xW + b), the activation fused); Dense,
Keras' y = f(xW + b), input size inferred."""
import numpy as np

from .. import init as _init
from .. import ops
from ..ops._checks import ACTIVATIONS as _OPS_ACTIVATIONS
from ..random import get_rng
from . import _checks as checks
from .activations import Activation, _Elementwise
from .base import Layer, shape_str


class Linear(Layer):
    r"""Fully connected layer over the last axis.

    .. math::

        y = xW + b, \qquad
        \frac{\partial L}{\partial x} = g W^\top, \qquad
        \frac{\partial L}{\partial W} = x^\top g, \qquad
        \frac{\partial L}{\partial b} = \textstyle\sum_n g_n

    where :math:`g = \partial L / \partial y`; leading axes (batch, time, ...) are merged
    into one, so an input (B, T, in_features) works as (B·T, in_features).

    The bias is added by the GEMM itself, to each tile of y as it is finished (``ops.gemm``'s
    ``bias=``), and so can a skip connection (``forward(x, residual=r)``: y = xW + b + r).
    With ``act``, the layer is :math:`y = f(z)`, :math:`z = xW + b`, the activation computed
    in the same pass over the output as the bias (``ops.bias_act``) or, when the backward
    needs z (GELU), in one pass after the GEMM has added the bias; and the backward's
    :math:`\partial z = g \cdot f'(z)` and :math:`\partial b = \sum_n \partial z_n` in one
    (``ops.act_backward_bias_grad``): what ``Linear`` followed by the activation layer computes,
    with fewer passes over the activations (a GPT MLP's ``fc`` + GELU, :class:`Dense`).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    init : str, callable or None, default "he_uniform"
        Weight initialiser (see :mod:`nnlite.init`). He suits ReLU nets (the default);
        use "glorot_uniform" before tanh/sigmoid or for a linear output layer, "normal" for
        GPT-2's N(0, 0.02²). ``None``: W zero, nothing drawn, for a caller that sets it.
    rng : numpy.random.Generator or int, optional
        Generator for the initial weights; default :func:`nnlite.random.get_rng`.
    dtype : numpy dtype, default float32
        Parameter dtype. Inputs are cast to it (int → float32, float64 → float32).
    name : str, optional
    act : str or None, default None (keyword only)
        A fused activation: one of "relu", "leaky_relu", "tanh", "sigmoid", "gelu" (the
        ``ops`` activations); None or "none" for the plain layer.
    alpha : float, default 0.01 (keyword only)
        The negative slope of "leaky_relu".

    Attributes
    ----------
    params : {"W": ndarray of shape (in_features, out_features), "b": ndarray of shape (out_features,)}
    grads : same keys and shapes, accumulated by ``backward``
    """

    act = None              # the fused activation (fuse_activation), None for none
    alpha = 0.01
    _needs_z = False
    _a = None

    def __init__(self, in_features, out_features, bias=True, init="he_uniform", rng=None,
                 dtype=np.float32, name=None, *, act=None, alpha=0.01):
        super().__init__(name=name)
        self.in_features, self.out_features = checks.sizes(
            "Linear", in_features=in_features, out_features=out_features)
        self.bias = bool(bias)
        self.init = init if init is None or isinstance(init, str) else \
            getattr(init, "__name__", str(init))
        self._make_params(init, rng, dtype)
        self._x2 = None                     # cache: input as (rows, in_features), for dW
        self._in_shape = None               # cache: input shape, to shape dx
        self.fuse_activation(act, alpha)

    def fuse_activation(self, act, alpha=0.01):
        """Compute ``act`` (an ``ops`` activation name, or None for none) as part of this layer
        from now on: y = act(xW + b). Returns the layer."""
        if act is not None and act not in _OPS_ACTIVATIONS:
            raise ValueError(f"{checks.describe(self)}: unknown activation {act!r}; expected "
                             f"one of {_OPS_ACTIVATIONS} or None")
        self.act = None if act in (None, "none") else act
        self.alpha = float(alpha)
        # act_backward reads act'(z) from z (the pre-activation) or from y = act(z); a cache of
        # y alone serves where y decides act' (relu, leaky_relu with α ≥ 0: y > 0 exactly where
        # z > 0; tanh, sigmoid: from y), and the bias and activation then go in one pass in
        # place. gelu (and leaky_relu with α < 0) need z itself: it is kept, act(z) is a new array
        self._needs_z = self.act == "gelu" or (self.act == "leaky_relu" and self.alpha < 0)
        self._a = None                      # cache: what act_backward reads as x and as y
        return self

    def _make_params(self, init, rng, dtype):
        """W drawn by ``init``, b zero, and their zero gradients."""
        W = _init.get(init)(self.in_features, self.out_features, rng=rng, dtype=dtype)
        self.params["W"] = np.ascontiguousarray(W, dtype=dtype)
        if self.bias:
            self.params["b"] = np.zeros(self.out_features, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _describe(self):
        return f"Linear({self.in_features} → {self.out_features})"

    def forward(self, x, training=True, residual=None):
        """y = act(xW + b), or xW + b + residual: ``residual`` (the input's leading axes,
        out_features), a skip connection added by the GEMM as it writes y (only without
        ``act``); its gradient is the caller's (it is grad_out itself)."""
        W = self.params["W"]
        x = checks.as_input(self, x, W.dtype)
        checks.check_min_ndim(self, x, 2, f"(batch, ..., {self.in_features})",
                              features=self.in_features)
        checks.check_last_dim(self, x, self.in_features)
        x2 = x.reshape(-1, self.in_features)                # (N, in): N = product of leading axes
        act = self.act
        b = self.params["b"] if self.bias else None
        if residual is not None:
            if act is not None:
                raise ValueError(f"{checks.describe(self)}: residual= needs a layer without an "
                                 f"activation (it is added after xW + b), this one has "
                                 f"act={act!r}")
            residual = checks.as_residual(self, residual, (*x.shape[:-1], self.out_features),
                                          W.dtype, of="output")
            residual = residual.reshape(x2.shape[0], self.out_features)
        # The bias (and the residual) are added by the GEMM to each tile of y as it is
        # finished: no pass of their own over y
        if act is None:
            y = ops.gemm(x2, W, bias=b, residual=residual)  # (N, out), a new array
        elif self._needs_z and training:                    # z = xW + b kept for backward
            self._a = ops.gemm(x2, W, bias=b)
            y = ops.act_forward(self._a, act, self.alpha)   # act(z), a new array
        else:                                               # y = act(xW + b), one pass
            y = ops.gemm(x2, W)
            if self.bias:
                ops.bias_act(y, b, act, self.alpha, out=y)
            else:
                y = ops.act_forward(y, act, self.alpha)
            self._a = y if training else None
        # inference (training=False) keeps no cache: evaluate/predict hold no activations
        self._x2, self._in_shape = (x2, x.shape) if training else (None, None)
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x2)
        W = self.params["W"]
        g = checks.as_grad(self, grad_out, (*self._in_shape[:-1], self.out_features), W.dtype)
        g2 = g.reshape(-1, self.out_features)               # (N, out)
        if self.act is not None:                            # g ← g · act'(z), a new array
            a = self._a
            if self.bias:                                   # and db += Σ_n g_n, one pass
                g2, _ = ops.act_backward_bias_grad(g2, a, a, self.act, self.alpha,
                                                   db=self.grads["b"], accumulate=True)
            else:
                g2 = ops.act_backward(g2, a, a, self.act, self.alpha)
        elif self.bias:
            ops.bias_grad(g2, out=self.grads["b"], accumulate=True)        # db += Σ_n g_n
        ops.gemm_tn(self._x2, g2, out=self.grads["W"], accumulate=True)   # dW += xᵀg
        if not self.needs_input_grad:                       # first layer: dx is never used
            return None
        return ops.gemm_nt(g2, W).reshape(self._in_shape)   # dx = g Wᵀ

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, ..., "
                             f"{self.in_features}), got {tuple(input_shape)}")
        if input_shape[-1] is not None and input_shape[-1] != self.in_features:
            raise ValueError(f"{checks.describe(self)}: expected input with last dimension "
                             f"{self.in_features}, got shape {tuple(input_shape)}")
        return (*input_shape[:-1], self.out_features)

    def get_config(self):
        cfg = {"in_features": self.in_features, "out_features": self.out_features,
               "bias": self.bias, "init": self.init, "dtype": checks.dtype_name(self.dtype)}
        if self.act is not None:                # (absent for the plain layer: its config as before)
            cfg["act"] = self.act
            if self.act == "leaky_relu":
                cfg["alpha"] = self.alpha
        cfg.update(super().get_config())
        return cfg


FC = Linear   # the name Deep Learning from Scratch and the course notes use


class Dense(Linear):
    r"""Keras' fully connected layer: :math:`y = f(xW + b)`, its input size inferred.

    A :class:`Linear` (same math, same ``params`` ``W`` and ``b``) followed by an optional
    activation :math:`f` (relu, leaky_relu, tanh, sigmoid and gelu are fused into the Linear
    part: ``Linear(act=...)``; softmax runs as a layer after it). Unless ``input_dim`` is given, ``W`` is made at the first call, or
    by ``build(input_shape)`` (``model.build((784,))``, which ``fit`` does), from the input's
    last dimension: until then ``in_features`` is None, ``built`` False and ``params`` empty.

    Parameters
    ----------
    units : int
        Output size (``out_features``).
    activation : str or None, default None
        Applied to the output: "relu", "tanh", "sigmoid", "gelu", "leaky_relu", "softmax"
        (see :func:`Activation`); None or "linear" for none. For a layer with arguments put
        it after: ``Dense(64), LeakyReLU(0.2)``.
    use_bias : bool, default True
    kernel_initializer : str, callable or None, default "glorot_uniform"
        Keras' default (see :mod:`nnlite.init`; "he_uniform" suits ReLU nets).
    input_dim : int, optional
        The input size, when known: the layer is built at once.
    rng : numpy.random.Generator or int, optional
        For the initial weights (drawn when built); default :func:`nnlite.random.get_rng`.
    dtype : numpy dtype, default float32
    name : str, optional
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", input_dim=None, rng=None,
                 dtype=np.float32, name=None):
        Layer.__init__(self, name=name)     # Linear's own __init__ needs in_features now
        self.out_features, = checks.sizes("Dense", units=units)
        self.in_features, self.bias, self.built = None, bool(use_bias), False
        self.activation, self._act = _activation(activation)
        if isinstance(self._act, _Elementwise):     # one ops knows: computed with the bias
            self.fuse_activation(self._act.act, self._act.alpha)
            self._act = None
        else:                                       # none, or softmax: a layer after Linear's
            self.fuse_activation(None)
        self._init = kernel_initializer     # kept as given: a callable is called when built
        self.init = kernel_initializer if kernel_initializer is None or isinstance(
            kernel_initializer, str) else getattr(kernel_initializer, "__name__", "custom")
        self._rng = None if rng is None else get_rng(rng)   # an int seed: one Generator
        self._dtype = np.dtype(dtype)
        self._x2 = self._in_shape = None    # caches, as Linear's
        if input_dim is not None:
            self.build((None, input_dim))

    @property
    def units(self):
        return self.out_features

    def _describe(self):
        act = f", {self.activation}" if self.activation else ""
        return f"Dense({self.in_features or '?'} → {self.out_features}{act})"

    def build(self, input_shape):
        """Make ``W`` (``input_shape[-1]`` × ``units``) and ``b``, once."""
        if self.built:
            return self
        shape = tuple(input_shape)
        if not shape or shape[-1] is None:
            raise ValueError(f"{checks.describe(self)}: cannot infer the input size from "
                             f"shape {shape_str(shape)}: its last dimension is needed")
        self.in_features, = checks.sizes(checks.describe(self), input_dim=shape[-1])
        self._make_params(self._init, self._rng, self._dtype)
        self.built = True
        if self.device != "cpu":            # model.to("cuda") came first: follow it
            self.to(self.device)
        return self

    def forward(self, x, training=True):
        if not self.built:
            x = checks.as_input(self, x, self._dtype)
            if x.ndim < 2:
                raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                                 f"..., features), got shape {shape_str(x.shape)} (a single "
                                 f"sample? x[None]; one feature per sample? x[:, None])")
            self.build(x.shape)
        y = super().forward(x, training)
        return y if self._act is None else self._act.forward(y, training)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x2)
        if self._act is not None:
            grad_out = self._act.backward(grad_out)
        return super().backward(grad_out)

    def output_shape(self, input_shape):
        if self.built:
            return super().output_shape(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, ..., "
                             f"features), got {tuple(input_shape)}")
        return (*input_shape[:-1], self.out_features)

    def astype(self, dtype):
        self._dtype = np.dtype(dtype)       # for parameters made later, when built
        return super().astype(dtype)

    def get_config(self):
        cfg = {"units": self.out_features, "activation": self.activation,
               "use_bias": self.bias, "kernel_initializer": self.init,
               "dtype": checks.dtype_name(self._dtype)}
        if self.built:
            cfg["input_dim"] = self.in_features
        if self.name:
            cfg["name"] = self.name
        return cfg


def _activation(name):
    """``(name, layer)`` for Dense's ``activation``: ``(None, None)`` for none."""
    if name is None or (isinstance(name, str) and name.lower() in ("linear", "none")):
        return None, None
    if not isinstance(name, str):
        raise TypeError(f"Dense: activation must be a name such as 'relu' or None, got "
                        f"{type(name).__name__}; for an activation layer with arguments put it "
                        f"after: Sequential([Dense(64), LeakyReLU(0.2)])")
    try:
        return name.lower(), Activation(name)
    except ValueError as e:
        raise ValueError(f"Dense: {e}") from None
