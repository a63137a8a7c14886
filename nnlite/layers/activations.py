r"""Elementwise activation layers, computed by the ``ops.act_forward``/``act_backward`` kernels.

===========  =====================================================  ==========================
layer        forward :math:`y = f(x)`                               :math:`f'(x)`
===========  =====================================================  ==========================
ReLU         :math:`\max(x, 0)`                                     :math:`[x > 0]`
LeakyReLU    :math:`x` if :math:`x > 0` else :math:`\alpha x`       1 or :math:`\alpha`
Tanh         :math:`\tanh x`                                        :math:`1 - y^2`
Sigmoid      :math:`1 / (1 + e^{-x})`                               :math:`y(1 - y)`
GELU         :math:`\tfrac12 x (1 + \tanh u)`                       see :class:`GELU`
===========  =====================================================  ==========================

Parameter-free: the output keeps the input's float dtype (integers become float32).
"""
from .. import ops
from . import _checks as checks
from .base import Layer
from .softmax import Softmax


class _Elementwise(Layer):
    """y = f(x) elementwise; backward dx = g · f'(x) from the cached x and y.

    :meth:`fuse_into` hands f to the Linear layer before it (``Linear(act=...)``, which
    computes it with its bias, in fewer passes); this layer then passes its input through,
    and stays in place for its name (a GPT MLP's ``gelu``), the summary and the profile.
    """

    act = None          # the ops activation name
    alpha = 0.01        # LeakyReLU slope (ignored by the others)
    fused = False       # True once fuse_into gave f to the Linear layer before this one

    def __init__(self, name=None):
        super().__init__(name=name)
        self._x = None  # caches: the kernel's backward picks whichever of x, y it needs
        self._y = None

    def fuse_into(self, linear):
        """Let ``linear`` (the Linear layer whose output this layer takes) compute f; from now
        on this layer passes x and the gradient through unchanged. Returns this layer."""
        linear.fuse_activation(self.act, self.alpha)
        self.fused = True
        return self

    def forward(self, x, training=True):
        if self.fused:                      # f was computed by the Linear layer before
            self._x = x if training else None
            return x
        x = checks.as_input(self, x)
        y = ops.act_forward(x, self.act, self.alpha)
        self._x, self._y = (x, y) if training else (None, None)    # inference: no cache
        return y

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x)
        if self.fused:                      # (the Linear layer's backward applies f')
            return grad_out
        g = checks.as_grad(self, grad_out, self._x.shape, self._x.dtype)
        return ops.act_backward(g, self._x, self._y, self.act, self.alpha)   # a new array


class ReLU(_Elementwise):
    r""":math:`y = \max(x, 0)`, :math:`\partial x = g \cdot [x > 0]` (0 at x = 0)."""
    act = "relu"


class LeakyReLU(_Elementwise):
    r""":math:`y = x` for :math:`x > 0`, else :math:`\alpha x`.

    Parameters
    ----------
    negative_slope : float, default 0.01
        :math:`\alpha`, the slope for negative inputs (PyTorch's default).
    name : str, optional
    """
    act = "leaky_relu"

    def __init__(self, negative_slope=0.01, name=None):
        super().__init__(name=name)
        self.alpha = float(negative_slope)

    def get_config(self):
        return {"negative_slope": self.alpha, **super().get_config()}


class Tanh(_Elementwise):
    r""":math:`y = \tanh x`, :math:`\partial x = g (1 - y^2)`."""
    act = "tanh"


class Sigmoid(_Elementwise):
    r""":math:`y = 1/(1 + e^{-x})` (computed without overflow), :math:`\partial x = g\,y(1 - y)`."""
    act = "sigmoid"


class GELU(_Elementwise):
    r"""Gaussian error linear unit, the tanh approximation used by GPT-2 and nanoGPT.

    Notes
    -----
    .. math::

        y = \tfrac12 x \left(1 + \tanh u\right), \quad
        u = \sqrt{2/\pi}\,(x + 0.044715\,x^3)

        f'(x) = \tfrac12(1 + \tanh u) + \tfrac12 x (1 - \tanh^2 u)\sqrt{2/\pi}(1 + 3 \cdot 0.044715\,x^2)

    It differs from the exact :math:`x\,\Phi(x)` by less than 1e-3.
    """
    act = "gelu"


class Identity(Layer):
    """y = x, dx = g: the "linear" activation (useful as a placeholder)."""

    def __init__(self, name=None):
        super().__init__(name=name)
        self._shape = None

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        self._shape = x.shape
        return x

    def backward(self, grad_out):
        checks.check_forward_called(self, self._shape)
        return checks.as_grad(self, grad_out, self._shape, None)


_BY_NAME = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid,
            "gelu": GELU, "softmax": Softmax, "linear": Identity, "identity": Identity,
            "none": Identity}


def Activation(name, **kwargs):
    """An activation layer by name (Keras' ``Activation("relu")``).

    Parameters
    ----------
    name : str
        One of "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "softmax", "linear"
        (also "identity", "none"). A Layer instance is returned as is.
    **kwargs
        Passed to the layer, e.g. ``negative_slope=0.2`` or ``name="act1"``.

    Returns
    -------
    Layer
        An instance of ReLU, LeakyReLU, ..., so configs save under the concrete class.
    """
    if isinstance(name, Layer):
        return name
    key = "none" if name is None else str(name).lower()
    if key not in _BY_NAME:
        raise ValueError(f"Activation: unknown activation {name!r}; expected one of "
                         f"{sorted(_BY_NAME)}")
    return _BY_NAME[key](**kwargs)
