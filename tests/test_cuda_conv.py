"""The CUDA convolution, pooling and BatchNorm kernels (csrc/cuda/conv_kernels.cuh, through
nnlite/ops/cuda_conv.py) against their numpy twins (nnlite/ops/reference.py), through the shim
on CPU threads and (marked ``cuda``) on a GPU: the ``cuda_dev`` fixture (tests/conftest.py).

Awkward shapes as in tests/test_ops_conv.py, kept small (a shim block is 256 OS threads and a
grid's blocks run one after another): odd sizes, stride 2, padding, dilation, 1×1 and 7×7
kernels, groups and depthwise, batch 1, one channel; float32 and float64; non-contiguous
inputs; pooling with padding and overlapping windows; BatchNorm on (N, C), (N, C, L) and
(N, C, H, W); errors identical to the twins'."""
import numpy as np
import pytest
from _cuda_shim import to_dev, to_host

from nnlite.ops import cuda_conv
from nnlite.ops import reference as ref

DTYPES = (np.float32, np.float64)

# (N, C, H, W, O, kernel, stride, padding, dilation, groups)
CONVS = [
    (1, 1, 1, 1, 1, 1, 1, 0, 1, 1),                  # the smallest
    (2, 3, 7, 9, 5, 3, 1, 1, 1, 1),                  # odd sizes, padding
    (1, 1, 12, 11, 4, 5, 2, 2, 1, 1),                # one channel, stride 2, batch 1
    (3, 4, 13, 11, 6, 3, (2, 1), (0, 2), 2, 2),      # dilation, groups, uneven stride/padding
    (2, 6, 9, 8, 6, 3, 1, 1, 1, 6),                  # depthwise
    (2, 8, 5, 7, 4, 1, 1, 0, 1, 1),                  # 1×1: no im2col (pointwise path)
    (2, 4, 6, 6, 8, 1, 2, 0, 1, 2),                  # 1×1 with stride 2, groups (im2col)
    (1, 3, 13, 12, 4, 7, 2, 3, 1, 1),                # 7×7
    (2, 5, 9, 9, 7, (3, 1), 1, (1, 0), (1, 3), 1),   # rectangular kernel, dilation on columns
]
CONV_IDS = ["smallest", "odd-pad", "1ch-s2", "dil-groups", "depthwise", "1x1", "1x1-s2-g2",
            "7x7", "rect"]


def up(a):
    return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a


def tol(dtype, n_sum=1):
    """n_sum: how many terms a result sums."""
    if dtype == np.float32:
        return {"rtol": 3e-5, "atol": 3e-6 * max(1, n_sum) ** 0.5 + 1e-6}
    return {"rtol": 1e-11, "atol": 1e-13 * max(1, n_sum)}


@pytest.fixture
def k(cuda_dev):
    return cuda_conv.kernels(cuda_dev)


def geometry(case):
    N, C, H, W, O, kk, s, p, d, g = case
    return (N, C, H, W, O, kk if isinstance(kk, tuple) else (kk, kk)), {
        "stride": s, "padding": p, "dilation": d, "groups": g}


def conv_inputs(rng, case, dtype):
    (N, C, H, W, O, (kh, kw)), geo = geometry(case)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // geo["groups"], kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return x, w, b, geo


def strided(dev, a):
    """A non-contiguous device view holding a's values: every other column of a wider array."""
    wide = np.repeat(a, 2, axis=-1)
    v = to_dev(dev, wide)[..., ::2]
    assert not v.flags.c_contiguous or a.shape[-1] == 1
    return v


def same_error(kernel_fn, twin_fn, dev_args, host_args, /, **kwargs):
    """The kernel (given device arrays) raises what the twin (given host arrays) raises."""
    with pytest.raises(Exception) as e_kernel:
        kernel_fn(*dev_args, **kwargs)
    with pytest.raises(Exception) as e_twin:
        twin_fn(*host_args, **kwargs)
    assert type(e_kernel.value) is type(e_twin.value)
    assert str(e_kernel.value) == str(e_twin.value)


# ----------------------------------------------------------------------------- convolution
@pytest.mark.parametrize("case", CONVS, ids=CONV_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d(cuda_dev, k, rng, case, dtype):
    x, w, b, geo = conv_inputs(rng, case, dtype)
    xd = strided(cuda_dev, x) if case[0] == 2 else to_dev(cuda_dev, x)
    K = w[0].size
    for bias in (b, None):
        y = k["conv2d"](xd, to_dev(cuda_dev, w),
                        None if bias is None else to_dev(cuda_dev, bias), **geo)
        want = ref.conv2d(up(x), up(w), up(bias), **geo)
        assert y.dtype == dtype and y.shape == want.shape
        np.testing.assert_allclose(to_host(y), want, **tol(dtype, K))


@pytest.mark.parametrize("case", CONVS, ids=CONV_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward(cuda_dev, k, rng, case, dtype):
    x, w, _, geo = conv_inputs(rng, case, dtype)
    y = ref.conv2d(x, w, None, **geo)
    g = rng.standard_normal(y.shape).astype(dtype)
    gd = strided(cuda_dev, g) if case[0] == 2 else to_dev(cuda_dev, g)
    xd, wd = to_dev(cuda_dev, x), to_dev(cuda_dev, w)
    dx, dw, db = k["conv2d_backward"](gd, xd, wd, **geo)
    dx2, dw2, db2 = ref.conv2d_backward(up(g), up(x), up(w), **geo)
    L = g[0, 0].size
    assert dx.dtype == dw.dtype == db.dtype == dtype
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (w.shape[0],)
    np.testing.assert_allclose(to_host(dx), dx2, **tol(dtype, w.shape[0]))
    np.testing.assert_allclose(to_host(dw), dw2, **tol(dtype, g.shape[0] * L))
    np.testing.assert_allclose(to_host(db), db2, **tol(dtype, g.shape[0] * L))
    none, dw3, db3 = k["conv2d_backward"](gd, xd, wd, **geo, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(to_host(dw3), to_host(dw))     # deterministic: same bits
    np.testing.assert_array_equal(to_host(db3), to_host(db))
    # the input gradient alone is the transposed convolution
    dx4 = k["conv2d_input_grad"](gd, wd, x.shape[2:], **geo)
    np.testing.assert_array_equal(to_host(dx4), to_host(dx))


def test_conv2d_in_chunks_of_images(cuda_dev, k, rng, monkeypatch):
    """A batch whose im2col columns exceed the scratch bound is done a few images at a time:
    the same results, bit for bit."""
    x, w, b, geo = conv_inputs(rng, CONVS[3], np.float64)
    xd, wd, bd = to_dev(cuda_dev, x), to_dev(cuda_dev, w), to_dev(cuda_dev, b)
    whole = k["conv2d"](xd, wd, bd, **geo)
    g = to_dev(cuda_dev, rng.standard_normal(whole.shape))
    grads = k["conv2d_backward"](g, xd, wd, **geo)
    per_image = x.shape[1] * w.shape[2] * w.shape[3] * whole.shape[2] * whole.shape[3]
    for chunk in (1, 2):    # 3 images: chunks of 1, and of 2 then 1
        monkeypatch.setattr(cuda_conv, "COLS_ELEMS", chunk * per_image)
        np.testing.assert_array_equal(to_host(k["conv2d"](xd, wd, bd, **geo)), to_host(whole))
        for a, b_ in zip(k["conv2d_backward"](g, xd, wd, **geo), grads):
            np.testing.assert_array_equal(to_host(a), to_host(b_))


def test_conv2d_is_the_adjoint_of_its_input_grad(cuda_dev, k, rng):
    """⟨conv(x), g⟩ = ⟨x, conv_input_grad(g)⟩: im2col and col2im are transposes."""
    x, w, _, geo = conv_inputs(rng, CONVS[3], np.float64)
    wd = to_dev(cuda_dev, w)
    y = to_host(k["conv2d"](to_dev(cuda_dev, x), wd, None, **geo))
    g = rng.standard_normal(y.shape)
    dx = to_host(k["conv2d_input_grad"](to_dev(cuda_dev, g), wd, x.shape[2:], **geo))
    assert np.isclose((y * g).sum(), (x * dx).sum(), rtol=1e-12)


@pytest.mark.parametrize("case", [CONVS[1], CONVS[3], CONVS[8]], ids=["odd-pad", "dil", "rect"])
def test_im2col_and_col2im_match_the_twins(cuda_dev, rng, case):
    (N, C, H, W, _O, kernel), geo = geometry(case)
    g = {key: ref_pair(geo[key]) for key in ("stride", "padding", "dilation")}
    x = rng.standard_normal((N, C, H, W))
    cols = cuda_conv.im2col(cuda_dev, to_dev(cuda_dev, x), kernel, g["stride"], g["padding"],
                            g["dilation"])
    want = ref.im2col(x, kernel, g["stride"], g["padding"], g["dilation"])
    np.testing.assert_array_equal(to_host(cols), want)
    c = rng.standard_normal(want.shape)
    dx = cuda_conv.col2im(cuda_dev, to_dev(cuda_dev, c), (C, H, W), kernel, g["stride"],
                          g["padding"], g["dilation"])
    np.testing.assert_allclose(to_host(dx),
                               ref.col2im(c, (C, H, W), kernel, g["stride"], g["padding"],
                                          g["dilation"]), rtol=1e-12, atol=1e-13)


def ref_pair(v):
    return v if isinstance(v, tuple) else (v, v)


def test_conv2d_int_inputs_become_float64_as_in_the_twin(cuda_dev, k, rng):
    x = rng.integers(-3, 4, (1, 2, 5, 5))
    w = rng.integers(-2, 3, (3, 2, 3, 3))
    y = k["conv2d"](to_dev(cuda_dev, x), to_dev(cuda_dev, w), padding=1)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(to_host(y), ref.conv2d(x, w, padding=1))


def test_misaligned_host_input_under_the_shim(cuda_dev, k, rng):
    """A float64 array viewed at an odd byte offset (contiguous, not aligned): copied to an
    aligned one before a kernel reads it."""
    if cuda_dev.kind != "shim":
        pytest.skip("host arrays only")
    x = rng.standard_normal((1, 2, 5, 5))
    buf = np.zeros(x.nbytes + 1, np.uint8)
    xm = buf[1:].view(np.float64).reshape(x.shape)
    xm[...] = x
    assert not xm.flags.aligned
    w = rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_allclose(k["conv2d"](xm, w, padding=1), ref.conv2d(x, w, padding=1),
                               rtol=1e-12, atol=1e-13)


def test_conv2d_empty_batch(cuda_dev, k, rng):
    x, w, b, geo = conv_inputs(rng, CONVS[1], np.float32)
    xd = to_dev(cuda_dev, x[:0])
    y = k["conv2d"](xd, to_dev(cuda_dev, w), to_dev(cuda_dev, b), **geo)
    assert y.shape == (0, 5, 7, 9) and y.dtype == np.float32
    dx, dw, db = k["conv2d_backward"](y, xd, to_dev(cuda_dev, w), **geo)
    assert dx.shape == (0, 3, 7, 9) and not to_host(dw).any() and not to_host(db).any()
    dx = k["conv2d_input_grad"](y, to_dev(cuda_dev, w), (7, 9), **geo)
    assert dx.shape == (0, 3, 7, 9)


@pytest.mark.parametrize("args", [
    {"x": np.zeros((1, 3, 4, 4)), "w": np.zeros((2, 2, 3, 3))},         # wrong channel count
    {"x": np.zeros((1, 3, 2, 2)), "w": np.zeros((2, 3, 3, 3))},         # smaller than the kernel
    {"x": np.zeros((3, 4, 4)), "w": np.zeros((2, 3, 3, 3))},            # not 4-D
    {"x": np.zeros((1, 4, 4, 4)), "w": np.zeros((3, 2, 3, 3)), "groups": 2},   # O % groups
    {"x": np.zeros((1, 3, 4, 4)), "w": np.zeros((2, 3, 3, 3)), "stride": 0},
    {"x": np.zeros((1, 3, 4, 4), np.float32), "w": np.zeros((2, 3, 3, 3))},  # dtypes differ
    {"x": np.zeros((1, 3, 4, 4), np.complex64), "w": np.zeros((2, 3, 3, 3))},  # not float
    {"x": np.zeros((1, 3, 4, 4)), "w": np.zeros((2, 3, 3, 3)), "b": np.zeros(3)},  # b's shape
])
def test_conv2d_errors_match_the_twin(cuda_dev, k, args):
    args = dict(args)
    host = [args.pop("x"), args.pop("w"), args.pop("b", None)]
    dev = [None if a is None else to_dev(cuda_dev, a) for a in host]
    same_error(k["conv2d"], ref.conv2d, dev, host, **args)


def test_conv2d_backward_and_input_grad_errors_match_the_twin(cuda_dev, k):
    x, w = np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3))
    g = np.zeros((1, 2, 4, 3))                                  # should be (1, 2, 3, 3)
    same_error(k["conv2d_backward"], ref.conv2d_backward,
               [to_dev(cuda_dev, a) for a in (g, x, w)], [g, x, w])
    same_error(k["conv2d_input_grad"], ref.conv2d_input_grad,
               [to_dev(cuda_dev, g), to_dev(cuda_dev, w), (5, 5)], [g, w, (5, 5)])
    g32 = np.zeros((1, 2, 3, 3), np.float32)                    # dtypes differ
    same_error(k["conv2d_input_grad"], ref.conv2d_input_grad,
               [to_dev(cuda_dev, g32), to_dev(cuda_dev, w), (5, 5)], [g32, w, (5, 5)])


# ----------------------------------------------------------------------------- pooling
# (N, C, H, W, kernel, stride, padding)
POOLS = [(1, 1, 1, 1, 1, None, 0), (2, 3, 7, 9, 2, None, 0), (1, 1, 14, 13, 3, 2, 1),
         (3, 2, 13, 11, (3, 2), (2, 1), (1, 0)), (2, 4, 8, 8, 7, 1, 3), (2, 5, 6, 6, 2, 1, 1)]
POOL_IDS = ["1x1", "2x2", "3x3-s2-p1", "rect", "7x7-s1-p3", "2x2-s1-p1"]


@pytest.mark.parametrize("case", POOLS, ids=POOL_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d(cuda_dev, k, rng, case, dtype):
    N, C, H, W, kk, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y, idx = k["max_pool2d"](strided(cuda_dev, x), kk, s, p)
    y2, idx2 = ref.max_pool2d(x, kk, s, p)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(to_host(y), y2)
    np.testing.assert_array_equal(to_host(idx), idx2)
    g = rng.standard_normal(y2.shape).astype(dtype)
    dx = k["max_pool2d_backward"](strided(cuda_dev, g), idx, (H, W))
    assert dx.dtype == dtype
    np.testing.assert_allclose(to_host(dx), ref.max_pool2d_backward(up(g), idx2, (H, W)),
                               **tol(dtype, 49))


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), (3, 1)])
def test_max_pool2d_nan_and_ties_like_the_twin(cuda_dev, k, rng, kernel, stride):
    """Ties keep the first maximum in window order, and the first NaN wins, as numpy's argmax
    in the twin."""
    x = rng.integers(0, 3, (3, 2, 9, 11)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y, idx = k["max_pool2d"](to_dev(cuda_dev, x), kernel, stride)
    y2, idx2 = ref.max_pool2d(x, kernel, stride)
    np.testing.assert_array_equal(to_host(y), y2)
    np.testing.assert_array_equal(to_host(idx), idx2)


def test_max_pool2d_backward_repeated_argmax(cuda_dev, k, rng):
    """Overlapping windows (3×3 at stride 1) on data with many ties: most inputs are the argmax
    of several windows, over more than one 32-output round of the warp and with a plane count
    that leaves the last block's warps partly idle. Sums as the twin's np.add.at, and the same
    bits on a second run (no atomics)."""
    x = rng.integers(0, 2, (2, 3, 11, 10)).astype(np.float64)       # 6 planes, 81 outputs each
    y, idx = k["max_pool2d"](to_dev(cuda_dev, x), 3, 1)
    idx_h = to_host(idx)
    assert len(np.unique(idx_h[0, 0])) < 0.75 * idx_h[0, 0].size
    g = rng.standard_normal(y.shape)
    gd = to_dev(cuda_dev, g)
    dx = to_host(k["max_pool2d_backward"](gd, idx, (11, 10)))
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(g, idx_h, (11, 10)), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_array_equal(to_host(k["max_pool2d_backward"](gd, idx, (11, 10))), dx)


def test_max_pool2d_backward_argmax_chosen_by_hand(cuda_dev, k):
    """One plane whose 40 outputs all route to a few inputs: every lane of a round shares an
    argmax with others."""
    g = np.arange(40, dtype=np.float64).reshape(1, 1, 5, 8)
    idx = (np.arange(40) % 3 * 7).reshape(1, 1, 5, 8).astype(np.int64)
    dx = k["max_pool2d_backward"](to_dev(cuda_dev, g), to_dev(cuda_dev, idx), (4, 6))
    np.testing.assert_array_equal(to_host(dx), ref.max_pool2d_backward(g, idx, (4, 6)))


@pytest.mark.parametrize("case", POOLS, ids=POOL_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d(cuda_dev, k, rng, case, dtype):
    N, C, H, W, kk, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y = k["avg_pool2d"](strided(cuda_dev, x), kk, s, p)
    assert y.dtype == dtype
    np.testing.assert_allclose(to_host(y), ref.avg_pool2d(up(x), kk, s, p), **tol(dtype, 49))
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = k["avg_pool2d_backward"](strided(cuda_dev, g), (H, W), kk, s, p)
    assert dx.dtype == dtype
    np.testing.assert_allclose(to_host(dx), ref.avg_pool2d_backward(up(g), (H, W), kk, s, p),
                               **tol(dtype, 49))


def test_pooling_matches_torch(cuda_dev, k, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 8))
    F = torch.nn.functional
    xd = to_dev(cuda_dev, x)
    np.testing.assert_array_equal(to_host(k["max_pool2d"](xd, 3, 2, 1)[0]),
                                  F.max_pool2d(torch.tensor(x), 3, 2, 1).numpy())
    np.testing.assert_allclose(to_host(k["avg_pool2d"](xd, 3, 2, 1)),
                               F.avg_pool2d(torch.tensor(x), 3, 2, 1).numpy(), rtol=1e-12)


def test_pooling_empty_batch(cuda_dev, k):
    x = to_dev(cuda_dev, np.zeros((0, 3, 6, 6), np.float32))
    y, idx = k["max_pool2d"](x, 2)
    assert y.shape == idx.shape == (0, 3, 3, 3)
    assert k["max_pool2d_backward"](y, idx, (6, 6)).shape == (0, 3, 6, 6)
    assert k["avg_pool2d"](x, 2).shape == (0, 3, 3, 3)
    assert k["avg_pool2d_backward"](y, (6, 6), 2).shape == (0, 3, 6, 6)


@pytest.mark.parametrize("args", [
    {"x": np.zeros((1, 1, 2, 2)), "kernel": 3},                       # smaller than the window
    {"x": np.zeros((1, 4, 4)), "kernel": 2},                          # not 4-D
    {"x": np.zeros((1, 1, 4, 4)), "kernel": 2, "padding": 2},         # padding > kernel / 2
    {"x": np.zeros((1, 1, 4, 4)), "kernel": 0},                       # kernel < 1
])
def test_pooling_errors_match_the_twin(cuda_dev, k, args):
    args = dict(args)
    x = args.pop("x")
    for op in ("max_pool2d", "avg_pool2d"):
        same_error(k[op], getattr(ref, op), [to_dev(cuda_dev, x)], [x], **args)


def test_pool_backward_errors_match_the_twin(cuda_dev, k):
    g = np.ones((1, 1, 1, 1))
    for bad in (np.full((1, 1, 1, 1), 4, np.int64), np.full((1, 1, 1, 1), -1, np.int64),
                np.zeros((1, 1, 1, 1), np.int32), np.zeros((1, 1, 2, 1), np.int64)):
        same_error(k["max_pool2d_backward"], ref.max_pool2d_backward,
                   [to_dev(cuda_dev, g), to_dev(cuda_dev, bad), (2, 2)], [g, bad, (2, 2)])
    g = np.ones((1, 1, 2, 2))
    same_error(k["avg_pool2d_backward"], ref.avg_pool2d_backward,
               [to_dev(cuda_dev, g), (6, 6), 2], [g, (6, 6), 2])      # grad_out should be 3x3


# ----------------------------------------------------------------------------- BatchNorm
# (N, C) as BatchNorm1d, (N, C, L), (N, C, H, W); batch 1, one channel; values per channel
# both below and above the block size (256 threads)
BN_SHAPES = [(7, 3), (300, 5), (2, 5, 63), (1, 3, 7, 9), (8, 1, 12, 12), (3, 6, 7, 5)]


def bn_inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    C = shape[1]
    gamma = (1 + 0.3 * rng.standard_normal(C)).astype(dtype)
    beta = (0.3 * rng.standard_normal(C)).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm(cuda_dev, k, rng, shape, dtype):
    x, gamma, beta = bn_inputs(rng, shape, dtype)
    M = x.size // shape[1]
    d = lambda a: to_dev(cuda_dev, a)   # noqa: E731
    y, mean, rstd = k["batchnorm"](strided(cuda_dev, x), d(gamma), d(beta))
    y2, mean2, rstd2 = ref.batchnorm(up(x), up(gamma), up(beta))
    assert y.dtype == mean.dtype == rstd.dtype == dtype
    assert y.shape == x.shape and mean.shape == rstd.shape == (shape[1],)
    for a, b in ((y, y2), (mean, mean2), (rstd, rstd2)):
        np.testing.assert_allclose(to_host(a), b, **tol(dtype, M))
    g = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = k["batchnorm_backward"](strided(cuda_dev, g), d(x), d(gamma), mean, rstd)
    dx2, dgamma2, dbeta2 = ref.batchnorm_backward(up(g), up(x), up(gamma), up(to_host(mean)),
                                                  up(to_host(rstd)))
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    np.testing.assert_allclose(to_host(dx), dx2, **tol(dtype, M))
    np.testing.assert_allclose(to_host(dgamma), dgamma2, **tol(dtype, M))
    np.testing.assert_allclose(to_host(dbeta), dbeta2, **tol(dtype, M))
    rm, rv = mean2 + 0.1, 1 / rstd2 ** 2
    yi = k["batchnorm_inference"](strided(cuda_dev, x), d(gamma), d(beta), d(rm.astype(dtype)),
                                  d(rv.astype(dtype)), eps=1e-3)
    assert yi.dtype == dtype
    np.testing.assert_allclose(to_host(yi),
                               ref.batchnorm_inference(up(x), up(gamma), up(beta), rm, rv, 1e-3),
                               **tol(dtype, 4))


def test_batchnorm_matches_torch(cuda_dev, k, rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta = bn_inputs(rng, (4, 3, 5, 6), np.float64)
    want = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(gamma),
                                          torch.tensor(beta), training=True)
    got = k["batchnorm"](*(to_dev(cuda_dev, a) for a in (x, gamma, beta)))[0]
    np.testing.assert_allclose(to_host(got), want.numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm_constant_channel(cuda_dev, k):
    """A channel of one repeated value: variance 0 (the two-pass form gives exactly 0, not a
    small negative), rstd = 1/√ε, y = β."""
    x = np.full((3, 2, 4), 7.25)
    y, mean, rstd = k["batchnorm"](to_dev(cuda_dev, x), to_dev(cuda_dev, np.ones(2)),
                                   to_dev(cuda_dev, np.array([0.5, -1.0])))
    np.testing.assert_array_equal(to_host(mean), [7.25, 7.25])
    np.testing.assert_allclose(to_host(rstd), 1 / np.sqrt(1e-5))
    np.testing.assert_array_equal(to_host(y)[:, 0], 0.5)


@pytest.mark.parametrize("args", [
    {"x": np.zeros((2, 3, 4)), "gamma": np.ones(4), "beta": np.zeros(4)},      # wrong C
    {"x": np.zeros(3), "gamma": np.ones(3), "beta": np.zeros(3)},              # 1-D
    {"x": np.zeros((0, 3)), "gamma": np.ones(3), "beta": np.zeros(3)},         # empty
    {"x": np.zeros((2, 3), np.float32), "gamma": np.ones(3), "beta": np.zeros(3)},  # dtypes
])
def test_batchnorm_errors_match_the_twin(cuda_dev, k, args):
    names = ("x", "gamma", "beta")
    host = [args[n] for n in names]
    same_error(k["batchnorm"], ref.batchnorm, [to_dev(cuda_dev, a) for a in host], host)
    rm, rv = np.zeros(host[1].shape), np.ones(host[1].shape)
    same_error(k["batchnorm_inference"], ref.batchnorm_inference,
               [to_dev(cuda_dev, a) for a in (*host, rm, rv)], [*host, rm, rv])


def test_batchnorm_backward_and_inference_errors_match_the_twin(cuda_dev, k):
    x, gamma = np.zeros((2, 3, 4)), np.ones(3)
    bad_mean = np.zeros(4)
    args = [np.zeros((2, 3, 4)), x, gamma, bad_mean, np.ones(3)]
    same_error(k["batchnorm_backward"], ref.batchnorm_backward,
               [to_dev(cuda_dev, a) for a in args], args)
    args = [x, gamma, np.zeros(3), np.zeros(3), np.ones(2)]            # running_var's shape
    same_error(k["batchnorm_inference"], ref.batchnorm_inference,
               [to_dev(cuda_dev, a) for a in args], args)


@pytest.mark.parametrize("shape", [(5, 3, 1), (1, 2, 7), (3, 1, 63), (2, 4, 65), (300, 2),
                                   (1, 3, 7, 9), (2, 3, 14, 14)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_relu(cuda_dev, k, rng, shape, dtype):
    """act="relu": y = max(0, ·) in the forward's last pass, the backward's gradient masked by
    the forward's y > 0 in both of its passes; as the twin, and as BatchNorm then ReLU."""
    x, gamma, beta = bn_inputs(rng, shape, dtype)
    M = x.size // shape[1]
    d = lambda a: to_dev(cuda_dev, a)
    y, mean, rstd = k["batchnorm"](strided(cuda_dev, x), d(gamma), d(beta), act="relu")
    y2, mean2, _ = ref.batchnorm(up(x), up(gamma), up(beta), act="relu")
    yh = to_host(y)
    assert yh.dtype == dtype and (yh >= 0).all()
    np.testing.assert_allclose(yh, y2, **tol(dtype, M))
    z = to_host(k["batchnorm"](d(x), d(gamma), d(beta))[0])
    np.testing.assert_array_equal(yh, np.maximum(z, 0))     # the unfused kernel, then ReLU
    g = rng.standard_normal(shape).astype(dtype)
    got = k["batchnorm_backward"](strided(cuda_dev, g), d(x), d(gamma), mean, rstd, act="relu",
                                  y=strided(cuda_dev, yh))
    want = ref.batchnorm_backward(up(g), up(x), up(gamma), up(to_host(mean)), up(to_host(rstd)),
                                  act="relu", y=up(yh))
    for a, b in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(to_host(a), b, **tol(dtype, M))
    masked = k["batchnorm_backward"](d(g * (yh > 0)), d(x), d(gamma), mean, rstd)
    for a, b in zip(got, masked):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    rm, rv = mean2 + 0.1, np.full(shape[1], 0.7)
    yi = k["batchnorm_inference"](d(x), d(gamma), d(beta), d(rm.astype(dtype)),
                                  d(rv.astype(dtype)), eps=1e-3, act="relu")
    np.testing.assert_allclose(to_host(yi), ref.batchnorm_inference(
        up(x), up(gamma), up(beta), rm, rv, 1e-3, act="relu"), **tol(dtype, 4))


def test_batchnorm_relu_errors_match_the_twin(cuda_dev, k):
    x, gamma, beta = np.linspace(-1, 1, 24).reshape(2, 3, 4), np.ones(3), np.zeros(3)
    dev = lambda *a: [to_dev(cuda_dev, v) for v in a]
    same_error(k["batchnorm"], ref.batchnorm, dev(x, gamma, beta), [x, gamma, beta], act="gelu")
    stats = [np.zeros(3), np.ones(3)]
    same_error(k["batchnorm_inference"], ref.batchnorm_inference, dev(x, gamma, beta, *stats),
               [x, gamma, beta, *stats], act="Relu")
    args = [x, x, gamma, np.zeros(3), np.ones(3)]
    for kw in ({"act": "relu"}, {"y": x}, {"act": "relu", "y": x[:, :, :3]}, {"act": "tanh"}):
        dkw = {n: to_dev(cuda_dev, v) if isinstance(v, np.ndarray) else v for n, v in kw.items()}
        same_error(lambda *a, dkw=dkw, **_: k["batchnorm_backward"](*a, **dkw),
                   ref.batchnorm_backward, dev(*args), args, **kw)


def test_kernels_cover_the_family(k):
    """Every op of the family, each a row of the dispatch table (ops.add_backend takes them)."""
    from nnlite import ops
    assert set(k) == set(cuda_conv.OPS)
    assert set(k) <= set(ops.OPS)
