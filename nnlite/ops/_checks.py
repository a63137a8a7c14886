"""Argument checks shared by the compiled kernels and their numpy twins.

Both backends raise the *same* errors, naming the op and the shapes, so that switching
``NNLITE_BACKEND`` never changes what a user sees on bad input.
"""
import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def as_float_array(op, name, x):
    """Return ``x`` as a float32/float64 ndarray, or raise a TypeError naming ``op``."""
    if not isinstance(x, np.ndarray):
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


def check_out(op, out, shape, dtype):
    if out is None:
        return
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != dtype:
        got = (out.shape, out.dtype) if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"{op}: out must be an ndarray of shape {tuple(shape)} and dtype {dtype}, "
                         f"got {got}")


def check_labels(op, labels, n_rows, n_classes):
    """Integer labels of shape (N,) in [0, C)."""
    labels = np.asarray(labels)
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
    """Validated (x, b) for y = act(x + b): x (..., F), b (F,), one dtype, a known act."""
    x = as_float_array(op, "x", x)
    b = as_float_array(op, "b", b)
    same_dtype(op, x=x, b=b)
    check_act(op, act)
    if b.ndim != 1 or x.ndim < 1 or x.shape[-1] != b.shape[0]:
        raise ValueError(f"{op}: b must have shape ({x.shape[-1] if x.ndim else '?'},) to match "
                         f"x {x.shape}, got {b.shape}")
    check_out(op, out, x.shape, x.dtype)
    return x, b


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
    return x, gamma, beta


def layernorm_backward_args(grad, x, gamma):
    """Validated (grad, x, gamma) for the LayerNorm backward."""
    op = "layernorm_backward"
    grad = as_float_array(op, "grad", grad)
    x = as_float_array(op, "x", x)
    gamma = as_float_array(op, "gamma", gamma)
    same_dtype(op, grad=grad, x=x, gamma=gamma)
    if grad.shape != x.shape or gamma.shape != (x.shape[-1],):
        raise ValueError(f"{op}: grad {grad.shape}, x {x.shape} and gamma {gamma.shape} "
                         f"do not match")
    return grad, x, gamma


def check_ids(op, ids, vocab):
    """Integer ids (any shape) with every value in [0, vocab)."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{op}: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"{op}: ids must lie in [0, {vocab}), got values in "
                         f"[{ids.min()}, {ids.max()}]")
    return ids


def embedding_backward_args(ids, grad, dtable):
    """Validated (ids, grad) for dtable[ids] += grad, with dtable a 2-D float array."""
    op = "embedding_backward"
    grad = as_float_array(op, "grad", grad)
    if not isinstance(dtable, np.ndarray) or dtable.ndim != 2:
        raise TypeError(f"{op}: dtable must be a 2-D ndarray")
    same_dtype(op, grad=grad, dtable=dtable)
    ids = check_ids(op, ids, dtable.shape[0])
    if grad.shape != ids.shape + (dtable.shape[1],):
        raise ValueError(f"{op}: grad must have shape {ids.shape + (dtable.shape[1],)} for ids "
                         f"{ids.shape} and dtable {dtable.shape}, got {grad.shape}")
    return ids, grad
