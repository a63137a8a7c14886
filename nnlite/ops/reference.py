"""Plain-numpy twins of every compiled kernel: the "numpy" column of the :mod:`nnlite.ops` table.

Same names, same signatures, same errors. They define what each kernel computes; the
tests compare the compiled versions against them, and ``NNLITE_BACKEND=numpy`` runs the
whole library on them. Each twin is written for clarity, not speed.

Shapes follow one legend (llm.c's): C is the width of the last axis (features, channels,
classes), N the rows (or "..." for any leading axes); attention takes (B, H, T, D): batch,
heads, time, head size. No op takes a width argument: each reads it off its arrays.
"""
import math

import numpy as np

from . import _checks as checks

SQRT_2_OVER_PI = 0.7978845608028654
GELU_C = 0.044715

# ----------------------------------------------------------------------------- GEMM


def _gemm(op, a, b, trans_a, trans_b, out, accumulate, bias=None, residual=None):
    a, b = checks.gemm_args(op, a, b, trans_a, trans_b, out, accumulate)
    r = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if bias is not None or residual is not None:
        bias, residual = checks.gemm_epilogue_args(op, bias, residual, r.shape, a.dtype)
        if bias is not None:
            r = r + bias
        if residual is not None:
            r = r + residual
    if out is None:
        return r.astype(a.dtype, copy=False)
    if accumulate:
        out += r
    else:
        out[...] = r
    return out


# native_gemm.py repeats these three entry points on purpose (see there).
def gemm(a, b, out=None, accumulate=False, bias=None, residual=None):
    """C = A·B for A (M, K), B (K, N). With ``out``: written there (``accumulate``: out += A·B).

    ``bias`` (N,) and ``residual`` (M, N), when given, are added to the product: C = A·B + bias
    + residual, a Linear layer's output and a transformer's skip connection in one pass.
    """
    return _gemm("gemm", a, b, False, False, out, accumulate, bias, residual)


def gemm_nt(a, b, out=None, accumulate=False):
    """C = A·Bᵀ for A (M, K), B (N, K): the input gradient of a Linear layer, dX = dY·Wᵀ."""
    return _gemm("gemm_nt", a, b, False, True, out, accumulate)


def gemm_tn(a, b, out=None, accumulate=False):
    """C = Aᵀ·B for A (K, M), B (K, N): the weight gradient of a Linear layer, dW = Xᵀ·dY."""
    return _gemm("gemm_tn", a, b, True, False, out, accumulate)


# ----------------------------------------------------------------------------- activations


def _act(x, act, alpha):
    if act == "none":
        return x.copy()
    if act == "relu":
        return np.maximum(x, 0)
    if act == "leaky_relu":
        return np.where(x > 0, x, x * x.dtype.type(alpha))
    if act == "tanh":
        return np.tanh(x)
    if act == "sigmoid":
        # split by sign so exp never overflows
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    if act == "gelu":  # tanh approximation (GPT-2, nanoGPT): ½x(1 + tanh u) = x·sigmoid(2u)
        return (x * _gelu_s(x)).astype(x.dtype, copy=False)
    raise AssertionError(act)


def _gelu_s(x):
    """s = ½(1 + tanh u) = sigmoid(2u), u = √(2/π)(x + c x³), as the kernels compute it: split
    by sign (exp never overflows) and with no 1 + tanh u, which cancels to 0 for x below about
    -5 (float32) / -10 (float64) where s is still far above the smallest normal number."""
    u2 = 2 * SQRT_2_OVER_PI * (x + GELU_C * x ** 3)
    e = np.exp(-np.abs(u2))
    return np.where(u2 >= 0, 1 / (1 + e), e / (1 + e))


def bias_act(x, b, act="none", alpha=0.01, out=None):
    """y = act(x + b) for x (..., C) and b (C,). ``act`` in none|relu|leaky_relu|tanh|sigmoid|gelu."""
    x, b = checks.bias_act_args("bias_act", x, b, act, out)
    y = _act(x + b, act, alpha)
    if out is None:
        return y
    out[...] = y
    return out


def act_forward(x, act, alpha=0.01):
    """y = act(x), elementwise."""
    x = checks.as_float_array("act_forward", "x", x)
    checks.check_act("act_forward", act)
    return np.asarray(_act(x, act, alpha))      # a 0-d array for 0-d x, as the kernel's


def act_backward(grad_out, x, y, act, alpha=0.01):
    """dx = grad_out · act'(x), using whichever of the forward input x and output y is cheaper.

    relu: x > 0 · leaky_relu: x > 0 ? 1 : alpha · tanh: 1 - y² · sigmoid: y(1 - y) ·
    gelu: 0.5(1 + tanh u) + 0.5 x (1 - tanh² u) √(2/π)(1 + 3c x²), u = √(2/π)(x + c x³),
    computed as s + 2x·s(1 - s)·√(2/π)(1 + 3c x²) with s = ½(1 + tanh u) = sigmoid(2u)
    """
    g, x, y = checks.act_backward_args(grad_out, x, y, act)
    return np.asarray(_act_grad(g, x, y, act, alpha))   # 0-d arrays stay arrays (ufuncs
                                                        # return scalars for them)


def _act_grad(g, x, y, act, alpha):
    t = x.dtype.type
    if act == "none":
        return g.copy()
    if act == "relu":
        return g * (x > 0)
    if act == "leaky_relu":
        return g * np.where(x > 0, t(1), t(alpha))
    if act == "tanh":
        return g * (1 - y * y)
    if act == "sigmoid":
        return g * y * (1 - y)
    if act == "gelu":     # (1 - tanh² u)/2 = 2s(1 - s): no cancellation where tanh u → ±1
        s = _gelu_s(x)
        d = s + 2 * x * s * (1 - s) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x)
        return (g * d).astype(x.dtype, copy=False)
    raise AssertionError(act)


def bias_grad(grad_out, out=None, accumulate=False):
    """db = Σ_n grad_out[n, :], summed over every leading axis of grad_out (..., C): the bias
    gradient of y = x + b. With ``out`` (C,): written there (``accumulate``: out += db)."""
    g = checks.bias_grad_args(grad_out, out, accumulate)
    db = g.reshape(math.prod(g.shape[:-1]), g.shape[-1]).sum(axis=0)      # (rows, C) -> (C,)
    if out is None:
        return db
    if accumulate:
        out += db
    else:
        out[...] = db
    return out


def act_backward_bias_grad(grad_out, x, y, act, alpha=0.01, db=None, accumulate=False,
                           out=None):
    """The backward of y = act(z), z = xW + b, for grad_out (..., C): act_backward, then the
    bias gradient of its result, in one op (the compiled kernel makes one pass over the data)::

        dx = grad_out · act'(x)        (x = z; y = act(z) where act' is cheaper from y)
        db = Σ_n dx[n, :]              summed over every leading axis, shape (C,)

    dx goes to ``out`` (or a new array), db to ``db`` (or a new array; ``accumulate``:
    db += Σ_n dx[n, :]). Returns ``(dx, db)``.
    """
    g, x, y = checks.act_backward_bias_grad_args(grad_out, x, y, act, db, accumulate, out)
    dx = act_backward(g, x, y, act, alpha)
    db = bias_grad(dx, out=db, accumulate=accumulate)
    if out is None:
        return dx, db
    out[...] = dx
    return out, db


# ----------------------------------------------------------------------------- dropout
# The mask comes from a counter-based generator: element i (flat, C order) of a call with seed
# s keeps its value iff the top 32 bits of SplitMix64's output for the counter i + 1,
#     z = s + (i + 1)·γ (mod 2⁶⁴),  γ = 0x9E3779B97F4A7C15 (the golden ratio · 2⁶⁴)
#     z = (z ⊕ z≫30)·0xBF58476D1CE4E5B9;  z = (z ⊕ z≫27)·0x94D049BB133111EB;  z = z ⊕ z≫31
# are at least the threshold t = round(rate·2³²) (so P(keep) = 1 - t/2³²). SplitMix64 is that
# sequence (Steele, Lea, Flood 2014; it passes BigCrush), read at any position without a
# state: the mask of any element, on any backend and thread, is a function of (seed, i) only.
# The backward of dropout is the same op with the same seed: the mask is made again, never
# stored. The arithmetic is written with `xp`, so the CUDA column runs this same code on CuPy.
DROPOUT_GAMMA = 0x9E3779B97F4A7C15
DROPOUT_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def dropout_keep(n, rate, seed, xp=np):
    """The keep mask (bool, n elements) of elements 0..n-1 for ``rate`` and ``seed``."""
    u64 = xp.uint64
    z = (xp.arange(1, n + 1, dtype=u64) * u64(DROPOUT_GAMMA)) + u64(seed)   # wraps mod 2⁶⁴
    z = (z ^ (z >> u64(30))) * u64(DROPOUT_MIX[0])
    z = (z ^ (z >> u64(27))) * u64(DROPOUT_MIX[1])
    z = z ^ (z >> u64(31))
    return (z >> u64(32)) >= u64(checks.dropout_threshold(rate))


def dropout(x, rate, seed):
    r"""Inverted dropout with a seeded, counter-based mask: y = x · m / (1 - rate).

    .. math::

        m_i = [u_i \ge t], \qquad u_i = \text{SplitMix64}(\text{seed}, i + 1) \gg 32,
        \qquad t = \text{round}(\text{rate} \cdot 2^{32})

    over the flat (C-order) index i of x, so ``dropout(g, rate, seed)`` with the forward's seed
    is the backward (the same mask on the gradient). A dropped element is x · 0 (NaN stays
    NaN, as in x * mask). Returns a new array of x's shape and dtype.
    """
    x, rate, seed = checks.dropout_args(x, rate, seed)
    with np.errstate(invalid="ignore"):                 # inf · 0 = NaN, as the kernel, quietly
        return np.asarray(dropout_apply(x, rate, seed))


def dropout_apply(x, rate, seed, xp=np):
    """x · m / (1 - rate) for checked arguments, with x's array module ``xp`` (the CUDA
    column's dropout is this on CuPy)."""
    keep = dropout_keep(x.size, rate, seed, xp).reshape(x.shape)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    return x * xp.where(keep, scale, x.dtype.type(0))


# ----------------------------------------------------------------------------- softmax


def softmax(x):
    """Row-wise softmax over the last axis: y_i = exp(x_i - max x) / Σ_j exp(x_j - max x)."""
    x = checks.softmax_args(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True, initial=-np.inf))   # initial: C = 0 is fine
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(grad_out, y):
    """dx = y ⊙ (g - Σ_j g_j y_j), row-wise over the last axis, for g = grad_out."""
    g, y = checks.softmax_backward_args(grad_out, y)
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = -(1/N) Σ_n log softmax(z_n)[t_n],   dz = (softmax(z) - onehot(t)) / N

    Parameters
    ----------
    logits : ndarray of shape (N, C), float32 or float64
    labels : integer ndarray of shape (N,), values in [0, C)

    Returns
    -------
    loss : float
    dlogits : ndarray of shape (N, C), same dtype as logits
    """
    z, t = checks.softmax_cross_entropy_args(logits, labels)
    n = z.shape[0]
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    s = e.sum(axis=1, keepdims=True)
    logp = (z - zmax) - np.log(s)
    loss = float(-logp[np.arange(n), t].astype(np.float64).sum() / n)
    d = e / s
    d[np.arange(n), t] -= 1
    d /= n
    return loss, d.astype(z.dtype, copy=False)


# ----------------------------------------------------------------------------- optimizer steps
# All update ``param`` (and the state arrays) in place and return None. Same formulas as
# PyTorch's torch.optim, so results can be compared step for step.


def sgd_update(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
               weight_decay=0.0):
    """g ← g + λp;  v ← μv + g;  p ← p - lr·(nesterov ? g + μv : v)   (plain SGD when μ = 0)."""
    param, grad, velocity = checks.sgd_update_args(param, grad, velocity, momentum)
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        velocity *= momentum
        velocity += g
        g = g + momentum * velocity if nesterov else velocity
    param -= (lr * g).astype(param.dtype, copy=False)


def adam_update(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, step=1, decoupled=False):
    """Adam (decoupled=False, L2 added to g) or AdamW (decoupled=True, p ← p(1 - lr·λ)).

    m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  p ← p - lr · (m/(1-β₁ᵗ)) / (√(v/(1-β₂ᵗ)) + ε)
    """
    param, grad, m, v = checks.adam_update_args(param, grad, m, v, step)
    g = grad
    if weight_decay and not decoupled:
        g = grad + weight_decay * param
    if weight_decay and decoupled:
        param *= param.dtype.type(1 - lr * weight_decay)
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    param -= (lr * (m / bc1) / (np.sqrt(v / bc2) + eps)).astype(param.dtype, copy=False)


def rmsprop_update(param, grad, sq, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """g ← g + λp;  s ← αs + (1-α)g²;  p ← p - lr·g/(√s + ε)."""
    param, grad, sq = checks.rmsprop_update_args(param, grad, sq)
    g = grad + weight_decay * param if weight_decay else grad
    sq *= alpha
    sq += (1 - alpha) * g * g
    param -= (lr * g / (np.sqrt(sq) + eps)).astype(param.dtype, copy=False)


# ----------------------------------------------------------------------------- transformer ops


def _attention_probs(q, k, causal, scale):
    """P = softmax(Q Kᵀ · scale + mask) of shape (B, H, T, T), and the row log-sum-exp."""
    T = q.shape[2]
    s = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    if causal:
        s = np.where(_causal_mask(T), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    p = e / z
    if causal:      # a masked probability is 0 even in a row that is NaN (inf or NaN inputs)
        p = np.where(_causal_mask(T), p, 0)
    return p, (m + np.log(z))[..., 0]


def _causal_mask(T):
    """(T, T) bool: query t sees keys 0..t."""
    return np.tril(np.ones((T, T), dtype=bool))


def _into(result, target):
    """``result``, or ``target`` (a destination of an attention op) holding it."""
    if target is None:
        return result
    target[...] = result
    return target


def attention(q, k, v, causal=True, scale=None, return_lse=False, out=None):
    """Scaled dot-product attention over (B, H, T, D) arrays.

    out = softmax(Q Kᵀ / √D + mask) V, where the causal mask is -inf above the diagonal
    (query t sees keys 0..t). ``scale`` defaults to 1/√D. With ``return_lse`` also returns
    the row log-sum-exp L (B, H, T) of the scaled, masked scores, which the backward reuses.
    ``out``: an array of q's shape and dtype with unit stride along D (any strides along B, H,
    T, e.g. ``a.transpose(0, 2, 1, 3)`` of a (B, T, H, D) array) to write the result into, and
    return; by default a new one.
    """
    q, k, v = checks.qkv_args("attention", q, k, v)
    checks.attention_targets("attention", q, out=out)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    p, lse = _attention_probs(q, k, causal, scale)
    res = _into((p @ v).astype(q.dtype, copy=False), out)
    return (res, lse.astype(q.dtype, copy=False)) if return_lse else res


def attention_backward(q, k, v, out, grad_out, lse=None, causal=True, scale=None, dq=None,
                       dk=None, dv=None):
    """Gradients (dq, dk, dv) of attention for the upstream gradient dO.

    With P = softmax(S), S = Q Kᵀ · scale (+ mask):
    dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - rowsum(dO ⊙ O)),  dQ = dS K · scale,
    dK = dSᵀ Q · scale. ``lse`` (from the forward) may be given; the twin recomputes P anyway.
    ``dq``, ``dk``, ``dv``: arrays to write the gradients into and return, as ``out`` of
    :func:`attention` (e.g. transposed views of one (B, T, 3, H, D) array); by default new ones.
    """
    q, k, v, out, grad_out = checks.attention_backward_args(q, k, v, out, grad_out)
    checks.attention_targets("attention_backward", q, dq=dq, dk=dk, dv=dv)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    p, _ = _attention_probs(q, k, causal, scale)
    grad_v = np.swapaxes(p, -1, -2) @ grad_out       # (not dv: that is the destination)
    dp = grad_out @ np.swapaxes(v, -1, -2)
    delta = (grad_out * out).sum(axis=-1, keepdims=True)
    ds = p * (dp - delta)
    if causal:      # a masked score contributes nothing (not 0 · NaN when a row's delta is NaN)
        ds = np.where(_causal_mask(q.shape[2]), ds, 0)
    grads = ((ds @ k) * scale, (np.swapaxes(ds, -1, -2) @ q) * scale, grad_v)
    return tuple(_into(g.astype(q.dtype, copy=False), t) for g, t in zip(grads, (dq, dk, dv)))


def layernorm(x, gamma, beta, eps=1e-5):
    """LayerNorm over the last axis: y = (x - μ) · rstd · γ + β, rstd = 1/√(σ² + ε).

    Returns (y, mean, rstd); mean and rstd have shape x.shape[:-1] (the backward needs them,
    not the normalised x: cheaper to keep, as in llm.c).
    """
    x, gamma, beta = checks.layernorm_args(x, gamma, beta)
    mean = x.mean(axis=-1)
    var = ((x - mean[..., None]) ** 2).mean(axis=-1)
    rstd = 1 / np.sqrt(var + eps)
    y = (x - mean[..., None]) * rstd[..., None] * gamma + beta
    t = x.dtype
    return y.astype(t, copy=False), mean.astype(t, copy=False), rstd.astype(t, copy=False)


def layernorm_backward(grad_out, x, gamma, mean, rstd, residual=None):
    """(dx, dgamma, dbeta) of LayerNorm, with g = grad_out, x̂ = (x - μ)·rstd and dx̂ = g ⊙ γ:

    dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂)),  dγ = Σ g ⊙ x̂,  dβ = Σ g
    (sums over every axis but the last). ``residual`` (x's shape), when given, is added to dx:
    the gradient that reaches x by a skip connection (x + f(LayerNorm(x))).
    """
    g, x, gamma, mean, rstd = checks.layernorm_backward_args(grad_out, x, gamma, mean, rstd)
    residual = checks.residual_arg("layernorm_backward", residual, x.shape, x.dtype)
    xhat = (x - mean[..., None]) * rstd[..., None]
    dxhat = g * gamma
    dx = rstd[..., None] * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                            - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    axes = tuple(range(x.ndim - 1))
    t = x.dtype
    dx = dx.astype(t, copy=False)
    if residual is not None:
        dx = dx + residual
    return (dx, (g * xhat).sum(axis=axes).astype(t, copy=False),
            g.sum(axis=axes).astype(t, copy=False))


def embedding(ids, table):
    """Gather rows: out[..., :] = table[ids[...], :] for integer ids of any shape."""
    table = checks.as_float_array("embedding", "table", table)
    checks.check_ndim("embedding", "table", table, 2)
    ids = checks.check_ids("embedding", ids, table.shape[0])
    return table[ids]


def embedding_backward(ids, grad_out, dtable):
    """Scatter-add: dtable[ids[...], :] += grad_out[..., :] (repeated ids add up). In place."""
    ids, g = checks.embedding_backward_args(ids, grad_out, dtable)
    np.add.at(dtable, ids.reshape(-1), g.reshape(ids.size, dtable.shape[1]))  # (C may be 0)


def sum_squares_many(arrays):
    r"""The sum of squares of every entry of every array, :math:`\sum_k \sum_i x_{ki}^2`, in
    float64 (a float32 square never overflows there); NaN or inf when an entry is.

    The squared global norm of a model's gradients (clipping, and the finiteness check before
    each optimizer step).
    """
    total = 0.0
    for a in checks.sum_squares_many_args(arrays):
        r = a.astype(np.float64, copy=False).reshape(-1)
        total += float(np.dot(r, r))
    return total


def adam_update_many(params, grads, ms, vs, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                     weight_decays=0.0, step=1, decoupled=True):
    """One Adam/AdamW step over many parameters at once (lists of arrays, updated in place).

    ``weight_decays`` is one float for all or a list with one per parameter (GPT training
    decays matrices only). Each parameter gets exactly :func:`adam_update`.
    """
    wds = checks.adam_update_many_args(params, grads, ms, vs, weight_decays, step)
    for p, g, m, v, wd in zip(params, grads, ms, vs, wds):
        adam_update(p, g, m, v, lr, beta1, beta2, eps, wd, step, decoupled)

# ----------------------------------------------------------------------------- convolution
# NCHW legend: N batch, C input channels, H, W input size, O output channels, G groups,
# KH, KW kernel size, Ho, Wo output size, L = Ho·Wo; s stride, p padding, d dilation (pairs:
# (rows, cols)). Weights are (O, C/G, KH, KW), as PyTorch's. Output size:
#     Ho = ⌊(H + 2·ph - dh·(KH - 1) - 1) / sh⌋ + 1      (and Wo the same way)


def im2col(x, kernel, stride, padding, dilation):
    """The receptive fields of x (N, C, H, W) as columns: cols (N, C·KH·KW, Ho·Wo) with

    cols[n, (c, i, j), (oh, ow)] = xpad[n, c, oh·sh + i·dh, ow·sw + j·dw]

    (xpad: x with ph zero rows above and below, pw zero columns left and right). A
    convolution is then one matrix product per image and group: y = W (O, C·KH·KW) @ cols.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    N, C, H, W = x.shape
    Ho, Wo = checks.conv_out_size((H, W), kernel, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((N, C, kh, kw, Ho, Wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
                                  j * dw:j * dw + sw * (Wo - 1) + 1:sw]
    return cols.reshape(N, C * kh * kw, Ho * Wo)


def col2im(cols, size, kernel, stride, padding, dilation):
    """The adjoint of :func:`im2col`: x (N, C, H, W) with size = (C, H, W), each column entry
    added back where it was read from (overlapping windows sum; padding is dropped)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    C, H, W = size
    N = cols.shape[0]
    Ho, Wo = checks.conv_out_size((H, W), kernel, stride, padding, dilation)
    cols = cols.reshape(N, C, kh, kw, Ho, Wo)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
               j * dw:j * dw + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j]
    return xp[:, :, ph:ph + H, pw:pw + W]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    r"""2-D convolution (cross-correlation, as every framework), NCHW.

    y[n, o, oh, ow] = b[o] + Σ_{c ∈ group(o), i, j} w[o, c, i, j]
                                                    · xpad[n, c, oh·sh + i·dh, ow·sw + j·dw]

    x (N, C, H, W), w (O, C/G, KH, KW), b (O,) or None → y (N, O, Ho, Wo). stride, padding
    and dilation are ints or (rows, cols) pairs; output channel o sees the input channels of
    its group g = o // (O/G): c ∈ [g·C/G, (g+1)·C/G). groups = C = O is a depthwise conv.
    """
    x, w, b, geo = checks.conv2d_args("conv2d", x, w, b, stride, padding, dilation, groups)
    N, _C, _H, _W = x.shape
    O, Cg, KH, KW = w.shape
    G = geo.groups
    Ho, Wo = geo.out
    cols = im2col(x, (KH, KW), geo.stride, geo.padding, geo.dilation)
    cols = cols.reshape(N, G, Cg * KH * KW, Ho * Wo)
    y = w.reshape(G, O // G, Cg * KH * KW) @ cols          # (N, G, O/G, L)
    y = y.reshape(N, O, Ho, Wo)
    if b is not None:
        y = y + b[:, None, None]
    return y.astype(x.dtype, copy=False)


def conv2d_input_grad(grad_out, w, size, stride=1, padding=0, dilation=1, groups=1):
    r"""∂L/∂x of :func:`conv2d` for an input of spatial size ``size`` = (H, W):

    dcols = Wᵀ @ g (per image and group), dx = col2im(dcols)

    grad_out (N, O, Ho, Wo), w (O, C/G, KH, KW) → dx (N, C, H, W). It is also the forward of
    a transposed convolution (ConvTranspose2D), whose output size is ``size``.
    """
    g, w, geo = checks.conv2d_input_grad_args(grad_out, w, size, stride, padding, dilation,
                                              groups)
    N, O = g.shape[:2]
    _, Cg, KH, KW = w.shape
    G = geo.groups
    H, W = size
    L = g.shape[2] * g.shape[3]
    gk = g.reshape(N, G, O // G, L)                       # (N, G, O/G, L)
    wk = w.reshape(G, O // G, Cg * KH * KW)
    dcols = np.swapaxes(wk, 1, 2) @ gk                    # (N, G, C/G·KH·KW, L)
    dx = col2im(dcols.reshape(N, G * Cg * KH * KW, L), (G * Cg, H, W), (KH, KW), geo.stride,
                geo.padding, geo.dilation)
    return dx.astype(g.dtype, copy=False)


def conv2d_backward(grad_out, x, w, stride=1, padding=0, dilation=1, groups=1,
                    input_grad=True):
    r"""(dx, dw, db) of :func:`conv2d`, with g = grad_out and cols = im2col(x):

    dw = Σ_n g[n] @ cols[n]ᵀ (per group),  db = Σ_{n, oh, ow} g,  dx = conv2d_input_grad(g, w)

    dx is None when ``input_grad`` is False (the first layer of a network needs no dx).
    """
    g, x, w, geo = checks.conv2d_backward_args(grad_out, x, w, stride, padding, dilation, groups)
    N, _C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    G = geo.groups
    cols = im2col(x, (KH, KW), geo.stride, geo.padding, geo.dilation)
    L = g.shape[2] * g.shape[3]
    cols = cols.reshape(N, G, Cg * KH * KW, L)
    gk = g.reshape(N, G, O // G, L)
    dw = (gk @ np.swapaxes(cols, 2, 3)).sum(axis=0).reshape(w.shape)
    db = g.sum(axis=(0, 2, 3))
    dx = conv2d_input_grad(g, w, (H, W), geo.stride, geo.padding, geo.dilation, G) \
        if input_grad else None
    t = x.dtype
    return dx, dw.astype(t, copy=False), db.astype(t, copy=False)


# ----------------------------------------------------------------------------- pooling


def _windows(x, kernel, stride, padding, fill):
    """x (N, C, H, W) → its pooling windows (N, C, KH·KW, Ho, Wo), padding filled with ``fill``."""
    N, C = x.shape[:2]
    kh, kw = kernel
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=fill)
    cols = im2col(xp.reshape(N * C, 1, *xp.shape[2:]), kernel, stride, (0, 0), (1, 1))
    Ho, Wo = checks.conv_out_size(x.shape[2:], kernel, stride, padding, (1, 1))
    return cols.reshape(N, C, kh * kw, Ho, Wo)


def max_pool2d(x, kernel, stride=None, padding=0):
    """Max pooling: y[n, c, oh, ow] = max over the window at (oh·sh - ph, ow·sw - pw), padding
    never chosen (-∞). Returns (y, argmax): argmax (N, C, Ho, Wo) int64 is the flat index
    h·W + w in the input plane of the (first) maximum, which the backward routes to."""
    x, geo = checks.pool2d_args("max_pool2d", x, kernel, stride, padding)
    _N, _C, _H, W = x.shape
    (_kh, kw), (sh, sw), (ph, pw) = geo.kernel, geo.stride, geo.padding
    win = _windows(x, geo.kernel, geo.stride, geo.padding, -np.inf)
    k = win.argmax(axis=2)                                 # (N, C, Ho, Wo): i·KW + j
    y = np.take_along_axis(win, k[:, :, None], axis=2)[:, :, 0]
    Ho, Wo = geo.out
    h = np.arange(Ho)[:, None] * sh - ph + k // kw
    w = np.arange(Wo)[None, :] * sw - pw + k % kw
    return y.astype(x.dtype, copy=False), (h * W + w).astype(np.int64)


def max_pool2d_backward(grad_out, argmax, size):
    """dx (N, C, H, W), size = (H, W): each grad_out entry added at its window's argmax."""
    g, argmax = checks.max_pool2d_backward_args(grad_out, argmax, size)
    N, C = g.shape[:2]
    dx = np.zeros((N * C, size[0] * size[1]), g.dtype)
    rows = np.repeat(np.arange(N * C), g.shape[2] * g.shape[3])
    np.add.at(dx, (rows, argmax.reshape(-1)), g.reshape(-1))
    return dx.reshape(N, C, *size)


def avg_pool2d(x, kernel, stride=None, padding=0):
    """Average pooling: y = Σ window / (KH·KW); zero padding counts in the average (PyTorch's
    count_include_pad=True)."""
    x, geo = checks.pool2d_args("avg_pool2d", x, kernel, stride, padding)
    win = _windows(x, geo.kernel, geo.stride, geo.padding, 0)
    return win.mean(axis=2).astype(x.dtype, copy=False)


def avg_pool2d_backward(grad_out, size, kernel, stride=None, padding=0):
    """dx (N, C, H, W) of :func:`avg_pool2d`, size = (H, W): every input of a window gets
    g / (KH·KW), overlapping windows adding up."""
    g, geo = checks.avg_pool2d_backward_args(grad_out, size, kernel, stride, padding)
    N, C = g.shape[:2]
    kh, kw = geo.kernel
    L = g.shape[2] * g.shape[3]
    cols = np.broadcast_to(g.reshape(N * C, 1, L) / (kh * kw), (N * C, kh * kw, L))
    dx = col2im(cols, (1, *size), geo.kernel, geo.stride, geo.padding, (1, 1))
    return dx.reshape(N, C, *size).astype(g.dtype, copy=False)


# ----------------------------------------------------------------------------- BatchNorm


def batchnorm(x, gamma, beta, eps=1e-5, act=None):
    """BatchNorm in training mode, x (N, C, ...): statistics per channel over N and every
    axis after C (M values each):

    μ_c = mean x,  σ²_c = mean (x - μ)² (biased),  rstd = 1/√(σ² + ε),  y = (x - μ)·rstd·γ + β

    act="relu": y = max(0, (x - μ)·rstd·γ + β), BatchNorm then ReLU in one op.
    Returns (y, mean, rstd), mean and rstd (C,).
    """
    x, gamma, beta = checks.batchnorm_args("batchnorm", x, gamma, beta)
    act = checks.batchnorm_act("batchnorm", act)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    rstd = 1 / np.sqrt(var + eps)
    y = (x - mean.reshape(shape)) * (rstd * gamma).reshape(shape) + beta.reshape(shape)
    if act == "relu":
        y = np.maximum(y, 0)                # NaN stays NaN
    t = x.dtype
    return y.astype(t, copy=False), mean.astype(t, copy=False), rstd.astype(t, copy=False)


def batchnorm_backward(grad_out, x, gamma, mean, rstd, act=None, y=None):
    """(dx, dgamma, dbeta) of :func:`batchnorm`, with x̂ = (x - μ)·rstd, dx̂ = g·γ (means over
    the M values of each channel):

    dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂)),  dγ = Σ g ⊙ x̂,  dβ = Σ g

    where g = grad_out, or with act="relu" g = grad_out ⊙ [y > 0], y the forward's output
    (ReLU's backward; y > 0 exactly where the pre-activation is, so it is not recomputed).
    """
    g, x, gamma, mean, rstd = checks.batchnorm_backward_args(grad_out, x, gamma, mean, rstd)
    y = checks.batchnorm_backward_output(act, y, x)
    if y is not None:
        g = g * (y > 0)                     # g·0, not 0: inf/NaN gradients stay visible
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
    dxhat = g * gamma.reshape(shape)
    dx = rstd.reshape(shape) * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                                - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    t = x.dtype
    return (dx.astype(t, copy=False), (g * xhat).sum(axis=axes).astype(t, copy=False),
            g.sum(axis=axes).astype(t, copy=False))


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5, act=None):
    """BatchNorm in inference mode: y = (x - μ_run) / √(σ²_run + ε) · γ + β, per channel;
    act="relu": y = max(0, ·)."""
    x, gamma, beta = checks.batchnorm_args("batchnorm_inference", x, gamma, beta)
    running_mean, running_var = checks.batchnorm_stats(x, running_mean, running_var)
    act = checks.batchnorm_act("batchnorm_inference", act)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = gamma / np.sqrt(running_var + eps)
    y = (x - running_mean.reshape(shape)) * scale.reshape(shape) + beta.reshape(shape)
    if act == "relu":
        y = np.maximum(y, 0)
    return y.astype(x.dtype, copy=False)
