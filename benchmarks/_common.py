"""Helpers shared by the benchmark scripts in this folder.

A script imports this module with a plain ``import _common``: Python puts a script's own
folder first on ``sys.path``, so that works from the repository root and from ``benchmarks/``.

This module imports nothing but the standard library, on purpose: the thread helpers below
must run before numpy (or torch) is imported, because OpenBLAS, OpenMP and MKL read their
thread counts from the environment once, when they load.
"""
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads(n):
    """Set the BLAS / OpenMP thread variables to ``n`` in this process.

    Call it before numpy is imported; later, the pools are already sized and this does nothing.
    """
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if "numpy" in sys.modules:  # only possible if a script is imported, not run
        print("warning: numpy was imported before the thread count was set", file=sys.stderr)


def reexec_with_threads(n):
    """Run this script again, from the start, with the thread variables set to ``n``.

    Stronger than ``set_threads``: the new interpreter has them from its first instruction.
    Returns only in the re-executed child (marked by ``_NNLITE_BENCH_CHILD=1``), so that the
    script runs once.
    """
    if os.environ.get("_NNLITE_BENCH_CHILD") != "1":
        env = dict(os.environ, _NNLITE_BENCH_CHILD="1", **{k: str(n) for k in THREAD_VARS})
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def repo_nnlite(only_if_missing=False, allow_twins=False):
    """Make ``import nnlite`` find this checkout's nnlite, so the scripts run without installing,
    and refuse to go on when the nnlite found has no compiled kernels (``require_compiled``).

    The checkout goes first on ``sys.path`` (it then wins over an installed nnlite): build it in
    place (``pip install -e .``) to benchmark it. With ``only_if_missing``, an importable nnlite
    is left in charge and the checkout is added only when there is none.
    """
    if only_if_missing:
        try:
            import nnlite  # noqa: F401
        except ImportError:
            sys.path.insert(0, REPO)
    else:
        sys.path.insert(0, REPO)
    require_compiled(allow_twins)


def add_twins_arg(p):
    """``--allow-twins``: benchmark an nnlite without compiled kernels (its numpy twins)."""
    p.add_argument("--allow-twins", action="store_true",
                   help="run even if nnlite's kernels are not compiled (times the numpy twins; "
                        "also NNLITE_ALLOW_TWINS=1)")


def require_compiled(allow_twins=False):
    """Exit with status 2 unless every nnlite op runs its compiled kernel: a benchmark of the
    numpy twins, taken for nnlite's speed, is worse than none. ``allow_twins`` (the scripts'
    ``--allow-twins``), NNLITE_ALLOW_TWINS=1 or NNLITE_BACKEND=numpy let it run, with a note."""
    from nnlite import ops
    from nnlite import _origin
    missing = [op for op, s in ops.compiled_kernels().items() if s != "compiled"]
    if not missing:
        return
    allowed = allow_twins or _origin.env_flag("NNLITE_ALLOW_TWINS") or ops.BACKEND == "numpy"
    head = (f"{os.path.basename(sys.argv[0])}: {len(missing)} of {len(ops.OPS)} nnlite ops have "
            f"no compiled kernel here ({ops.compiled_kernels()[missing[0]]})")
    if allowed:
        print(f"note: {head}; their numpy twins are timed as 'nnlite'", file=sys.stderr)
        return
    sys.exit("\n  ".join([f"{head}: refusing to benchmark the numpy twins as nnlite."]
                         + _origin.advice()
                         + ["--allow-twins (or NNLITE_ALLOW_TWINS=1) runs anyway"]))


def import_torch(threads, optional=True):
    """``torch`` with ``threads`` intra-op threads, or None where it is not installed.

    Parameters
    ----------
    threads : int
        Passed to ``torch.set_num_threads``, so torch uses as many cores as the others.
    optional : bool
        False: let the ImportError through (the caller reports it, or needs torch).
    """
    try:
        import torch
        import torch.nn.functional  # noqa: F401  (the scripts use it as ``torch.nn.functional``)
        torch.set_num_threads(threads)
    except ImportError:
        if not optional:
            raise
        return None
    return torch


def add_run_args(p, repeat):
    """Add ``--threads``, ``--repeat`` and ``--simd`` to the argparse parser ``p``."""
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=repeat, help="rounds; the best one counts")
    p.add_argument("--simd", default=None, help="force nnlite's SIMD path (scalar|avx2|avx512)")
    add_twins_arg(p)


def start_vs_torch(p, repeat):
    """Start a script that times nnlite vs its numpy twin vs torch (``vs_columns``).

    Adds the run arguments (``add_run_args``) and ``--no-torch`` to the parser ``p`` after the
    script's own, parses them, sets the thread variables before numpy loads, imports this
    checkout's nnlite, then torch unless ``--no-torch`` (in that order, as the scripts always
    have). Returns ``(args, torch)``; torch is None when left out or not installed.
    """
    add_run_args(p, repeat=repeat)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    set_threads(args.threads)  # before numpy starts its thread pool
    repo_nnlite(allow_twins=args.allow_twins)   # numpy, then nnlite's kernels: before torch
    return args, (None if args.no_torch else import_torch(args.threads))


def add_gpt_args(p, n_layer):
    """Add the GPT size arguments (nanoGPT's CPU "baby GPT" defaults) to the parser ``p``."""
    p.add_argument("--n-layer", type=int, default=n_layer)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    add_twins_arg(p)


def torch_gpt(torch, vocab_size, block_size, n_layer, n_head, n_embd):
    """nnlite's GPT written with ``torch.nn``: nanoGPT's model, its modules named as nanoGPT's
    (``transformer.wte``, ``transformer.h.0.attn.c_attn``, ``.mlp.c_fc``, ..., ``lm_head``), so
    ``nl.io.torch_state_dict(gpt)`` loads into it. Two differences from nanoGPT, both as
    nnlite's GPT: the head has a bias and is not tied to ``wte``, GELU is the tanh one. Drawn
    from torch's default generator. ``torch`` is passed in: this module does not import it."""
    tnn, F = torch.nn, torch.nn.functional
    C, nh = n_embd, n_head

    class CausalSelfAttention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = tnn.Linear(C, 3 * C), tnn.Linear(C, C)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (z.view(b, t, nh, C // nh).transpose(1, 2)
                       for z in self.c_attn(x).split(C, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)   # (B, nh, T, hs)
            return self.c_proj(y.transpose(1, 2).reshape(b, t, C))

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj = tnn.Linear(C, 4 * C), tnn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = tnn.LayerNorm(C), CausalSelfAttention()
            self.ln_2, self.mlp = tnn.LayerNorm(C), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict({
                "wte": tnn.Embedding(vocab_size, C), "wpe": tnn.Embedding(block_size, C),
                "h": tnn.ModuleList([Block() for _ in range(n_layer)]),
                "ln_f": tnn.LayerNorm(C)})
            self.lm_head = tnn.Linear(C, vocab_size)

        def forward(self, idx):
            tr = self.transformer
            x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
            for block in tr.h:
                x = block(x)
            return self.lm_head(tr.ln_f(x))

    return TorchGPT()


def timeit(fn, budget=0.02, max_n=1 << 16, warmup=True):
    """Mean seconds per ``fn()`` call over a loop of about ``budget`` seconds.

    The loop count grows until one loop takes ``budget`` (or reaches ``max_n`` calls), so fast
    functions are timed over many calls and the timer's own cost does not show.
    ``warmup`` makes one untimed call first (allocations, thread pool start-up).
    """
    if warmup:
        fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= budget or n >= max_n:
            return t / n
        n = max(n * 2, int(n * budget / max(t, 1e-9)))


# columns of vs_columns, for a table's header
VS_HEAD = f"{'nnlite':>10} {'numpy':>10} {'torch':>10} {'numpy/nnlite':>13} {'torch/nnlite':>13}"


def vs_columns(f_nn, f_np, f_t, repeat):
    """Time nnlite, its numpy twin and torch (``f_t`` may be None) on one op; format the row.

    Each is ``timeit``, best of ``repeat`` rounds, the three taking turns with a short sleep:
    on a small machine one library's spinning OpenMP pool would otherwise steal the cores of
    the next. Returns the ``VS_HEAD`` columns: microseconds, then numpy/nnlite and
    torch/nnlite (> 1: nnlite faster); '-' for torch where it is not timed.
    """
    best = {"nnlite": 1e9, "numpy": 1e9, "torch": 1e9}
    for _ in range(repeat):
        for lib, fn in (("nnlite", f_nn), ("numpy", f_np), ("torch", f_t)):
            if fn:
                best[lib] = min(best[lib], timeit(fn))
                time.sleep(0.01)
    us = {k: (f"{v * 1e6:9.1f}u" if v < 1e9 else f"{'-':>10}") for k, v in best.items()}
    r_np = best["numpy"] / best["nnlite"]
    r_t = f"{best['torch'] / best['nnlite']:12.2f}x" if f_t else f"{'-':>13}"
    return f"{us['nnlite']} {us['numpy']} {us['torch']} {r_np:12.2f}x {r_t}"
