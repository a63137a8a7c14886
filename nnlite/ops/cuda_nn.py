"""The transformer's small ops and the optimizers on a CUDA device (csrc/cuda/nn_kernels.cuh).

``kernels(dev)`` returns {op name: function} for a :class:`nnlite.ops.cuda_device.Device`:
layernorm(_backward), embedding(_backward), sgd_update, rmsprop_update, adam_update(_many) and
sum_squares_many, each with its numpy twin's signature, results and errors
(:mod:`nnlite.ops.reference`). Arguments are checked by the twins' own checks; inputs made
contiguous, outputs allocated with ``dev.xp``; the launch is queued on ``dev.stream()``.
In-place ops (the optimizers, embedding_backward) write straight into C-contiguous targets, and
through a contiguous copy, written back, into any other.
"""
import numpy as np

from . import _checks as checks

__all__ = ["kernels"]


def kernels(dev):
    xp, ext, ptr, stream = dev.xp, dev.ext, dev.ptr, dev.stream
    chunk = int(ext.nn_chunk())
    # on the host (the shim) an array must also be aligned for the kernel to read it
    contiguous = checks.c_aligned if xp is np else xp.ascontiguousarray

    def fn(name, dtype):
        return getattr(ext, f"{name}_{'f32' if np.dtype(dtype) == np.float32 else 'f64'}")

    def target(a):
        """``a`` itself when the kernel may write it, else a contiguous copy to write back."""
        return a if a.flags.c_contiguous and _aligned(a) else contiguous(a)

    def write_back(pairs):
        for original, written in pairs:
            if written is not original:
                original[...] = written

    def layernorm(x, gamma, beta, eps=1e-5):
        """LayerNorm over the last axis: y = (x - μ) · rstd · γ + β, rstd = 1/√(σ² + ε).
        Returns (y, mean, rstd); mean and rstd have shape x.shape[:-1]."""
        x, gamma, beta = checks.layernorm_args(x, gamma, beta)
        x, gamma, beta = contiguous(x), contiguous(gamma), contiguous(beta)
        y = xp.empty(x.shape, x.dtype)
        mean = xp.empty(x.shape[:-1], x.dtype)
        rstd = xp.empty(x.shape[:-1], x.dtype)
        C = x.shape[-1]
        if x.size:
            fn("nn_layernorm", x.dtype)(ptr(x), ptr(gamma), ptr(beta), float(eps), x.size // C,
                                        C, ptr(y), ptr(mean), ptr(rstd), stream())
        return y, mean, rstd

    def layernorm_backward(grad_out, x, gamma, mean, rstd, residual=None):
        """(dx, dgamma, dbeta) of LayerNorm (see reference.layernorm_backward)."""
        g, x, gamma, mean, rstd = checks.layernorm_backward_args(grad_out, x, gamma, mean, rstd)
        if residual is not None and not isinstance(residual, xp.ndarray):
            residual = xp.asarray(residual)
        residual = checks.residual_arg("layernorm_backward", residual, x.shape, x.dtype)
        g, x, gamma, mean, rstd = map(contiguous, (g, x, gamma, mean, rstd))
        t = x.dtype
        C = x.shape[-1]
        dx = xp.empty(x.shape, t)
        dgamma = xp.empty(gamma.shape, t)
        dbeta = xp.empty(gamma.shape, t)
        # rows may be 0: the kernel then writes dγ = dβ = 0
        fn("nn_layernorm_backward", t)(ptr(g), ptr(x), ptr(gamma), ptr(mean), ptr(rstd),
                                       x.size // C, C, ptr(dx), ptr(dgamma), ptr(dbeta),
                                       stream())
        if residual is not None:
            dx += residual
        return dx, dgamma, dbeta

    def embedding(ids, table):
        """Gather rows: out[..., :] = table[ids[...], :] for integer ids of any shape."""
        table = checks.as_float_array("embedding", "table", table)
        checks.check_ndim("embedding", "table", table, 2)
        ids = checks.check_ids("embedding", ids, table.shape[0])
        out = xp.empty(ids.shape + (table.shape[1],), table.dtype)
        if out.size:
            ids64 = contiguous(xp.asarray(ids), np.int64).reshape(-1)
            table = contiguous(table)
            fn("nn_embedding", table.dtype)(ptr(ids64), ptr(table), ids64.size, table.shape[1],
                                            ptr(out), stream())
        return out

    def embedding_backward(ids, grad_out, dtable):
        """Scatter-add: dtable[ids[...], :] += grad_out[..., :] (repeated ids add up). In place."""
        ids, g = checks.embedding_backward_args(ids, grad_out, dtable)
        if ids.size == 0 or dtable.size == 0:
            return
        ids64 = contiguous(xp.asarray(ids), np.int64).reshape(-1)
        g = contiguous(g)
        out = target(dtable)
        fn("nn_embedding_backward", dtable.dtype)(ptr(ids64), ptr(g), ids64.size,
                                                  dtable.shape[1], ptr(out), stream())
        write_back([(dtable, out)])

    def sgd_update(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
                   weight_decay=0.0):
        """g ← g + λp;  v ← μv + g;  p ← p - lr·(nesterov ? g + μv : v)."""
        p0, g, v0 = checks.sgd_update_args(param, grad, velocity, momentum)
        if p0.size == 0:
            return
        p = target(p0)
        v = target(v0) if momentum else None
        g = contiguous(g)
        fn("nn_sgd_update", p.dtype)(ptr(p), ptr(g), ptr(v) if momentum else 0, p.size,
                                     float(lr), float(momentum), bool(nesterov),
                                     float(weight_decay), stream())
        write_back([(p0, p)] + ([(v0, v)] if momentum else []))

    def rmsprop_update(param, grad, sq, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        """g ← g + λp;  s ← αs + (1-α)g²;  p ← p - lr·g/(√s + ε)."""
        p0, g, s0 = checks.rmsprop_update_args(param, grad, sq)
        if p0.size == 0:
            return
        p, s, g = target(p0), target(s0), contiguous(g)
        fn("nn_rmsprop_update", p.dtype)(ptr(p), ptr(g), ptr(s), p.size, float(lr),
                                         float(alpha), float(eps), float(weight_decay),
                                         stream())
        write_back([(p0, p), (s0, s)])

    def _tables(arrays):
        """Device tables for a multi-tensor launch over non-empty arrays: their pointers (one
        uint64 table per list), sizes, and each tensor's first block; and the block count."""
        sizes = np.array([a.size for a in arrays[0]], np.int64)
        blocks = (sizes + chunk - 1) // chunk
        first = np.concatenate([[0], np.cumsum(blocks)]).astype(np.int64)
        ptrs = [xp.asarray(np.array([ptr(a) for a in lst], np.uint64)) for lst in arrays]
        return ptrs, xp.asarray(sizes), xp.asarray(first), int(first[-1])

    def adam_update_many(params, grads, ms, vs, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                         weight_decays=0.0, step=1, decoupled=True):
        """One Adam/AdamW step over many parameters at once, in one launch per dtype (see
        reference.adam_update_many). Every array is checked before any is updated."""
        params, grads, ms, vs = list(params), list(grads), list(ms), list(vs)
        wds = checks.adam_update_many_args(params, grads, ms, vs, weight_decays, step)
        checked = [checks.adam_update_args(p, g, m, v, step)
                   for p, g, m, v in zip(params, grads, ms, vs)]
        groups, copies = {}, []
        for (p, g, m, v), wd in zip(checked, wds):
            if p.size == 0:
                continue
            grp = groups.setdefault(p.dtype, ([], [], [], [], []))
            written = [target(a) for a in (p, m, v)]
            copies += zip((p, m, v), written)
            for lst, a in zip(grp, (written[0], contiguous(g), written[1], written[2], wd)):
                lst.append(a)
        for dtype, (ps, gs, mm, vv, ww) in groups.items():
            (tp, tg, tm, tv), sizes, first, nblocks = _tables([ps, gs, mm, vv])
            wd_table = xp.asarray(np.array(ww, np.float64))
            fn("nn_adam_many", dtype)(ptr(tp), ptr(tg), ptr(tm), ptr(tv), ptr(sizes),
                                      ptr(wd_table), ptr(first), len(ps), nblocks, float(lr),
                                      float(beta1), float(beta2), float(eps), int(step),
                                      bool(decoupled), stream())
        write_back(copies)

    def adam_update(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.0, step=1, decoupled=False):
        """Adam (decoupled=False, L2 added to g) or AdamW (decoupled=True): one parameter,
        through the kernel of adam_update_many."""
        checks.adam_update_args(param, grad, m, v, step)
        adam_update_many([param], [grad], [m], [v], lr, beta1, beta2, eps, weight_decay, step,
                         decoupled)

    def sum_squares_many(arrays):
        """Σ x² over every entry of every array, accumulated in double (a Python float)."""
        groups = {}
        for a in checks.sum_squares_many_args(arrays):
            if a.size:
                groups.setdefault(a.dtype, []).append(contiguous(a))
        total = 0.0
        for dtype, group in groups.items():
            (tx,), sizes, first, nblocks = _tables([group])
            partial = xp.empty(nblocks, np.float64)
            out = xp.empty(1, np.float64)
            fn("nn_sum_squares_many", dtype)(ptr(tx), ptr(sizes), ptr(first), len(group),
                                             nblocks, ptr(partial), ptr(out), stream())
            total += float(out[0])
        return total

    return {"layernorm": layernorm, "layernorm_backward": layernorm_backward,
            "embedding": embedding, "embedding_backward": embedding_backward,
            "sgd_update": sgd_update, "rmsprop_update": rmsprop_update,
            "adam_update": adam_update, "adam_update_many": adam_update_many,
            "sum_squares_many": sum_squares_many}


def _aligned(a):
    """numpy arrays know whether their data is aligned to the itemsize; device arrays (CuPy's
    allocations) always are."""
    return getattr(a.flags, "aligned", True)
