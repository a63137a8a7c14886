"""Helpers shared by the benchmark scripts in this folder: one way to time, one table.

A script imports this module with a plain ``import _common``: Python puts a script's own
folder first on ``sys.path``, so that works from the repository root and from ``benchmarks/``.

How every script measures (so that no figure can flatter; see README, "Speed"):

* **One child interpreter per thread count** (``--threads 1 2``, the default): the script
  starts itself again with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS set, since
  numpy's, torch's and nnlite's thread pools are sized when they load. The children send their
  results back as JSON; the parent prints one table with a column group per thread count.
* **Each library in its own block** (:func:`time_libraries`), never call by call: warm-up,
  then samples until both a count and a time budget are reached; a pause (:data:`PAUSE`)
  before each block, because OpenBLAS's and OpenMP's worker threads keep spinning for tens of
  ms after a call and steal the cores of whatever runs next (on a 2-core machine, nnlite ran
  at a fifth of its speed right after numpy calls; interleaved timings showed 0.5x to 1.4x).
* **Median and spread beside the best** (:class:`Stats`): the median of the samples, their
  inter-quartile range relative to the median, the fastest sample; ratios between libraries
  come from the medians.
* **GFLOP/s beside the fraction of a measured peak**: each child runs nnlite's FMA probe
  (``nnlite.ops.measure_peak``) on 1 and on its N threads and prints how.

This module imports nothing but the standard library at import time, on purpose: a parent
process only starts children and prints, and a child must not import numpy before its thread
variables are set (the parent sets them in the child's environment).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Seconds of sleep before each library's block. OpenBLAS's worker threads spin (busy-wait) for
# a while after each call before they sleep, as do OpenMP's (libgomp: GOMP_SPINCOUNT rounds;
# torch's and nnlite's pools); a block started within ~50 ms of another library's calls shares
# the cores with those spinning threads. 0.3 s is several times that.
PAUSE = 0.3
LIBS = ("nnlite", "numpy", "torch")     # the table's row order within a case


def set_threads(n):
    """Set the BLAS / OpenMP thread variables to ``n`` in this process (a script that runs in
    one process: check_gpt_vs_torch.py; the others start a child per thread count).

    Call it before numpy is imported; later, the pools are already sized and this does nothing.
    """
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if "numpy" in sys.modules:  # only possible if a script is imported, not run
        print("warning: numpy was imported before the thread count was set", file=sys.stderr)


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
    from nnlite import _origin, ops
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
        import torch.nn.functional
        torch.set_num_threads(threads)
    except ImportError:
        if not optional:
            raise
        return None
    return torch


def add_gpt_args(p, n_layer, twins=True):
    """Add the GPT size arguments (nanoGPT's CPU "baby GPT" defaults) to the parser ``p``, and
    ``--allow-twins`` unless ``twins`` is False."""
    p.add_argument("--n-layer", type=int, default=n_layer)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    if twins:
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




# ------------------------------------------------------------------------------ statistics

class Stats:
    """Seconds per call of one library on one case: the summary of its samples.

    Attributes
    ----------
    median, q1, q3 : float
        Median and quartiles of the samples (``statistics.quantiles``, inclusive method).
    best, worst : float
        The fastest and the slowest sample.
    n : int
        Number of samples.
    inner : int
        Calls per sample (a sample is the mean of ``inner`` back-to-back calls, so calls
        shorter than the timer's resolution are timed over enough of them).
    """

    FIELDS = ("median", "q1", "q3", "best", "worst", "n", "inner")

    def __init__(self, median, q1, q3, best, worst, n, inner=1):
        self.median, self.q1, self.q3 = median, q1, q3
        self.best, self.worst, self.n, self.inner = best, worst, n, inner

    @classmethod
    def of(cls, samples, inner=1):
        """Summarize ``samples`` (seconds per call, at least one)."""
        xs = sorted(samples)
        if not xs:
            raise ValueError("Stats.of: no samples")
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 \
            else (xs[0], xs[0], xs[0])
        return cls(statistics.median(xs), q1, q3, xs[0], xs[-1], len(xs), inner)

    @property
    def iqr(self):
        """Inter-quartile range relative to the median (0.05: the middle half of the samples
        lies within a 5 % wide band)."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else 0.0

    def to_dict(self):
        return {k: getattr(self, k) for k in self.FIELDS}

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d[k] for k in cls.FIELDS})

    def __repr__(self):
        return (f"Stats(median={self.median:.3g}, iqr={self.iqr:.1%}, best={self.best:.3g}, "
                f"n={self.n}x{self.inner})")


def time_block(fn, budget=0.5, min_samples=7, max_samples=10_000, sample_s=0.02,
               warmup_s=0.05, clock=time.perf_counter):
    """Time ``fn()`` alone: warm-up, then samples until ``min_samples`` *and* ``budget``.

    Warm-up: calls until at least 2 have run and ``warmup_s`` seconds have passed (buffers,
    thread pools, caches). Then each sample is the mean of ``inner`` back-to-back calls, with
    ``inner`` chosen from the last warm-up call so that a sample lasts about ``sample_s``; the
    samples go on until there are ``min_samples`` of them and ``budget`` seconds have passed
    (or ``max_samples``). Returns a :class:`Stats` of seconds per call.
    """
    t0 = clock()
    calls, last = 0, 0.0
    while calls < 2 or clock() - t0 < warmup_s:
        t = clock()
        fn()
        last = clock() - t
        calls += 1
    inner = max(1, min(100_000, round(sample_s / max(last, 1e-9))))
    samples = []
    start = clock()
    while len(samples) < max_samples and (len(samples) < min_samples
                                          or clock() - start < budget):
        t = clock()
        for _ in range(inner):
            fn()
        samples.append((clock() - t) / inner)
    return Stats.of(samples, inner)


def time_libraries(fns, pause=PAUSE, sleep=time.sleep, **block):
    """``{library: Stats}`` for ``fns = {library: fn}``, each library timed in its own block.

    Before each block, ``pause`` seconds of sleep (see :data:`PAUSE`); a block runs one
    library's calls only (:func:`time_block` with ``block``'s settings), so no library ever
    runs right after another one's calls. Libraries whose ``fn`` is None are left out.
    """
    out = {}
    for lib, fn in fns.items():
        if fn is None:
            continue
        sleep(pause)
        out[lib] = time_block(fn, **block)
    return out


# ------------------------------------------------------------------------------ the run

def parse(p, budget=0.5, repeat=7, quick=None):
    """Add the options every script shares to the argparse parser ``p`` and parse them.

    ``budget``/``repeat``: the defaults of the per-block time budget and sample count.
    ``quick``: ``{dest: value}`` that ``--quick`` sets (tiny sizes), besides a short budget,
    3 samples and a short pause.
    """
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], metavar="N",
                   help="thread counts, each run in its own child interpreter (default: 1 2)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and few samples: checks that the script runs, times nothing")
    p.add_argument("--budget", type=float, default=budget,
                   help="seconds of samples per library and case (after warm-up)")
    p.add_argument("--repeat", type=int, default=repeat,
                   help="at least this many samples per library and case")
    p.add_argument("--pause", type=float, default=PAUSE,
                   help="seconds of sleep before each library's block (spinning pools)")
    p.add_argument("--simd", default=None, help="force nnlite's SIMD path (scalar|avx2|avx512)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    add_twins_arg(p)
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)   # JSON file to write
    args = p.parse_args()
    if any(n < 1 for n in args.threads):
        p.error(f"--threads: thread counts must be >= 1, got {args.threads}")
    args.sample_s, args.warmup_s = 0.02, 0.05     # see time_block
    if args.quick:
        args.budget, args.repeat, args.pause = min(args.budget, 0.01), min(args.repeat, 3), 0.01
        args.sample_s, args.warmup_s = 0.002, 0.005
        for k, v in (quick or {}).items():
            setattr(args, k, v)
    return args


def run_parent(args, only_if_missing=False):
    """In the parent: run the script once per thread count in a child, print the report, and
    return the children's results (a list of dicts). In a child: return None at once.

    Before starting anything, the nnlite the children will import is checked for compiled
    kernels (:func:`repo_nnlite`), so a refusal costs no child.
    """
    if args._child is not None:
        return None
    repo_nnlite(only_if_missing=only_if_missing, allow_twins=args.allow_twins)
    results = []
    for n in args.threads:
        fd, path = tempfile.mkstemp(prefix="nnlite-bench-", suffix=".json")
        os.close(fd)
        env = dict(os.environ, **{k: str(n) for k in THREAD_VARS})
        if "nnlite" in sys.modules:   # the children import the nnlite the parent checked
            home = os.path.dirname(os.path.dirname(sys.modules["nnlite"].__file__))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (home, env.get("PYTHONPATH")) if p)
        print(f"[{os.path.basename(sys.argv[0])}: running with {n} thread(s)]", flush=True)
        try:
            r = subprocess.run([sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:],
                                "--threads", str(n), "--_child", path], env=env, check=False)
            if r.returncode:
                sys.exit(f"{os.path.basename(sys.argv[0])}: the {n}-thread child failed "
                         f"(exit status {r.returncode})")
            with open(path) as f:
                results.append(json.load(f))
        finally:
            os.unlink(path)
    print_report(results, args)
    return results


class Run:
    """A child's run: the libraries, the measured peak, and the timed cases so far.

    ``time(case, {library: fn}, flops=...)`` times one case, each library in its own block;
    ``note(line)`` adds a line above the table; ``finish()`` writes everything to the
    parent's JSON file.
    """

    def __init__(self, args, torch, missing):
        from nnlite import ops
        self.args, self.torch, self.threads = args, torch, args.threads[-1]
        self.rows, self.notes, self.missing = [], [], dict(missing)
        try:
            one = ops.measure_peak(threads=1)
            many = ops.measure_peak(threads=self.threads) if self.threads > 1 else one
            # the larger of the N-thread figure and N x the 1-thread one: a busy machine
            # lowers the N-thread probe first, and a low peak would flatter "% of peak"
            self.peak = {"gflops": max(many["gflops"], self.threads * one["gflops"]),
                         "one": one["text"], "many": many["text"],
                         "rule": (f"max(measured, {self.threads} x the 1-thread figure)"
                                  if self.threads > 1 else "measured")}
        except RuntimeError as e:   # no compiled kernels (--allow-twins): no probe either
            self.peak = {"gflops": None, "one": str(e), "many": str(e), "rule": "none"}

    def note(self, line):
        self.notes.append(line)

    def time(self, case, fns, flops=None, peak_factor=1.0):
        """Time ``fns = {library: fn or None}`` on ``case`` (a label); ``flops``: the work of
        one call, for GFLOP/s and % of peak (None: not a FLOP-bound case). ``peak_factor``
        scales the (float32) peak for this case: 0.5 for float64, half the lanes per
        register."""
        a = self.args
        stats = time_libraries(fns, pause=a.pause, budget=a.budget, min_samples=a.repeat,
                               sample_s=a.sample_s, warmup_s=a.warmup_s)
        for lib, st in stats.items():
            self.rows.append({"case": case, "lib": lib, "stats": st.to_dict(), "flops": flops,
                              "peak_factor": peak_factor})
        return stats

    def finish(self):
        import numpy as np

        import nnlite as nl
        meta = {"threads": self.threads, "peak": self.peak, "notes": self.notes,
                "missing": self.missing,
                "versions": (f"nnlite {nl.__version__} (SIMD {nl.ops.simd_path()}, OpenMP "
                             f"{'yes' if nl.ops.has_openmp() else 'no'}), numpy {np.__version__}"
                             + (f", torch {self.torch.__version__}" if self.torch else ""))}
        with open(self.args._child, "w") as f:
            json.dump({"meta": meta, "rows": self.rows}, f)


def start_child(args, only_if_missing=False, torch_wanted=True):
    """In a child: import nnlite (checked as in the parent), set its threads and SIMD path,
    import torch unless ``--no-torch`` (None where it is not installed), measure the peak.
    Returns a :class:`Run`."""
    repo_nnlite(only_if_missing=only_if_missing, allow_twins=args.allow_twins)
    from nnlite import ops
    n = args.threads[-1]
    ops.set_num_threads(n)
    if args.simd:
        ops.set_simd_path(args.simd)
    torch, missing = None, {}
    if args.no_torch or not torch_wanted:
        missing["torch"] = "left out (--no-torch)" if args.no_torch else None
    else:
        torch = import_torch(n)
        if torch is None:
            missing["torch"] = "not installed (pip install torch==2.13.0)"
    return Run(args, torch, {k: v for k, v in missing.items() if v})


# ------------------------------------------------------------------------------ the table

def fmt_time(s):
    """Seconds as a short string with its unit: 812.3us, 12.34ms, 1.234s."""
    if s < 1e-3:
        return f"{s * 1e6:.1f}us"
    if s < 1:
        return f"{s * 1e3:.2f}ms"
    return f"{s:.3f}s"


def fmt_iqr(r):
    """A relative IQR as a short percentage (a very noisy cell reads '>999%')."""
    return ">999%" if r >= 10 else f"{100 * r:.0f}%" if r >= 1 else f"{100 * r:.1f}%"


COLS = (("median", 9), ("iqr", 6), ("best", 9), ("GF/s", 7), ("%peak", 6), ("xnumpy", 7),
        ("xtorch", 7))


def table(results):
    """The report's table, as a list of lines: a row per (case, library), a column group per
    thread count (one child's results each): median, IQR (% of the median), best, GFLOP/s
    and % of that thread count's peak (FLOP-bound cases), then numpy's and torch's median
    over this one (> 1: this library is faster)."""
    groups = [r["meta"]["threads"] for r in results]
    cells, cases = {}, []
    for r in results:
        for row in r["rows"]:
            if row["case"] not in cases:
                cases.append(row["case"])
            cells[(row["case"], row["lib"], r["meta"]["threads"])] = row
    has_flops = any(row["flops"] for row in cells.values())
    cols = [c for c in COLS if has_flops or c[0] not in ("GF/s", "%peak")]
    missing = {}
    for r in results:
        missing.update(r["meta"]["missing"])
    width_case = max([len("case")] + [len(c) for c in cases])
    group_w = sum(w + 1 for _, w in cols)
    head1 = f"{'':{width_case}} {'':7}" + "".join(
        f" |{f' {n} thread' + ('s' if n != 1 else ''):<{group_w}}" for n in groups)
    head2 = f"{'case':{width_case}} {'library':7}" + "".join(
        " |" + "".join(f"{name:>{w + 1}}" for name, w in cols) for _ in groups)
    lines = [head1, head2, "-" * len(head2)]
    peaks = {r["meta"]["threads"]: r["meta"]["peak"]["gflops"] for r in results}
    for case in cases:
        for lib in LIBS + tuple(sorted({k[1] for k in cells} - set(LIBS))):
            present = [n for n in groups if (case, lib, n) in cells]
            if not present and lib not in missing:
                continue
            line = f"{case:{width_case}} {lib:7}"
            for n in groups:
                row = cells.get((case, lib, n))
                if row is None:
                    text = missing.get(lib, "-") if lib in missing else "-"
                    line += " |" + f"{text[:group_w - 1]:>{group_w}}"
                    continue
                st = Stats.from_dict(row["stats"])
                vals = {"median": fmt_time(st.median), "iqr": fmt_iqr(st.iqr),
                        "best": fmt_time(st.best)}
                if row["flops"]:
                    gf = row["flops"] / st.median / 1e9
                    vals["GF/s"] = f"{gf:.1f}"
                    peak = (peaks.get(n) or 0) * row.get("peak_factor", 1.0)
                    vals["%peak"] = f"{100 * gf / peak:.0f}%" if peak else "-"
                for other, key in (("numpy", "xnumpy"), ("torch", "xtorch")):
                    ref = cells.get((case, other, n))
                    vals[key] = (f"{ref['stats']['median'] / st.median:.2f}" if ref else "-")
                line += " |" + "".join(f"{vals.get(name, '-'):>{w + 1}}" for name, w in cols)
            lines.append(line)
    return lines


def print_report(results, args):
    """Print the children's header lines, how the figures were measured, and the table."""
    if not results:
        return
    first = results[0]["meta"]
    print(first["versions"])
    for note in first["notes"]:
        print(note)
    for r in results:
        n, pk = r["meta"]["threads"], r["meta"]["peak"]
        if pk["gflops"] is None:
            print(f"peak, {n} thread(s): not measured ({pk['one']})")
        elif n == 1:
            print(f"peak, 1 thread: {pk['one']}")
        else:
            print(f"peak, {n} threads: {pk['many']}; used: {pk['rule']} = "
                  f"{pk['gflops']:.1f} GFLOP/s (1 thread: {pk['one'].rsplit(': ', 1)[-1]})")
    print(f"timing: each library in its own block, {args.pause:g} s pause before each "
          f"(spinning BLAS/OpenMP threads), never call by call; warm-up, then samples of "
          f"~20 ms until >= {args.repeat} samples and >= {args.budget:g} s; median, "
          f"iqr = (q3 - q1) / median, best = fastest sample; GF/s from the median; "
          f"xnumpy, xtorch = their median / this median (> 1: this row is faster); "
          f"one child interpreter per thread count")
    if args.quick:
        print("--quick: tiny sizes, few samples: these figures mean nothing")
    print()
    for line in table(results):
        print(line)
    sys.stdout.flush()
