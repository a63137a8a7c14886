"""CUDA convolution, pooling and BatchNorm (csrc/cuda/conv_kernels.cuh, launchers csrc/cuda/conv.cu),
NCHW, float32 and float64.

``kernels(dev)`` returns {op name: function} for a :class:`nnlite.ops.cuda_device.Device`, each
with its numpy twin's signature, results and errors (nnlite/ops/reference.py):

    conv2d, conv2d_input_grad, conv2d_backward, max_pool2d, max_pool2d_backward, avg_pool2d,
    avg_pool2d_backward, batchnorm, batchnorm_backward, batchnorm_inference

Arguments are checked by the twins' own checks (nnlite/ops/_checks.py), run on host stand-ins
that carry each array's shape and dtype and no data (``_meta``), so that an array on the GPU is
never copied to be checked and every error is the twin's, raised in the twin's order. The one
check that reads values (max_pool2d_backward's argmax range) is redone on the device.

Convolutions run as im2col + the GEMM family's launcher (csrc/cuda/gemm.h) per image and group;
the im2col buffer is scratch allocated here (``dev.xp.empty``, CuPy's pool on a GPU), for
``chunk`` images at a time so that it stays under ``COLS_ELEMS`` elements.
"""
import math

import numpy as np

from . import _checks as checks

__all__ = ["kernels", "im2col", "col2im", "OPS"]

OPS = ("conv2d", "conv2d_input_grad", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
       "avg_pool2d", "avg_pool2d_backward", "batchnorm", "batchnorm_backward",
       "batchnorm_inference")

# The most elements of im2col scratch per call (64 MiB of float32): a batch whose columns
# would be larger is done in chunks of images.
COLS_ELEMS = 1 << 24

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _meta(a):
    """A host stand-in of ``a`` for the shared checks: an array of a's shape and dtype that
    holds one zero (a zero-stride view), so nothing is copied from the device. Anything that is
    not an array (a list, a scalar) is passed as it is: the checks convert it as the twin
    does."""
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return np.broadcast_to(np.zeros((), a.dtype), a.shape)
    return a


def _conv_shape(N, C, H, W, O, G, geo):
    """The 16 sizes of a ConvShape (csrc/cuda/conv.h)."""
    return [N, C, H, W, O, G, *geo.kernel, *geo.stride, *geo.padding, *geo.dilation, *geo.out]


def _pool_shape(N, C, H, W, geo):
    return [N, C, H, W, C, 1, *geo.kernel, *geo.stride, *geo.padding, 1, 1, *geo.out]


def _pointwise(shape):
    """1×1 kernel, stride 1, no padding: im2col is the identity (conv_is_pointwise in conv.h)."""
    KH, KW, sh, sw, ph, pw = shape[6:12]
    return KH == KW == sh == sw == 1 and ph == pw == 0


class _Run:
    """What every op does around its launch: arrays onto the device, pointers, the call."""

    def __init__(self, dev):
        self.dev, self.xp, self.ext = dev, dev.xp, dev.ext

    def on(self, a, dtype):
        """``a`` as a C-contiguous device array of ``dtype`` (ints become float64, as in the
        twin's checks; a list or a host array is copied over). Under the shim (numpy arrays)
        also aligned to its itemsize, which a view into a byte buffer may not be."""
        a = self.xp.asarray(a)
        if a.dtype != dtype:
            a = a.astype(dtype)
        return checks.c_aligned(a) if self.xp is np else self.xp.ascontiguousarray(a)

    def ptr(self, a):
        return 0 if a is None else self.dev.ptr(a)

    def call(self, name, dtype, *args):
        getattr(self.ext, f"conv_{name}_{_SUFFIX[np.dtype(dtype)]}")(*args, self.dev.stream())

    def cols(self, shape, dtype):
        """(scratch, chunk): room for the columns of ``chunk`` images (none when pointwise)."""
        N, C, KH, KW, Ho, Wo = shape[0], shape[1], shape[6], shape[7], shape[14], shape[15]
        if _pointwise(shape):
            return self.xp.empty(0, dtype), N
        per_image = C * KH * KW * Ho * Wo
        chunk = max(1, min(N, COLS_ELEMS // max(per_image, 1)))
        return self.xp.empty(chunk * per_image, dtype), chunk


def kernels(dev):
    """{op name: function} running the CUDA kernels on ``dev`` (see the module docstring)."""
    r = _Run(dev)
    xp = dev.xp

    def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        xm, wm, _bm, geo = checks.conv2d_args("conv2d", _meta(x), _meta(w),
                                              None if b is None else _meta(b), stride, padding,
                                              dilation, groups)
        t = xm.dtype
        x, w = r.on(x, t), r.on(w, t)
        b = None if b is None else r.on(b, t)
        N, C, H, W = xm.shape
        O = wm.shape[0]
        y = xp.empty((N, O, *geo.out), t)
        if N:
            shape = _conv_shape(N, C, H, W, O, geo.groups, geo)
            cols, chunk = r.cols(shape, t)
            r.call("conv2d_forward", t, r.ptr(x), r.ptr(w), r.ptr(b), r.ptr(y), r.ptr(cols),
                   chunk, shape)
        return y

    def conv2d_input_grad(grad_out, w, size, stride=1, padding=0, dilation=1, groups=1):
        gm, wm, geo = checks.conv2d_input_grad_args(_meta(grad_out), _meta(w), size, stride,
                                                    padding, dilation, groups)
        t = gm.dtype
        g, w = r.on(grad_out, t), r.on(w, t)
        N, O = gm.shape[:2]
        C = wm.shape[1] * geo.groups
        H, W = checks.pair("conv2d_input_grad", "size", size, 1)
        dx = xp.empty((N, C, H, W), t)
        if N:
            shape = _conv_shape(N, C, H, W, O, geo.groups, geo)
            dcols, chunk = r.cols(shape, t)
            r.call("conv2d_input_grad", t, r.ptr(g), r.ptr(w), r.ptr(dx), r.ptr(dcols), chunk,
                   shape)
        return dx

    def conv2d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1,
                        input_grad=True):
        gm, xm, wm, geo = checks.conv2d_backward_args(_meta(grad_out), _meta(x), _meta(w),
                                                      stride, padding, dilation, groups)
        t = xm.dtype
        N, C, H, W = xm.shape
        O = wm.shape[0]
        if N == 0:
            return ((xp.zeros(xm.shape, t) if input_grad else None), xp.zeros(wm.shape, t),
                    xp.zeros(O, t))
        g, x, w = r.on(grad_out, t), r.on(x, t), r.on(w, t)
        dw, db = xp.empty(wm.shape, t), xp.empty(O, t)
        shape = _conv_shape(N, C, H, W, O, geo.groups, geo)
        cols, chunk = r.cols(shape, t)       # the im2col scratch, then the col2im one
        r.call("conv2d_weight_grad", t, r.ptr(g), r.ptr(x), r.ptr(dw), r.ptr(db), r.ptr(cols),
               chunk, shape)
        dx = None
        if input_grad:
            dx = xp.empty(xm.shape, t)
            r.call("conv2d_input_grad", t, r.ptr(g), r.ptr(w), r.ptr(dx), r.ptr(cols), chunk,
                   shape)
        return dx, dw, db

    def max_pool2d(x, kernel, stride=None, padding=0):
        xm, geo = checks.pool2d_args("max_pool2d", _meta(x), kernel, stride, padding)
        t = xm.dtype
        N, C, H, W = xm.shape
        x = r.on(x, t)
        y = xp.empty((N, C, *geo.out), t)
        argmax = xp.empty(y.shape, np.int64)
        if y.size:
            r.call("max_pool2d_forward", t, r.ptr(x), r.ptr(y), r.ptr(argmax),
                   _pool_shape(N, C, H, W, geo))
        return y, argmax

    def max_pool2d_backward(grad_out, argmax, size):
        op = "max_pool2d_backward"
        gm, _am = checks.max_pool2d_backward_args(_meta(grad_out), _meta(argmax), size)
        t = gm.dtype
        N, C, Ho, Wo = gm.shape
        H, W = checks.pair(op, "size", size, 1)
        if not gm.size:
            return xp.zeros((N, C, H, W), t)
        g, a = r.on(grad_out, t), r.on(argmax, np.int64)
        # the twin's value check, on the device (the stand-in above holds zeros): an index
        # outside the plane would make the kernel write outside dx
        if bool(((a < 0) | (a >= H * W)).any()):
            raise ValueError(f"{op}: argmax holds indices outside a {H}x{W} plane")
        dx = xp.empty((N, C, H, W), t)       # the kernel zeroes each plane before adding
        r.call("max_pool2d_backward", t, r.ptr(g), r.ptr(a), r.ptr(dx), N * C, H * W, Ho * Wo)
        return dx

    def avg_pool2d(x, kernel, stride=None, padding=0):
        xm, geo = checks.pool2d_args("avg_pool2d", _meta(x), kernel, stride, padding)
        t = xm.dtype
        N, C, H, W = xm.shape
        x = r.on(x, t)
        y = xp.empty((N, C, *geo.out), t)
        if y.size:
            r.call("avg_pool2d_forward", t, r.ptr(x), r.ptr(y), _pool_shape(N, C, H, W, geo))
        return y

    def avg_pool2d_backward(grad_out, size, kernel, stride=None, padding=0):
        gm, geo = checks.avg_pool2d_backward_args(_meta(grad_out), size, kernel, stride,
                                                  padding)
        t = gm.dtype
        N, C = gm.shape[:2]
        H, W = checks.pair("avg_pool2d_backward", "size", size, 1)
        dx = xp.empty((N, C, H, W), t)       # every element written (a gather per element)
        if gm.size:
            g = r.on(grad_out, t)
            r.call("avg_pool2d_backward", t, r.ptr(g), r.ptr(dx), _pool_shape(N, C, H, W, geo))
        return dx

    def _ncm(shape):
        return shape[0], shape[1], math.prod(shape[2:])

    def batchnorm(x, gamma, beta, eps=1e-5, act=None):
        xm, gam, _ = checks.batchnorm_args("batchnorm", _meta(x), _meta(gamma), _meta(beta))
        act = checks.batchnorm_act("batchnorm", act)
        t = xm.dtype
        x, gamma, beta = r.on(x, t), r.on(gamma, t), r.on(beta, t)
        y = xp.empty(xm.shape, t)
        mean, rstd = xp.empty(gam.shape, t), xp.empty(gam.shape, t)
        r.call("batchnorm_forward", t, r.ptr(x), r.ptr(gamma), r.ptr(beta), r.ptr(y),
               r.ptr(mean), r.ptr(rstd), *_ncm(xm.shape), float(eps), act == "relu")
        return y, mean, rstd

    def batchnorm_backward(grad_out, x, gamma, mean, rstd, act=None, y=None):
        _gm, xm, gam, _mm, _rm = checks.batchnorm_backward_args(
            _meta(grad_out), _meta(x), _meta(gamma), _meta(mean), _meta(rstd))
        ym = checks.batchnorm_backward_output(act, None if y is None else _meta(y), xm)
        t = xm.dtype
        g, x, gamma = r.on(grad_out, t), r.on(x, t), r.on(gamma, t)
        mean, rstd = r.on(mean, t), r.on(rstd, t)
        y = None if ym is None else r.on(y, t)   # masks g by y > 0 as the kernel reads it
        dx = xp.empty(xm.shape, t)
        dgamma, dbeta = xp.empty(gam.shape, t), xp.empty(gam.shape, t)
        r.call("batchnorm_backward", t, r.ptr(g), r.ptr(x), r.ptr(gamma), r.ptr(mean),
               r.ptr(rstd), r.ptr(y), r.ptr(dx), r.ptr(dgamma), r.ptr(dbeta), *_ncm(xm.shape))
        return dx, dgamma, dbeta

    def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5, act=None):
        xm, _g, _b = checks.batchnorm_args("batchnorm_inference", _meta(x), _meta(gamma),
                                           _meta(beta))
        checks.batchnorm_stats(xm, _meta(running_mean), _meta(running_var))
        act = checks.batchnorm_act("batchnorm_inference", act)
        t = xm.dtype
        x, gamma, beta = r.on(x, t), r.on(gamma, t), r.on(beta, t)
        rm, rv = r.on(running_mean, t), r.on(running_var, t)
        y = xp.empty(xm.shape, t)
        r.call("batchnorm_inference", t, r.ptr(x), r.ptr(gamma), r.ptr(beta), r.ptr(rm),
               r.ptr(rv), r.ptr(y), *_ncm(xm.shape), float(eps), act == "relu")
        return y

    return {"conv2d": conv2d, "conv2d_input_grad": conv2d_input_grad,
            "conv2d_backward": conv2d_backward, "max_pool2d": max_pool2d,
            "max_pool2d_backward": max_pool2d_backward, "avg_pool2d": avg_pool2d,
            "avg_pool2d_backward": avg_pool2d_backward, "batchnorm": batchnorm,
            "batchnorm_backward": batchnorm_backward, "batchnorm_inference": batchnorm_inference}


# -- the building blocks, for the tests (not ops of the dispatch table) -----------------------
def _geometry(op, shape, kernel, stride, padding, dilation):
    kernel = checks.pair(op, "kernel size", kernel, 1)
    return checks._geometry(op, shape, kernel, stride, padding, dilation, 1)


def im2col(dev, x, kernel, stride, padding, dilation):
    """reference.im2col on ``dev``: cols (N, C·KH·KW, Ho·Wo) of a float array x (N, C, H, W)."""
    r = _Run(dev)
    xm = checks.as_float_array("im2col", "x", _meta(x))
    N, C, H, W = xm.shape
    geo = _geometry("im2col", xm.shape, kernel, stride, padding, dilation)
    t = xm.dtype
    x = r.on(x, t)
    KH, KW = geo.kernel
    cols = dev.xp.empty((N, C * KH * KW, geo.out[0] * geo.out[1]), t)
    r.call("im2col", t, r.ptr(x), r.ptr(cols), 0, N, _conv_shape(N, C, H, W, C, 1, geo))
    return cols


def col2im(dev, cols, size, kernel, stride, padding, dilation):
    """reference.col2im on ``dev``: x (N, C, H, W), size = (C, H, W), from cols (N, C·KH·KW, L)."""
    r = _Run(dev)
    cm = checks.as_float_array("col2im", "cols", _meta(cols))
    C, H, W = size
    N = cm.shape[0]
    geo = _geometry("col2im", (N, C, H, W), kernel, stride, padding, dilation)
    t = cm.dtype
    cols = r.on(cols, t)
    dx = dev.xp.empty((N, C, H, W), t)
    r.call("col2im", t, r.ptr(cols), r.ptr(dx), 0, N, _conv_shape(N, C, H, W, C, 1, geo))
    return dx
