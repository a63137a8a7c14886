r"""Per-kernel and per-layer timers: ``with nl.ops.profile(model) as prof: ...; print(prof.table())``.

Zero cost when off: the ops are plain module attributes (``ops.gemm`` is the compiled
function itself, see nnlite/ops/__init__.py), and layers call them as ``ops.gemm(...)``. While
a :func:`profile` block runs, each name is rebound to a timing wrapper, and (when a model is
given) each layer's ``forward``/``backward`` is shadowed by an instance attribute that times
it; both are undone when the block ends, so no code path outside the block ever checks a flag.

What it counts, per op: calls, seconds, and the floating-point operations where they are
known from the shapes (a multiply-add counts 2):

==================  ===============================================================
op                  FLOPs
==================  ===============================================================
gemm, _nt, _tn      :math:`2MNK`
attention           :math:`4\,B\,n_h\,T\,S\,d` (half of it when causal: the masked
                    tiles are skipped)
attention_backward  :math:`8\,B\,n_h\,T\,S\,d` (Q Kᵀ recomputed, then dV, dP, dQ, dK),
                    halved when causal
others              not counted (memory-bound: their time is the figure to watch)
==================  ===============================================================

Per layer: calls and inclusive seconds of ``forward`` and ``backward``, keyed by the layer's
path (``h.0.attn``), nested layers indented under their parent. ``wall`` is the block's own
duration; ``wall − Σ kernels`` is everything that is not a compiled kernel: Python, numpy's own
array work (adds, copies, allocation) and the interpreter.

The wrappers add about a microsecond per call, so a profiled run is a little slower than an
unprofiled one; compare figures taken the same way.
"""
import contextlib
import time


def _gemm_nn(a, b, *args, **kwargs):     # a (M, K), b (K, N)
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1]


def _gemm_nt(a, b, *args, **kwargs):     # a (M, K), b (N, K)
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[0]


def _gemm_tn(a, b, *args, **kwargs):     # a (K, M), b (K, N)
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1]


def _attention_size(q, k, causal):
    """B·nh·T·S·d, halved when causal (only the lower triangle is computed)."""
    n = 1.0
    for s in q.shape:
        n *= s
    n *= k.shape[-2]
    return n / 2 if causal else n


def _attention(q, k, v, causal=True, *args, **kwargs):
    return 4.0 * _attention_size(q, k, causal)


def _attention_backward(q, k, v, out, grad_out, lse=None, causal=True, *args, **kwargs):
    return 8.0 * _attention_size(q, k, causal)


FLOPS = {"gemm": _gemm_nn, "gemm_nt": _gemm_nt, "gemm_tn": _gemm_tn,
         "attention": _attention, "attention_backward": _attention_backward}

# op -> the group the report sums it into
GROUPS = {"gemm": "GEMM", "gemm_nt": "GEMM", "gemm_tn": "GEMM",
          "attention": "attention", "attention_backward": "attention",
          "layernorm": "LayerNorm", "layernorm_backward": "LayerNorm",
          "bias_act": "bias / activation", "act_forward": "bias / activation",
          "act_backward": "bias / activation", "bias_grad": "bias / activation",
          "act_backward_bias_grad": "bias / activation", "dropout": "dropout",
          "adam_update_many": "optimizer", "adam_update": "optimizer",
          "sgd_update": "optimizer", "rmsprop_update": "optimizer",
          "sum_squares_many": "optimizer (grad norm)",
          "softmax": "softmax / loss", "softmax_backward": "softmax / loss",
          "softmax_cross_entropy": "softmax / loss",
          "embedding": "embedding", "embedding_backward": "embedding"}


class Profile:
    """What a :func:`profile` block measured.

    Attributes
    ----------
    ops : dict
        ``{op: [calls, seconds, flops]}`` (flops 0 where not counted).
    layers : dict
        ``{(path, depth): {"forward": [calls, seconds], "backward": [calls, seconds]}}`` in
        the order first seen.
    wall : float
        Seconds the block took.
    """

    def __init__(self):
        self.ops = {}
        self.layers = {}
        self.wall = 0.0

    @property
    def kernel_seconds(self):
        return sum(s for _, s, _ in self.ops.values())

    def groups(self):
        """``{group: [calls, seconds, flops]}``: the ops summed as :data:`GROUPS` says, plus
        ``"not a kernel"``: wall − Σ kernels."""
        out = {}
        for op, (n, s, f) in self.ops.items():
            g = out.setdefault(GROUPS.get(op, op), [0, 0.0, 0.0])
            g[0] += n
            g[1] += s
            g[2] += f
        out["not a kernel (Python, numpy)"] = [0, max(self.wall - self.kernel_seconds, 0.0), 0.0]
        return out

    def table(self, per=1, layers=True):
        """The report as text: ops, groups, then layers (times divided by ``per``, e.g. the
        number of steps profiled, to show per-step figures)."""
        per = max(int(per), 1)
        unit = "ms" if per == 1 else "ms/step"
        share = 100 * self.kernel_seconds / max(self.wall, 1e-12)
        lines = [(f"wall {1e3 * self.wall / per:.2f} {unit}, compiled kernels "
                 f"{1e3 * self.kernel_seconds / per:.2f} {unit} ({share:.0f} %)"), ""]
        head = f"{'':<30}{'calls':>8}{unit:>10}{'%wall':>7}{'GFLOP/s':>9}"

        def row(name, n, s, f):
            rate = f"{f / s / 1e9:9.1f}" if f and s > 0 else f"{'':>9}"
            return (f"{name:<30}{n // per if n else '':>8}{1e3 * s / per:>10.3f}"
                    f"{100 * s / max(self.wall, 1e-12):>7.1f}{rate}")

        lines.append(head.replace(" " * 30, f"{'op':<30}", 1))
        for op, (n, s, f) in sorted(self.ops.items(), key=lambda kv: -kv[1][1]):
            lines.append(row(op, n, s, f))
        lines += ["", head.replace(" " * 30, f"{'group':<30}", 1)]
        for g, (n, s, f) in sorted(self.groups().items(), key=lambda kv: -kv[1][1]):
            lines.append(row(g, n, s, f))
        if layers and self.layers:
            lines += ["", f"{'layer':<30}{'fwd ' + unit:>14}{'bwd ' + unit:>14}"]
            for (path, depth), t in self.layers.items():
                fwd = 1e3 * t["forward"][1] / per
                bwd = 1e3 * t["backward"][1] / per
                lines.append(f"{'  ' * depth + path:<30}{fwd:>14.3f}{bwd:>14.3f}")
        return "\n".join(lines)


def _timed_op(prof, op, fn):
    flops = FLOPS.get(op)
    clock = time.perf_counter
    entry = prof.ops.setdefault(op, [0, 0.0, 0.0])

    def run(*args, **kwargs):
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            entry[1] += clock() - t0
            entry[0] += 1
            if flops is not None:
                entry[2] += flops(*args, **kwargs)
    run.__name__ = getattr(fn, "__name__", op)
    run.__wrapped__ = fn
    return run


def _walk(layer, path, depth):
    """``(layer, path, depth)`` for ``layer`` and every layer below it, in forward order."""
    yield layer, path, depth
    named = layer.modules() if hasattr(layer, "modules") else \
        [(str(i), sub) for i, sub in enumerate(layer.sublayers())]
    for name, sub in named:
        sub_path = getattr(sub, "name", None) or (f"{path}.{name}" if path else name)
        yield from _walk(sub, sub_path, depth + 1)


def _time_method(entry, fn):
    clock = time.perf_counter

    def run(*args, **kwargs):
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            entry[1] += clock() - t0
            entry[0] += 1
    return run


@contextlib.contextmanager
def profile(namespace, table, model=None):
    """Rebind every op of ``table`` in ``namespace`` (the ops module's globals) to a timer, and
    time every layer of ``model``; restore both at exit. See the module docstring."""
    prof = Profile()
    saved = {op: namespace[op] for op in table}
    shadowed = []
    try:
        for op, fn in saved.items():
            namespace[op] = _timed_op(prof, op, fn)
        if model is not None:
            for layer, path, depth in _walk(model, getattr(model, "name", None) or "model", 0):
                if depth == 0:
                    continue                    # the model itself: that is the wall time
                entry = prof.layers.setdefault((path, depth - 1), {"forward": [0, 0.0],
                                                                   "backward": [0, 0.0]})
                for method in ("forward", "backward"):
                    if method in vars(layer):   # already shadowed (a layer seen twice)
                        continue
                    setattr(layer, method, _time_method(entry[method], getattr(layer, method)))
                    shadowed.append((layer, method))
        t0 = time.perf_counter()
        try:
            yield prof
        finally:
            prof.wall += time.perf_counter() - t0
    finally:
        namespace.update(saved)
        for layer, method in shadowed:
            delattr(layer, method)
