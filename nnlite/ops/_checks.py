"""Argument checks shared by the compiled kernels and their numpy twins.

Both backends raise the *same* errors, naming the op and the shapes, so that switching
``NNLITE_BACKEND`` never changes what a user sees on bad input.
"""
import numpy as np

from .._args import is_int

FLOAT_DTYPES = (np.float32, np.float64)


def on_device(x):
    """True for an array in GPU memory (CuPy's, or anything with ``__cuda_array_interface__``):
    the checks read its shape, dtype and flags, never its values through numpy (which would
    copy it to the host, or refuse to, as CuPy does)."""
    return hasattr(type(x), "__cuda_array_interface__")


def is_array(x):
    """A numpy ndarray or a device array (the kinds of array the kernels take)."""
    return isinstance(x, np.ndarray) or on_device(x)


def as_index_array(x):
    """Integer-like input (ids, labels, argmax) as an array, left where it lives."""
    return x if on_device(x) else np.asarray(x)


def c_aligned(a, dtype=None):
    """``a`` as a C-contiguous array (of ``dtype``) whose data is aligned to its itemsize, for a
    kernel to read: ``np.ascontiguousarray``, plus a copy of an array that is contiguous but
    misaligned (a view into a byte buffer at an odd offset), which ascontiguousarray returns
    as it is and which the SIMD code must not read (undefined behaviour). One flag read."""
    a = np.ascontiguousarray(a, dtype)
    return a if a.flags.aligned else a.copy()


def writable_target(a):
    """True when a kernel can write ``a`` in place: C-contiguous and aligned (else the caller
    works on a copy and writes it back)."""
    f = a.flags
    return f.c_contiguous and f.aligned


def as_float_array(op, name, x):
    """Return ``x`` as a float32/float64 ndarray, or raise a TypeError naming ``op``."""
    if not isinstance(x, np.ndarray) and not on_device(x):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{op}: {name} must be a numeric array, got {type(x).__name__}") from e
    if x.dtype not in FLOAT_DTYPES:
        if x.dtype.kind in "biu":
            x = x.astype(np.float64)
        else:
            raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype} "
                            f"with shape {x.shape}")
    return x


def same_dtype(op, **arrays):
    """All arrays must share one float dtype (no silent up/down-casting in kernels)."""
    dtypes = {k: v.dtype for k, v in arrays.items()}
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{k}: {v}" for k, v in dtypes.items())
        raise TypeError(f"{op}: all inputs must have the same dtype, got {desc}")
    return next(iter(dtypes.values()))


def check_ndim(op, name, x, ndim):
    if x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {x.shape}")


def gemm_shapes(op, a, b, trans_a, trans_b):
    """(M, N, K) of op(a) @ op(b), with a clear error when the inner sizes disagree."""
    check_ndim(op, "a", a, 2)
    check_ndim(op, "b", b, 2)
    m, ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if ka != kb:
        expr = {(False, False): "a @ b", (False, True): "a @ b.T", (True, False): "a.T @ b"}
        raise ValueError(f"{op}: inner dimensions differ in {expr[(trans_a, trans_b)]} "
                         f"for a {a.shape} and b {b.shape}")
    return m, n, ka


def gemm_args(op, a, b, trans_a, trans_b, out, accumulate):
    """Validated (a, b) for op(a) @ op(b): 2-D, one float dtype, matching ``out`` if given."""
    a = as_float_array(op, "a", a)
    b = as_float_array(op, "b", b)
    dtype = same_dtype(op, a=a, b=b)
    m, n, _ = gemm_shapes(op, a, b, trans_a, trans_b)
    check_out(op, out, (m, n), dtype)
    if accumulate and out is None:
        raise ValueError(f"{op}: accumulate=True needs an out array to add into")
    return a, b


def gemm_epilogue_args(op, bias, residual, shape, dtype):
    """Validated (bias, residual) added to a product of ``shape`` (M, N): bias (N,), residual
    (M, N), each of the product's dtype or None."""
    m, n = shape
    if bias is not None:
        bias = as_float_array(op, "bias", bias)
        if bias.shape != (n,):
            raise ValueError(f"{op}: bias must have shape ({n},) for a product of shape "
                             f"{(m, n)}, got {bias.shape}")
        if bias.dtype != dtype:
            raise TypeError(f"{op}: bias must have the inputs' dtype {dtype}, got {bias.dtype}")
    return bias, residual_arg(op, residual, shape, dtype, whose="the product's")


def check_out(op, out, shape, dtype):
    if out is None:
        return
    if not is_array(out) or out.shape != tuple(shape) or out.dtype != dtype:
        got = (out.shape, out.dtype) if is_array(out) else type(out).__name__
        raise ValueError(f"{op}: out must be an ndarray of shape {tuple(shape)} and dtype {dtype}, "
                         f"got {got}")


def check_labels(op, labels, n_rows, n_classes):
    """Integer labels of shape (N,) in [0, C)."""
    labels = as_index_array(labels)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and labels.size and np.all(np.isfinite(labels)) \
                and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise TypeError(f"{op}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (n_rows,):
        raise ValueError(f"{op}: labels must have shape ({n_rows},) to match logits with "
                         f"{n_rows} rows, got {labels.shape}")
    if labels.size:
        lo, hi = labels.min(), labels.max()
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{op}: labels must lie in [0, {n_classes}) for {n_classes} classes, "
                             f"got values in [{lo}, {hi}]")
    return labels.astype(np.int64, copy=False)


ACTIVATIONS = ("none", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")


def check_act(op, act):
    if act not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation {act!r}; expected one of {ACTIVATIONS}")


def bias_act_args(op, x, b, act, out):
    """Validated (x, b) for y = act(x + b): x (..., C), b (C,), one dtype, a known act."""
    x = as_float_array(op, "x", x)
    b = as_float_array(op, "b", b)
    same_dtype(op, x=x, b=b)
    check_act(op, act)
    if b.ndim != 1 or x.ndim < 1 or x.shape[-1] != b.shape[0]:
        raise ValueError(f"{op}: b must have shape ({x.shape[-1] if x.ndim else '?'},) to match "
                         f"x {x.shape}, got {b.shape}")
    check_out(op, out, x.shape, x.dtype)
    if out is not None:
        check_writable(op, out=out)
    return x, b


def act_backward_args(grad_out, x, y, act):
    """Validated (grad_out, x, y) for act_backward: a known act, one dtype, one shape."""
    op = "act_backward"
    check_act(op, act)
    grad_out = as_float_array(op, "grad_out", grad_out)
    x = as_float_array(op, "x", x)
    y = as_float_array(op, "y", y)
    same_dtype(op, grad_out=grad_out, x=x, y=y)
    if not (grad_out.shape == x.shape == y.shape):
        raise ValueError(f"{op}: grad_out {grad_out.shape}, x {x.shape} and y {y.shape} must "
                         f"have one shape")
    return grad_out, x, y


def act_backward_bias_grad_shapes(grad_out, x, y, db, accumulate, out, is_arr=is_array):
    """The shape and dtype checks of act_backward_bias_grad on float arrays of any module
    (``is_arr``: what counts as an array for ``db`` and ``out``, e.g. device arrays only)."""
    op = "act_backward_bias_grad"
    same_dtype(op, grad_out=grad_out, x=x, y=y)
    if not (grad_out.shape == x.shape == y.shape):
        raise ValueError(f"{op}: grad_out {grad_out.shape}, x {x.shape} and y {y.shape} must "
                         f"have one shape")
    if grad_out.ndim < 1:
        raise ValueError(f"{op}: grad_out must have at least 1 dimension (..., C), got shape "
                         f"{grad_out.shape}")
    C, dt = grad_out.shape[-1], grad_out.dtype
    if db is not None and (not is_arr(db) or db.shape != (C,) or db.dtype != dt):
        got = (db.shape, db.dtype) if is_arr(db) else type(db).__name__
        raise ValueError(f"{op}: db must be an ndarray of shape ({C},) and dtype {dt} to match "
                         f"grad_out {grad_out.shape}, got {got}")
    if accumulate and db is None:
        raise ValueError(f"{op}: accumulate=True needs a db array to add into")
    if out is not None and (not is_arr(out) or out.shape != grad_out.shape or out.dtype != dt):
        got = (out.shape, out.dtype) if is_arr(out) else type(out).__name__
        raise ValueError(f"{op}: out must be an ndarray of shape {grad_out.shape} and dtype "
                         f"{dt} to match grad_out, got {got}")


def act_backward_bias_grad_args(grad_out, x, y, act, db, accumulate, out):
    """Validated (grad_out, x, y) for act_backward_bias_grad: a known act; grad_out, x, y of
    one dtype and one shape (..., C), at least 1-D; db (C,) of that dtype (needed when
    accumulating) and out of grad_out's shape and dtype, both writable."""
    op = "act_backward_bias_grad"
    check_act(op, act)
    grad_out = as_float_array(op, "grad_out", grad_out)
    x = as_float_array(op, "x", x)
    y = as_float_array(op, "y", y)
    act_backward_bias_grad_shapes(grad_out, x, y, db, accumulate, out)
    if db is not None:
        check_writable(op, db=db)
    if out is not None:
        check_writable(op, out=out)
    return grad_out, x, y


def bias_grad_args(grad_out, out, accumulate):
    """Validated grad_out (..., C) for the bias gradient Σ_n grad_out[n, :] into ``out`` (C,)."""
    op = "bias_grad"
    grad_out = as_float_array(op, "grad_out", grad_out)
    if grad_out.ndim < 1:
        raise ValueError(f"{op}: grad_out must have at least 1 dimension (..., C), got shape "
                         f"{grad_out.shape}")
    check_out(op, out, grad_out.shape[-1:], grad_out.dtype)
    if accumulate and out is None:
        raise ValueError(f"{op}: accumulate=True needs an out array to add into")
    if out is not None:
        check_writable(op, out=out)
    return grad_out


def dropout_threshold(rate):
    """Dropout's t = round(rate · 2³²), at most 2³² - 1: an element is kept iff its 32 random
    bits are >= t (shared by the twin and the kernels' wrappers)."""
    return min(int(round(rate * 2.0 ** 32)), 2 ** 32 - 1)


def dropout_args(x, rate, seed):
    """x as a float array; rate in [0, 1); seed an integer in [0, 2**64). Returns (x, rate,
    seed) as (array, float, int)."""
    op = "dropout"
    x = as_float_array(op, "x", x)
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: rate must be a number in [0, 1), got {type(rate).__name__}") \
            from None
    if not 0.0 <= r < 1.0:
        raise ValueError(f"{op}: rate must be in [0, 1), got {rate} (x of shape {x.shape})")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{op}: seed must be an integer in [0, 2**64), got "
                        f"{type(seed).__name__}")
    if not 0 <= int(seed) < 2 ** 64:
        raise ValueError(f"{op}: seed must be in [0, 2**64), got {seed}")
    return x, r, int(seed)


def softmax_args(x):
    """Validated x for a softmax over its last axis (at least 1-D)."""
    x = as_float_array("softmax", "x", x)
    if x.ndim < 1:
        raise ValueError(f"softmax: x must have at least 1 dimension, got shape {x.shape}")
    return x


def softmax_backward_args(grad_out, y):
    """Validated (grad_out, y) for the softmax backward: one dtype, one shape, at least 1-D."""
    op = "softmax_backward"
    grad_out = as_float_array(op, "grad_out", grad_out)
    y = as_float_array(op, "y", y)
    same_dtype(op, grad_out=grad_out, y=y)
    if grad_out.shape != y.shape:
        raise ValueError(f"{op}: grad_out {grad_out.shape} and y {y.shape} must have one shape")
    if y.ndim < 1:
        raise ValueError(f"{op}: y must have at least 1 dimension, got shape {y.shape}")
    return grad_out, y


def softmax_cross_entropy_args(logits, labels):
    """Validated (logits, labels): logits (N, C) with N >= 1, int64 labels (N,) in [0, C)."""
    op = "softmax_cross_entropy"
    z = as_float_array(op, "logits", logits)
    check_ndim(op, "logits", z, 2)
    n, c = z.shape
    t = check_labels(op, labels, n, c)
    if n == 0:
        raise ValueError(f"{op}: logits has no rows, shape {z.shape}")
    return z, t


def opt_arrays(op, **arrays):
    """Optimizer arrays, updated in place: float32/float64 ndarrays of one shape and dtype.

    Returns them in order as plain ndarrays: a subclass (np.matrix, whose ``*`` and
    ``reshape`` mean something else) becomes a view of the same memory, so updating the view
    updates it."""
    out = []
    for k, v in arrays.items():
        if type(v) is not np.ndarray and not on_device(v):
            if not isinstance(v, np.ndarray):
                raise TypeError(f"{op}: {k} must be a float32/float64 ndarray, got "
                                f"{getattr(v, 'dtype', type(v).__name__)}")
            v = v.view(np.ndarray)
        if v.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: {k} must be a float32/float64 ndarray, got {v.dtype}")
        out.append(v)
    shapes = {k: v.shape for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{op}: arrays must have one shape, got {shapes}")
    same_dtype(op, **arrays)
    return out


def check_step(op, step):
    """An optimizer step number: an int (not a float, not a bool) in [1, 2**63), the range the
    compiled kernels take; the numpy twins check the same so both refuse the same steps."""
    if type(step) is int and 1 <= step < 2 ** 63:       # the usual case, without the ABC check
        return step
    if not is_int(step):
        raise TypeError(f"{op}: step must be an int, got {step!r}")
    if step < 1:
        raise ValueError(f"{op}: step counts from 1, got {step}")
    if step >= 2 ** 63:
        raise ValueError(f"{op}: step must be < 2**63, got {step}")
    return int(step)


def check_writable(op, **arrays):
    """Arrays an op writes in place must be writable (a read-only one would be a silent no-op
    for a kernel writing through a copy, and a numpy error in the twin)."""
    for k, v in arrays.items():
        if not getattr(v.flags, "writeable", True):     # (device arrays: always)
            raise ValueError(f"{op}: {k} is read-only; it is updated in place")


def sgd_update_args(param, grad, velocity, momentum):
    """Checks for sgd_update: a velocity array exactly when momentum is used. Returns
    (param, grad, velocity) as plain ndarrays (velocity None without momentum)."""
    arrays = dict(param=param, grad=grad)
    if momentum:
        if velocity is None:
            raise ValueError("sgd_update: momentum needs a velocity array")
        arrays["velocity"] = velocity
    out = opt_arrays("sgd_update", **arrays)
    check_writable("sgd_update", param=param, **({"velocity": velocity} if momentum else {}))
    return out[0], out[1], (out[2] if momentum else None)


def adam_update_args(param, grad, m, v, step):
    """Checks for one adam_update: the four arrays, and a step counting from 1 (an int below
    2**63). Returns (param, grad, m, v) as plain ndarrays."""
    out = opt_arrays("adam_update", param=param, grad=grad, m=m, v=v)
    check_writable("adam_update", param=param, m=m, v=v)
    check_step("adam_update", step)
    return out


def rmsprop_update_args(param, grad, sq):
    """Checks for rmsprop_update: the three arrays; param and sq updated in place. Returns
    (param, grad, sq) as plain ndarrays."""
    out = opt_arrays("rmsprop_update", param=param, grad=grad, sq=sq)
    check_writable("rmsprop_update", param=param, sq=sq)
    return out


def adam_update_many_args(params, grads, ms, vs, weight_decays, step):
    """Checked list lengths and step for adam_update_many; returns the weight decays, one per
    param."""
    n = len(params)
    if not (len(grads) == len(ms) == len(vs) == n):
        raise ValueError(f"adam_update_many: got {n} params, {len(grads)} grads, {len(ms)} m "
                         f"and {len(vs)} v arrays")
    wds = [float(weight_decays)] * n if np.isscalar(weight_decays) else list(weight_decays)
    if len(wds) != n:
        raise ValueError(f"adam_update_many: {len(wds)} weight decays for {n} params")
    check_step("adam_update_many", step)
    return wds


def sum_squares_many_args(arrays):
    """The arrays of sum_squares_many as float arrays (any shape, float32 and float64 may mix)."""
    return [as_float_array("sum_squares_many", f"arrays[{i}]", a) for i, a in enumerate(arrays)]


def qkv_args(op, q, k, v):
    """Validated (q, k, v) for attention: one float dtype, one 4-D shape (B, H, T, D), T, D >= 1."""
    q = as_float_array(op, "q", q)
    k = as_float_array(op, "k", k)
    v = as_float_array(op, "v", v)
    same_dtype(op, q=q, k=k, v=v)
    for name, a in (("q", q), ("k", k), ("v", v)):
        check_ndim(op, name, a, 4)
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"{op}: q, k and v must have one shape (B, H, T, D), got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}")
    if q.shape[2] == 0 or q.shape[3] == 0:
        raise ValueError(f"{op}: T and D must be >= 1, got shape {q.shape}")
    return q, k, v


def attention_backward_args(q, k, v, out, grad_out):
    """Validated (q, k, v, out, grad_out) for attention_backward: out and grad_out like q."""
    op = "attention_backward"
    q, k, v = qkv_args(op, q, k, v)
    out = as_float_array(op, "out", out)
    grad_out = as_float_array(op, "grad_out", grad_out)
    same_dtype(op, q=q, out=out, grad_out=grad_out)
    if out.shape != q.shape or grad_out.shape != q.shape:
        raise ValueError(f"{op}: out {out.shape} and grad_out {grad_out.shape} must have the "
                         f"shape of q {q.shape}")
    return q, k, v, out, grad_out


def attention_targets(op, q, **targets):
    """Check the destinations of an attention op (``out=`` of attention, ``dq=``, ``dk=``,
    ``dv=`` of attention_backward), each None or an array of q's shape (B, H, T, D) and dtype
    with unit stride along D and any strides along B, H and T (a transposed view of a bigger
    buffer: the layer's (B, T, H, D) output or (B, T, 3, H, D) gradient), writable."""
    for name, a in targets.items():
        if a is None:
            continue
        if not is_array(a) or a.shape != q.shape or a.dtype != q.dtype:
            got = (f"shape {a.shape} and dtype {a.dtype}" if is_array(a)
                   else type(a).__name__)
            raise ValueError(f"{op}: {name} must be an array of shape {q.shape} (B, H, T, D) "
                             f"and dtype {q.dtype} like q, got {got}")
        if a.shape[3] > 1 and a.strides[3] != a.itemsize:
            raise ValueError(f"{op}: {name} must have unit stride along D (the last axis; any "
                             f"strides along B, H, T), got strides {a.strides} bytes for shape "
                             f"{a.shape} and itemsize {a.itemsize}")
        check_writable(op, **{name: a})


def layernorm_args(x, gamma, beta):
    """Validated (x, gamma, beta) for LayerNorm over the last axis of x."""
    op = "layernorm"
    x = as_float_array(op, "x", x)
    gamma = as_float_array(op, "gamma", gamma)
    beta = as_float_array(op, "beta", beta)
    same_dtype(op, x=x, gamma=gamma, beta=beta)
    if x.ndim < 1 or gamma.shape != (x.shape[-1],) or beta.shape != (x.shape[-1],):
        raise ValueError(f"{op}: gamma {gamma.shape} and beta {beta.shape} must have shape "
                         f"({x.shape[-1] if x.ndim else '?'},) to match x {x.shape}")
    if x.shape[-1] == 0:
        raise ValueError(f"{op}: x {x.shape} has an empty last axis: nothing to normalise")
    return x, gamma, beta


def layernorm_backward_args(grad_out, x, gamma, mean, rstd):
    """Validated (grad_out, x, gamma, mean, rstd) for the LayerNorm backward; the forward's
    statistics mean and rstd (shape x.shape[:-1]) come back in x's dtype."""
    op = "layernorm_backward"
    grad_out = as_float_array(op, "grad_out", grad_out)
    x = as_float_array(op, "x", x)
    gamma = as_float_array(op, "gamma", gamma)
    same_dtype(op, grad_out=grad_out, x=x, gamma=gamma)
    if x.ndim < 1 or grad_out.shape != x.shape or gamma.shape != (x.shape[-1],):
        raise ValueError(f"{op}: grad_out {grad_out.shape}, x {x.shape} and gamma "
                         f"{gamma.shape} do not match")
    if x.shape[-1] == 0:
        raise ValueError(f"{op}: x {x.shape} has an empty last axis: nothing to normalise")
    mean = as_float_array(op, "mean", mean)
    rstd = as_float_array(op, "rstd", rstd)
    if mean.shape != x.shape[:-1] or rstd.shape != x.shape[:-1]:
        raise ValueError(f"{op}: mean {mean.shape} and rstd {rstd.shape} must have shape "
                         f"{x.shape[:-1]} (x.shape[:-1], as layernorm returns them) for x "
                         f"{x.shape}")
    t = x.dtype
    return grad_out, x, gamma, mean.astype(t, copy=False), rstd.astype(t, copy=False)


def residual_arg(op, residual, shape, dtype, whose="the input gradient's"):
    """``residual`` (None, or an array of ``shape`` and ``dtype``): a skip connection's term,
    added to an op's result (``whose`` shape it must have: a product's, an input gradient's)."""
    if residual is None:
        return None
    residual = as_float_array(op, "residual", residual)
    if residual.shape != tuple(shape):
        raise ValueError(f"{op}: residual must have {whose} shape {tuple(shape)}, got "
                         f"{residual.shape}")
    if residual.dtype != dtype:
        raise TypeError(f"{op}: residual must have the inputs' dtype {dtype}, got "
                        f"{residual.dtype}")
    return residual


def check_ids(op, ids, vocab):
    """Integer ids (any shape) with every value in [0, vocab)."""
    ids = as_index_array(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{op}: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"{op}: ids must lie in [0, {vocab}), got values in "
                         f"[{ids.min()}, {ids.max()}]")
    return ids


def embedding_backward_args(ids, grad_out, dtable):
    """Validated (ids, grad_out) for dtable[ids] += grad_out, with dtable a 2-D float array."""
    op = "embedding_backward"
    grad_out = as_float_array(op, "grad_out", grad_out)
    if not is_array(dtable) or dtable.ndim != 2:
        raise TypeError(f"{op}: dtable must be a 2-D ndarray")
    same_dtype(op, grad_out=grad_out, dtable=dtable)
    check_writable(op, dtable=dtable)
    ids = check_ids(op, ids, dtable.shape[0])
    if grad_out.shape != ids.shape + (dtable.shape[1],):
        raise ValueError(f"{op}: grad_out must have shape {ids.shape + (dtable.shape[1],)} for "
                         f"ids {ids.shape} and dtable {dtable.shape}, got {grad_out.shape}")
    return ids, grad_out


def inplace_arrays(op, copies, flat, **arrays):
    """The arrays a kernel writes in place (1-D views when ``flat``), with a clear error when
    that is impossible. An array not aligned to its itemsize (the kernel must not touch it) is
    updated through an aligned copy, recorded in ``copies`` as (array, copy) to be written
    back by the caller."""
    out = []
    for name, a in arrays.items():
        f = a.flags
        if not f.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous to be updated in place, got "
                             f"shape {a.shape} with strides {a.strides}; use "
                             f"np.ascontiguousarray once when creating it")
        if not getattr(f, "aligned", True):            # (device arrays: always aligned)
            copies.append((a, a.copy()))
            a = copies[-1][1]
        out.append(a.reshape(-1) if flat else a)
    return out


# -- convolution, pooling, BatchNorm (NCHW) --------------------------------------------------
class Geometry:
    """A convolution's or pooling's checked settings: (rows, cols) pairs of ints, and the
    output size ``out`` = (Ho, Wo)."""

    def __init__(self, kernel, stride, padding, dilation, groups, out):
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.groups, self.out = groups, out


def pair(op, name, v, least):
    """An int or a pair of ints, each >= least, as a pair (ValueError naming op and name)."""
    t = (v, v) if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if t is None or len(t) != 2 or not all(is_int(a) and a >= least for a in t):
        raise ValueError(f"{op}: {name} must be an int >= {least} or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def conv_out_size(size, kernel, stride, padding, dilation):
    """(Ho, Wo): ⌊(H + 2p - d·(K - 1) - 1) / s⌋ + 1 per axis (may be <= 0: too small)."""
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))


def _geometry(op, x_shape, kernel, stride, padding, dilation, groups):
    kernel = pair(op, "kernel size", kernel, 1)
    stride = pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    dilation = pair(op, "dilation", dilation, 1)
    H, W = x_shape[2:]
    out = conv_out_size((H, W), kernel, stride, padding, dilation)
    if min(out) < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        raise ValueError(f"{op}: input {tuple(x_shape)} is smaller than the kernel: "
                         f"{H}x{W} padded by {padding[0]}x{padding[1]} on each side cannot hold "
                         f"a {span[0]}x{span[1]} window (kernel {kernel[0]}x{kernel[1]}, "
                         f"dilation {dilation[0]}x{dilation[1]})")
    return Geometry(kernel, stride, padding, dilation, groups, out)


def _groups(op, groups, C, O, w_shape):
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be an int >= 1, got {groups!r}")
    if O % groups:
        raise ValueError(f"{op}: weight {w_shape} has {O} output channels, not a multiple of "
                         f"groups={groups}")
    if C != w_shape[1] * groups:
        raise ValueError(f"{op}: weight {w_shape} with groups={groups} takes "
                         f"{w_shape[1] * groups} input channels, x has {C}")
    return int(groups)


def conv2d_args(op, x, w, b, stride, padding, dilation, groups):
    """Validated (x, w, b, Geometry) for conv2d: x (N, C, H, W), w (O, C/G, KH, KW), b (O,)."""
    x = as_float_array(op, "x", x)
    w = as_float_array(op, "w", w)
    check_ndim(op, "x", x, 4)
    check_ndim(op, "w", w, 4)
    if b is not None:
        b = as_float_array(op, "b", b)
        same_dtype(op, x=x, w=w, b=b)
        if b.shape != (w.shape[0],):
            raise ValueError(f"{op}: b {b.shape} must have shape ({w.shape[0]},) to match "
                             f"w {w.shape}")
    else:
        same_dtype(op, x=x, w=w)
    G = _groups(op, groups, x.shape[1], w.shape[0], w.shape)
    return x, w, b, _geometry(op, x.shape, w.shape[2:], stride, padding, dilation, G)


def conv2d_input_grad_args(grad_out, w, size, stride, padding, dilation, groups):
    """Validated (grad_out, w, Geometry) for conv2d_input_grad into an input of size (H, W)."""
    op = "conv2d_input_grad"
    g = as_float_array(op, "grad_out", grad_out)
    w = as_float_array(op, "w", w)
    check_ndim(op, "grad_out", g, 4)
    check_ndim(op, "w", w, 4)
    same_dtype(op, grad_out=g, w=w)
    size = pair(op, "size", size, 1)
    if g.shape[1] != w.shape[0]:
        raise ValueError(f"{op}: grad_out {g.shape} has {g.shape[1]} channels, w {w.shape} "
                         f"has {w.shape[0]} output channels")
    C = w.shape[1] * (groups if is_int(groups) and groups >= 1 else 1)
    G = _groups(op, groups, C, w.shape[0], w.shape)
    geo = _geometry(op, (g.shape[0], C, *size), w.shape[2:], stride, padding, dilation, G)
    if tuple(g.shape[2:]) != geo.out:
        raise ValueError(f"{op}: grad_out {g.shape} must be {geo.out[0]}x{geo.out[1]} for an "
                         f"input of size {size[0]}x{size[1]}")
    return g, w, geo


def conv2d_backward_args(grad_out, x, w, stride, padding, dilation, groups):
    """Validated (grad_out, x, w, Geometry) for conv2d_backward."""
    op = "conv2d_backward"
    g = as_float_array(op, "grad_out", grad_out)
    x, w, _, geo = conv2d_args(op, x, w, None, stride, padding, dilation, groups)
    same_dtype(op, grad_out=g, x=x)
    want = (x.shape[0], w.shape[0], *geo.out)
    if g.shape != want:
        raise ValueError(f"{op}: grad_out {g.shape} must have shape {want}, the output of "
                         f"x {x.shape} and w {w.shape}")
    return g, x, w, geo


def pool2d_args(op, x, kernel, stride, padding):
    """Validated (x, Geometry) for a pooling of x (N, C, H, W); stride None: the kernel size."""
    x = as_float_array(op, "x", x)
    check_ndim(op, "x", x, 4)
    kernel = pair(op, "kernel size", kernel, 1)
    stride = kernel if stride is None else stride
    geo = _geometry(op, x.shape, kernel, stride, padding, 1, 1)
    if 2 * geo.padding[0] > kernel[0] or 2 * geo.padding[1] > kernel[1]:
        raise ValueError(f"{op}: padding {geo.padding} must be at most half the kernel "
                         f"{kernel}")
    return x, geo


def argmax_range_error(size):
    """The error for max_pool2d_backward's argmax holding an index outside the plane."""
    return ValueError(f"max_pool2d_backward: argmax holds indices outside a {size[0]}x{size[1]} "
                      f"plane")


def max_pool2d_backward_args(grad_out, argmax, size, check_range=True):
    """Validated (grad_out, argmax). ``check_range=False``: the caller checks the indices
    itself (the compiled kernel does, in the same pass as its own work: two numpy passes
    over argmax cost 1 ms of the MNIST CNN's step) and raises ``argmax_range_error(size)``."""
    op = "max_pool2d_backward"
    g = as_float_array(op, "grad_out", grad_out)
    check_ndim(op, "grad_out", g, 4)
    size = pair(op, "size", size, 1)
    argmax = as_index_array(argmax)
    if argmax.shape != g.shape or argmax.dtype != np.int64:
        raise ValueError(f"{op}: argmax ({argmax.dtype}, {argmax.shape}) must be int64 with "
                         f"grad_out's shape {g.shape}")
    if check_range and argmax.size and (argmax.min() < 0 or argmax.max() >= size[0] * size[1]):
        raise argmax_range_error(size)
    return g, argmax


def avg_pool2d_backward_args(grad_out, size, kernel, stride, padding):
    op = "avg_pool2d_backward"
    g = as_float_array(op, "grad_out", grad_out)
    check_ndim(op, "grad_out", g, 4)
    size = pair(op, "size", size, 1)
    _, geo = pool2d_args(op, np.empty((0, 0, *size)), kernel, stride, padding)
    if tuple(g.shape[2:]) != geo.out:
        raise ValueError(f"{op}: grad_out {g.shape} must be {geo.out[0]}x{geo.out[1]} for an "
                         f"input of size {size[0]}x{size[1]}")
    return g, geo


def batchnorm_args(op, x, gamma, beta):
    """Validated (x, gamma, beta): x (N, C, ...) with N·(...) >= 1 values per channel."""
    x = as_float_array(op, "x", x)
    gamma = as_float_array(op, "gamma", gamma)
    beta = as_float_array(op, "beta", beta)
    same_dtype(op, x=x, gamma=gamma, beta=beta)
    if x.ndim < 2 or gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        raise ValueError(f"{op}: x {x.shape} must be (N, C, ...) with gamma {gamma.shape} and "
                         f"beta {beta.shape} of shape (C,)")
    if x.size == 0:
        raise ValueError(f"{op}: x {x.shape} is empty: no values to normalise")
    return x, gamma, beta


def batchnorm_stats(x, mean, var):
    """Running (mean, var) of shape (C,) in x's dtype."""
    op = "batchnorm_inference"
    mean = as_float_array(op, "running_mean", mean)
    var = as_float_array(op, "running_var", var)
    same_dtype(op, x=x, running_mean=mean, running_var=var)
    if mean.shape != (x.shape[1],) or var.shape != (x.shape[1],):
        raise ValueError(f"{op}: running_mean {mean.shape} and running_var {var.shape} must "
                         f"have shape ({x.shape[1]},) to match x {x.shape}")
    return mean, var


BATCHNORM_ACTS = (None, "relu")


def batchnorm_act(op, act):
    """``act`` of the batchnorm ops: None, or "relu" (y = max(0, x̂·γ + β), a fused ReLU)."""
    if act not in BATCHNORM_ACTS:
        raise ValueError(f"{op}: act must be None or 'relu', got {act!r}")
    return act


def batchnorm_backward_output(act, y, x):
    """The forward's output y for batchnorm_backward's mask with act="relu" (validated against
    x); None without act."""
    op = "batchnorm_backward"
    if batchnorm_act(op, act) is None:
        if y is not None:
            raise ValueError(f"{op}: y (the forward's output) is only used with act='relu'; got "
                             f"y {np.shape(y)} with act=None")
        return None
    if y is None:
        raise ValueError(f"{op}: act='relu' needs y, the forward's output (its y > 0 masks "
                         f"grad_out)")
    y = as_float_array(op, "y", y)
    same_dtype(op, x=x, y=y)
    if y.shape != x.shape:
        raise ValueError(f"{op}: y {y.shape} (the forward's output) must have x's shape "
                         f"{x.shape}")
    return y


def batchnorm_backward_args(grad_out, x, gamma, mean, rstd):
    op = "batchnorm_backward"
    g = as_float_array(op, "grad_out", grad_out)
    x, gamma, _ = batchnorm_args(op, x, gamma, gamma)
    mean = as_float_array(op, "mean", mean)
    rstd = as_float_array(op, "rstd", rstd)
    same_dtype(op, grad_out=g, x=x, mean=mean, rstd=rstd)
    if g.shape != x.shape or mean.shape != gamma.shape or rstd.shape != gamma.shape:
        raise ValueError(f"{op}: grad_out {g.shape}, x {x.shape}, mean {mean.shape} and rstd "
                         f"{rstd.shape} do not match")
    return g, x, gamma, mean, rstd
