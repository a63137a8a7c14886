"""Compiled convolution, pooling and BatchNorm kernels (csrc/cpu/conv.cpp), NCHW.

Thin wrappers: arguments are checked with the same code as the numpy twins in
:mod:`nnlite.ops.reference` (so errors are identical), inputs made C-contiguous, outputs
allocated, then ``nnlite.ops._conv`` does the work without the GIL. An empty batch is answered
here (nothing to compute).
"""
import math

import numpy as np

from . import _checks as checks
from . import _conv

_c = checks.c_aligned      # C-contiguous and aligned to the itemsize (a copy when not)


def _geom(N, C, H, W, O, G, geo):
    """The 16 sizes the kernels take: (N, C, H, W, O, G, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo)."""
    return [N, C, H, W, O, G, *geo.kernel, *geo.stride, *geo.padding, *geo.dilation, *geo.out]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y (N, O, Ho, Wo) = conv(x (N, C, H, W), w (O, C/G, KH, KW)) + b: im2col + GEMM."""
    x, w, b, geo = checks.conv2d_args("conv2d", x, w, b, stride, padding, dilation, groups)
    N, C, H, W = x.shape
    O = w.shape[0]
    y = np.empty((N, O, *geo.out), x.dtype)
    if N:
        _conv.conv2d(_c(x), _c(w), None if b is None else _c(b), y,
                     _geom(N, C, H, W, O, geo.groups, geo))
    return y


def conv2d_input_grad(grad_out, w, size, stride=1, padding=0, dilation=1, groups=1):
    """dx (N, C, H, W) of conv2d for an input of size (H, W); the transposed convolution."""
    g, w, geo = checks.conv2d_input_grad_args(grad_out, w, size, stride, padding, dilation,
                                              groups)
    N, O = g.shape[:2]
    C = w.shape[1] * geo.groups
    H, W = checks.pair("conv2d_input_grad", "size", size, 1)
    dx = np.empty((N, C, H, W), g.dtype)
    if N:
        _conv.conv2d_input_grad(_c(g), _c(w), dx, _geom(N, C, H, W, O, geo.groups, geo))
    return dx


def conv2d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1,
                    input_grad=True):
    """(dx, dw, db) of conv2d; dx is None when ``input_grad`` is False."""
    g, x, w, geo = checks.conv2d_backward_args(grad_out, x, w, stride, padding, dilation, groups)
    N, C, H, W = x.shape
    O = w.shape[0]
    g = _c(g)
    dw = np.empty(w.shape, x.dtype)
    db = np.empty(O, x.dtype)
    if N == 0:
        dw.fill(0)
        db.fill(0)
        return (np.zeros(x.shape, x.dtype) if input_grad else None), dw, db
    sizes = _geom(N, C, H, W, O, geo.groups, geo)
    _conv.conv2d_weight_grad(g, _c(x), dw, db, sizes)
    dx = None
    if input_grad:
        dx = np.empty(x.shape, x.dtype)
        _conv.conv2d_input_grad(g, _c(w), dx, sizes)
    return dx, dw, db


def _pool_geom(shape, geo):
    N, C, H, W = shape
    return [1, N * C, H, W, N * C, 1, *geo.kernel, *geo.stride, *geo.padding, 1, 1, *geo.out]


def max_pool2d(x, kernel, stride=None, padding=0):
    """(y, argmax) of max pooling; argmax int64, the flat index h·W + w in each input plane."""
    x, geo = checks.pool2d_args("max_pool2d", x, kernel, stride, padding)
    N, C = x.shape[:2]
    y = np.empty((N, C, *geo.out), x.dtype)
    argmax = np.empty(y.shape, np.int64)
    if y.size:
        _conv.max_pool2d(_c(x), y, argmax, _pool_geom(x.shape, geo))
    return y, argmax


def max_pool2d_backward(grad_out, argmax, size):
    """dx (N, C, H, W): each grad_out entry added at its window's argmax."""
    g, argmax = checks.max_pool2d_backward_args(grad_out, argmax, size, check_range=False)
    N, C, Ho, Wo = g.shape
    H, W = checks.pair("max_pool2d_backward", "size", size, 1)
    if not g.size:
        return np.zeros((N, C, H, W), g.dtype)
    dx = np.empty((N, C, H, W), g.dtype)       # the kernel zeroes each plane before adding
    try:                                       # (the binding checks argmax's range)
        _conv.max_pool2d_backward(_c(g), _c(argmax), dx, N * C, H * W, Ho * Wo)
    except ValueError as e:
        if "argmax out of range" not in str(e):
            raise
        raise checks.argmax_range_error((H, W)) from None
    return dx


def avg_pool2d(x, kernel, stride=None, padding=0):
    """Average pooling, padding counted in the average."""
    x, geo = checks.pool2d_args("avg_pool2d", x, kernel, stride, padding)
    N, C = x.shape[:2]
    y = np.empty((N, C, *geo.out), x.dtype)
    if y.size:
        _conv.avg_pool2d(_c(x), y, _pool_geom(x.shape, geo))
    return y


def avg_pool2d_backward(grad_out, size, kernel, stride=None, padding=0):
    """dx (N, C, H, W) of average pooling."""
    g, geo = checks.avg_pool2d_backward_args(grad_out, size, kernel, stride, padding)
    N, C = g.shape[:2]
    H, W = checks.pair("avg_pool2d_backward", "size", size, 1)
    dx = np.zeros((N, C, H, W), g.dtype)
    if g.size:
        _conv.avg_pool2d_backward(_c(g), dx, _pool_geom((N, C, H, W), geo))
    return dx


def _ncm(x):
    """(N, M): x (N, C, ...) seen as (N, C, M)."""
    return x.shape[0], math.prod(x.shape[2:])


def batchnorm(x, gamma, beta, eps=1e-5, act=None):
    """(y, mean, rstd) of BatchNorm in training mode; statistics per channel (axis 1);
    act="relu": y = max(0, ·) in the same pass."""
    x, gamma, beta = checks.batchnorm_args("batchnorm", x, gamma, beta)
    act = checks.batchnorm_act("batchnorm", act)
    t = x.dtype
    y = np.empty(x.shape, t)
    mean, rstd = np.empty(gamma.shape, t), np.empty(gamma.shape, t)
    _conv.batchnorm(_c(x), _c(gamma), _c(beta), float(eps), y, mean, rstd, *_ncm(x),
                    act == "relu")
    return y, mean, rstd


def batchnorm_backward(grad_out, x, gamma, mean, rstd, act=None, y=None):
    """(dx, dgamma, dbeta) of BatchNorm in training mode; act="relu" with the forward's output
    y: grad_out masked by y > 0 as the kernel reads it."""
    g, x, gamma, mean, rstd = checks.batchnorm_backward_args(grad_out, x, gamma, mean, rstd)
    y = checks.batchnorm_backward_output(act, y, x)
    t = x.dtype
    dx = np.empty(x.shape, t)
    dgamma, dbeta = np.empty(gamma.shape, t), np.empty(gamma.shape, t)
    _conv.batchnorm_backward(_c(g), _c(x), _c(gamma), _c(mean), _c(rstd),
                             None if y is None else _c(y), dx, dgamma, dbeta, *_ncm(x))
    return dx, dgamma, dbeta


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5, act=None):
    """BatchNorm with the running statistics: y = (x - μ_run)/√(σ²_run + ε)·γ + β;
    act="relu": y = max(0, ·)."""
    x, gamma, beta = checks.batchnorm_args("batchnorm_inference", x, gamma, beta)
    running_mean, running_var = checks.batchnorm_stats(x, running_mean, running_var)
    act = checks.batchnorm_act("batchnorm_inference", act)
    y = np.empty(x.shape, x.dtype)
    _conv.batchnorm_inference(_c(x), _c(gamma), _c(beta), _c(running_mean), _c(running_var),
                              float(eps), y, *_ncm(x), act == "relu")
    return y
