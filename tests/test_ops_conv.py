"""Compiled convolution / pooling / BatchNorm kernels vs their numpy twins, on every SIMD path,
on awkward shapes: odd sizes, stride 2, padding, dilation, 1×1 and 7×7 kernels, groups and
depthwise, batch 1, one channel; float32 and float64; non-contiguous inputs."""
import re

import numpy as np
import pytest
from _kernels import needs_compiled, same_error

from nnlite import ops
from nnlite.ops import reference as ref

DTYPES = (np.float32, np.float64)
OPS = ("conv2d", "conv2d_input_grad", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
       "avg_pool2d", "avg_pool2d_backward", "batchnorm", "batchnorm_backward",
       "batchnorm_inference")

# (N, C, H, W, O, kernel, stride, padding, dilation, groups)
CONVS = [
    (1, 1, 1, 1, 1, 1, 1, 0, 1, 1),          # the smallest
    (2, 3, 7, 9, 5, 3, 1, 1, 1, 1),          # odd sizes, padding
    (1, 1, 28, 28, 8, 5, 2, 2, 1, 1),        # one channel, stride 2, batch 1
    (3, 4, 13, 11, 6, 3, (2, 1), (0, 2), 2, 2),   # dilation, groups, uneven stride/padding
    (2, 6, 9, 8, 6, 3, 1, 1, 1, 6),          # depthwise
    (2, 8, 5, 7, 4, 1, 1, 0, 1, 1),          # 1×1 (no im2col)
    (2, 4, 6, 6, 8, 1, 2, 0, 1, 2),          # 1×1 with stride 2, groups
    (1, 3, 16, 15, 4, 7, 2, 3, 1, 1),        # 7×7
    (2, 5, 9, 9, 7, (3, 1), 1, (1, 0), (1, 3), 1),   # rectangular kernel
    # planes too big for the padded-plane copy (conv.cpp, kPadPlane): stride 1 with Wo == W
    # takes the shifted-planes path (one run per kernel tap), others the general loops
    (1, 2, 70, 66, 3, 3, 1, 1, 1, 1),        # shifted planes, "same" 3 x 3
    (1, 2, 67, 70, 2, 3, 1, 2, 2, 1),        # shifted planes, dilated "same"
    (1, 2, 67, 65, 3, 3, 2, 1, 1, 1),        # general, stride 2
    (1, 2, 66, 66, 3, (1, 5), 1, (0, 1), 1, 1),   # general, Wo != W at stride 1
    # small planes (the padded-plane path), stride 1 with Wo == W:
    (2, 3, 8, 6, 4, 3, 1, 2, 2, 1),          # dilated "same", windows past every edge
    (1, 2, 4, 4, 3, 5, 1, (1, 2), 1, 1),     # the window wider than the plane, Ho < H
    (2, 2, 1, 7, 3, (3, 3), 1, 1, 1, 1),     # one row: most taps meet only padding
    (2, 4, 6, 5, 6, 3, 1, 1, 1, 2),          # groups
    # 3 x 3, stride 1, >= 16 channels each way: Winograd F(2x2, 3x3) in float32 (conv.cpp)
    (2, 16, 7, 7, 16, 3, 1, 1, 1, 1),        # "same", odd size: ragged last tiles
    (3, 16, 6, 9, 17, 3, 1, 0, 1, 1),        # no padding, odd channels
    (1, 17, 5, 4, 16, 3, 1, 2, 1, 1),        # padding 2 (the input grad's padding 0)
    (2, 16, 2, 3, 16, 3, 1, (1, 2), 1, 1),   # tiny planes, uneven padding
    (41, 16, 9, 8, 16, 3, 1, 1, 1, 1),       # 1640 tiles: several chunks of images
    # F(4x4, 3x3) where its GEMMs do 40% less than F(2x2)'s (7 x 7, multiples of 4):
    (70, 16, 8, 8, 17, 3, 1, 1, 1, 1),       # 280 tiles: two chunks; dx by F(4x4) too
    (2, 16, 7, 5, 16, 3, 1, (1, 2), 1, 1),   # 7 x 7 output from a 7 x 5 input: ragged tiles
]


def up(a):
    return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a


def tol(dtype, n_sum=1, case=None):
    """n_sum: how many terms a result sums. A float32 case that takes Winograd F(4x4, 3x3)
    (winograd4) is held to ~1e-5 of the output's scale (√n_sum for unit inputs) instead of
    ~1e-6: its transforms multiply by up to 8 (csrc/cpu/conv.cpp)."""
    if dtype == np.float32:
        scale = 10 if case is not None and winograd4(case) else 1
        return {"rtol": 3e-5, "atol": scale * 3e-6 * max(1, n_sum) ** 0.5 + 1e-6}
    return {"rtol": 1e-11, "atol": 1e-13 * max(1, n_sum)}


def winograd4(case):
    """Does a float32 run of this case take F(4x4, 3x3) in its forward or input gradient?
    (conv.cpp: winograd_fits, winograd4_pays)"""
    (_, C, H, W, O, (kh, kw)), geo = geometry(case)
    p = geo["padding"]
    ph, pw = (p, p) if isinstance(p, int) else p
    if not (C >= 16 and O >= 16 and (kh, kw) == (3, 3) and geo["stride"] == 1
            and geo["dilation"] == 1 and geo["groups"] == 1 and max(ph, pw) <= 2):
        return False
    return winograd4_pays(H + 2 * ph - 2, W + 2 * pw - 2) or winograd4_pays(H, W)


def winograd4_pays(a, b):
    """F(4x4, 3x3) for an a x b output (the forward and weight gradient: the output's plane;
    the input gradient: the input's)? conv.cpp: winograd4_pays."""
    return 5 * 36 * ((a + 3) // 4) * ((b + 3) // 4) <= 3 * 16 * ((a + 1) // 2) * ((b + 1) // 2)


def geometry(case):
    N, C, H, W, O, k, s, p, d, g = case
    return (N, C, H, W, O, k if isinstance(k, tuple) else (k, k)), {
        "stride": s, "padding": p, "dilation": d, "groups": g}


def conv_inputs(rng, case, dtype, strided=False):
    (N, C, H, W, O, (kh, kw)), geo = geometry(case)
    x = rng.standard_normal((N, C, H, W))
    if strided:   # a non-contiguous view: every other column of a wider array
        x = np.repeat(x, 2, axis=3)[..., ::2]
    w = rng.standard_normal((O, C // geo["groups"], kh, kw))
    b = rng.standard_normal(O)
    return x.astype(dtype), w.astype(dtype), b.astype(dtype), geo


@needs_compiled
@pytest.mark.parametrize("op", OPS)
def test_compiled(op):
    assert ops.compiled_kernels()[op] == "compiled"


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d(simd, rng, case, dtype):
    x, w, b, geo = conv_inputs(rng, case, dtype, strided=case[0] == 2)
    K = w[0].size
    for bias in (b, None):
        y = ops.conv2d(x, w, bias, **geo)
        want = ref.conv2d(up(x), up(w), up(bias), **geo)
        assert y.dtype == dtype and y.shape == want.shape
        np.testing.assert_allclose(y, want, **tol(dtype, K, case))


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward(simd, rng, case, dtype):
    x, w, _, geo = conv_inputs(rng, case, dtype)
    g = ref.conv2d(x, w, None, **geo)
    g = rng.standard_normal(g.shape).astype(dtype)
    gt = np.asfortranarray(g)                      # non-contiguous in C order
    dx, dw, db = ops.conv2d_backward(gt, x, w, **geo)
    dx2, dw2, db2 = ref.conv2d_backward(up(g), up(x), up(w), **geo)
    L = g[0, 0].size
    assert dx.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dx, dx2, **tol(dtype, w.shape[0] * w[0, 0].size, case))
    np.testing.assert_allclose(dw, dw2, **tol(dtype, g.shape[0] * L, case))
    np.testing.assert_allclose(db, db2, **tol(dtype, g.shape[0] * L))
    none, dw3, _ = ops.conv2d_backward(g, x, w, **geo, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dw3, dw)
    # the input gradient alone is the transposed convolution
    dx4 = ops.conv2d_input_grad(g, w, x.shape[2:], **geo)
    np.testing.assert_array_equal(dx4, dx)


def test_conv2d_is_the_adjoint_of_its_input_grad(rng):
    """⟨conv(x), g⟩ = ⟨x, conv_input_grad(g)⟩: the two kernels are transposes of each other."""
    x, w, _, geo = conv_inputs(rng, CONVS[3], np.float64)
    y = ops.conv2d(x, w, None, **geo)
    g = rng.standard_normal(y.shape)
    dx = ops.conv2d_input_grad(g, w, x.shape[2:], **geo)
    assert np.isclose((y * g).sum(), (x * dx).sum(), rtol=1e-12)


def test_conv2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, w, b, geo = conv_inputs(rng, CONVS[3], np.float64)
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **geo)
    np.testing.assert_allclose(ops.conv2d(x, w, b, **geo), want.numpy(), rtol=1e-12, atol=1e-12)


def test_conv2d_empty_batch(rng):
    x, w, b, geo = conv_inputs(rng, CONVS[1], np.float32)
    y = ops.conv2d(x[:0], w, b, **geo)
    assert y.shape == (0, 5, 7, 9)
    dx, dw, db = ops.conv2d_backward(y, x[:0], w, **geo)
    assert dx.shape == (0, 3, 7, 9) and not dw.any() and not db.any()


@pytest.mark.parametrize("args", [
    {"x": np.zeros((1, 3, 4, 4)), "w": np.zeros((2, 2, 3, 3))},         # wrong channel count
    {"x": np.zeros((1, 3, 2, 2)), "w": np.zeros((2, 3, 3, 3))},         # smaller than the kernel
    {"x": np.zeros((3, 4, 4)), "w": np.zeros((2, 3, 3, 3))},            # not 4-D
    {"x": np.zeros((1, 4, 4, 4)), "w": np.zeros((3, 2, 3, 3)), "groups": 2},   # O % groups
    {"x": np.zeros((1, 3, 4, 4)), "w": np.zeros((2, 3, 3, 3)), "stride": 0},
    {"x": np.zeros((1, 3, 4, 4), np.float32), "w": np.zeros((2, 3, 3, 3))},  # dtypes differ
])
def test_conv2d_errors_match_the_twin(args):
    same_error(ops.conv2d, ref.conv2d, **args)


def test_conv2d_error_names_the_shapes():
    with pytest.raises(ValueError, match=r"input \(1, 3, 2, 2\) is smaller than the kernel"):
        ops.conv2d(np.zeros((1, 3, 2, 2)), np.zeros((2, 3, 3, 3)))


# ----------------------------------------------------------------------------- pooling
# (N, C, H, W, kernel, stride, padding)
POOLS = [(1, 1, 1, 1, 1, None, 0), (2, 3, 7, 9, 2, None, 0), (1, 1, 28, 28, 3, 2, 1),
         (3, 2, 13, 11, (3, 2), (2, 1), (1, 0)), (2, 4, 8, 8, 7, 1, 3), (2, 5, 6, 6, 2, 1, 1),
         # 2 x 2 rows of 12+ windows take the per-ISA row kernel (conv.inc: pool2x2_row)
         (2, 3, 9, 27, 2, None, 0), (1, 2, 28, 28, 2, None, 0), (1, 1, 4, 67, 2, None, 0)]


@pytest.mark.parametrize("case", POOLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d(simd, rng, case, dtype):
    N, C, H, W, k, s, p = case
    x = rng.standard_normal((N, C, H, 2 * W)).astype(dtype)[..., ::2]     # non-contiguous
    y, idx = ops.max_pool2d(x, k, s, p)
    y2, idx2 = ref.max_pool2d(x, k, s, p)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(idx, idx2)
    g = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.max_pool2d_backward(g, idx, (H, W)),
                               ref.max_pool2d_backward(up(g), idx, (H, W)), **tol(dtype, 9))


def test_max_pool2d_ties_pick_the_first(rng):
    x = np.ones((1, 1, 4, 4))
    _y, idx = ops.max_pool2d(x, 2)
    np.testing.assert_array_equal(idx, ref.max_pool2d(x, 2)[1])
    np.testing.assert_array_equal(idx.ravel(), [0, 2, 8, 10])


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2)])   # the 2x2 path, the general
@pytest.mark.parametrize("width", [11, 41])   # 2x2: short rows, and rows of the per-ISA kernel
def test_max_pool2d_nan_and_ties_like_the_twin(simd, rng, kernel, stride, width):
    """Each window's first element starts, a strictly greater one replaces it: a NaN wins only
    where it comes first, and ties keep the first (the kernel uses masks, not branches)."""
    x = rng.integers(0, 3, (3, 2, 9, width)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y, idx = ops.max_pool2d(x, kernel, stride)
    y2, idx2 = ref.max_pool2d(x, kernel, stride)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(idx, idx2)


@pytest.mark.parametrize("case", POOLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d(simd, rng, case, dtype):
    N, C, H, W, k, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y = ops.avg_pool2d(x, k, s, p)
    np.testing.assert_allclose(y, ref.avg_pool2d(up(x), k, s, p), **tol(dtype, 49))
    g = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.avg_pool2d_backward(g, (H, W), k, s, p),
                               ref.avg_pool2d_backward(up(g), (H, W), k, s, p), **tol(dtype, 49))


def test_pooling_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 8))
    xt = torch.tensor(x)
    F = torch.nn.functional
    np.testing.assert_array_equal(ops.max_pool2d(x, 3, 2, 1)[0], F.max_pool2d(xt, 3, 2, 1))
    np.testing.assert_allclose(ops.avg_pool2d(x, 3, 2, 1), F.avg_pool2d(xt, 3, 2, 1),
                               rtol=1e-12)


@pytest.mark.parametrize("args", [
    {"x": np.zeros((1, 1, 2, 2)), "kernel": 3},                       # smaller than the window
    {"x": np.zeros((1, 4, 4)), "kernel": 2},                          # not 4-D
    {"x": np.zeros((1, 1, 4, 4)), "kernel": 2, "padding": 2},            # padding > kernel / 2
])
def test_pooling_errors_match_the_twin(args):
    same_error(ops.max_pool2d, ref.max_pool2d, **args)
    same_error(ops.avg_pool2d, ref.avg_pool2d, **args)


def test_max_pool2d_backward_rejects_bad_argmax():
    same_error(ops.max_pool2d_backward, ref.max_pool2d_backward, np.ones((1, 1, 1, 1)),
               np.full((1, 1, 1, 1), 4, np.int64), (2, 2))


# ----------------------------------------------------------------------------- BatchNorm
# x shapes: (N, C) for BatchNorm1d, (N, C, L), (N, C, H, W); a one-channel one and batch 1
BN_SHAPES = [(7, 3), (257, 65), (2, 5, 63), (1, 3, 7, 9), (8, 1, 28, 28), (3, 16, 17, 5)]


def bn_inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    C = shape[1]
    gamma = (1 + 0.3 * rng.standard_normal(C)).astype(dtype)
    beta = (0.3 * rng.standard_normal(C)).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm(simd, rng, shape, dtype):
    x, gamma, beta = bn_inputs(rng, shape, dtype)
    M = x.size // shape[1]
    xt = np.asfortranarray(x)                              # non-contiguous in C order
    y, mean, rstd = ops.batchnorm(xt, gamma, beta)
    y2, mean2, rstd2 = ref.batchnorm(up(x), up(gamma), up(beta))
    assert y.dtype == mean.dtype == rstd.dtype == dtype
    for a, b in ((y, y2), (mean, mean2), (rstd, rstd2)):
        np.testing.assert_allclose(a, b, **tol(dtype, M))
    g = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = ops.batchnorm_backward(g, x, gamma, mean, rstd)
    dx2, dgamma2, dbeta2 = ref.batchnorm_backward(up(g), up(x), up(gamma), up(mean), up(rstd))
    np.testing.assert_allclose(dx, dx2, **tol(dtype, M))
    np.testing.assert_allclose(dgamma, dgamma2, **tol(dtype, M))
    np.testing.assert_allclose(dbeta, dbeta2, **tol(dtype, M))
    rm, rv = mean2 + 0.1, 1 / rstd2 ** 2
    np.testing.assert_allclose(ops.batchnorm_inference(x, gamma, beta, rm.astype(dtype),
                                                       rv.astype(dtype)),
                               ref.batchnorm_inference(up(x), up(gamma), up(beta), rm, rv),
                               **tol(dtype, 4))


def test_batchnorm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta = bn_inputs(rng, (4, 3, 5, 6), np.float64)
    want = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(gamma),
                                          torch.tensor(beta), training=True)
    np.testing.assert_allclose(ops.batchnorm(x, gamma, beta)[0], want.numpy(), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("args", [
    {"x": np.zeros((2, 3, 4)), "gamma": np.ones(4), "beta": np.zeros(4)},      # wrong C
    {"x": np.zeros(3), "gamma": np.ones(3), "beta": np.zeros(3)},              # 1-D
    {"x": np.zeros((0, 3)), "gamma": np.ones(3), "beta": np.zeros(3)},         # empty
])
def test_batchnorm_errors_match_the_twin(args):
    same_error(ops.batchnorm, ref.batchnorm, **args)


WINOGRAD = [c for c in CONVS if c[1] >= 16]


@needs_compiled
@pytest.mark.parametrize("case", WINOGRAD)
def test_winograd_agrees_with_im2col(simd, rng, case):
    """float32 3 x 3 stride-1 convolutions take Winograd (F(2x2, 3x3) forward and input
    gradient, F(3x3, 2x2) weight gradient); switched off, im2col + GEMM. Both within rounding
    of each other, and float64 never takes Winograd (the same bits either way)."""
    from nnlite.ops import _conv
    (N, C, H, W, O, _), geo = geometry(case)
    x, w, b, geo = conv_inputs(rng, case, np.float32)
    g = rng.standard_normal((N, O) + ref.conv2d(x, w, None, **geo).shape[2:]).astype(np.float32)
    try:
        outs = {}
        for on in (True, False):
            _conv._set_winograd(on)
            outs[on] = (ops.conv2d(x, w, b, **geo), ops.conv2d_input_grad(g, w, (H, W), **geo),
                        *ops.conv2d_backward(g, x, w, **geo)[1:],
                        ops.conv2d(up(x), up(w), up(b), **geo))
    finally:
        _conv._set_winograd(True)
    L = g[0, 0].size
    for a, c, n in zip(outs[True][:4], outs[False][:4], (C * 9, O * 9, N * L, N * L)):
        np.testing.assert_allclose(a, c, **tol(np.float32, n, case))
    np.testing.assert_array_equal(outs[True][4], outs[False][4])


@needs_compiled
@pytest.mark.parametrize("case", [c for c in WINOGRAD if winograd4(c)])
def test_winograd4_agrees_with_winograd2(simd, rng, case):
    """Where F(4x4, 3x3) pays (7 x 7, multiples of 4) it runs the forward and the input
    gradient, and F(3x3, 4x4) the weight gradient, within their rounding of F(2x2, 3x3)'s and
    F(3x3, 2x2)'s results (mode 2 forces those), and not bit for bit the same: the other
    paths really ran. The bias gradient is the same bits either way."""
    from nnlite.ops import _conv
    (N, C, H, W, O, _), geo = geometry(case)
    x, w, b, geo = conv_inputs(rng, case, np.float32)
    g = rng.standard_normal((N, O) + ref.conv2d(x, w, None, **geo).shape[2:]).astype(np.float32)
    try:
        outs = {}
        for mode in (4, 2):
            _conv._set_winograd(mode)
            outs[mode] = (ops.conv2d(x, w, b, **geo), ops.conv2d_input_grad(g, w, (H, W), **geo),
                          *ops.conv2d_backward(g, x, w, **geo)[1:])
    finally:
        _conv._set_winograd(True)
    L = g[0, 0].size
    for a, c, n in zip(outs[4], outs[2], (C * 9, O * 9, N * L, N * L)):
        np.testing.assert_allclose(a, c, **tol(np.float32, n, case))
    f4 = winograd4_pays(*g.shape[2:]), winograd4_pays(H, W), winograd4_pays(*g.shape[2:])
    for a, c, other in zip(outs[4][:3], outs[2][:3], f4):   # y, dx, dw
        assert np.array_equal(a, c) != other
    np.testing.assert_array_equal(outs[4][3], outs[2][3])
    with pytest.raises(ValueError, match="Winograd mode"):
        _conv._set_winograd(3)


@needs_compiled
@pytest.mark.skipif(not ops.has_openmp(), reason="built without OpenMP")
@pytest.mark.parametrize("case", [c for c in WINOGRAD if c[0] >= 41])   # F(2x2), F(4x4)
def test_winograd_same_bits_on_any_thread_count(rng, case):
    """Chunks of images are sized by the problem alone and each chunk is computed the same
    whatever thread runs it: 1 and 2 threads give the same bits."""
    x, w, b, geo = conv_inputs(rng, case, np.float32)
    g = rng.standard_normal(ops.conv2d(x, w, b, **geo).shape).astype(np.float32)
    old = ops.num_threads()
    try:
        res = []
        for t in (1, 2):
            ops.set_num_threads(t)
            res.append((ops.conv2d(x, w, b, **geo), *ops.conv2d_backward(g, x, w, **geo)))
    finally:
        ops.set_num_threads(old)
    for a, c in zip(*res):
        np.testing.assert_array_equal(a, c)


# act="relu" (BatchNorm → ReLU fused): one and many rows per channel, M = 1, 7, 63, 65, 257
# (below, around and past the SIMD widths and a two-block reduction), batch 1, one channel, 4-D
BN_RELU_SHAPES = [(5, 3, 1), (1, 2, 7), (3, 1, 63), (2, 4, 65), (1, 1, 257), (3, 5, 7, 9),
                  (2, 3, 14, 14)]


@pytest.mark.parametrize("shape", BN_RELU_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_relu(simd, rng, shape, dtype):
    x, gamma, beta = bn_inputs(rng, shape, dtype)
    M = x.size // shape[1]
    y, mean, rstd = ops.batchnorm(np.asfortranarray(x), gamma, beta, act="relu")
    y2, mean2, rstd2 = ref.batchnorm(up(x), up(gamma), up(beta), act="relu")
    assert y.dtype == dtype and (y >= 0).all() and 0 < (y > 0).mean() < 1
    for a, b in ((y, y2), (mean, mean2), (rstd, rstd2)):
        np.testing.assert_allclose(a, b, **tol(dtype, M))
    g = rng.standard_normal(shape).astype(dtype)
    # the twin masks with the kernel's y: a float32 y near 0 may round either way
    dx, dgamma, dbeta = ops.batchnorm_backward(g, x, gamma, mean, rstd, act="relu", y=y)
    dx2, dgamma2, dbeta2 = ref.batchnorm_backward(up(g), up(x), up(gamma), up(mean), up(rstd),
                                                  act="relu", y=up(y))
    for a, b in ((dx, dx2), (dgamma, dgamma2), (dbeta, dbeta2)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol(dtype, M))
    rm, rv = mean2 + 0.1, 1 / rstd2 ** 2
    yi = ops.batchnorm_inference(x, gamma, beta, rm.astype(dtype), rv.astype(dtype), act="relu")
    np.testing.assert_allclose(yi, ref.batchnorm_inference(up(x), up(gamma), up(beta), rm, rv,
                                                           act="relu"), **tol(dtype, 4))


@pytest.mark.parametrize("shape", [(2, 4, 65), (3, 5, 7, 9), (1, 1, 257)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_relu_is_batchnorm_then_relu_exactly(simd, rng, shape, dtype):
    """The fused op gives the bits of batchnorm, then act_forward/act_backward's relu: the same
    row kernels, the mask applied as the rows are read (so seeded runs stay valid)."""
    x, gamma, beta = bn_inputs(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    g.reshape(-1)[:3] = [np.inf, -np.inf, np.nan]   # channel 0: dout·0 is NaN where relu' = 0
    z, mean, rstd = ops.batchnorm(x, gamma, beta)
    y = ops.act_forward(z, "relu")
    y_f, mean_f, rstd_f = ops.batchnorm(x, gamma, beta, act="relu")
    for a, b in ((y_f, y), (mean_f, mean), (rstd_f, rstd)):
        np.testing.assert_array_equal(a, b)
    want = ops.batchnorm_backward(ops.act_backward(g, z, y, "relu"), x, gamma, mean, rstd)
    got = ops.batchnorm_backward(g, x, gamma, mean, rstd, act="relu", y=y_f)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    rm, rv = mean + 0.1, 1 / rstd ** 2 + 0.5
    np.testing.assert_array_equal(
        ops.batchnorm_inference(x, gamma, beta, rm, rv, act="relu"),
        ops.act_forward(ops.batchnorm_inference(x, gamma, beta, rm, rv), "relu"))


def test_batchnorm_relu_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta = bn_inputs(rng, (4, 3, 5, 6), np.float64)
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    want = torch.relu(torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True))
    g = rng.standard_normal(x.shape)
    want.backward(torch.tensor(g))
    y, mean, rstd = ops.batchnorm(x, gamma, beta, act="relu")
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    got = ops.batchnorm_backward(g, x, gamma, mean, rstd, act="relu", y=y)
    for a, b in zip(got, (xt.grad, gt.grad, bt.grad)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-11)


def _bn_backward_args(dtype=np.float64):
    x = np.linspace(-1, 1, 24).reshape(2, 3, 4).astype(dtype)
    return x, x, np.ones(3, dtype), np.zeros(3, dtype), np.ones(3, dtype)


@pytest.mark.parametrize("kwargs, message", [
    ({"act": "gelu", "y": np.zeros((2, 3, 4))},
     "batchnorm_backward: act must be None or 'relu', got 'gelu'"),
    ({"act": "relu"}, "act='relu' needs y"),
    ({"y": np.zeros((2, 3, 4))}, "only used with act='relu'"),
    ({"act": "relu", "y": np.zeros((2, 3, 5))},
     "y (2, 3, 5) (the forward's output) must have x's shape (2, 3, 4)"),
    ({"act": "relu", "y": np.zeros((2, 3, 4), np.float32)},
     "batchnorm_backward: all inputs must have the same dtype"),
])
def test_batchnorm_backward_relu_errors_match_the_twin(kwargs, message):
    same_error(ops.batchnorm_backward, ref.batchnorm_backward, *_bn_backward_args(), **kwargs)
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        ops.batchnorm_backward(*_bn_backward_args(), **kwargs)


@pytest.mark.parametrize("act", ["gelu", "ReLU", "none", 1])
def test_batchnorm_bad_act_matches_the_twin(act):
    x, gamma, beta = np.ones((2, 3)), np.ones(3), np.zeros(3)
    same_error(ops.batchnorm, ref.batchnorm, x, gamma, beta, act=act)
    with pytest.raises(ValueError, match=r"batchnorm: act must be None or 'relu', got "):
        ops.batchnorm(x, gamma, beta, act=act)
    stats = (np.zeros(3), np.ones(3))
    same_error(ops.batchnorm_inference, ref.batchnorm_inference, x, gamma, beta, *stats,
               act=act)
    with pytest.raises(ValueError, match=r"batchnorm_inference: act must be None or 'relu'"):
        ops.batchnorm_inference(x, gamma, beta, *stats, act=act)
